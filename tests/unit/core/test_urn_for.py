"""A transaction's fullUrls are RFC 4122 version-5 UUIDs of "system|value" in carecoord's
namespace: the same on every replay, and the same as `uuid.uuid5` gives (outboxes and stored
references written by earlier releases name them)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from carecoord.core.effects import _URN_NAMESPACE, urn_for


@given(st.text(max_size=40), st.text(max_size=80))
def test_the_urn_is_uuid5_of_the_identifier(system: str, value: str) -> None:
    expected = uuid.uuid5(_URN_NAMESPACE, f"{system}|{value}")
    assert urn_for(system, value) == f"urn:uuid:{expected}"


def test_a_known_identifier_keeps_its_urn() -> None:
    # pinned: a change of namespace would orphan the references earlier releases wrote
    pinned = "urn:uuid:df716122-61fe-5d32-9329-3435c3460656"
    assert urn_for("https://carecoord.dev/id/task", "p1") == pinned
