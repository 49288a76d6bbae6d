"""The forms an Open Referral HSDS 3.0 payload comes in, made into one list of services.

Read (openreferral/specification `schema/compiled/*.json`, examples in `examples/`):
- a list of services, or `{"services": [...], "organizations": [...], "locations": [...]}`;
- an API page `{"contents": [...], "total_pages": ..}` (`/services`, `/organizations`; the
  schema's `*_list.json`), whose items are services or organizations;
- a single service object, as `GET /services/{id}` returns it (`service.json`);
- a single organization with its nested `services` (`GET /organizations/{id}`,
  `organization.json`): each service gets that organization;
- the tabular form (`tabular.json`; the CSV datapackage of `examples/csv/` is read into it by
  carecoord.directory.tabular).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carecoord.errors import CarecoordError


class HsdsFormError(CarecoordError):
    """The payload is none of the HSDS forms carecoord reads (the message names no value)."""


def _has_id(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("id"), str | int) and bool(str(obj["id"]))


def is_organization(obj: Any) -> bool:
    """An organization object: has an id, a name and a `services` list of its own."""
    return _has_id(obj) and isinstance(obj.get("services"), list) and "name" in obj


def _expand(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if is_organization(item):
            org = {k: v for k, v in item.items() if k != "services"}
            for svc in item["services"]:
                if isinstance(svc, dict) and not isinstance(svc.get("organization"), dict):
                    svc = {**svc, "organization": org}
                out.append(svc)
        else:
            out.append(item)
    return out


def services_of(data: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """The service objects of a payload plus top-level organizations/locations by id."""
    if isinstance(data, list):
        return _expand(data), {}, {}
    if not isinstance(data, dict):
        raise HsdsFormError("HSDS payload must be a JSON list or object")
    if is_organization(data):
        return _expand([data]), {}, {}
    if "contents" in data or "services" in data:
        services = data.get("services", data.get("contents"))
        if not isinstance(services, list):
            raise HsdsFormError("HSDS payload's 'services' (or 'contents') is not a list")
        orgs = {str(o["id"]): o for o in data.get("organizations") or [] if _has_id(o)}
        locs = {str(loc["id"]): loc for loc in data.get("locations") or [] if _has_id(loc)}
        return _expand(services), orgs, locs
    if _has_id(data) and "name" in data:  # one service, as /services/{id} returns it
        return [data], {}, {}
    raise HsdsFormError(
        "HSDS payload is not a service, an organization, a list of services or an API page "
        "('contents')"
    )


def page_info(data: Mapping[str, Any]) -> tuple[int | None, int | None, bool | None]:
    """(page_number, total_pages, last_page) of an HSDS API page."""

    def num(key: str) -> int | None:
        v = data.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    last = data.get("last_page")
    return num("page_number"), num("total_pages"), last if isinstance(last, bool) else None
