"""HSDS taxonomy terms -> Gravity SDOH domains.

A service is matchable for a need when one of its taxonomy terms maps to the need's Gravity
domain. Defaults (211 / AIRS Taxonomy codes, as named in carecoord's conformance issue):
BD-1800 food pantries -> food-insecurity, BH housing/shelter -> housing-instability,
BT transportation -> transportation-insecurity, BV-8900 utility assistance ->
utility-insecurity; Open Eligibility terms by id, from the taxonomy file its authors publish
(carecoord.directory.open_eligibility: e.g. 1102 Food, 1130 Food Pantry -> food-insecurity, 1135
Emergency Shelter -> homelessness, 1138 Help Pay for Utilities -> utility-insecurity, 1105
Transit -> transportation-insecurity); a term that is itself a Gravity domain code maps to itself.

A key matches a term's code exactly or as the root of a more specific AIRS code ("BD-1800"
matches "BD-1800.2000"; "BH" matches "BH-1800.8500"). A key "taxonomy|code" applies only to terms
of that taxonomy (names compared without case, spaces or punctuation: "Open Eligibility" and
"open_eligibility" are the same taxonomy), and a key "name:<term name>" matches a term's name
(e.g. Open Eligibility terms exported by name only). Users add or override entries in
configuration: `[directory.taxonomy_map]` in the settings file, or `--taxonomy-map FILE` (JSON or
TOML object key -> domain).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carecoord.caremodel.terminology import SDOH_DOMAINS
from carecoord.directory import open_eligibility
from carecoord.errors import ConfigError

DEFAULT_TAXONOMY_MAP: dict[str, str] = {
    "BD-1800": "food-insecurity",
    "BH": "housing-instability",
    "BT": "transportation-insecurity",
    "BV-8900": "utility-insecurity",
    **open_eligibility.taxonomy_map_entries(),
}


def taxonomy_map(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The defaults plus `extra` (which wins); ConfigError for a value that is no domain."""
    merged = {**DEFAULT_TAXONOMY_MAP, **(extra or {})}
    bad = sorted(k for k, v in merged.items() if v not in SDOH_DOMAINS)
    if bad:
        known = ", ".join(sorted(SDOH_DOMAINS))
        raise ConfigError(
            f"taxonomy map entries {', '.join(bad)} do not name a Gravity SDOH domain ({known})"
        )
    return merged


def load_taxonomy_map(path: Path) -> dict[str, str]:
    """A JSON or TOML file holding key -> domain (or {"taxonomy_map": {...}})."""
    import json
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the taxonomy map {path}: {type(exc).__name__}") from exc
    if isinstance(data, dict) and isinstance(data.get("taxonomy_map"), dict):
        data = data["taxonomy_map"]
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(f"the taxonomy map {path} must be an object of key -> domain strings")
    return taxonomy_map(data)


def _root_match(key: str, code: str) -> bool:
    key, code = key.upper(), code.upper()
    if code == key:
        return True
    if "-" in key:  # "BD-1800" -> "BD-1800.2000", "BD-1800.2000-500"
        return code.startswith(key + ".") or code.startswith(key + "-")
    return code.startswith(key + "-")  # "BH" -> "BH-1800"


def _taxonomy_name(value: Any) -> str:
    """A taxonomy's name for comparison: lower case, letters and digits only."""
    return "".join(ch for ch in str(value or "").lower() if ch.isalnum())


def domain_of(term: Mapping[str, Any], mapping: Mapping[str, str]) -> str | None:
    """The Gravity domain of one HSDS taxonomy term, or None."""
    code = str(term.get("code") or "").strip()
    name = str(term.get("name") or "").strip().lower()
    taxonomy = _taxonomy_name(term.get("taxonomy"))
    if code in SDOH_DOMAINS:
        return code
    best: tuple[int, str] | None = None
    for key, domain in mapping.items():
        if key.lower().startswith("name:"):
            if name and key[5:].strip().lower() == name:
                rank = 1000
            else:
                continue
        elif "|" in key:
            tax, _, kcode = key.partition("|")
            if _taxonomy_name(tax) != taxonomy or not code or not _root_match(kcode, code):
                continue
            rank = 500 + len(kcode)
        elif code and _root_match(key, code):
            rank = len(key)
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, domain)
    return best[1] if best else None


def term_label(term: Mapping[str, Any]) -> str:
    """How an unmapped term is reported: "taxonomy|code" (or its name)."""
    code = str(term.get("code") or "").strip()
    taxonomy = str(term.get("taxonomy") or "").strip() or "local"
    return f"{taxonomy}|{code}" if code else f"name:{term.get('name')}"
