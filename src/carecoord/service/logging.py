"""JSON log lines for the service. Records carry ids only (event id, resource ids), never PHI:
the formatter writes the message, the `extra` fields a caller passed and the log context of the
event being handled (`LogContextFilter`: carecoord.core.log_context), nothing from the event."""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from carecoord.core import log_context

# Attributes every LogRecord has; anything else came from `extra=` and is emitted as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class LogContextFilter(logging.Filter):
    """Adds the log context (event id, type, handler, patient id, topic/partition/offset, trace
    and span ids) to each record; a field the call passed in `extra=` is kept as passed."""

    def filter(self, record: logging.LogRecord) -> bool:
        attrs = record.__dict__
        for key, value in log_context.fields().items():
            attrs.setdefault(key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Type and our own message; tracebacks of carecoord errors hold ids only.
            out["error_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> logging.Handler:
    """Route the root logger to `stream` (stderr) as JSON (or plain text); return the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(LogContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection, every rebalance step); httpx logs every
    # request URL at INFO, and search URLs carry identifiers in their query strings.
    for noisy in ("kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)  # warnings.warn() would print plain text to stderr
    install_excepthooks()
    return handler


def log_uncaught(
    exc_type: type[BaseException], tb: TracebackType | None, thread: str | None
) -> None:
    """One log line for an exception nobody caught: its type, thread and where it was raised;
    not its message nor a traceback (messages may carry payload values; lines must be JSON)."""
    frames = traceback.extract_tb(tb) if tb is not None else []
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else None
    logging.getLogger("carecoord.uncaught").error(
        "uncaught exception",
        extra={"error": exc_type.__name__, "in_thread": thread, "where": where},
    )


def install_excepthooks() -> None:
    """Route uncaught exceptions of the main thread and of every other thread to `log_uncaught`
    (Python's defaults print a plain-text traceback to stderr)."""

    def main_hook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        log_uncaught(exc_type, tb, threading.current_thread().name)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:  # what the default hook ignores too
            return
        log_uncaught(args.exc_type, args.exc_traceback, args.thread.name if args.thread else None)

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
