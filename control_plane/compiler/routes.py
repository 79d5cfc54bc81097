"""Routes: the model named in the body picks the route; errors are answered by Envoy itself."""

from __future__ import annotations

from typing import Any

import orjson

from control_plane.compiler.clusters import cluster_name
from control_plane.compiler.failover import resolve
from control_plane.compiler.retries import retry_policy
from control_plane.compiler.settings import ROUTE_CONFIG_NAME
from control_plane.policy import Policy
from control_plane.policy.models import ModelRoute
from ext_proc.contract import METADATA_NAMESPACE, MOCK_AUTHORITY, ClientApi

# The client APIs routed today; each needs a translator for every backend kind it reaches.
SERVED_APIS = (ClientApi.OPENAI_CHAT, ClientApi.OPENAI_EMBEDDINGS, ClientApi.ANTHROPIC_MESSAGES)


# Envoy refuses direct responses over 4 KiB unless told otherwise; the model lists grow with
# the policy (about 80 bytes a model).
_DIRECT_RESPONSE_FLOOR = 4096


def route_configuration(policy: Policy) -> dict[str, Any]:
    hosts = [_mock_host(), _gateway_host(policy)]
    largest = max((len(route["direct_response"]["body"]["inline_string"].encode())
                   for host in hosts for route in host["routes"] if "direct_response" in route),
                  default=0)
    return {
        "name": ROUTE_CONFIG_NAME,
        "virtual_hosts": hosts,
        "max_direct_response_body_size_bytes": max(_DIRECT_RESPONSE_FLOOR, largest),
    }


def _gateway_host(policy: Policy) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [_anthropic_models_list(policy), _models_list(policy)]
    for api in SERVED_APIS:
        routes.append(_body_error(api, "invalid_json", "The request body is not valid JSON."))
        routes.append(_body_error(api, "missing_model",
                                  "The request body has no 'model' field."))
        routes.extend(_model_route(api, name, route, policy)
                      for name, route in sorted(policy.models.items()))
        routes.append({"match": {"path": api.path},
                       "direct_response": {"status": 404, "body": {"inline_string":
                           "The model is not served by this gateway."}}})
    routes.append({"match": {"prefix": "/"},
                   "direct_response": {"status": 404, "body": {"inline_string": (
                       "Unknown path. This gateway serves "
                       + ", ".join(api.path for api in SERVED_APIS) + " and /v1/models.")}}})
    return {"name": "gateway", "domains": ["*"], "routes": routes,
            "include_request_attempt_count": True}


def _mock_host() -> dict[str, Any]:
    """Where mock attempts point. The worker answers them first; reaching this is a bug."""
    return {"name": "mock", "domains": [MOCK_AUTHORITY, f"{MOCK_AUTHORITY}:*"],
            "routes": [{"match": {"prefix": "/"}, "direct_response": {
                "status": 502, "body": {"inline_string":
                    "The mock provider's request was not answered by the processor."}}}]}


def _models_list(policy: Policy) -> dict[str, Any]:
    body = {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "switchboard"}
        for name in sorted(policy.models)]}
    return _list_route(body, [])


def _anthropic_models_list(policy: Policy) -> dict[str, Any]:
    """Anthropic's list shape, for clients that send anthropic-version (its SDKs always do)."""
    names = sorted(policy.models)
    body = {"data": [{"type": "model", "id": name, "display_name": name,
                      "created_at": "1970-01-01T00:00:00Z"} for name in names],
            "has_more": False, "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None}
    return _list_route(body, [{"name": "anthropic-version", "present_match": True}])


def _list_route(body: dict[str, Any], headers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "match": {"path": "/v1/models", "headers": [
            {"name": ":method", "string_match": {"exact": "GET"}}, *headers]},
        "direct_response": {"status": 200, "body": {"inline_string": orjson.dumps(
            body).decode()}},
        "response_headers_to_add": [{"header": {"key": "content-type",
                                                "value": "application/json"}}],
    }


def _body_error(api: ClientApi, error: str, message: str) -> dict[str, Any]:
    return {"match": {"path": api.path, "dynamic_metadata": [_metadata_is("body_error", error)]},
            "direct_response": {"status": 400, "body": {"inline_string": message}}}


def _model_route(api: ClientApi, name: str, route: ModelRoute, policy: Policy) -> dict[str, Any]:
    action: dict[str, Any] = {
        "cluster": cluster_name(name),
        "timeout": _seconds(route.timeout or policy.defaults.timeout),
    }
    if (retries := retry_policy(resolve(route, policy.defaults))) is not None:
        action["retry_policy"] = retries
    return {
        "match": {"path": api.path, "dynamic_metadata": [_metadata_is("model", name)]},
        "metadata": {"filter_metadata": {METADATA_NAMESPACE: {"api": api.value}}},
        "route": action,
    }


def _metadata_is(key: str, value: str) -> dict[str, Any]:
    return {"filter": METADATA_NAMESPACE, "path": [{"key": key}],
            "value": {"string_match": {"exact": value}}}


def _seconds(value: float) -> str:
    return f"{value:.3f}s"
