"""Every builder's output survives JSON: parse(model_dump JSON) == original, in R4 and R5."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import carecoord_identifier
from carecoord.directory import builders as directory
from carecoord.fhir.models import parse_resource, to_json
from carecoord.handlers.referrals import builders as referral

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=64)
keys = st.text(min_size=1, max_size=120).filter(str.strip)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
versions = st.sampled_from(["R4", "R5"])
programs = st.sampled_from(sorted(t.PROGRAMS))
domains = st.sampled_from(sorted(t.SDOH_DOMAINS))
texts = st.text(min_size=1, max_size=200).filter(str.strip)


def refs(rtype: str) -> st.SearchStrategy[str]:
    return ids.map(lambda i: f"{rtype}/{i}")


def builders() -> st.SearchStrategy[Callable[[str], Any]]:
    """Strategies yielding `build(version) -> resource` closures, one per builder."""
    patient = refs("Patient")
    pract = refs("Practitioner")
    return st.one_of(
        st.builds(
            lambda p, prog, start, n, cond, goal, act, a: (
                lambda v: care.care_plan(
                    patient=p,
                    program=prog,
                    start=start,
                    end=start + timedelta(days=n),
                    addresses=cond,
                    goals=goal,
                    activities=act,
                    author=a,
                    version=v,
                )
            ),
            patient,
            programs,
            days,
            st.integers(0, 400),
            st.lists(refs("Condition"), max_size=3),
            st.lists(refs("Goal"), max_size=2),
            st.lists(refs("Task") | refs("ServiceRequest"), max_size=3),
            pract,
        ),
        st.builds(
            lambda p, prog, d, cm, dr: (
                lambda v: care.care_team(
                    patient=p, program=prog, start=d, care_manager=cm, provider=dr, version=v
                )
            ),
            patient,
            programs,
            days,
            pract,
            pract,
        ),
        st.builds(
            lambda p, k, d, txt: (
                lambda v: care.care_goal(patient=p, key=k, description=txt, due=d, version=v)
            ),
            patient,
            keys,
            days,
            texts,
        ),
        st.builds(
            lambda p, prog, d, cm, ch, at: (
                lambda v: care.outreach_request(
                    patient=p,
                    program=prog,
                    month=d,
                    care_manager=cm,
                    channel=ch,
                    authored_on=at,
                    version=v,
                )
            ),
            patient,
            programs,
            days,
            pract,
            st.sampled_from(sorted(t.CHANNEL_MEDIUM)),
            moments,
        ),
        st.builds(
            lambda k, p, o, ch, out, at, by: (
                lambda v: care.outreach_attempt(
                    key=k,
                    patient=p,
                    outreach=o,
                    channel=ch,
                    outcome=out,
                    attempted_at=at,
                    by=by,
                    version=v,
                )
            ),
            keys,
            patient,
            refs("CommunicationRequest"),
            st.sampled_from(sorted(t.CHANNEL_MEDIUM)),
            st.sampled_from(sorted(t.OUTREACH_OUTCOME_NOT_DONE_REASON)),
            moments,
            pract,
        ),
        st.builds(
            lambda p, o, own, at: (
                lambda v: care.escalation_task(
                    patient=p, outreach=o, owner=own, authored_on=at, version=v
                )
            ),
            patient,
            refs("CommunicationRequest"),
            pract,
            moments,
        ),
        st.builds(
            lambda k, p, w, own, d, bs: (
                lambda v: care.work_task(
                    key=k, patient=p, work=w, owner=own, due=d, business_status=bs, version=v
                )
            ),
            keys,
            patient,
            st.sampled_from(sorted(t.WORK_TASK_TYPES)),
            pract,
            days,
            st.none() | st.sampled_from(["awaiting-labs", "scheduled"]),
        ),
        st.builds(
            lambda k, p, dr, q, u: (
                lambda v: care.clinical_review_task(
                    key=k, patient=p, provider=dr, question=q, urgent=u, version=v
                )
            ),
            keys,
            patient,
            pract,
            texts,
            st.booleans(),
        ),
        st.builds(
            lambda p, prog, d, cpt, n: (
                lambda v: care.charge_item(
                    patient=p, program=prog, month=d, cpt=cpt, unit=n, version=v
                )
            ),
            patient,
            programs,
            days,
            st.sampled_from(sorted(t.BILLING_CODES)),
            st.integers(1, 5),
        ),
        st.builds(
            lambda k, p, dom, at, ev: (
                lambda v: referral.sdoh_condition(
                    key=k, patient=p, domain=dom, identified_at=at, evidence=ev, version=v
                )
            ),
            keys,
            patient,
            domains,
            moments,
            st.lists(refs("Observation"), max_size=2),
        ),
        st.builds(
            lambda k, p, dom, c, d: (
                lambda v: referral.sdoh_goal(
                    key=k, patient=p, domain=dom, condition=c, due=d, version=v
                )
            ),
            keys,
            patient,
            domains,
            refs("Condition"),
            days,
        ),
        st.builds(
            lambda k, p, dom, rq, pf, rs, at: (
                lambda v: referral.referral_service_request(
                    key=k,
                    patient=p,
                    domain=dom,
                    requester=rq,
                    performer=pf,
                    reasons=rs,
                    authored_on=at,
                    version=v,
                )
            ),
            keys,
            patient,
            domains,
            pract,
            refs("Organization"),
            st.lists(refs("Condition"), max_size=2),
            moments,
        ),
        st.builds(
            lambda k, p, dom, sr, own, rq, at: (
                lambda v: referral.referral_task(
                    key=k,
                    patient=p,
                    domain=dom,
                    service_request=sr,
                    owner=own,
                    requester=rq,
                    authored_on=at,
                    version=v,
                )
            ),
            keys,
            patient,
            domains,
            refs("ServiceRequest"),
            refs("Organization"),
            st.one_of(refs("PractitionerRole"), refs("Organization")),  # SDOHCC Task requester
            moments,
        ),
        st.builds(
            lambda src, sid, name, phone, pc: (
                lambda v: directory.organization(
                    source=src, source_id=sid, name=name, phone=phone, postal_code=pc, version=v
                )
            ),
            ids,
            keys,
            texts,
            st.none() | st.from_regex(r"\A[0-9]{3}-[0-9]{4}\Z"),
            st.none() | st.from_regex(r"\A[0-9]{5}\Z"),
        ),
        st.builds(
            lambda src, sid, name, lat, lon: (
                lambda v: directory.location(
                    source=src, source_id=sid, name=name, latitude=lat, longitude=lon, version=v
                )
            ),
            ids,
            keys,
            texts,
            st.floats(-90, 90),
            st.floats(-180, 180),
        ),
        st.builds(
            lambda src, sid, name, o, doms, pcs, langs: (
                lambda v: directory.healthcare_service(
                    source=src,
                    source_id=sid,
                    name=name,
                    organization=o,
                    domains=doms,
                    service_area_postal_codes=pcs,
                    languages=langs,
                    version=v,
                )
            ),
            ids,
            keys,
            texts,
            refs("Organization"),
            st.lists(domains, min_size=1, max_size=3, unique=True),
            st.lists(st.from_regex(r"\A[0-9]{5}\Z"), max_size=3),
            st.lists(st.sampled_from(["en", "es", "vi", "zh"]), max_size=2, unique=True),
        ),
    )


@settings(max_examples=300, deadline=None)
@given(builders(), versions)
def test_built_resources_round_trip_through_json(build: Callable[[str], Any], version: str) -> None:
    resource = build(version)
    data = json.loads(json.dumps(to_json(resource)))
    again = parse_resource(data, version)  # type: ignore[arg-type]
    assert again == resource
    assert to_json(again) == data
    assert carecoord_identifier(resource) is not None
