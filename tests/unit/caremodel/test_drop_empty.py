"""The builders' last pass (`_build._drop_empty`): FHIR forbids empty elements and fhir.resources
writes UTC as "Z". Its quick path (top-level empties dropped, the rest walked only where the
JSON still shows an empty or "+00:00") must give what the full walk gives, for any JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from carecoord.caremodel._build import _drop_empty, _walk

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.sampled_from(["", "null", "[]", "{}", '""', "2030-01-02T10:00:00+00:00", "+00:00", "x"]),
    st.text(max_size=8),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _JSON, max_size=6))
def test_the_quick_path_gives_what_the_walk_gives(resource: dict[str, Any]) -> None:
    assert _drop_empty(resource) == _walk(resource)


def test_nested_empties_and_utc_instants_are_still_cleaned() -> None:
    built = {
        "resourceType": "Task",
        "careTeam": [],
        "note": None,
        "owner": {"reference": "Practitioner/1", "display": ""},
        "input": [{"type": {}, "valueString": "null"}],
        "authoredOn": "2030-01-02T10:00:00+00:00",
    }
    assert _drop_empty(built) == {
        "resourceType": "Task",
        "owner": {"reference": "Practitioner/1"},
        "input": [{"valueString": "null"}],
        "authoredOn": "2030-01-02T10:00:00Z",
    }
