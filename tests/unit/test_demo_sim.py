"""The demo's simulator: the same seed gives the same month; the event mix is a table whose lines
for event types not in the catalog are skipped."""

from __future__ import annotations

from carecoord.core.catalog import INBOUND, parse_data
from carecoord.demo.sim import EVENT_MIX, ReferralTaskView, Scale, Simulator


def _month(seed: int) -> list[tuple[str, str, object]]:
    sim = Simulator(Scale(patients=60, days=10, seed=seed, run="r"))
    out = []
    for day in range(1, 11):
        referral = ReferralTaskView("t1", "key-1", "requested", "r-0001")
        plan = sim.day(day, [referral])
        out += [(e.id, e.type, e.data) for e in plan.events]
        out += [("org", u.task_id, u.status) for u in plan.org_updates]
        out += [("poison", k.decode(), v) for k, v in plan.poison]
    return out


def test_the_same_seed_gives_the_same_month() -> None:
    first = _month(3)
    assert first == _month(3)
    assert first != _month(4)


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
