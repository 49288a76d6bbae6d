"""`terminology.code_named`: the one lookup of a concept by name, whose error lists the names."""

from __future__ import annotations

import pytest

from carecoord.caremodel import terminology as t
from carecoord.errors import ConfigError

TABLE = {"b": t.Code("urn:s", "b"), "a": t.Code("urn:s", "a")}


def test_a_known_name_is_its_code() -> None:
    assert t.code_named(TABLE, "a", "letter") is TABLE["a"]


def test_an_unknown_name_raises_the_error_asked_for_listing_the_names_sorted() -> None:
    with pytest.raises(ValueError) as value:
        t.code_named(TABLE, "z", "letter")
    assert str(value.value) == "unknown letter 'z'; expected one of ['a', 'b']"
    assert value.value.__suppress_context__  # not "during handling of KeyError"
    with pytest.raises(ConfigError, match=r"^unknown letter 'z'; expected one of \['a', 'b'\]$"):
        t.code_named(TABLE, "z", "letter", ConfigError)
