"""`make demo` / `carecoord demo`: a month of a care-management practice on the real service.

Modules: `sim` (the practice and its event mix), `runner` (the month through the real service on
the demo's clock), `summary` (read back from the FHIR server and the topics), `report` (one
offline HTML file with inline SVG charts). `python -m carecoord.demo --help` for the options.
"""

from __future__ import annotations

from carecoord.demo.main import main, run

__all__ = ["main", "run"]
