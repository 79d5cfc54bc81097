"""The worker pool's HTTP endpoint: probes anywhere, metrics on /metrics."""

from __future__ import annotations

import httpx

from control_plane.health import request_path, serve_health
from tests.support.ports import free_port


async def test_probes_and_metrics() -> None:
    port = free_port()
    state = {"healthy": True}
    server = await serve_health(lambda: state["healthy"], "127.0.0.1", port,
                                lambda: b"switchboard_up 1\n")
    bare = await serve_health(lambda: True, "127.0.0.1", free_port())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            metrics = await client.get("/metrics?x=1")
            assert metrics.status_code == 200
            assert metrics.text == "switchboard_up 1\n"
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            state["healthy"] = False
            assert (await client.get("/healthz")).status_code == 503
        bare_port = bare.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{bare_port}/metrics")).status_code == 404
    finally:
        server.close()
        bare.close()


def test_request_path() -> None:
    assert request_path(b"GET /metrics?name[]=x HTTP/1.1\r\nhost: a\r\n\r\n") == "/metrics"
    assert request_path(b"garbage\r\n\r\n") == ""
