"""The rendered Envoy probes and drain hooks, executed with bash against a stand-in for Envoy's
admin interface on 127.0.0.1: probes pass only on 200, the preStop hook really POSTs the drain,
then waits for the requests in flight (as Envoy's stats report them) between its two bounds.
test_envoy_drain_real.py runs the same hook against a real Envoy."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from chart_render import find, manifests, render

IN_FLIGHT = "http.switchboard.downstream_rq_active"


class FakeAdmin(ThreadingHTTPServer):
    status = 200
    in_flight = 0
    seen: list[tuple[str, str, str]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeAdmin

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, self.request_version))
        if self.path.startswith("/stats"):
            # Shaped like Envoy's text stats; only the exact name may count.
            body = (f"cluster.upstream.upstream_rq_active: 7\n"
                    f"{IN_FLIGHT}: {self.server.in_flight}\n").encode()
        else:
            body = b"LIVE\n" if self.server.status == 200 else b"PRE_INITIALIZING\n"
        # The probes read the status line and hang up: the body may find the socket closed.
        with contextlib.suppress(ConnectionError):
            self.send_response(self.server.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    server = FakeAdmin(("127.0.0.1", 0), Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _containers(port: int, drain: int = 0, min_drain: int = 0,
                native: bool = True) -> dict[str, dict[str, Any]]:
    values = {"gateway": {
        "envoy": {"adminPort": port, "drainSeconds": drain, "minDrainSeconds": min_drain},
        "extProc": {"nativeSidecar": native}}}
    (gateway,) = find(manifests(render(values)), "Deployment", "switchboard-gateway")
    spec = gateway["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"] + spec.get("initContainers", [])}


def _envoy(port: int, drain: int = 0, min_drain: int = 0) -> dict[str, Any]:
    return _containers(port, drain, min_drain)["envoy"]


def _prestop(container: dict[str, Any]) -> list[str]:
    return list(container["lifecycle"]["preStop"]["exec"]["command"])


def _run(command: list[str]) -> int:
    return subprocess.run(command, timeout=30, check=False, capture_output=True).returncode


def _timed(command: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    code = _run(command)
    return code, time.monotonic() - start


def _closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/ready"), ("readinessProbe", "/ready"), ("livenessProbe", "/server_info")],
)
def test_probe_follows_the_admin_status(admin: FakeAdmin, probe: str, path: str) -> None:
    command = _envoy(admin.server_address[1])[probe]["exec"]["command"]
    assert _run(command) == 0
    admin.status = 503
    assert _run(command) != 0
    assert admin.seen == [("GET", path, "HTTP/1.1")] * 2


def test_probe_fails_when_envoy_is_down() -> None:
    assert _run(_envoy(_closed_port())["readinessProbe"]["exec"]["command"]) != 0


def test_prestop_drains_listeners_gracefully(admin: FakeAdmin) -> None:
    assert _run(_prestop(_envoy(admin.server_address[1]))) == 0
    assert admin.seen == [("POST", "/drain_listeners?graceful", "HTTP/1.1")]


def test_prestop_waits_the_minimum_then_returns_when_nothing_is_in_flight(
    admin: FakeAdmin,
) -> None:
    code, took = _timed(_prestop(_envoy(admin.server_address[1], drain=30, min_drain=2)))
    assert code == 0
    assert 2 <= took < 5
    assert [(m, p) for m, p, _ in admin.seen] == [
        ("POST", "/drain_listeners?graceful"), ("GET", f"/stats?filter={IN_FLIGHT}")]


def test_prestop_waits_for_requests_in_flight(admin: FakeAdmin) -> None:
    admin.in_flight = 3
    timer = threading.Timer(2.5, lambda: setattr(admin, "in_flight", 0))
    timer.start()
    try:
        code, took = _timed(_prestop(_envoy(admin.server_address[1], drain=30, min_drain=0)))
    finally:
        timer.cancel()
    assert code == 0
    assert 2.5 <= took < 6
    assert sum(1 for _, p, _ in admin.seen if p.startswith("/stats")) >= 2


def test_prestop_gives_up_after_drain_seconds(admin: FakeAdmin) -> None:
    admin.in_flight = 1  # a stream that outlives the drain: Envoy is stopped anyway
    code, took = _timed(_prestop(_envoy(admin.server_address[1], drain=3, min_drain=1)))
    assert code == 0
    assert 2 <= took < 6


def test_prestop_returns_at_once_when_envoy_is_already_gone() -> None:
    code, took = _timed(_prestop(_envoy(_closed_port(), drain=30, min_drain=10)))
    assert code == 0
    assert took < 3


def test_regular_ext_proc_sidecar_outlives_envoy(admin: FakeAdmin) -> None:
    port = admin.server_address[1]
    hook = _prestop(_containers(port, drain=30, native=False)["ext-proc"])
    threading.Timer(2.0, admin.shutdown).start()
    threading.Timer(2.1, admin.server_close).start()
    code, took = _timed(hook)  # returns once Envoy's admin stops answering
    assert code == 0
    assert 2 <= took < 5


def test_regular_ext_proc_sidecar_waits_at_most_a_little_past_the_drain(
    admin: FakeAdmin,
) -> None:
    hook = _prestop(_containers(admin.server_address[1], drain=1, native=False)["ext-proc"])
    code, took = _timed(hook)  # Envoy never goes away: the bound is drain + 2 seconds
    assert code == 0
    assert 2 <= took < 5
