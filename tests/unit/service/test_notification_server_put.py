"""The notification listener takes R4 criteria-based deliveries: `PUT <path>/<Type>/<id>` with
the resource as body (how HAPI and the embedded server deliver a Subscription with a payload);
any other path under it is 404, another method 405."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from carecoord.service.http import HttpResponse
from carecoord.service.notification_server import NotificationServer

PATH = "/fhir/notifications"


class Route:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def authorize(self, headers: Mapping[str, str]) -> HttpResponse | None:
        return None

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        self.bodies.append(body)
        return HttpResponse(200, b"ok\n")


def test_a_put_of_a_resource_under_the_path_reaches_the_route() -> None:
    route = Route()
    with NotificationServer(route, host="127.0.0.1", port=0, path=PATH) as server:
        base = f"http://127.0.0.1:{server.port}{PATH}"
        put = httpx.put(f"{base}/Task/t-1.2", content=b'{"resourceType":"Task","id":"t-1.2"}')
        assert put.status_code == 200
        assert route.bodies == [b'{"resourceType":"Task","id":"t-1.2"}']
        assert httpx.post(f"{base}/Task/t1", content=b"{}").status_code == 405
        assert httpx.put(f"{base}/Task", content=b"{}").status_code == 404
        assert httpx.put(f"{base}/task/t1", content=b"{}").status_code == 404
        assert httpx.put(f"{base}/Task/t1/extra", content=b"{}").status_code == 404
        assert httpx.put(f"{base}x/Task/t1", content=b"{}").status_code == 404
        assert httpx.put(base, content=b"{}").status_code == 405
    assert len(route.bodies) == 1
