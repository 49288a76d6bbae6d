"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _crc32c() -> str:
    # kafka-python checks every fetched batch's CRC-32C: in C with the `crc32c` package,
    # otherwise in pure Python (most of a plain consumer's CPU time).
    return "c (crc32c package)" if find_spec("crc32c") is not None else "python"


def describe(broker: str) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka_python": _version("kafka-python"),
        "pydantic": _version("pydantic"),
        "kafka_crc32c": _crc32c(),
        "carecoord": _version("carecoord"),
        "broker": broker,
    }
