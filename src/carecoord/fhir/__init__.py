"""A FHIR REST client, usable on its own: sync and async, with retries inside a time budget,
auth (bearer, client credentials, SMART Backend Services), transaction and batch bundles
(conditional create, If-Match updates), paged search and typed errors naming the request,
never its query string or a secret.

    from carecoord.fhir import FhirClient, BearerToken

    with FhirClient("https://fhir.example.org/r4", auth=BearerToken("…")) as fhir:
        patient = fhir.read("Patient", "123")

carecoord's care model on FHIR is `carecoord.caremodel`; the directory import,
`carecoord.directory`.
"""

from __future__ import annotations

from carecoord.fhir import errors as _errors
from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.auth import BearerToken, ClientCredentials, SmartBackendServices
from carecoord.fhir.bundles import BatchResult, EntryResult, TransactionResult
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import *  # noqa: F403  (the error classes, `_errors.__all__`)
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion, parse_resource, to_json

__all__ = [
    "DEFAULT_VERSION",
    "AsyncFhirClient",
    "BatchResult",
    "BearerToken",
    "ClientCredentials",
    "EntryResult",
    "FhirClient",
    "FhirVersion",
    "SmartBackendServices",
    "TransactionResult",
    "parse_resource",
    "to_json",
]
__all__ += _errors.__all__
