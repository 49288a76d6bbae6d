"""The demo's simulator: the same seed gives the same month; the event mix is a table whose lines
for event types not in the catalog are skipped."""

from __future__ import annotations

from carecoord.core.catalog import INBOUND, parse_data
from carecoord.demo.sim import EVENT_MIX, ReferralTaskView, Scale, Simulator


def _month(seed: int, run: str = "r") -> list[tuple[str, str, object]]:
    sim = Simulator(Scale(patients=60, days=10, seed=seed, run=run))
    out = []
    for day in range(1, 11):
        referral = ReferralTaskView("t1", "key-1", "requested", f"{run}-0001")
        plan = sim.day(day, [referral])
        out += [(e.id, e.type, e.data) for e in plan.events]
        out += [("org", u.task_id, u.status) for u in plan.org_updates]
        out += [("poison", k.decode(), v) for k, v in plan.poison]
    return out


def test_the_same_seed_gives_the_same_month() -> None:
    first = _month(3)
    assert first == _month(3)
    assert first != _month(4)
    # another run (its patient ids carry its own prefix): the same month all the same
    assert repr(_month(3, run="run-b")).replace("run-b", "r") == repr(first)


def test_every_simulated_event_is_valid_for_the_catalog() -> None:
    sim = Simulator(Scale(patients=80, days=12, seed=5, run="r"))
    types = set()
    for day in range(1, 13):
        for event in sim.day(day).events:
            parse_data(event, INBOUND[event.type])  # raises on an invalid one
            types.add(event.type)
    assert {"carecoord.patient.enrolled", "carecoord.outreach.attempted",
            "carecoord.time.logged"} <= types  # fmt: skip


def test_mix_lines_for_types_not_in_the_catalog_are_skipped() -> None:
    sim = Simulator(Scale(patients=5, days=3, run="r"))
    assert {m.event_type for m in sim.skipped} == {m.event_type for m in EVENT_MIX} - set(INBOUND)
    assert all(e.type in INBOUND for d in (1, 2, 3) for e in sim.day(d).events)


def test_the_summary_reader_follows_next_links_on_our_base_url() -> None:
    """Servers put their own idea of their address in paging links (sekmet: localhost:8090)."""
    import httpx

    from carecoord.demo.fhirdata import FhirData

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if "_offset" not in str(request.url):
            nxt = "http://localhost:8090/fhir/Task?_count=1&_offset=1"
            body = {"resourceType": "Bundle", "link": [{"relation": "next", "url": nxt}],
                    "entry": [{"resource": {"resourceType": "Task", "id": "a"}}]}  # fmt: skip
        else:
            body = {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "Task", "id": "b"}}],
            }
        return httpx.Response(200, json=body)

    with FhirData("http://127.0.0.1:5555/fhir", transport=httpx.MockTransport(answer)) as data:
        assert [t["id"] for t in data.search("Task")] == ["a", "b"]
    assert all(url.startswith("http://127.0.0.1:5555/fhir/Task") for url in seen), seen


def test_carecoord_demo_is_a_cli_command_with_the_scale_options() -> None:
    from typer.testing import CliRunner

    from carecoord.cli import app

    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--patients", "--care-managers", "--seed", "--days", "--report"):
        assert option in result.output
    assert CliRunner().invoke(app, ["demo", "--days", "31"]).exit_code == 2  # one month at most


def test_the_practice_completes_tcm_contacts_on_the_day_it_reaches_the_patient() -> None:
    from carecoord.demo.sim import CareTaskView

    sim = Simulator(Scale(patients=200, days=20, seed=3, run="r"))
    tcm = next(p for p in sim.patients if p.program == "TCM")
    contact = CareTaskView("c1", "tcm-contact", tcm.id)
    completed_on = []
    for day in range(1, 21):
        sim.day(day)
        if [u.task_id for u in sim.care_team(day, [contact])] == ["c1"]:
            completed_on.append(day)
    assert tcm.reached_day is not None, "a TCM patient of this seed is reached in 20 days"
    assert completed_on == [tcm.reached_day]


def test_a_provider_answers_a_clinical_question_once_a_day_or_two_after_it() -> None:
    from carecoord.demo.sim import CareTaskView

    sim = Simulator(Scale(patients=300, days=20, seed=3, run="r"))
    answers: list[tuple[int, str]] = []
    for day in range(1, 21):
        sim.day(day)
        review = [
            CareTaskView(f"q-{p.id}-{n}", "clinical-review", p.id)
            for p, _, _ in sim.questions
            for n in (1, 2)  # the question and an escalation: one answer
        ]
        answers += [(day, u.task_id) for u in sim.care_team(day, review) if u.status == "completed"]
    assert sim.questions, "this seed raises clinical questions"
    for p, asked, _ in sim.questions:
        mine = [(day, task) for day, task in answers if task.startswith(f"q-{p.id}-")]
        if asked + 2 <= 20:
            assert len(mine) == 1 and asked < mine[0][0] <= asked + 2, (p.id, asked, mine)
