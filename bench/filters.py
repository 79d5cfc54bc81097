"""What each of Switchboard's Envoy filters costs Envoy, weighed one at a time.

A filter costs a few µs, less than the noise of a whole-gateway run, so each is amplified:
`--copies` copies of it (as the compiler configures it for the data-path benchmark's
passthrough policy) in front of plain Envoy's router, loaded with wrk like `bench run`. Envoy's
CPU per request, less plain Envoy's from the same rounds, divided by the copies, is one
filter's cost. Upstream filters are weighed the same way in a cluster's upstream chain,
against a chain of the codec alone.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fakes
from bench.datapath import (
    Target,
    datapath_policy,
    ensure_wrk,
    envoy_process,
    free_port,
    http_request,
    measure,
    wait_until,
)
from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.compiler.direct import only_marked
from control_plane.compiler.listener import access_log
from control_plane.compiler.lua_source import to_lua
from control_plane.compiler.request_reader import request_reader_filter
from control_plane.compiler.settings import EXT_PROC_CLUSTER
from control_plane.compiler.translations import translation_source
from control_plane.policy import load_documents
from control_plane.xds.resources import CLUSTER, LISTENER, to_dict
from ext_proc.contract import DIRECT_HEADER

PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
CODEC, EXT_PROC = "envoy.filters.http.upstream_codec", "envoy.filters.http.ext_proc"
UPSTREAM_BASE = "upstream codec alone (once)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="+", help="variants to run (with the baseline)")
    parser.add_argument("--name", default="filters")


class Compiled:
    """The filters the compiler emits for the passthrough benchmark policy, by name."""

    def __init__(self) -> None:
        policy = load_documents({"bench.yaml": datapath_policy(
            9, 100, True, reply_cost=False, envoy_admission=True)})
        snapshot = compile_policy(policy, GatewaySettings())
        [listener] = snapshot.of_type(LISTENER).values()
        manager = to_dict(listener)["filter_chains"][0]["filters"][0]["typed_config"]
        self.listener = {f["name"]: f for f in manager["http_filters"]}
        clusters = [to_dict(c) for c in snapshot.of_type(CLUSTER).values()]
        provider = next(c for c in clusters if c["name"] != EXT_PROC_CLUSTER
                        and PROTOCOL_OPTIONS in c.get("typed_extension_protocol_options", {}))
        self.upstream = {f["name"]: f for f in provider["typed_extension_protocol_options"][
            PROTOCOL_OPTIONS]["http_filters"]}

    def inner(self, name: str) -> dict[str, Any]:
        """A listener filter without the matcher that skips it for some requests."""
        return dict(self.listener[name]["typed_config"]["extension_config"])

    def delegate(self, name: str) -> dict[str, Any]:
        """The filter an upstream composite builds."""
        [matcher] = self.upstream[name]["typed_config"]["xds_matcher"]["matcher_list"][
            "matchers"]
        return dict(matcher["on_match"]["action"]["typed_config"]["typed_config"])


# name -> (listener filters, upstream filters or None, access logs), given the copies
Variant = Callable[[Compiled, int], tuple[list[dict[str, Any]], list[dict[str, Any]] | None,
                                          list[dict[str, Any]]]]


def _copies(http_filter: dict[str, Any], copies: int) -> list[dict[str, Any]]:
    return [{**copy.deepcopy(http_filter), "name": f"{http_filter['name']}-{i}"}
            for i in range(copies)]


_SKIPPED_HEADER_MUTATION = {"name": "mutation", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3"
             ".HeaderMutation", "mutations": {}}}


def _lua(source: str) -> dict[str, Any]:
    return {"name": "lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": source}}}


_TRIVIAL_LUA = _lua(
    "function envoy_on_request(handle)\n"
    "  local metadata = handle:streamInfo():dynamicMetadata():get('switchboard')\n"
    "end\n")
_LUA_READING_CHUNKS = _lua(
    "function envoy_on_response(handle)\n"
    "  for chunk in handle:bodyChunks() do\n"
    "    local text = chunk:getBytes(0, chunk:length())\n"
    "  end\n"
    "end\n")


# What a translation pays Envoy to read and replace a body, without translating it.
_LUA_BODIES = {
    "Lua reading the request body whole": _lua(
        "function envoy_on_request(handle)\n"
        "  local body = handle:body()\n"
        "  local text = body:getBytes(0, body:length())\n"
        "end\n"),
    "Lua replacing the request body": _lua(
        "function envoy_on_request(handle)\n"
        "  local body = handle:body()\n"
        "  body:setBytes(body:getBytes(0, body:length()))\n"
        "end\n"),
    "Lua reading the reply whole": _lua(
        "function envoy_on_response(handle)\n"
        "  local body = handle:body()\n"
        "  local text = body:getBytes(0, body:length())\n"
        "end\n"),
    "Lua replacing the reply": _lua(
        "function envoy_on_response(handle)\n"
        "  local body = handle:body()\n"
        "  body:setBytes(body:getBytes(0, body:length()))\n"
        "  handle:headers():replace('content-type', 'application/json')\n"
        "end\n"),
    "Lua reading the reply by chunks": _LUA_READING_CHUNKS,
    "Lua translating a reply (no body access)": _lua("\n".join((
        translation_source(), f"local REPLY = {to_lua(fakes.ANTHROPIC_MESSAGE.decode())}",
        "function envoy_on_response(handle)\n"
        "  TRANSLATIONS.openai_anthropic.reply(200, REPLY, 'm')\n"
        "end\n"))),
    # Each copy translates the client's body and puts the same body back, for the next.
    "Lua translating the request (read, translate, replace)": _lua("\n".join((
        translation_source(),
        "local ROUTE = {model = 'm', model_json = '\"m\"'}\n"
        "function envoy_on_request(handle)\n"
        "  local body = handle:body()\n"
        "  local text = body:getBytes(0, body:length())\n"
        "  assert(TRANSLATIONS.openai_anthropic.request(text, ROUTE))\n"
        "  body:setBytes(text)\n"
        "end\n"))),
    "Lua writing 4 usage fields": _lua(
        "function envoy_on_response(handle)\n"
        "  for _, name in ipairs({'a', 'b', 'c', 'd'}) do\n"
        "    handle:streamInfo():dynamicMetadata():set('switchboard.usage', name, 12)\n"
        "  end\n"
        "end\n"),
}


def _each_copy(http_filter: dict[str, Any]) -> Variant:
    return lambda c, n: (_copies(http_filter, n), None, [])


def _once(http_filter: dict[str, Any]) -> Variant:
    """One copy alone: what the first of a kind costs (a first body reader waits for the
    body; later copies find it whole)."""
    return lambda c, n: (_copies(http_filter, 1), None, [])


def _listener(name: str, copies: int | None = None) -> Variant:
    return lambda c, n: (_copies(c.listener[name], copies or n), None, [])


# Variants named so weigh the filters on a stream's reply (the fake's OpenAI stream with
# its usage), against plain Envoy forwarding the same stream.
STREAM = "stream: "


VARIANTS: dict[str, Variant] = {
    "plain": lambda c, n: ([], None, []),
    "internal header strip": _listener("envoy.filters.http.header_mutation"),
    "buffer": _listener("envoy.filters.http.buffer"),
    "buffer (once)": _listener("envoy.filters.http.buffer", 1),
    "request reader, Lua (once)": lambda c, n: ([request_reader_filter()], None, []),
    "stdout access log (once)": lambda c, n: ([], None, [access_log()]),
    "Lua, entered only (once)": _once(_TRIVIAL_LUA),
    "Lua reading the request body whole (once)": _once(
        _LUA_BODIES["Lua reading the request body whole"]),
    "header_to_metadata": _listener("switchboard.client_path"),
    "request reader, Lua": lambda c, n: (_copies(request_reader_filter(), n), None, []),
    "Lua, entered only": _each_copy(_TRIVIAL_LUA),
    "reply usage reader (a whole reply)": lambda c, n: (
        _copies(c.inner("switchboard.reply_usage"), n), None, []),
    "a filter skipped by a matcher": lambda c, n: (
        _copies(only_marked(_SKIPPED_HEADER_MUTATION, "x-unset"), n), None, []),
    "ext_proc skipped by a matcher": lambda c, n: (
        _copies(only_marked(c.inner("envoy.filters.http.ext_proc"), "x-unset"), n), None, []),
    "ext_proc behind a composite, not built": _listener("envoy.filters.http.ext_proc"),
    "stdout access log": lambda c, n: ([], None, [access_log()] * n),
    UPSTREAM_BASE: lambda c, n: ([], [c.upstream[CODEC]], []),
    "upstream: the chain for a request forwarded alone (once)": lambda c, n: (
        [], list(c.upstream.values()), []),
    "upstream: ext_proc behind a composite, not built": lambda c, n: (
        [], [*_copies(c.upstream[EXT_PROC], n), c.upstream[CODEC]], []),
    "upstream: ext_proc skipped by a matcher": lambda c, n: (
        [], [*_copies(only_marked(c.delegate(EXT_PROC), "x-unset"), n), c.upstream[CODEC]],
        []),
    **{name: _each_copy(lua) for name, lua in _LUA_BODIES.items()},
    STREAM + "plain": lambda c, n: ([], None, []),
    STREAM + "usage reader": lambda c, n: (
        _copies(c.inner("switchboard.reply_usage"), n), None, []),
    STREAM + "Lua reading each chunk": _each_copy(_LUA_READING_CHUNKS),
    STREAM + "added usage event taken out": lambda c, n: (
        _copies(c.inner("switchboard.added_usage"), n), None, []),
}


def _config(port: int, upstream_port: int, filters: list[dict[str, Any]],
            upstream: list[dict[str, Any]] | None,
            logs: list[dict[str, Any]]) -> dict[str, Any]:
    config = fakes.plain_proxy_config(port, free_port(), upstream_port)
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    manager["http_filters"] = filters + manager["http_filters"]
    if logs:
        manager["access_log"] = logs
    clusters = config["static_resources"]["clusters"]
    if upstream is not None:
        clusters[0]["typed_extension_protocol_options"] = {PROTOCOL_OPTIONS: {
            "@type": f"type.googleapis.com/{PROTOCOL_OPTIONS}",
            "explicit_http_config": {"http_protocol_options": {}}, "http_filters": upstream}}
    # Named by the ext_proc filters, never called: requests are marked forwarded alone.
    clusters.append({
        "name": EXT_PROC_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {PROTOCOL_OPTIONS: {
            "@type": f"type.googleapis.com/{PROTOCOL_OPTIONS}",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": EXT_PROC_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                         "port_value": 9}}}}]}]}})
    return config


def _weigh(binary: str, target: Target, body: bytes, args: argparse.Namespace,
           work: Path) -> tuple[float, float]:
    """Envoy's CPU µs per request and the requests a second, under wrk."""
    path = (fakes.STREAM_BASE if target.name.startswith(STREAM) else fakes.OPENAI_BASE) \
        + "/chat/completions"

    def served() -> bool:
        return http_request(target.url + path, body, headers=target.headers)[0] == 200

    wait_until(served, target.name, 20)
    result = measure(binary, target, path, body, args.connections, args.duration, work)
    if result["non_2xx"]:
        raise RuntimeError(f"{target.name}: {result['non_2xx']} failed requests")
    cpu, rps = result["cpu_us_per_request"]["envoy"], result["rps"]
    print(f"{target.name:58s} {cpu:6.1f} us/req {rps:8.0f} rps", flush=True)
    return cpu, rps


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary, compiled = ensure_wrk(), Compiled()
    variants = {name: make for name, make in VARIANTS.items()
                if not args.only or name in args.only
                or name == "plain" or (name == STREAM + "plain" and any(
                    only.startswith(STREAM) for only in args.only))}
    bodies = {False: fakes.chat_request("bench-passthrough"),
              True: fakes.chat_request("bench-passthrough", stream=True, include_usage=True)}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="bench-filters-") as tmp:
        work, upstream_port = Path(tmp), free_port()
        with envoy_process(fakes.upstream_config(upstream_port, free_port()), work, "upstream"):
            for _ in range(args.rounds):
                for name, make in variants.items():
                    port = free_port()
                    config = _config(port, upstream_port, *make(compiled, args.copies))
                    with envoy_process(config, work, "proxy") as proxy:
                        target = Target(name, f"http://127.0.0.1:{port}",
                                        {"envoy": proxy.pid}, {DIRECT_HEADER: "1"})
                        samples[name].append(_weigh(binary, target, bodies[name.startswith(STREAM)],
                                                   args, work))
    cpu = {name: statistics.median(c for c, _ in runs) for name, runs in samples.items()}
    rows = []
    for name, runs in samples.items():
        # Upstream filters against a cluster that has the (required) codec and nothing else.
        base = (UPSTREAM_BASE if name.startswith("upstream:") and UPSTREAM_BASE in cpu
                else STREAM + "plain" if name.startswith(STREAM) else "plain")
        copies = (1 if "(once)" in name or name in ("plain", UPSTREAM_BASE, STREAM + "plain")
                  else args.copies)
        rows.append({"variant": name, "copies": copies, "against": base,
                     "envoy_us_per_request": runs,
                     "us_each": round((cpu[name] - cpu[base]) / copies, 1)})
        print(f"{name:58s} {rows[-1]['us_each']:6.1f} us each")
    return {"settings": {k: v for k, v in vars(args).items() if k != "run"}, "rows": rows}
