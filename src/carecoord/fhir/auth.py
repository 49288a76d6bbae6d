"""Authentication for the FHIR clients, as httpx.Auth (works with both the sync and async client).

- `BearerToken(token)`: a token you already have.
- `ClientCredentials(...)`: OAuth 2.0 client-credentials grant with a client secret.
- `SmartBackendServices(...)`: SMART Backend Services — client-credentials with a signed JWT
  client assertion (RS384 or ES384).

Access tokens are cached and fetched again shortly before they expire; a 401 from the FHIR server
triggers one refresh and one retry. Secrets and tokens never appear in reprs, logs or errors.
The token request goes through the same client (and transport) as the FHIR requests.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Generator
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
import jwt

from carecoord.fhir.errors import FhirResponseInvalid, FhirUnauthorized
from carecoord.fhir.transport import error_for

log = logging.getLogger("carecoord.fhir.auth")

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class BearerToken(httpx.Auth):
    """A fixed bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken(***)"


class _CachedToken:
    def __init__(self, value: str, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at

    def __repr__(self) -> str:
        return "_CachedToken(***)"


class OAuthClientAuth(httpx.Auth):
    """Client-credentials grant with a cached access token; subclasses authenticate the client."""

    requires_request_body = True  # a request retried after a 401 must be sent again whole
    requires_response_body = True  # token responses are read inside the flow (sync and async)

    def __init__(
        self,
        token_url: str,
        client_id: str,
        scope: str | None,
        *,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._token: _CachedToken | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"scope={self.scope!r})"
        )

    # subclasses: the form fields and headers that authenticate this client
    def _client_auth(self) -> tuple[dict[str, str], dict[str, str]]:
        raise NotImplementedError

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        fields, headers = self._client_auth()
        form.update(fields)
        headers = {"Accept": "application/json", **headers}
        return httpx.Request("POST", self.token_url, data=form, headers=headers)

    def _accept_token(self, response: httpx.Response) -> _CachedToken:
        what = f"POST {urlsplit(self.token_url).path}"
        if response.status_code >= 400:
            code = None
            try:
                body = json.loads(response.content)
                code = body.get("error") if isinstance(body, dict) else None
            except ValueError:
                pass
            if response.status_code in (400, 401, 403):
                # The OAuth error code is safe to show; its description may echo input.
                reason = f": {code}" if isinstance(code, str) else ""
                raise FhirUnauthorized(
                    f"token endpoint refused the client credentials{reason}",
                    status=response.status_code,
                    request=what,
                )
            raise error_for(response.status_code, what)
        try:
            body = json.loads(response.content)
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise FhirResponseInvalid(
                "token endpoint sent no access_token", status=response.status_code, request=what
            ) from exc
        if not isinstance(token, str) or not token:
            raise FhirResponseInvalid("token endpoint sent an empty access_token", request=what)
        # Refresh before expiry; short-lived tokens at half their life.
        margin = min(self.refresh_margin, lifetime / 2)
        log.debug("access token fetched for client %s, valid %.0fs", self.client_id, lifetime)
        return _CachedToken(token, self._clock() + lifetime - margin)

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._token.expires_at

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        fetched_now = False
        if not self._fresh():
            self._token = self._accept_token((yield self._token_request()))
            fetched_now = True
        assert self._token is not None
        request.headers["Authorization"] = f"Bearer {self._token.value}"
        response = yield request
        if response.status_code == 401 and not fetched_now:
            # The server may have revoked or expired the token early: refresh once and retry.
            log.info("FHIR server answered 401; refreshing the access token once")
            self._token = self._accept_token((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token.value}"
            yield request

    def invalidate(self) -> None:
        """Forget the cached token (the next request fetches a new one)."""
        self._token = None


class ClientCredentials(OAuthClientAuth):
    """OAuth 2.0 client credentials with a client secret (HTTP Basic, or form fields with
    `secret_in_body=True` for servers that want client_secret_post)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        secret_in_body: bool = False,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(token_url, client_id, scope, refresh_margin=refresh_margin, clock=clock)
        self._client_secret = client_secret
        self._secret_in_body = secret_in_body

    def _client_auth(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._secret_in_body:
            return {"client_id": self.client_id, "client_secret": self._client_secret}, {}
        # RFC 6749 2.3.1: form-urlencode both parts before Basic encoding.
        pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
        return {}, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class SmartBackendServices(OAuthClientAuth):
    """SMART Backend Services: a JWT client assertion signed with the client's private key.

    Claims: iss = sub = client_id, aud = token_url, a random jti, exp at most 5 minutes ahead;
    header kid = key_id (the key in the client's registered JWKS).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key: str | bytes,
        key_id: str,
        alg: Literal["RS384", "ES384"] = "RS384",
        scope: str | None = "system/*.rs",
        *,
        assertion_lifetime: float = 300.0,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if alg not in ("RS384", "ES384"):
            raise ValueError("SMART Backend Services signs with RS384 or ES384")
        if not 0 < assertion_lifetime <= 300:
            raise ValueError("the client assertion may live at most 5 minutes")
        super().__init__(token_url, client_id, scope, refresh_margin=refresh_margin, clock=clock)
        self._private_key = private_key
        self.key_id = key_id
        self.alg = alg
        self.assertion_lifetime = assertion_lifetime

    def client_assertion(self) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + int(self.assertion_lifetime),
        }
        return jwt.encode(
            claims,
            self._private_key,
            algorithm=self.alg,
            headers={"kid": self.key_id, "typ": "JWT"},
        )

    def _client_auth(self) -> tuple[dict[str, str], dict[str, str]]:
        return {
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }, {}
