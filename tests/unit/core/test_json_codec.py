"""carecoord.core.json_codec: orjson's speed with the standard library's results and errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from carecoord.core import json_codec


def test_loads_reads_what_json_reads_and_fails_as_it_fails() -> None:
    text = (
        '{"a": [1, 2.5, "é", null, true], "i64": -9223372036854775808, "u64": 18446744073709551615}'
    )
    assert json_codec.loads(text.encode()) == json.loads(text)
    assert json_codec.loads(b'{"x": NaN}')["x"] != json_codec.loads(b'{"x": NaN}')["x"]
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads(b"{not json")


def test_dumps_is_compact_json_of_the_same_value() -> None:
    value = {"resourceType": "Task", "note": [{"text": "café"}], "n": 2**70}
    assert json.loads(json_codec.dumps(value)) == value
    assert b" " not in json_codec.dumps({"a": [1, 2]})
    with pytest.raises(TypeError):
        json_codec.dumps({"when": object()})


def test_copy_is_deep_and_keeps_what_json_cannot_carry() -> None:
    original = {"a": [{"b": 1}], "c": "x"}
    copied = json_codec.copy(original)
    copied["a"][0]["b"] = 2
    assert original == {"a": [{"b": 1}], "c": "x"}
    when = datetime(2026, 12, 7, tzinfo=UTC)
    odd = {"when": when, "key": {1: "non-string key"}}
    kept = json_codec.copy(odd)
    assert kept == odd and kept["when"] is when and kept is not odd
