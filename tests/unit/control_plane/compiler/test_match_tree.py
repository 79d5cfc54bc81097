"""Routes through a match tree: every request gets the route a route list would give it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from control_plane.compiler.paths import UNKNOWN_PATH_MESSAGE
from control_plane.compiler.settings import ROUTE_TARGET_MODEL_KEY
from control_plane.policy import load_documents
from control_plane.policy.models import Policy
from ext_proc.contract import METADATA_NAMESPACE, ROUTE_MODEL_HEADER
from tests.unit.control_plane.compiled import Compiled, Request, compiled, route_for

APIS = ["/v1/chat/completions", "/v1/embeddings", "/v1/messages"]
MODELS = 300

SINGLE = "".join(f"  m{i}: {{targets: [{{provider: {'ab'[i % 2]}, model: up{i}}}]}}\n"
                 for i in range(MODELS))
POLICY = """
providers:
  a: {kind: openai, base_url: "http://127.0.0.1:9000/v1"}
  b: {kind: anthropic, base_url: "https://api.anthropic.com"}
models:
""" + SINGLE + """
  chain: {targets: [{provider: a}, {provider: b, model: claude}], retries: 1}
  canary:
    strategy: weighted
    targets: [{provider: a, weight: 90}, {provider: b, weight: 10}]
    fallbacks: [{provider: b, model: claude}]
    timeout: 20s
"""


@pytest.fixture(scope="module")
def gateway() -> Compiled:
    return compiled(load_documents({"p.yaml": POLICY}))


def _answer(route: dict[str, Any] | None) -> tuple[int, str]:
    assert route is not None and "direct_response" in route, route
    reply = route["direct_response"]
    return reply["status"], reply["body"]["inline_string"]


def test_every_model_is_reachable_on_every_api(gateway: Compiled) -> None:
    for name in [*(f"m{i}" for i in range(MODELS)), "chain", "canary"]:
        routes = [route_for(gateway.routes, Request(path, metadata={"model": name}))
                  for path in [*APIS, "/v1/chat/completions?x=1"]]
        assert all(route is not None and "route" in route for route in routes), name
        assert all(route == routes[0] for route in routes), name  # one route per model
        assert routes[0]["route"]["cluster"] in gateway.clusters


def test_a_single_target_route_names_the_providers_model(gateway: Compiled) -> None:
    route = route_for(gateway.routes, Request("/v1/messages", metadata={"model": "m7"}))
    assert route is not None
    assert route["route"]["cluster"] == "provider:b"
    assert route["metadata"]["filter_metadata"][METADATA_NAMESPACE][
        ROUTE_TARGET_MODEL_KEY] == "up7"


def test_models_with_fallbacks_route_to_their_own_cluster(gateway: Compiled) -> None:
    chain = route_for(gateway.routes, Request("/v1/chat/completions",
                                              metadata={"model": "chain"}))
    canary = route_for(gateway.routes, Request("/v1/embeddings", metadata={"model": "canary"}))
    assert chain is not None and canary is not None
    assert chain["route"]["cluster"] == "model:chain"
    assert chain["route"]["retry_policy"]["num_retries"] == 2  # two targets, one retry
    assert "metadata" not in chain  # each endpoint names its model
    assert canary["route"]["cluster"] == "model:canary"
    assert canary["route"]["timeout"] == "20s"
    assert canary["route"]["retry_policy"]["num_retries"] == 1  # the weighted pick, a fallback
    priorities = [[e["metadata"]["filter_metadata"][METADATA_NAMESPACE]["model"]
                   for e in p["lb_endpoints"]]
                  for p in gateway.clusters["model:canary"]["load_assignment"]["endpoints"]]
    assert priorities == [["canary", "canary"], ["claude"]]


def test_the_tree_is_keyed_on_the_header_the_listener_sets(gateway: Compiled) -> None:
    [_, served] = gateway.routes["virtual_hosts"][1]["matcher"]["matcher_list"]["matchers"]
    tree = served["on_match"]["matcher"]
    assert tree["matcher_tree"]["input"]["typed_config"]["header_name"] == ROUTE_MODEL_HEADER
    assert len(tree["matcher_tree"]["exact_match_map"]["map"]) == MODELS + 2


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models?limit=20"])
def test_the_models_list_in_anthropics_shape_when_anthropic_version_is_sent(
        gateway: Compiled, path: str) -> None:
    status, body = _answer(route_for(gateway.routes, Request(
        path, "GET", headers={"anthropic-version": "2023-06-01"})))
    listed = orjson.loads(body)
    assert status == 200
    assert listed["data"][0] == {"type": "model", "id": "canary", "display_name": "canary",
                                 "created_at": "1970-01-01T00:00:00Z"}
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == ("canary", "m99",
                                                                          False)
    assert len(listed["data"]) == MODELS + 2


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models?after=x"])
def test_the_models_list_in_openais_shape_otherwise(gateway: Compiled, path: str) -> None:
    status, body = _answer(route_for(gateway.routes, Request(path, "GET")))
    listed = orjson.loads(body)
    assert status == 200
    assert listed["object"] == "list"
    assert listed["data"][1] == {"id": "chain", "object": "model", "created": 0,
                                 "owned_by": "switchboard"}


def test_the_models_list_ignores_a_model_in_the_body(gateway: Compiled) -> None:
    status, _ = _answer(route_for(gateway.routes, Request("/v1/models", "GET",
                                                          metadata={"model": "m1"})))
    assert status == 200


@pytest.mark.parametrize(("request_", "expected"), [
    (Request("/v1/chat/completions", metadata={"model": "nope"}),
     (404, "The model is not served by this gateway.")),
    (Request("/v1/messages", metadata={"body_error": "invalid_json"}),
     (400, "The request body is not valid JSON.")),
    (Request("/v1/embeddings", metadata={"body_error": "missing_model"}),
     (400, "The request body has no 'model' field with a model's name.")),
    (Request("/v1/completions", metadata={"model": "m1"}), (404, UNKNOWN_PATH_MESSAGE)),
    (Request("/v1/completions"), (404, UNKNOWN_PATH_MESSAGE)),
    (Request("/v1/chat/completions/x", metadata={"model": "m1"}),
     (404, UNKNOWN_PATH_MESSAGE)),
    (Request("/v1/models"), (404, UNKNOWN_PATH_MESSAGE)),  # POST
    (Request("/v1/models", "HEAD"), (404, UNKNOWN_PATH_MESSAGE)),
], ids=["unknown model", "invalid json", "missing model", "unknown path, known model",
        "unknown path", "below an api path", "post models", "head models"])
def test_what_envoy_answers_itself(gateway: Compiled, request_: Request,
                                   expected: tuple[int, str]) -> None:
    assert _answer(route_for(gateway.routes, request_)) == expected


def test_mock_attempts_reaching_envoy_are_answered_by_the_mock_host(gateway: Compiled) -> None:
    status, _ = _answer(route_for(gateway.routes, Request(
        "/v1/chat/completions", authority="mock.switchboard.internal")))
    assert status == 502


def test_a_policy_without_models_lists_none_and_serves_none() -> None:
    gateway = compiled(Policy.model_validate({"providers": {"demo": {"kind": "mock"}}}))
    status, body = _answer(route_for(gateway.routes, Request("/v1/models", "GET")))
    assert (status, orjson.loads(body)) == (200, {"object": "list", "data": []})
    status, body = _answer(route_for(gateway.routes, Request(
        "/v1/models", "GET", headers={"anthropic-version": "2023-06-01"})))
    assert orjson.loads(body)["first_id"] is None
    assert _answer(route_for(gateway.routes, Request(
        "/v1/chat/completions", metadata={"model": "x"})))[0] == 404
