"""FHIR errors: an OperationOutcome (or its absence) turned into a small typed hierarchy.

Messages name the request (method + path, never the query string, which may hold PHI) and the
issues' severity, code, diagnostics and FHIRPath expressions. Secrets never appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carecoord.errors import CarecoordError

# The error classes (`carecoord` and `carecoord.fhir` re-export exactly these).
__all__ = [
    "FhirConflict",
    "FhirError",
    "FhirForbidden",
    "FhirGone",
    "FhirInvalid",
    "FhirNotFound",
    "FhirPreconditionFailed",
    "FhirRateLimited",
    "FhirResponseInvalid",
    "FhirServerError",
    "FhirTransportError",
    "FhirUnauthorized",
]


@dataclass(frozen=True)
class Issue:
    severity: str
    code: str
    diagnostics: str | None = None
    expression: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f" at {', '.join(self.expression)}" if self.expression else ""
        what = f": {self.diagnostics}" if self.diagnostics else ""
        return f"{self.severity}/{self.code}{where}{what}"


class FhirError(CarecoordError):
    """Any failure talking to a FHIR server. `transient` errors are worth retrying (the client
    does, within its budget); `unavailable` ones mean the server is down or overloaded."""

    transient: bool = False
    dependency = "fhir"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request: str | None = None,
        issues: tuple[Issue, ...] = (),
        resource: str | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.request = request
        self.issues = issues
        if transient is not None:
            self.transient = transient
        # Seconds the server asked us to wait (Retry-After) before trying again, if it said.
        self.retry_after = retry_after
        detail = "; ".join(str(i) for i in issues)
        super().__init__(
            f"{message}: {detail}" if detail else message,
            status=status,
            request=request,
            resource=resource,
        )


class FhirNotFound(FhirError):
    """404."""


class FhirGone(FhirError):
    """410: the resource was deleted."""


class FhirConflict(FhirError):
    """409: a concurrent change; re-read and retry."""

    rerun = True


class FhirPreconditionFailed(FhirConflict):
    """412: If-Match did not match the current version (or a conditional matched several)."""


class FhirInvalid(FhirError):
    """400/422: the server rejected the resource or request; `issues` say what and where."""


class FhirUnauthorized(FhirError):
    """401."""


class FhirForbidden(FhirError):
    """403."""


class FhirServerError(FhirError):
    """5xx (502/503/504 and 429 are transient; the instance's `transient` says which).

    Every 5xx and 429 is `unavailable`: a server failing or refusing requests is an outage, so the
    service stops consuming and probes it rather than dead-letter what it could not write."""

    transient = True

    @property
    def unavailable(self) -> bool:
        return True

    @property
    def declared_unavailable(self) -> bool:
        return self.status in (429, 503)


class FhirRateLimited(FhirServerError):
    """429 Too Many Requests: transient; `retry_after` holds the server's Retry-After, if any."""


class FhirTransportError(FhirError):
    """Connect error, timeout, broken connection.

    `reached_server` is False when the request certainly never left (connect error, pool timeout),
    so even a non-idempotent request may be retried; True when it may have been processed.
    """

    transient = True

    def __init__(self, message: str, *, reached_server: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reached_server = reached_server

    @property
    def unavailable(self) -> bool:
        return self.transient  # not for a broken setup (unsupported protocol), which won't heal


class FhirResponseInvalid(FhirError):
    """The server answered something that is not valid FHIR (bad JSON, a non-FHIR error page, a
    resource that fails validation). Names the resource type and the failing elements."""


# The class of each HTTP error status that has one of its own (`transport.error_for`); 429 and
# 5xx are FhirRateLimited / FhirServerError, any other 4xx FhirInvalid.
BY_STATUS: dict[int, type[FhirError]] = {
    401: FhirUnauthorized,
    403: FhirForbidden,
    404: FhirNotFound,
    409: FhirConflict,
    410: FhirGone,
    412: FhirPreconditionFailed,
}
