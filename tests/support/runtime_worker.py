"""Runs the event runtime with the test BasicWriter in its own process (for kill tests).

python tests/support/runtime_worker.py BOOTSTRAP FHIR_BASE_URL TAG [DELAY]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `support`

from carecoord.events.runtime import EventRuntime
from carecoord.fhir.client import FhirClient
from support.runtime_faults import BasicWriter, runtime_options


def main() -> None:
    bootstrap, fhir_url, tag = sys.argv[1:4]
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with FhirClient(fhir_url, retry_budget=5) as fhir:
        runtime = EventRuntime(BasicWriter(fhir, tag, delay), runtime_options(bootstrap, tag))
        runtime.install_signal_handlers()
        runtime.run()


if __name__ == "__main__":
    main()
