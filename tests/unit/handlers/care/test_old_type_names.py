"""0.1's event-type constants of the handler modules still import, warning which model to use."""

from __future__ import annotations

import importlib

import pytest

from carecoord.catalog import ClinicalOverdue, ReferralCreated, TcmEpisodeEnded


@pytest.mark.parametrize(
    ("module", "name", "model"),
    [
        ("carecoord.handlers.clinical.loop", "OVERDUE", ClinicalOverdue),
        ("carecoord.handlers.programs.tcm", "EPISODE_ENDED", TcmEpisodeEnded),
        ("carecoord.handlers.referrals.handler", "CREATED", ReferralCreated),
    ],
)
def test_an_old_constant_is_its_models_type_with_a_warning(
    module: str, name: str, model: type[ClinicalOverdue]
) -> None:
    with pytest.warns(DeprecationWarning, match=f"use {model.__name__}.event_type"):
        value = getattr(importlib.import_module(module), name)
    assert value == model.event_type


def test_a_name_that_never_existed_is_still_an_attribute_error() -> None:
    loop = importlib.import_module("carecoord.handlers.clinical.loop")
    with pytest.raises(AttributeError, match="no attribute 'OVERDOO'"):
        loop.OVERDOO  # noqa: B018


def test_the_0_1_module_path_reaches_the_old_constant_too() -> None:
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("carecoord.handlers.reassignment")
        assert old.REASSIGN == "carecoord.care-manager.reassign"
