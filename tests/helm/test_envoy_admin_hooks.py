"""The rendered Envoy probes and drain hook, executed with bash against a stand-in for Envoy's
admin interface on 127.0.0.1: they pass only on 200, and the hook really POSTs the drain."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from chart_render import find, manifests, render


class FakeAdmin(ThreadingHTTPServer):
    status = 200
    seen: list[tuple[str, str, str]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeAdmin

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, self.request_version))
        body = b"LIVE\n" if self.server.status == 200 else b"PRE_INITIALIZING\n"
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


def _envoy(port: int) -> dict[str, Any]:
    values = {"gateway": {"envoy": {"adminPort": port, "drainSeconds": 0}}}
    (gateway,) = find(manifests(render(values)), "Deployment", "switchboard-gateway")
    return next(
        c for c in gateway["spec"]["template"]["spec"]["containers"] if c["name"] == "envoy"
    )


def _run(command: list[str]) -> int:
    return subprocess.run(command, timeout=10, check=False, capture_output=True).returncode


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
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _run(_envoy(port)["readinessProbe"]["exec"]["command"]) != 0


def test_prestop_drains_listeners_gracefully(admin: FakeAdmin) -> None:
    hook = _envoy(admin.server_address[1])["lifecycle"]["preStop"]["exec"]["command"]
    assert _run(hook) == 0
    assert admin.seen == [("POST", "/drain_listeners?graceful", "HTTP/1.1")]
