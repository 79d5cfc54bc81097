"""Routes: the model named in the body picks the route through a match tree, one hash lookup
whatever the number of models; errors are answered by Envoy itself.

The gateway's virtual host has no route list but a `matcher`, tried in order:
1. /v1/models: the model lists (`model_lists`);
2. a client API's path: the model, copied from dynamic metadata into ROUTE_MODEL_HEADER at the
   listener, is looked up in an exact-match map whose action is that model's route
   (`model_routes`); no model, a body error or an unknown model gets the fallback routes;
3. any other path: the unknown-path reply.
Paths match with or without a query string, as a route's `path` match does. The routes of a
RouteList keep their own `match`, so methods and metadata are checked as in a route list.
"""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2, route_pb2
from google.protobuf import json_format

from control_plane.compiler.model_lists import MODELS_PATH, models_list_routes
from control_plane.compiler.model_routes import ModelRoutes
from control_plane.compiler.paths import SERVED_APIS, unknown_path_route
from control_plane.compiler.placement import ClusterPlan
from control_plane.compiler.settings import ROUTE_CONFIG_NAME
from control_plane.policy import Policy
from ext_proc.contract import (
    BODY_ERROR_KEY,
    METADATA_NAMESPACE,
    MOCK_AUTHORITY,
    ROUTE_MODEL_HEADER,
    ClientApi,
)

ROUTE = "type.googleapis.com/envoy.config.route.v3.Route"
ROUTE_LIST = "type.googleapis.com/envoy.config.route.v3.RouteList"
HEADER_INPUT = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput"
# Envoy refuses direct responses over 4 KiB unless told otherwise; the model lists grow with
# the policy (about 80 bytes a model).
_DIRECT_RESPONSE_FLOOR = 4096


def route_configuration(policy: Policy, plan: ClusterPlan) -> route_pb2.RouteConfiguration:
    config = route_pb2.RouteConfiguration(
        name=ROUTE_CONFIG_NAME,
        virtual_hosts=[json_format.ParseDict(host, route_components_pb2.VirtualHost())
                       for host in (_mock_host(), _gateway_host(bool(policy.models)))])
    models_list, served = config.virtual_hosts[1].matcher.matcher_list.matchers
    lists = models_list_routes(policy)
    models_list.on_match.action.typed_config.Pack(route_components_pb2.RouteList(routes=[
        *lists, json_format.ParseDict(unknown_path_route(), route_components_pb2.Route())]))
    config.max_direct_response_body_size_bytes.value = max(
        _DIRECT_RESPONSE_FLOOR, *(len(r.direct_response.body.inline_string.encode())
                                  for r in lists))
    if policy.models:
        table = served.on_match.matcher.matcher_tree.exact_match_map
        routes = ModelRoutes(policy.defaults)
        for name, placement in plan.models.items():
            action = table.map[name].action
            action.name = "model"
            action.typed_config.type_url = ROUTE
            action.typed_config.value = routes.route(policy.models[name], placement)
    return config


def _gateway_host(has_models: bool) -> dict[str, Any]:
    fallback = _route_list([
        *(_body_error(api, error, message) for api in SERVED_APIS for error, message in (
            ("invalid_json", "The request body is not valid JSON."),
            ("missing_model", "The request body has no 'model' field with a model's name."))),
        *({"match": {"path": api.path}, "direct_response": {"status": 404, "body": {
            "inline_string": "The model is not served by this gateway."}}}
          for api in SERVED_APIS),
    ])
    by_model = fallback
    if has_models:  # an exact-match map needs at least one entry
        by_model = {"matcher": {
            "matcher_tree": {"input": _header_input(ROUTE_MODEL_HEADER),
                             "exact_match_map": {"map": {}}},  # filled in as protobuf
            "on_no_match": fallback,
        }}
    models_list = {"predicate": _path_is(MODELS_PATH),
                   "on_match": _route_list([])}  # filled in as protobuf
    served = {"predicate": {"or_matcher": {"predicate": [
        _path_is(api.path) for api in SERVED_APIS]}}, "on_match": by_model}
    return {"name": "gateway", "domains": ["*"], "include_request_attempt_count": True,
            "matcher": {"matcher_list": {"matchers": [models_list, served]},
                        "on_no_match": _route_list([unknown_path_route()])}}


def _mock_host() -> dict[str, Any]:
    """Where mock attempts point. The worker answers them first; reaching this is a bug."""
    return {"name": "mock", "domains": [MOCK_AUTHORITY, f"{MOCK_AUTHORITY}:*"],
            "routes": [{"match": {"prefix": "/"}, "direct_response": {
                "status": 502, "body": {"inline_string":
                    "The mock provider's request was not answered by the processor."}}}]}


def _body_error(api: ClientApi, error: str, message: str) -> dict[str, Any]:
    return {"match": {"path": api.path, "dynamic_metadata": [_metadata_is(BODY_ERROR_KEY, error)]},
            "direct_response": {"status": 400, "body": {"inline_string": message}}}


def _route_list(routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"action": {"name": "routes", "typed_config": {"@type": ROUTE_LIST, "routes": routes}}}


def _header_input(name: str) -> dict[str, Any]:
    return {"name": "header", "typed_config": {"@type": HEADER_INPUT, "header_name": name}}


def _path_is(path: str) -> dict[str, Any]:
    """The path with or without a query string, as a route's `path` match takes it."""
    return {"or_matcher": {"predicate": [_header_is(":path", {"exact": path}),
                                         _header_is(":path", {"prefix": path + "?"})]}}


def _header_is(name: str, value_match: dict[str, Any]) -> dict[str, Any]:
    return {"single_predicate": {"input": _header_input(name), "value_match": value_match}}


def _metadata_is(key: str, value: str) -> dict[str, Any]:
    return {"filter": METADATA_NAMESPACE, "path": [{"key": key}],
            "value": {"string_match": {"exact": value}}}
