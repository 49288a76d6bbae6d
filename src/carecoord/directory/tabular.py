"""HSDS 3.0 tabular exports (the CSV datapackage many 211s publish) -> HSDS services.

A datapackage is a folder with `datapackage.json` (Frictionless Data; its `resources` name each
table's `path`) and one CSV per table, as in openreferral/specification `examples/csv/` and the
spec's `datapackage.json`. Without a `datapackage.json`, the spec's file names are used
(services.csv, organizations.csv, ...). The tables are joined by their `*_id` columns into the
nested service objects of `schema/compiled/service.json`, which carecoord.directory.hsds maps:
organizations (organization_id), service_at_location + locations + addresses + phones,
service_areas, languages, phones, and attributes (link_id = the service id) with their
taxonomy_terms (+ taxonomies). Empty cells are absent values; ages are numbers.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from carecoord.errors import CarecoordError

# Table name (datapackage resource name) -> the file the spec's datapackage gives it.
DEFAULT_PATHS = {
    "service": "services.csv",
    "organization": "organizations.csv",
    "location": "locations.csv",
    "address": "addresses.csv",
    "phone": "phones.csv",
    "language": "languages.csv",
    "service_area": "service_areas.csv",
    "service_at_location": "service_at_location.csv",
    "attribute": "attributes.csv",
    "taxonomy_term": "taxonomy_terms.csv",
    "taxonomy": "taxonomies.csv",
}
_NUMBERS = {"minimum_age", "maximum_age", "latitude", "longitude"}


class HsdsTabularError(CarecoordError):
    """The folder is not an HSDS tabular export (the message names files, never cell values)."""


def is_datapackage(path: Path) -> bool:
    return path.is_dir() and (
        (path / "datapackage.json").is_file() or (path / DEFAULT_PATHS["service"]).is_file()
    )


def _paths(folder: Path) -> dict[str, Path]:
    paths = {name: folder / file for name, file in DEFAULT_PATHS.items()}
    package = folder / "datapackage.json"
    if package.is_file():
        try:
            data = json.loads(package.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HsdsTabularError(f"cannot read {package.name}: {type(exc).__name__}") from exc
        for res in data.get("resources") or [] if isinstance(data, dict) else []:
            if isinstance(res, dict) and isinstance(res.get("name"), str):
                path = res.get("path")
                if isinstance(path, str) and "/" not in path and "\\" not in path:
                    paths[res["name"]] = folder / path
    return paths


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = []
            for row in csv.DictReader(fh):
                clean: dict[str, Any] = {}
                for key, value in row.items():
                    if key is None or value is None or value.strip() == "":
                        continue
                    clean[key.strip()] = _number(key.strip(), value.strip())
                rows.append(clean)
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HsdsTabularError(f"cannot read {path.name}: {type(exc).__name__}") from exc


def _number(key: str, value: str) -> Any:
    if key in _NUMBERS:
        try:
            return int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return value
    return value


def _by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get(key):
            out[str(row[key])].append(row)
    return out


def read_datapackage(folder: Path) -> dict[str, Any]:
    """`{"services": [...]}` with nested objects, from an HSDS tabular export folder."""
    paths = _paths(folder)
    if not paths["service"].is_file():
        raise HsdsTabularError(f"no {paths['service'].name} in the datapackage")
    table = {name: _rows(path) for name, path in paths.items()}
    orgs = {str(o["id"]): o for o in table["organization"] if o.get("id")}
    addresses = _by(table["address"], "location_id")
    loc_phones = _by(table["phone"], "location_id")
    locations = {
        str(loc["id"]): {
            **loc,
            "addresses": addresses.get(str(loc["id"]), []),
            "phones": loc_phones.get(str(loc["id"]), []),
        }
        for loc in table["location"]
        if loc.get("id")
    }
    taxonomies = {str(x["id"]): x for x in table["taxonomy"] if x.get("id")}
    terms = {}
    for term in table["taxonomy_term"]:
        if not term.get("id"):
            continue
        detail = taxonomies.get(str(term.get("taxonomy_id") or ""))
        if detail and not term.get("taxonomy"):
            term = {**term, "taxonomy": detail.get("name")}
        terms[str(term["id"])] = term
    at_location = _by(table["service_at_location"], "service_id")
    areas = _by(table["service_area"], "service_id")
    languages = _by(table["language"], "service_id")
    phones = _by(table["phone"], "service_id")
    attributes = _by(table["attribute"], "link_id")
    services = []
    for row in table["service"]:
        sid = str(row.get("id") or "")
        service: dict[str, Any] = dict(row)
        org = orgs.get(str(row.get("organization_id") or ""))
        if org is not None:
            service["organization"] = org
        service["service_at_locations"] = [
            {**sal, "location": locations[str(sal["location_id"])]}
            for sal in at_location.get(sid, [])
            if str(sal.get("location_id") or "") in locations
        ]
        service["service_areas"] = areas.get(sid, [])
        service["languages"] = languages.get(sid, [])
        service["phones"] = phones.get(sid, [])
        service["attributes"] = [
            {**attr, "taxonomy_term": terms[str(attr["taxonomy_term_id"])]}
            for attr in attributes.get(sid, [])
            if str(attr.get("taxonomy_term_id") or "") in terms
            and str(attr.get("link_entity") or "service") == "service"
        ]
        services.append(service)
    return {"services": services}
