"""Periodic jobs are named in the logs by module and function, not by `<locals>` noise."""

from __future__ import annotations

from collections.abc import Callable

from carecoord.service.app import _job_name


def _factory() -> Callable[[], None]:
    def sweep_job() -> None:
        """A job made inside a function, as periodic_jobs hooks make them."""

    return sweep_job


def test_a_nested_job_is_named_by_its_module_and_function() -> None:
    assert _job_name(_factory()) == "test_periodic_job_names.sweep_job"
    assert "<locals>" not in _job_name(_factory())
