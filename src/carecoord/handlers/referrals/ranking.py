"""Rank community resources (HealthcareService) for a social need. No I/O (the facts of a
service are remembered per server version, see `known_facts`).

A service is a candidate when it is active, offers the need's Gravity SDOH domain (category) and
is not known to exclude the patient: a declared coverage area that lacks the patient's postal
code, an age range the patient's known age falls outside, or eligibility codes none of which
the patient is known to meet. Candidates are ordered by, in turn:

1. capacity status, where the service reports it (SDOHCC STU 3 extension
   SDOHCC-ExtensionHealthcareServiceCapacityStatus, HL7/fhir-sdoh-clinicalcare @6604b7a
   input/fsh/extensions/SDOHCCExtensionHealthcareServiceCapacityStatus.fsh, codes of
   input/fsh/valuesets/SDOHCCValueSetCapacityStatus.fsh): `capacity` first; then unknown (no
   extension, `additional-assessment-required`, or a code outside the value set: the binding
   is extensible); then `waitlist` ("No Capacity - Has Waitlist"); `no-capacity` last. A
   service without capacity stays a candidate: capacity changes, and the loop tries the next
   one when it is rejected;
2. eligibility certain (no coded restriction, or one the patient meets) before unknown;
3. coverage explicit (the postal code is listed) before unknown (no coverage area declared);
4. language: speaks the patient's language, then no languages declared, then others only;
5. name, then id, so the order is stable.

Free-text eligibility (comment) cannot be evaluated and does not restrict. See
carecoord.directory.hsds for how the directory stores these facts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.caremodel.terminology import SDOHCC_TEMPORARY_CODES
from carecoord.directory.hsds import (
    AGE_RANGE_EXTENSION,
    ELIGIBILITY_SYSTEM,
    LANGUAGE_SYSTEM,
    normalize_language,
    normalize_postal_code,
)
from carecoord.fhir.reading import element, field


@dataclass(frozen=True)
class ReferralCriteria:
    domain: str  # Gravity SDOH category code, e.g. "food-insecurity"
    postal_code: str
    language: str | None = None
    eligibility: frozenset[str] = frozenset()  # codes the patient is known to meet
    age: int | None = None


@dataclass(frozen=True)
class ServiceFacts:
    """What ranking reads from one HealthcareService."""

    reference: str  # "HealthcareService/<id>"
    organization: str | None  # "Organization/<id>"
    name: str
    active: bool
    domains: frozenset[str]
    postal_codes: frozenset[str]
    languages: frozenset[str]
    eligibility_codes: frozenset[str]
    min_age: float | None
    max_age: float | None
    capacity: str | None = None  # SDOHCC capacityStatus code (None: not reported)


@dataclass(frozen=True)
class Candidate:
    service: str  # "HealthcareService/<id>"
    organization: str  # "Organization/<id>"
    name: str
    score: tuple[int, int, int]
    capacity: int = 2  # capacity_rank of the service (2: unknown)


# Rank of each capacityStatus code, higher first; anything else (or none) is unknown (2).
CAPACITY_RANK: dict[str, int] = {
    t.CAPACITY_HAS.code: 3,
    t.CAPACITY_ASSESSMENT_REQUIRED.code: 2,
    t.CAPACITY_WAITLIST.code: 1,
    t.CAPACITY_NONE.code: 0,
}
UNKNOWN_CAPACITY = 2


def capacity_rank(code: str | None) -> int:
    """3 has capacity, 2 unknown, 1 waitlist, 0 no capacity."""
    return CAPACITY_RANK.get(code or "", UNKNOWN_CAPACITY)


def capacity_of(service: Any) -> str | None:
    """The capacityStatus code (SDOHCC temporary code system) the service reports, if any."""
    for ext in getattr(service, "extension", None) or []:
        if str(ext.url).split("|")[0] != t.CAPACITY_STATUS_EXTENSION:
            continue
        for sub in ext.extension or []:
            concept = sub.valueCodeableConcept if sub.url == "capacityStatus" else None
            for coding in (concept.coding if concept is not None else None) or []:
                if coding.system == SDOHCC_TEMPORARY_CODES and coding.code:
                    return str(coding.code)
    return None


def facts_of(service: Any) -> ServiceFacts:
    """Extract the ranking facts of a fhir.resources HealthcareService."""
    contained = {
        getattr(c, "id", None): c
        for c in getattr(service, "contained", None) or []
        if c is not None
    }
    postal: set[str] = set()
    for ref in service.coverageArea or []:
        target = contained.get((ref.reference or "").removeprefix("#"))
        address = getattr(target, "address", None)
        if address is not None and address.postalCode:
            postal.add(normalize_postal_code(address.postalCode))
    domains = {
        c.code
        for cat in service.category or []
        for c in cat.coding or []
        if c.system == SDOHCC_TEMPORARY_CODES and c.code
    }
    languages = {
        normalize_language(c.code)
        for comm in service.communication or []
        for c in comm.coding or []
        if c.code and c.system in (LANGUAGE_SYSTEM, None)
    }
    codes: set[str] = set()
    min_age: float | None = None
    max_age: float | None = None
    for elig in service.eligibility or []:
        code = elig.code
        codes.update(
            c.code
            for c in (code.coding if code is not None else None) or []
            if c.system == ELIGIBILITY_SYSTEM and c.code
        )
        for ext in elig.extension or []:
            if ext.url == AGE_RANGE_EXTENSION and ext.valueRange is not None:
                low, high = ext.valueRange.low, ext.valueRange.high
                if low is not None and low.value is not None:
                    min_age = float(low.value)
                if high is not None and high.value is not None:
                    max_age = float(high.value)
    org = service.providedBy.reference if service.providedBy is not None else None
    return ServiceFacts(
        reference=f"HealthcareService/{service.id}",
        organization=org,
        name=service.name or "",
        active=service.active is not False,
        domains=frozenset(domains),
        postal_codes=frozenset(postal),
        languages=frozenset(languages),
        eligibility_codes=frozenset(codes),
        min_age=min_age,
        max_age=max_age,
        capacity=capacity_of(service),
    )


# facts_of per service version, for every referral after the first: a directory's services
# change far less often than they are ranked, and extracting the facts validates each service's
# contained Locations (py-spy, bench drain: most of a referral's CPU). Keyed by the server's
# versionId and lastUpdated, which change with every update; a service without them is not kept.
_FACTS: OrderedDict[tuple[str, str, str, str], ServiceFacts] = OrderedDict()
_FACTS_LOCK = threading.Lock()
FACTS_KEPT = 10_000


def known_facts(service: Any) -> ServiceFacts:
    """`facts_of(service)`, remembered for the service's version (see above)."""
    meta = element(service, "meta")  # JSON where lean: validating it was most of a hit
    version = field(meta, "versionId")
    updated = field(meta, "lastUpdated")
    if not service.id or not version or updated is None:
        return facts_of(service)
    key = (service.__class__.__module__, str(service.id), str(version), str(updated))
    with _FACTS_LOCK:
        facts = _FACTS.get(key)
        if facts is not None:
            _FACTS.move_to_end(key)
            return facts
    facts = facts_of(service)
    with _FACTS_LOCK:
        _FACTS[key] = facts
        if len(_FACTS) > FACTS_KEPT:
            _FACTS.popitem(last=False)
    return facts


def score(facts: ServiceFacts, criteria: ReferralCriteria) -> tuple[int, int, int] | None:
    """(eligibility, coverage, language) — higher is better — or None if not a candidate."""
    if not facts.active or criteria.domain not in facts.domains or not facts.organization:
        return None
    if facts.postal_codes:
        if normalize_postal_code(criteria.postal_code) not in facts.postal_codes:
            return None
        coverage = 2
    else:
        coverage = 1
    eligibility = 2
    if facts.min_age is not None or facts.max_age is not None:
        if criteria.age is None:
            eligibility = 1
        elif (facts.min_age is not None and criteria.age < facts.min_age) or (
            facts.max_age is not None and criteria.age > facts.max_age
        ):
            return None
    if facts.eligibility_codes:
        if facts.eligibility_codes & criteria.eligibility:
            pass
        elif criteria.eligibility:
            return None
        else:
            eligibility = 1
    if criteria.language is None or not facts.languages:
        language = 1
    elif normalize_language(criteria.language) in facts.languages:
        language = 2
    else:
        language = 0
    return eligibility, coverage, language


def rank(
    services: Iterable[Any], criteria: ReferralCriteria, exclude: Collection[str] = ()
) -> list[Candidate]:
    """Candidates best first; `exclude` holds "HealthcareService/<id>" already tried."""
    scored: list[tuple[tuple[int, int, int], ServiceFacts]] = []
    for service in services:
        if service.get_resource_type() != "HealthcareService" or not service.id:
            continue
        facts = known_facts(service)
        if facts.reference in exclude:
            continue
        s = score(facts, criteria)
        if s is not None:
            scored.append((s, facts))
    scored.sort(
        key=lambda sf: (
            -capacity_rank(sf[1].capacity),
            -sf[0][0],
            -sf[0][1],
            -sf[0][2],
            sf[1].name,
            sf[1].reference,
        )
    )
    return [
        Candidate(f.reference, f.organization or "", f.name, s, capacity_rank(f.capacity))
        for s, f in scored
    ]
