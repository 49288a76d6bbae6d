"""An uncaught exception is logged as one line naming its type, thread and place (the hook must
not itself fail: `thread` is a reserved LogRecord attribute)."""

from __future__ import annotations

import logging
import sys

import pytest

from carecoord.service.logging import log_uncaught


def test_an_uncaught_exception_is_logged_without_failing(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("payload text that must not be logged")
    except ValueError:
        exc_type, _, tb = sys.exc_info()
    assert exc_type is not None
    with caplog.at_level(logging.ERROR, logger="carecoord.uncaught"):
        log_uncaught(exc_type, tb, "MainThread")
    (record,) = caplog.records
    assert record.getMessage() == "uncaught exception"
    assert record.error == "ValueError" and record.in_thread == "MainThread"  # type: ignore[attr-defined]
    assert "payload" not in caplog.text
