"""`carecoord directory import` against the real FHIR server: idempotent, bad records skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.fhir.client import FhirClient
from carecoord.fhir.hsds import HSDS_SERVICE
from carecoord.fhir.identifiers import identifier_search

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
