"""Each setting is stated once, in its Field: docs/configuration.md's table is generated from the
fields, every field says what it is and how to fix it, and the service's defaults are the
runtime's."""

from __future__ import annotations

import re
from pathlib import Path

from carecoord.events.runtime import RuntimeOptions
from carecoord.settings import Settings, reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_docs_table_is_generated_from_the_fields() -> None:
    found = re.search(
        r"<!-- settings:start[^>]*-->\n(.*?)<!-- settings:end -->", DOC.read_text(), re.S
    )
    assert found is not None
    assert found.group(1) == reference(), "stale: run python -m carecoord.settings"


def test_every_setting_says_what_it_is_and_how_to_fix_it() -> None:
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        assert info.description, name
        assert isinstance(extra, dict) and extra.get("fix") and extra.get("group"), name


def test_the_service_defaults_are_the_runtimes() -> None:
    runtime = RuntimeOptions()
    fields = Settings.model_fields
    pairs = {
        "topic_in": runtime.topic_in,
        "topic_out": runtime.topic_out,
        "topic_dlq": runtime.topic_dlq,
        "group_id": runtime.group_id,
        "concurrency": runtime.max_in_flight,
        "retry_budget": runtime.retry_budget_seconds,
        "drain_timeout": runtime.shutdown_drain_seconds,
    }
    assert {k: fields[k].default for k in pairs} == pairs
