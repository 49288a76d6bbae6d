"""Deterministic business identifiers, and the conditional `Create` effect built from them.

Every resource carecoord creates carries one identifier in carecoord's namespace:
system = IDENTIFIER_SYSTEM_BASE + kind (e.g. ".../identifier/outreach-request"), value = the parts
of its business key joined by ":" (e.g. "pat-1:CCM:2024-05"). The same key always gives the same
identifier, so a replayed event's create matches the first one (If-None-Exist) instead of
duplicating it. Values stay readable and at most 64 characters: longer keys, and keys with
characters that FHIR token search gives a meaning (`|`, `,`, `$`, `\\`, whitespace: replaced by
`_`), get a hash of the whole key after a shortened first part: the other parts stay as they
are ("<patient…>~<hash>:CCM:2025-03"), so lookups by a key's end keep working. (Until 0.1.0 the
hash replaced the key's end; resources written then for 50+ character patient ids were not
found by those lookups anyway.)
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, cast

from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.resource import Resource

from carecoord.caremodel.terminology import IDENTIFIER_SYSTEM_BASE
from carecoord.core.effects import Create, Effects
from carecoord.fhir.bundles import stable_id  # noqa: F401  (re-exported)
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion
from carecoord.fhir.reading import element, field, items

MAX_VALUE_LENGTH = 64
_HASH_LENGTH = 24  # hex chars of sha256 kept for long keys (96 bits: no practical collisions)
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Characters with a meaning in FHIR token search (system|value, a,b lists, $ and \ escapes) or
# that make a value unreadable are replaced so the identifier is searchable as-is.
_UNSAFE = re.compile(r"[|,$\\\s]+")


def identifier_system(kind: str) -> str:
    """The identifier system URL for a kind of business key (lowercase, e.g. "care-plan")."""
    if not _KIND.match(kind):
        raise ValueError(f"identifier kind must be a lowercase slug, got {kind!r}")
    return IDENTIFIER_SYSTEM_BASE + kind


def identifier_value(*parts: str) -> str:
    """The stable value for a business key: parts joined by ":", hashed when too long."""
    if not parts or any(not str(p).strip() for p in parts):
        raise ValueError("a business identifier needs at least one non-empty part")
    stripped = [str(p).strip() for p in parts]
    cleaned = [_UNSAFE.sub("_", p) for p in stripped]
    value = ":".join(cleaned)
    # A cleaned key ends in the hash too: "a|b" and "a,b" are different keys (two events whose
    # ids differ only there), and one identifier for both would drop the second as a replay.
    if len(value) <= MAX_VALUE_LENGTH and cleaned == stripped:
        return value
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    mark = f"~{digest[:_HASH_LENGTH]}"
    # Keys lead with the long part (the patient id) and end in short ones (program, month,
    # code) that lookups match on ("…:CCM:2025-03"): shorten the first part and keep the rest.
    tail = "".join(f":{part}" for part in cleaned[1:])
    room = MAX_VALUE_LENGTH - len(mark) - len(tail)
    if room >= 1:
        return f"{cleaned[0][:room]}{mark}{tail}"
    return value[: MAX_VALUE_LENGTH - len(mark)].rstrip(":") + mark


def business_identifier(
    kind: str, *parts: str, version: FhirVersion = DEFAULT_VERSION
) -> Identifier:
    """Identifier(system=carecoord base + kind, value=stable value of `parts`, use=official).

    >>> business_identifier("outreach-request", "pat-1", "CCM", "2024-05").value
    'pat-1:CCM:2024-05'
    """
    data = {"use": "official", "system": identifier_system(kind), "value": identifier_value(*parts)}
    if version == "R4":
        return Identifier.model_validate(data)
    import fhir.resources.identifier as r5_identifier

    return cast(Identifier, r5_identifier.Identifier.model_validate(data))


def business_identifier_json(kind: str, *parts: str) -> dict[str, str]:
    """business_identifier as a plain JSON dict (for builders that assemble JSON first)."""
    return {"use": "official", "system": identifier_system(kind), "value": identifier_value(*parts)}


def carecoord_identifier(resource: Any) -> tuple[str, str] | None:
    """(system, value) of the resource's carecoord business identifier, or None."""
    for ident in items(element(resource, "identifier")):
        system, value = field(ident, "system"), field(ident, "value")
        if system and value and str(system).startswith(IDENTIFIER_SYSTEM_BASE):
            return str(system), str(value)
    return None


def create_for(resource: Resource) -> Create:
    """The conditional `Create` effect for a resource carrying a carecoord business identifier.

    Raises ValueError when it carries none (a create without one could duplicate on replay).
    """
    found = carecoord_identifier(resource)
    if found is None:
        raise ValueError(
            f"{resource.get_resource_type()} has no carecoord business identifier; "
            "build it with carecoord.fhir builders or add business_identifier(...)"
        )
    return Create(resource, found[0], found[1])


def add_create(effects: Effects, resource: Resource) -> str:
    """Append the conditional create of `resource` to `effects`; return its transaction-local
    reference (a urn:uuid) for other resources of the same effects to point at."""
    create = create_for(resource)
    effects.writes.append(create)
    return create.full_url


def identifier_search(kind: str, *parts: str) -> dict[str, str]:
    """Search parameters that find the resource with this business key: {"identifier": "s|v"}."""
    return {"identifier": f"{identifier_system(kind)}|{identifier_value(*parts)}"}
