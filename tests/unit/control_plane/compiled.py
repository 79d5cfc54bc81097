"""A compiled policy read back as Envoy would use it: which route a request gets, which cluster
a model's requests go to. Dicts in Envoy's YAML shape, from the snapshot's protobufs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.policy.models import Policy
from control_plane.xds.resources import CLUSTER, ROUTE, to_dict
from ext_proc.contract import METADATA_NAMESPACE, ROUTE_MODEL_HEADER

ROUTE_LIST = "type.googleapis.com/envoy.config.route.v3.RouteList"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.Route"


@dataclass
class Compiled:
    routes: dict[str, Any]
    clusters: dict[str, dict[str, Any]]


def compiled(policy: Policy, settings: GatewaySettings | None = None) -> Compiled:
    snapshot = compile_policy(policy, settings or GatewaySettings())
    [routes] = snapshot.of_type(ROUTE).values()
    return Compiled(to_dict(routes), {name: to_dict(cluster)
                                      for name, cluster in snapshot.of_type(CLUSTER).items()})


@dataclass
class Request:
    """What the gateway's routes see: the listener has copied the model from the body's
    metadata into ROUTE_MODEL_HEADER, as its header_mutation filter does."""

    path: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # the switchboard namespace
    authority: str = "127.0.0.1:10000"

    def header_map(self) -> dict[str, str]:
        headers = {":path": self.path, ":method": self.method, ":authority": self.authority,
                   **{k.lower(): v for k, v in self.headers.items()}}
        if self.metadata.get("model"):
            headers[ROUTE_MODEL_HEADER] = self.metadata["model"]
        return headers


def route_for(config: dict[str, Any], request: Request) -> dict[str, Any] | None:
    """The route Envoy picks for `request`, or None (no route: a 404 with no body)."""
    host = request.authority.split(":")[0]
    [vhost] = [v for v in config["virtual_hosts"]
               if host in v["domains"] or (v["domains"] == ["*"] and not any(
                   host in w["domains"] for w in config["virtual_hosts"]))]
    if "matcher" in vhost:
        return _first_route(_evaluate(vhost["matcher"], request), request)
    return _first_route(vhost["routes"], request)


def model_route(compiled: Compiled, model: str,
                path: str = "/v1/chat/completions") -> dict[str, Any]:
    route = route_for(compiled.routes, Request(path, metadata={"model": model}))
    assert route is not None and "route" in route, f"{model} {path}: {route}"
    return route


def model_cluster(compiled: Compiled, model: str) -> dict[str, Any]:
    """The cluster that `model`'s requests go to."""
    return compiled.clusters[model_route(compiled, model)["route"]["cluster"]]


def _evaluate(matcher: dict[str, Any], request: Request) -> list[dict[str, Any]]:
    on_match = None
    if "matcher_list" in matcher:
        for candidate in matcher["matcher_list"]["matchers"]:
            if _predicate(candidate["predicate"], request):
                on_match = candidate["on_match"]
                break
    elif "matcher_tree" in matcher:
        tree = matcher["matcher_tree"]
        value = _input(tree["input"], request)
        on_match = tree["exact_match_map"]["map"].get(value) if value is not None else None
    if on_match is None:
        on_match = matcher.get("on_no_match")
    if on_match is None:
        return []
    if "matcher" in on_match:
        return _evaluate(on_match["matcher"], request)
    action = on_match["action"]["typed_config"]
    if action["@type"] == ROUTE_LIST:
        return list(action["routes"])
    assert action["@type"] == ROUTE_TYPE
    return [{k: v for k, v in action.items() if k != "@type"}]


def _input(spec: dict[str, Any], request: Request) -> str | None:
    config = spec["typed_config"]
    assert config["@type"].endswith("HttpRequestHeaderMatchInput")
    return request.header_map().get(config["header_name"])


def _predicate(predicate: dict[str, Any], request: Request) -> bool:
    if "or_matcher" in predicate:
        return any(_predicate(p, request) for p in predicate["or_matcher"]["predicate"])
    if "and_matcher" in predicate:
        return all(_predicate(p, request) for p in predicate["and_matcher"]["predicate"])
    single = predicate["single_predicate"]
    value = _input(single["input"], request)
    return value is not None and _string_match(single["value_match"], value)


def _string_match(matcher: dict[str, Any], value: str) -> bool:
    if "exact" in matcher:
        return bool(value == matcher["exact"])
    if "prefix" in matcher:
        return value.startswith(matcher["prefix"])
    raise AssertionError(f"unsupported string matcher {matcher}")


def _first_route(routes: list[dict[str, Any]], request: Request) -> dict[str, Any] | None:
    return next((r for r in routes if _route_matches(r["match"], request)), None)


def _route_matches(match: dict[str, Any], request: Request) -> bool:
    path = urlsplit(request.path).path  # a route's path match ignores the query string
    if "path" in match and path != match["path"]:
        return False
    if "prefix" in match and not path.startswith(match["prefix"]):
        return False
    headers = request.header_map()
    for header in match.get("headers", []):
        value = headers.get(header["name"])
        if header.get("present_match"):
            if value is None:
                return False
        elif value is None or not _string_match(header["string_match"], value):
            return False
    for rule in match.get("dynamic_metadata", []):
        assert rule["filter"] == METADATA_NAMESPACE
        [key] = [step["key"] for step in rule["path"]]
        value = request.metadata.get(key)
        if value is None or not _string_match(rule["value"]["string_match"], value):
            return False
    return True
