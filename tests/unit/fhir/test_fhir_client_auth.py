"""Auth: bearer tokens, client credentials and SMART Backend Services against a mock token
endpoint — caching, refresh before expiry, one refresh on 401, secrets kept out of reprs/errors."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.auth import (
    CLIENT_ASSERTION_TYPE,
    BearerToken,
    ClientCredentials,
    SmartBackendServices,
)
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import FhirUnauthorized
from carecoord.fhir.transport import Backoff

BASE = "https://fhir.example.org/fhir"
TOKEN_URL = "https://auth.example.org/oauth2/token"
SECRET = "s3cr3t-Pa55word"
PATIENT = {"resourceType": "Patient", "id": "p1"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Servers:
    """A token endpoint issuing tok-1, tok-2, ... and a FHIR server accepting the latest token."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.token_requests: list[httpx.Request] = []
        self.fhir_requests: list[httpx.Request] = []
        self.fhir_auth: list[str] = []  # as received (a retried request object is reused)
        self.valid: set[str] = set()
        self.token_status = 200
        self.revoke_next = False

    def issue(self) -> str:
        token = f"tok-{len(self.token_requests)}"
        self.valid = {token}
        return token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_status != 200:
                return httpx.Response(
                    self.token_status,
                    json={"error": "invalid_client", "error_description": f"bad {SECRET}"},
                )
            return httpx.Response(
                200,
                json={
                    "access_token": self.issue(),
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                },
            )
        self.fhir_requests.append(request)
        self.fhir_auth.append(request.headers.get("Authorization", ""))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.revoke_next:
            self.revoke_next = False
            self.valid = set()
        if token not in self.valid:
            return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})
        return httpx.Response(200, json=PATIENT)

    def form(self, index: int) -> dict[str, str]:
        parsed = parse_qs(self.token_requests[index].content.decode())
        return {k: v[0] for k, v in parsed.items()}


def client(servers: Servers, auth: httpx.Auth) -> FhirClient:
    return FhirClient(
        BASE,
        auth=auth,
        transport=httpx.MockTransport(servers),
        backoff=Backoff(0.001, 0.002),
        sleep=lambda s: None,
    )


def test_bearer_token_is_sent_and_hidden_from_repr() -> None:
    servers = Servers()
    servers.valid = {"fixed-token-123"}
    auth = BearerToken("fixed-token-123")
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
        assert "fixed-token-123" not in repr(auth) + repr(fhir)
    assert servers.fhir_auth == ["Bearer fixed-token-123"]


def test_client_credentials_fetches_once_and_caches() -> None:
    servers = Servers()
    auth = ClientCredentials(TOKEN_URL, "my-client", SECRET, "system/*.rs")
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
        fhir.read("Patient", "p1")
    assert len(servers.token_requests) == 1
    token_request = servers.token_requests[0]
    expected = base64.b64encode(f"my-client:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert servers.form(0) == {"grant_type": "client_credentials", "scope": "system/*.rs"}
    assert servers.fhir_auth == ["Bearer tok-1", "Bearer tok-1"]


def test_client_secret_in_body_when_asked() -> None:
    servers = Servers()
    auth = ClientCredentials(TOKEN_URL, "my-client", SECRET, secret_in_body=True)
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
    assert servers.form(0)["client_secret"] == SECRET
    assert "Authorization" not in servers.token_requests[0].headers


def test_token_is_refreshed_before_it_expires() -> None:
    servers = Servers(expires_in=300)
    clock = FakeClock()
    auth = ClientCredentials(TOKEN_URL, "c", SECRET, clock=clock, refresh_margin=30)
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
        clock.now += 200
        fhir.read("Patient", "p1")
        assert len(servers.token_requests) == 1
        clock.now += 75  # 275 s in: inside the 30 s margin
        fhir.read("Patient", "p1")
    assert len(servers.token_requests) == 2
    assert servers.fhir_auth == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_401_refreshes_the_token_once_and_retries() -> None:
    servers = Servers()
    auth = ClientCredentials(TOKEN_URL, "c", SECRET)
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
        servers.revoke_next = True
        assert fhir.read("Patient", "p1").id == "p1"
    assert len(servers.token_requests) == 2
    assert servers.fhir_auth == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_a_401_with_a_brand_new_token_is_not_retried_forever() -> None:
    servers = Servers()
    servers.revoke_next = True
    auth = ClientCredentials(TOKEN_URL, "c", SECRET)
    with client(servers, auth) as fhir, pytest.raises(FhirUnauthorized):
        fhir.read("Patient", "p1")
    assert len(servers.token_requests) == 1
    assert len(servers.fhir_requests) == 1


def test_secret_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    servers = Servers()
    servers.token_status = 401
    auth = ClientCredentials(TOKEN_URL, "my-client", SECRET, "system/*.rs")
    with (
        caplog.at_level(logging.DEBUG),
        client(servers, auth) as fhir,
        pytest.raises(FhirUnauthorized) as err,
    ):
        fhir.read("Patient", "p1")
    assert "invalid_client" in str(err.value)
    assert "/oauth2/token" in str(err.value)
    shown = str(err.value) + repr(err.value) + repr(auth) + repr(fhir) + caplog.text
    assert SECRET not in shown
    assert "my-client" in repr(auth)


def test_transient_token_endpoint_failure_is_retried() -> None:
    servers = Servers()
    failures = iter([httpx.Response(503), httpx.Response(503)])

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            nxt = next(failures, None)
            if nxt is not None:
                return nxt
        return servers(request)

    auth = ClientCredentials(TOKEN_URL, "c", SECRET)
    fhir = FhirClient(
        BASE, auth=auth, transport=httpx.MockTransport(handler), backoff=Backoff(0.001, 0.002)
    )
    with fhir:
        assert fhir.read("Patient", "p1").id == "p1"


def _rsa_pem() -> tuple[bytes, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, key.public_key()


def _ec_pem() -> tuple[bytes, Any]:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, key.public_key()


@pytest.mark.parametrize(("alg", "keys"), [("RS384", _rsa_pem), ("ES384", _ec_pem)])
def test_smart_backend_services_signs_a_valid_client_assertion(alg: str, keys: Any) -> None:
    pem, public = keys()
    servers = Servers(expires_in=60)
    clock = FakeClock()
    auth = SmartBackendServices(
        TOKEN_URL, "backend-app", pem, "key-1", alg, "system/Task.cruds", clock=clock
    )
    with client(servers, auth) as fhir:
        fhir.read("Patient", "p1")
        clock.now += 45  # past half the 60 s lifetime: refreshed
        fhir.read("Patient", "p1")
    assert len(servers.token_requests) == 2
    jtis = []
    for i in range(2):
        form = servers.form(i)
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == "system/Task.cruds"
        assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
        assertion = form["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        assert header["alg"] == alg and header["kid"] == "key-1"
        claims = jwt.decode(
            assertion,
            public,
            algorithms=[alg],
            audience=TOKEN_URL,
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == "backend-app"
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assert claims["iat"] == int(clock.now) - (45 if i == 0 else 0)
        jtis.append(claims["jti"])
    assert jtis[0] != jtis[1]
    assert pem.decode() not in repr(auth)
    assert "PRIVATE KEY" not in repr(auth)


def test_smart_backend_services_refuses_other_algorithms_and_long_assertions() -> None:
    pem, _ = _rsa_pem()
    with pytest.raises(ValueError):
        SmartBackendServices(TOKEN_URL, "c", pem, "k", "HS256")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SmartBackendServices(TOKEN_URL, "c", pem, "k", assertion_lifetime=600)


def test_async_client_uses_the_same_auth() -> None:
    servers = Servers()
    auth = ClientCredentials(TOKEN_URL, "c", SECRET)

    async def run() -> None:
        async with AsyncFhirClient(BASE, auth=auth, transport=httpx.MockTransport(servers)) as fhir:
            await fhir.read("Patient", "p1")
            servers.revoke_next = True
            await fhir.read("Patient", "p1")

    asyncio.run(run())
    assert len(servers.token_requests) == 2
