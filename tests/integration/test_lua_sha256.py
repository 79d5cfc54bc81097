"""The lane's SHA-256 (control_plane/compiler/lua/sha256.lua) agrees with hashlib inside a
real Envoy's LuaJIT, on every padding boundary: a gateway key that hashed differently would
never be admitted by Envoy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from control_plane.envoy_process import envoy_binary
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ECHO_DIGEST = """
function envoy_on_request(handle)
  local body = handle:body()
  local text = body and body:getBytes(0, body:length()) or ""
  handle:respond({[":status"] = "200"}, sha256_hex(text))
end
"""


def _config(port: int, admin_port: int) -> dict[str, object]:
    script = resources.files("control_plane.compiler").joinpath("lua", "sha256.lua").read_text()
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                 "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "digest",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "digest",
                    "route_config": {"virtual_hosts": [{
                        "name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"},
                                    "direct_response": {"status": 404}}]}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.lua", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua."
                                     "v3.Lua",
                            "default_source_code": {"inline_string": script + ECHO_DIGEST}}},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                     "router.v3.Router"}},
                    ]}}]}]}]},
    }


@pytest.fixture(scope="module")
def digest_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, admin_port = free_port(), free_port()
    config = Path(tmp_path_factory.mktemp("sha256"), "envoy.json")
    config.write_text(json.dumps(_config(port, admin_port)))
    envoy = subprocess.Popen([envoy_binary(), "-c", str(config), "--concurrency", "1",
                              "-l", "warning", "--base-id", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert envoy.poll() is None, envoy.stderr.read() if envoy.stderr else ""
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "Envoy did not start"
                time.sleep(0.1)
        yield url
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)


@pytest.mark.parametrize("length", [0, 1, 3, 47, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000])
def test_digests_match_hashlib_on_every_padding_boundary(digest_url: str, length: int) -> None:
    message = bytes((7 * i + 13) % 256 for i in range(length))  # every byte value, not text
    digest = httpx.post(digest_url, content=message, timeout=5).text
    assert digest == hashlib.sha256(message).hexdigest()
