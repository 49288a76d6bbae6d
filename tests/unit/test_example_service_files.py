"""examples/service: the Dockerfile runs `carecoord run` with the health port the probes use, and
the Kubernetes Deployment's environment is a valid configuration whose probes hit /healthz
(liveness) and /readyz (readiness) on CARECOORD_HEALTH_PORT."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from carecoord.settings import load_settings

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "service"


def _deployment() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((SERVICE / "k8s" / "deployment.yaml").read_text()))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return dict(deployment)


def _env(container: dict[str, Any]) -> dict[str, str]:
    env = {}
    for item in container["env"]:
        env[item["name"]] = item.get("value", "from-a-secret")  # secretKeyRef: any non-empty value
    return env


def test_the_deployment_environment_is_a_valid_configuration(monkeypatch: Any) -> None:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    for name in list(__import__("os").environ):
        if name.startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(need_fhir=True)  # raises ConfigError naming any bad variable
    assert settings.notifications_enabled and settings.notifications_token is not None
    assert settings.health_port == 8000 and settings.notifications_port == 8081


def test_probes_use_the_health_endpoints_on_the_health_port() -> None:
    deployment = _deployment()
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = _env(container)
    assert ports["health"] == int(env["CARECOORD_HEALTH_PORT"])
    assert ports["notifications"] == int(env["CARECOORD_NOTIFICATIONS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["args"] == ["run"]
    # SIGTERM drains within CARECOORD_DRAIN_TIMEOUT before Kubernetes kills the pod
    assert spec["terminationGracePeriodSeconds"] > int(env["CARECOORD_DRAIN_TIMEOUT"])
    assert deployment["spec"]["replicas"] >= 2  # scaled by consumer-group instances


def test_the_dockerfile_runs_carecoord_run_on_the_probed_port() -> None:
    text = (SERVICE / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["carecoord"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)
    assert "CARECOORD_HEALTH_PORT=8000" in text and re.search(r"^EXPOSE 8000\b", text, re.M)
    assert "/healthz" in text
    for copied in re.findall(r"^COPY (.+) \./", text, re.M):
        for path in copied.split():
            assert (SERVICE.parents[1] / path).exists(), path
