"""GET /v1/models: the policy's models as direct responses, in Anthropic's list shape when
the request carries anthropic-version (Anthropic's SDKs always do), OpenAI's otherwise."""

from __future__ import annotations

from typing import Any

import orjson
from envoy.config.route.v3 import route_components_pb2
from google.protobuf import json_format

from control_plane.policy import Policy

MODELS_PATH = "/v1/models"


def models_list_routes(policy: Policy) -> list[route_components_pb2.Route]:
    """Routes to try in order; each matches GET /v1/models (any query string) itself."""
    names = sorted(policy.models)
    return [_list_route(anthropic_models_list(names),
                        [{"name": "anthropic-version", "present_match": True}]),
            _list_route(openai_models_list(names), [])]


def openai_models_list(names: list[str]) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "switchboard"}
        for name in names]})


def anthropic_models_list(names: list[str]) -> bytes:
    return orjson.dumps({
        "data": [{"type": "model", "id": name, "display_name": name,
                  "created_at": "1970-01-01T00:00:00Z"} for name in names],
        "has_more": False, "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None})


def _list_route(body: bytes, headers: list[dict[str, Any]]) -> route_components_pb2.Route:
    route = json_format.ParseDict({
        "match": {"path": MODELS_PATH, "headers": [
            {"name": ":method", "string_match": {"exact": "GET"}}, *headers]},
        "direct_response": {"status": 200},
        "response_headers_to_add": [{"header": {"key": "content-type",
                                                "value": "application/json"}}],
    }, route_components_pb2.Route())
    # Set as protobuf: ParseDict scans every string it parses, and the lists are large.
    route.direct_response.body.inline_string = body.decode()
    return route
