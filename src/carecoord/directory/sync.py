"""`carecoord directory sync URL`: read a live HSDS 3.0 API, page by page, into the directory.

The API is the one openreferral/specification `schema/openapi.json` defines: `GET /services`
with `page`, `per_page` and `full` (a page: `contents`, `page_number`, `total_pages`,
`last_page`), and `GET /services/{id}` for the full service when a page gives only a summary
(no organization object, or no attributes: the taxonomy terms). Each service is written as
`directory import` writes it (one transaction per service, conditional on its HSDS business
identifier), so a re-sync updates what changed and never duplicates. The number of pages is
bounded (`max_pages`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from carecoord.directory.hsds import DirectoryWriter, ImportReport, import_directory
from carecoord.directory.hsds_forms import page_info
from carecoord.errors import CarecoordError


class HsdsApiError(CarecoordError):
    """The HSDS API cannot be read (the message names the path and status, never a body)."""


def _get(client: httpx.Client, path: str, params: Mapping[str, Any] | None = None) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise HsdsApiError(f"HSDS API {path}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise HsdsApiError(f"HSDS API {path}: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise HsdsApiError(f"HSDS API {path}: not JSON") from exc


def services(
    client: httpx.Client, *, per_page: int = 50, max_pages: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Every service of the API, full form, in page order."""
    page = 1
    while page <= max_pages:
        data = _get(client, "services", {"page": page, "per_page": per_page, "full": "true"})
        if not isinstance(data, dict) or not isinstance(data.get("contents"), list):
            raise HsdsApiError("HSDS API services: not a page (no 'contents' list)")
        for item in data["contents"]:
            if not isinstance(item, dict):
                continue
            summary = not isinstance(item.get("organization"), dict) or "attributes" not in item
            if summary and item.get("id"):
                full = _get(client, f"services/{item['id']}")
                item = full if isinstance(full, dict) else item
            yield item
        number, total, last = page_info(data)
        if not data["contents"] or last is True or (total is not None and page >= total):
            return
        page = (number or page) + 1


def sync_directory(
    fhir: DirectoryWriter,
    base_url: str,
    *,
    taxonomy: Mapping[str, str] | None = None,
    per_page: int = 50,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> ImportReport:
    """Import every service of the HSDS API at `base_url` (idempotent)."""
    base = base_url.rstrip("/") + "/"
    with httpx.Client(base_url=base, timeout=timeout, transport=transport) as client:
        payload = list(services(client, per_page=per_page))
    return import_directory(fhir, {"services": payload}, taxonomy)
