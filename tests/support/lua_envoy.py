"""A real Envoy whose one listener runs a Lua script in front of a 404, for checking the
control plane's Lua inside the LuaJIT that Envoy embeds."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from control_plane.envoy_process import envoy_binary
from tests.support.ports import free_port


def _config(script: str, port: int, admin_port: int) -> dict[str, Any]:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                 "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "lua",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "lua",
                    "route_config": {"virtual_hosts": [{
                        "name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"},
                                    "direct_response": {"status": 404}}]}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.lua", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua."
                                     "v3.Lua",
                            "default_source_code": {"inline_string": script}}},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                     "router.v3.Router"}},
                    ]}}]}]}]},
    }


@contextmanager
def lua_envoy(script: str, work: Path) -> Iterator[str]:
    """The listener's URL, once Envoy answers on it."""
    port, admin_port = free_port(), free_port()
    config = work / "envoy.json"
    config.write_text(json.dumps(_config(script, port, admin_port)))
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
