"""A real Envoy whose one listener runs a Lua script in front of a 404, for checking the
control plane's Lua inside the LuaJIT that Envoy embeds; and a script that exposes the lane's
translations (control_plane/compiler/translations.py) over HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from control_plane.compiler.lua_source import to_lua
from control_plane.compiler.request_reader import request_reader_source
from control_plane.compiler.translations import stream_usage_source, translation_source
from control_plane.envoy_process import envoy_binary
from ext_proc.direct import reply_usage_object
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


_USAGE_HEADER = """
local function usage_header(fields)
  if fields == nil then
    return {[":status"] = "200"}
  end
  return {[":status"] = "200", ["x-usage"] = usage_json(fields)}
end
"""


# For translation NAME, with the provider's model MODEL:
# POST /NAME/request: the translated body, or 204 when the lane leaves it to a worker;
# POST /NAME/reply/<status>: the client's reply to a provider's reply of that status;
# POST /NAME/stream/<include usage: 0 or 1>/<size>: the client's stream, for a provider's
# stream fed in pieces of that size; POST /NAME/failure: what the client gets should the Lua
# fail. Replies and streams carry the usage fields the translation reported last in the
# header x-usage, as `name=value` pairs separated by commas.
_HARNESS = """
local ROUTE = {model_json = '"' .. MODEL .. '"'}


function envoy_on_request(handle)
  local name, action, rest = handle:headers():get(":path"):match("^/([%w_]+)/(%a+)/?(.*)$")
  local body = handle:body()
  local text = body and body:getBytes(0, body:length()) or ""
  local translation = TRANSLATIONS[name]
  if action == "request" then
    -- As in the lane: only a body its reader took, checked whole, is translated.
    local out = request_fields(text) ~= nil and translation.request(text, ROUTE) or nil
    handle:respond({[":status"] = out and "200" or "204"}, out or "")
  elseif action == "failure" then
    handle:respond({[":status"] = "200"}, translation.failure())
  elseif action == "stream" then
    local usage, size = rest:match("^(%d)/(%d+)$")
    local reported
    local stream, out = translation.stream(MODEL, usage == "1",
                                           function(fields) reported = fields end), {}
    for at = 1, #text, tonumber(size) do
      out[#out + 1] = stream:feed(text:sub(at, at + tonumber(size) - 1))
    end
    handle:respond(usage_header(reported), table.concat(out))
  else
    local reply, usage = translation.reply(tonumber(rest), text, MODEL)
    handle:respond(usage_header(usage), reply)
  end
end
"""


def reported_usage(response: httpx.Response) -> dict[str, Any] | None:
    """The usage object a translation reported, written as Envoy writes it for the access log
    and read as the workers read it (ext_proc/direct.py); None when it reported none."""
    header = response.headers.get("x-usage")
    return reply_usage_object(header) if header else None


def translation_harness(model: str) -> str:
    return "\n".join((translation_source(), request_reader_source(),
                      f"local MODEL = {to_lua(model)}", _USAGE_HEADER, _HARNESS))


# POST /read/<size>: the stream read in pieces of that size, its reported usage fields
# (the last report of each wins) in the header x-usage as above; POST /strip/<size>: the
# stream without the usage event, fed in pieces of that size and then the empty chunk Envoy
# ends a stream with, and the usage read on the way in x-usage; POST /whole/0: the usage
# fields of a whole JSON reply.
_STREAM_USAGE_HARNESS = """
function envoy_on_request(handle)
  local action, size = handle:headers():get(":path"):match("^/(%a+)/(%d+)$")
  local body = handle:body()
  local text = body and body:getBytes(0, body:length()) or ""
  size = tonumber(size)
  local fields
  local function report(found)
    fields = fields or {}
    for name, value in pairs(found) do
      fields[name] = value
    end
  end
  if action == "whole" then
    local found = whole_reply_usage(text)
    if found ~= nil then
      report(found)
    end
    handle:respond(usage_header(fields), "")
  elseif action == "read" then
    local reader = UsageReader.new()
    for at = 1, #text, size do
      reader:read(text:sub(at, at + size - 1), report)
    end
    handle:respond(usage_header(fields), "")
  else
    local stripper, out = UsageStripper.new(), {}
    for at = 1, #text, size do
      local piece = text:sub(at, at + size - 1)
      out[#out + 1] = stripper:strip(piece, report) or piece
    end
    out[#out + 1] = stripper:strip("", report) or ""  -- the empty chunk Envoy ends with
    handle:respond(usage_header(fields), table.concat(out))
  end
end
"""


def stream_usage_harness() -> str:
    return "\n".join((stream_usage_source(), _USAGE_HEADER, _STREAM_USAGE_HARNESS))
