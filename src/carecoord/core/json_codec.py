"""JSON on the hot path: orjson where it is installed (a dependency on CPython, where it has
wheels), the standard library otherwise.

Measured by py-spy on a bench drain worker (docs/benchmarks.md): parsing the FHIR server's
answers with `json` was 12 % of the service's CPU, copying the JSON handlers edit 9 %. What
orjson refuses (NaN, non-string keys, integers beyond 64 bits to write, datetimes in a "JSON"
copy) goes the standard library's way, so errors stay those of `json`. One difference stays:
orjson reads an integer beyond 64 bits as a float, where `json` keeps it exact; no FHIR type
holds one (integer is 32-bit, integer64 64-bit), so a resource with one is invalid either way.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - a platform without an orjson wheel
    orjson = None  # type: ignore[assignment]

# Anything but plain JSON types goes to `default`, which orjson lacks here: it raises and the
# standard library takes over (a datetime would otherwise become a string in a copy).
_PLAIN = (
    (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)
    if orjson is not None
    else 0
)


def loads(data: bytes | str) -> Any:
    """`json.loads(data)`, faster; raises what `json.loads` raises."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library's verdict and message (it also reads NaN, big ints)
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of `value` (`json.dumps(value, separators=(",", ":"))`, UTF-8 where
    that one escapes non-ASCII; both are the same JSON); raises `TypeError` as it does."""
    if orjson is not None:
        try:
            return orjson.dumps(value, option=_PLAIN)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return json.dumps(value, separators=(",", ":")).encode()


def copy(value: Any) -> Any:
    """A deep copy of JSON (dicts, lists, str, int, float, bool, None). A NaN, which FHIR JSON
    cannot hold, comes back None."""
    if orjson is not None and isinstance(value, dict | list):
        try:
            return orjson.loads(orjson.dumps(value, option=_PLAIN))
        except TypeError:
            pass  # not plain JSON (a tuple is, and comes back a list)
    return _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
