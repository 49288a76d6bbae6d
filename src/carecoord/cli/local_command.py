"""CLI: `carecoord local`, the embedded Kafka broker and FHIR server in the foreground.

It prints the `export CARECOORD_...` lines for another shell (stdout holds only those, so
`carecoord local > env.sh` gives a file to source), then waits; SIGINT (Ctrl-C), SIGTERM or
SIGHUP stops both servers and exits 0. Mistakes in the options, a port in use and a missing
`local` extra exit 2 with one line saying what to change; a server that fails exits 1.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from carecoord.local import LocalFhir, LocalKafka, LocalProcess

# Fixed defaults rather than free ports: the printed lines stay the same from run to run (a
# shell profile or .env written once keeps working, which matters with --data), 9092 is Kafka's
# registered port and 8080 the one of the README's quickstart (http://127.0.0.1:8080/fhir).
# Port 0 asks for a free one.
DEFAULT_KAFKA_PORT = 9092
DEFAULT_FHIR_PORT = 8080

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, terminal closed
_LOCK_FILE = ".carecoord-local.lock"
_WATCH_INTERVAL = 0.5  # seconds between checks that both servers still run
_LOG_TAIL_LINES = 15

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Attach `carecoord local` to the root app."""
    app.command("local")(local_command)


def local_command(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Keep the FHIR server's database in this directory (created if missing): a "
            "later run with the same directory serves the same resources. Default: a temporary "
            "directory, deleted at exit. The broker always keeps its topics in memory.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    kafka_port: Annotated[
        int,
        typer.Option(
            "--kafka-port", min=0, max=65535, help="Broker port on 127.0.0.1; 0: any free port."
        ),
    ] = DEFAULT_KAFKA_PORT,
    fhir_port: Annotated[
        int,
        typer.Option(
            "--fhir-port", min=0, max=65535, help="FHIR server port on 127.0.0.1; 0: any free port."
        ),
    ] = DEFAULT_FHIR_PORT,
) -> None:
    """Run the embedded Kafka broker (tansu) and FHIR R4 server (sekmet) on 127.0.0.1 until
    Ctrl-C, printing the CARECOORD_* lines to export for `carecoord run`, `worklist` and the
    library. Needs carecoord's 'local' extra."""
    from carecoord import local
    from carecoord.errors import ConfigError

    try:  # before anything starts: a missing extra is a one-line fix
        local.tansu_binary()
        local.sekmet_binary()
    except ConfigError as exc:
        _usage_error(str(exc))
    if kafka_port and kafka_port == fhir_port:
        _usage_error(f"--kafka-port and --fhir-port are both {kafka_port}: give two ports")
    for option, port, what in (
        ("--kafka-port", kafka_port, "the Kafka broker"),
        ("--fhir-port", fhir_port, "the FHIR server"),
    ):
        if port:
            _named(option, partial(local.ensure_port_free, port, what))
    with _data_dir(data) as workdir, _stop_signals():
        code = _serve(kafka_port, fhir_port, workdir)
    raise typer.Exit(code)


class _Stop(BaseException):
    """Raised in the main thread by a stop signal: unwinds a start-up as well as the wait.
    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it."""


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # the first signal stops; the servers' shutdown is not interrupted
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop(signum)


@contextmanager
def _stop_signals() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(kafka_port: int, fhir_port: int, workdir: Path | None) -> int:
    """Start both servers, announce them and wait; the exit code."""
    from carecoord import local
    from carecoord.errors import ConfigError

    kafka: LocalKafka | None = None
    fhir: LocalFhir | None = None
    try:
        kafka = _named(
            "--kafka-port", lambda: local.start_kafka(kafka_port or None, supervised=True)
        )
        fhir = _named(
            "--fhir-port",
            lambda: local.start_fhir(fhir_port or None, workdir=workdir, supervised=True),
        )
        _announce(kafka, fhir, workdir)
        return _watch({"Kafka broker": kafka, "FHIR server": fhir})
    except _Stop:
        return 0
    except typer.Exit:  # a usage error, already reported (click's Exit is a RuntimeError)
        raise
    except ConfigError as exc:  # e.g. the extra uninstalled since the check
        _usage_error(str(exc))
    except RuntimeError as exc:  # a server exited or never answered during start-up
        typer.echo(f"carecoord local: {exc}", err=True)
        return 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        typer.echo("carecoord local: stopping", err=True)
        for server in (fhir, kafka):
            if server is not None:
                server.close()
        typer.echo("carecoord local: stopped", err=True)


def _named(option: str, start: Callable[[], T]) -> T:
    """Run `start`; a port that cannot be bound exits 2 with one line naming the option."""
    from carecoord.local import PortUnavailable

    try:
        return start()
    except PortUnavailable as exc:
        _usage_error(
            f"{option}: {exc}: stop what listens there or pick another port "
            f"({option} 0: any free one)"
        )


def _announce(kafka: LocalKafka, fhir: LocalFhir, workdir: Path | None) -> None:
    from carecoord.settings import env_name

    kept = f"in {workdir} (kept)" if workdir else "in a temporary directory (deleted at exit)"
    _stderr(f"Kafka broker (tansu, topics in memory) on {kafka.bootstrap}, pid {kafka.proc.pid}")
    _stderr(f"FHIR R4 server (sekmet) on {fhir.base_url}, pid {fhir.proc.pid}, data {kept}")
    typer.echo(f"export {env_name('kafka_bootstrap')}={kafka.bootstrap}")
    typer.echo(f"export {env_name('fhir_base_url')}={fhir.base_url}")
    _stderr("export the lines above in another shell; Ctrl-C stops both servers")


def _watch(servers: dict[str, LocalProcess]) -> int:
    """Wait for a stop signal; 1 if a server exits on its own first (with its log's tail)."""
    while True:
        for name, server in servers.items():
            code = server.proc.poll()
            if code is not None:
                _stderr(f"the {name} exited on its own with code {code}; its log ends:")
                _stderr_tail(server.log)
                return 1
        time.sleep(_WATCH_INTERVAL)


@contextmanager
def _data_dir(data: Path | None) -> Iterator[Path | None]:
    """The FHIR server's directory, locked for this run: two servers on one SQLite database
    would each believe they own it."""
    if data is None:
        yield None
        return
    import fcntl

    data = data.expanduser().resolve()
    try:
        data.mkdir(parents=True, exist_ok=True)
        lock: IO[bytes] = open(data / _LOCK_FILE, "ab")  # noqa: SIM115 - held until the end
    except OSError as exc:
        _usage_error(f"--data {data}: cannot be used as a directory ({exc.strerror})")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _usage_error(
                f"--data {data}: another `carecoord local` uses it: stop that one or give "
                "another directory"
            )
        yield data
    finally:
        lock.close()  # releases the lock


def _stderr(line: str) -> None:
    typer.echo(f"carecoord local: {line}", err=True)


def _stderr_tail(log: Path) -> None:
    try:
        lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    except OSError:
        return
    for line in lines:
        typer.echo(f"  {line}", err=True)


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"carecoord local: {message}", err=True)
    raise typer.Exit(2)
