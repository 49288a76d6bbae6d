"""`carecoord directory import` against the real FHIR server: idempotent, bad records skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carecoord.caremodel.identifiers import identifier_search
from carecoord.cli import app
from carecoord.directory.hsds import HSDS_SERVICE
from carecoord.fhir.client import FhirClient

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"


def unique_copy(unique: str) -> dict[str, object]:
    """The sample with ids and postal codes of this test only (the FHIR server is shared)."""
    text = SAMPLE.read_text()
    for zip_code in ("62701", "62702", "62703", "62704"):
        text = text.replace(zip_code, f"T{unique[:4]}{zip_code[-1]}")
    data = json.loads(text)
    for service in data["services"]:
        service["id"] = f"{service['id']}-{unique}"
        service["organization"]["id"] = f"{service['organization']['id']}-{unique}"
        for sal in service.get("service_at_locations", []):
            sal["location"]["id"] = f"{sal['location']['id']}-{unique}"
    return data


def run_import(path: Path, fhir_base_url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["directory", "import", str(path)],
        env={"CARECOORD_FHIR_BASE_URL": fhir_base_url, "CARECOORD_KAFKA_BOOTSTRAP": ""},
    )
    return result.exit_code, result.stdout, result.stderr


def test_import_is_idempotent_and_skips_bad_records(
    fhir_base_url: str, unique: str, tmp_path: Path
) -> None:
    data = unique_copy(unique)
    services = data["services"]
    assert isinstance(services, list)
    bad_id = services[0]["id"]
    del services[0]["name"]
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(data))

    code, out, err = run_import(path, fhir_base_url)
    assert code == 1  # a record was skipped
    assert "11 service(s) imported" in out
    assert f"skipped service {bad_id}: service has no name" in err

    services[0]["name"] = "Weekly food pantry"
    services[1]["status"] = "inactive"
    path.write_text(json.dumps(data))
    code, out, err = run_import(path, fhir_base_url)
    assert code == 0, err
    assert "12 service(s) imported" in out

    with FhirClient(fhir_base_url) as fhir:
        for service in services:
            found = fhir.search("HealthcareService", identifier_search(HSDS_SERVICE, service["id"]))
            assert len(found) == 1, "re-import never duplicates"
        (changed,) = fhir.search(
            "HealthcareService", identifier_search(HSDS_SERVICE, services[1]["id"])
        )
        assert changed.active is False, "re-import updates"

    code, out, _ = run_import(path, fhir_base_url)
    assert code == 0 and "0 resource(s) created, 0 updated" in out


def test_directory_sync_reads_a_served_hsds_api_and_the_datapackage_imports(
    fhir_base_url: str, unique: str, tmp_path: Path
) -> None:
    """`carecoord directory sync URL` against an HSDS 3.0 API served here (Open Referral's
    example service, paged), twice: the second run creates nothing. Then the CSV datapackage."""
    import copy
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from typing import Any
    from urllib.parse import parse_qs, urlsplit

    fixtures = Path(__file__).parents[1] / "fixtures" / "hsds"
    base = json.loads((fixtures / "service_full.json").read_text())
    services = []
    for n in range(3):
        svc = copy.deepcopy(base)
        svc["id"] = f"sync-{unique}-{n}"
        svc["organization"]["id"] = f"sync-org-{unique}"
        services.append(svc)

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            body: Any
            if url.path == "/services":
                q = parse_qs(url.query)
                page, per = int(q["page"][0]), int(q["per_page"][0])
                chunk = services[(page - 1) * per : page * per]
                pages = -(-len(services) // per)
                body = {
                    "page_number": page,
                    "total_pages": pages,
                    "last_page": page >= pages,
                    "contents": [{"id": s["id"], "name": s["name"]} for s in chunk],
                }
            else:
                body = next((s for s in services if url.path == f"/services/{s['id']}"), None)
            raw = json.dumps(body).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mapping = tmp_path / "taxonomy.json"
    mapping.write_text(json.dumps({"taxonomy|code": "social-connection"}))
    env = {"CARECOORD_FHIR_BASE_URL": fhir_base_url, "CARECOORD_KAFKA_BOOTSTRAP": ""}
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        args = ["directory", "sync", url, "--per-page", "2", "--taxonomy-map", str(mapping)]
        first = CliRunner().invoke(app, args, env=env)
        assert first.exit_code == 0, first.output
        assert "3 service(s) imported" in first.output
        again = CliRunner().invoke(app, args, env=env)
        assert again.exit_code == 0, again.output
        assert "0 resource(s) created, 0 updated" in again.output
    finally:
        server.shutdown()
        server.server_close()
    with FhirClient(fhir_base_url) as fhir:
        for svc in services:
            (found,) = fhir.search("HealthcareService", identifier_search(HSDS_SERVICE, svc["id"]))
            assert found.name == "Community Counselling"

    tabular = CliRunner().invoke(app, ["directory", "import", str(fixtures / "csv")], env=env)
    assert tabular.exit_code == 0, tabular.output
    assert "1 service(s) imported" in tabular.output
