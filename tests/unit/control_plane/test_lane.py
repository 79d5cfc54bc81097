"""What Envoy's own admission is compiled from: the requests each model's one provider takes as
they are (decided by the workers' own translators), where Envoy reads each provider's key, the
keys and teams, and the budgets without headroom. Run in a real Envoy in
tests/integration/test_lane.py and test_lua_sha256.py."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.compiler.lane import lane_tables
from control_plane.compiler.lua_source import to_lua
from control_plane.compiler.processor import processor_resource
from control_plane.policy import load_documents
from control_plane.service import ControlPlane
from control_plane.xds.resources import EXTENSION, LISTENER, to_dict

DIGEST = "b" * 64
POLICY = f"""
gateway: {{reply_cost: false, admission: envoy}}
providers:
  oai: {{kind: openai, api_key: env:OAI_KEY}}
  claude: {{kind: anthropic, api_key: "secret:claude/key"}}
  local: {{kind: openai, base_url: "http://127.0.0.1:8000/v1"}}
  azure: {{kind: azure-openai, base_url: "https://r.openai.azure.com", api_key: file:/k/azure}}
  aws: {{kind: bedrock, region: us-east-1, aws_access_key_id: env:A,
         aws_secret_access_key: env:S}}
models:
  gpt-4o: {{targets: [{{provider: oai}}]}}
  renamed: {{targets: [{{provider: oai, model: gpt-4o}}]}}
  claude-sonnet-4-5: {{targets: [{{provider: claude}}]}}
  llama: {{targets: [{{provider: local}}]}}
  deployment: {{targets: [{{provider: azure}}]}}
  fallbacks: {{targets: [{{provider: oai, model: gpt-4o}}, {{provider: local, model: gpt-4o}}]}}
  nova: {{targets: [{{provider: aws}}]}}
teams:
  search: {{keys: ["sha256:{DIGEST}"], models: [gpt-4o]}}
  batch: {{keys: [], rate_limit: {{requests_per_minute: 10}}}}
budgets:
  gpt-cap: {{limit_usd: 5, period: day, match: {{model: gpt-4o}}}}
  org: {{limit_usd: 100, period: month}}
"""


def tables(policy: str = POLICY, headroom: tuple[str, ...] = ()) -> dict[str, Any]:
    config = processor_resource(load_documents({"p.yaml": policy}))
    watched = [name for name in config.budgets if name not in headroom]
    return lane_tables(config, watched, "/run/secrets")


def lane_source(control_plane: ControlPlane) -> str:
    snapshot = control_plane.cache.snapshot
    assert snapshot is not None
    [lane] = snapshot.of_type(EXTENSION).values()
    source: str = to_dict(lane)["typed_config"]["default_source_code"]["inline_string"]
    return source


def test_only_requests_a_provider_takes_as_they_are_renamed_or_translated_have_a_route() -> None:
    routes = tables()["routes"]
    assert set(routes) == {
        "/v1/chat/completions gpt-4o", "/v1/embeddings gpt-4o",
        "/v1/chat/completions renamed", "/v1/embeddings renamed",
        "/v1/chat/completions llama", "/v1/embeddings llama",
        "/v1/messages claude-sonnet-4-5", "/v1/chat/completions claude-sonnet-4-5",
        "/v1/chat/completions deployment", "/v1/embeddings deployment",
        "/v1/messages gpt-4o", "/v1/messages renamed", "/v1/messages llama",
        "/v1/messages deployment",
    }  # not several targets, not a signed (Bedrock) credential, not a refused API
    assert routes["/v1/chat/completions gpt-4o"] == {
        "provider": "oai", "model": "gpt-4o", "model_json": '"gpt-4o"',
        "path": "/v1/chat/completions", "authority": "api.openai.com",
        "headers": {"content-type": "application/json"},
        # A stream that did not ask for its usage: the lane asks, and takes the event out.
        "streams": False, "adds_usage": True}
    # The lane writes the provider's name into the body, as a JSON string.
    assert routes["/v1/chat/completions renamed"] == routes["/v1/chat/completions gpt-4o"]
    # Embeddings never stream; Anthropic's streams carry their usage anyway.
    assert not routes["/v1/embeddings gpt-4o"]["adds_usage"]
    claude_stream = routes["/v1/messages claude-sonnet-4-5"]
    assert claude_stream["streams"] and not claude_stream["adds_usage"]
    claude = routes["/v1/messages claude-sonnet-4-5"]
    assert claude["headers"]["anthropic-version"] and claude["streams"]
    assert routes["/v1/chat/completions deployment"]["path"].startswith(
        "/openai/deployments/deployment/chat/completions?api-version=")
    # Translated by the lane's Lua, whole or streamed (Anthropic streams report their usage).
    assert routes["/v1/chat/completions claude-sonnet-4-5"] == {
        "provider": "claude", "model": "claude-sonnet-4-5",
        "model_json": '"claude-sonnet-4-5"', "path": "/v1/messages",
        "authority": "api.anthropic.com",
        "headers": {"content-type": "application/json", "anthropic-version": "2023-06-01"},
        "streams": True, "adds_usage": False, "translation": "openai_anthropic",
        "reply_api": "/v1/messages"}
    assert "translation" not in routes["/v1/chat/completions gpt-4o"]
    # The other direction, to the provider's chat completions (Azure: its deployment's).
    assert routes["/v1/messages gpt-4o"]["translation"] == "anthropic_openai"
    assert routes["/v1/messages gpt-4o"]["reply_api"] == "/v1/chat/completions"
    assert routes["/v1/messages deployment"]["path"] == \
        routes["/v1/chat/completions deployment"]["path"]


def test_the_lane_admits_for_the_attempts_what_no_admission_could_forward_alone() -> None:
    lane = tables()
    assert set(lane["attempts"]) == {
        # A translated API, or a provider that cannot take the API at all (the attempt
        # answers 400 in the client's schema).
        "/v1/messages gpt-4o", "/v1/messages renamed", "/v1/messages llama",
        "/v1/messages deployment",
        "/v1/chat/completions claude-sonnet-4-5", "/v1/embeddings claude-sonnet-4-5",
        # Several targets: each attempt may go elsewhere.
        "/v1/chat/completions fallbacks", "/v1/embeddings fallbacks", "/v1/messages fallbacks",
        # Signed requests: only a worker can sign them.
        "/v1/chat/completions nova", "/v1/messages nova", "/v1/embeddings nova",
    }
    # Every model's providers, which the budgets close to their limit are matched against.
    assert lane["providers"]["fallbacks"] == ["oai", "local"]


def test_envoy_reads_each_key_where_the_workers_do() -> None:
    assert tables()["credentials"] == {
        "oai": {"header": "authorization", "prefix": "Bearer ", "env": "OAI_KEY"},
        "claude": {"header": "x-api-key", "prefix": "", "file": "/run/secrets/claude/key"},
        "azure": {"header": "api-key", "prefix": "", "file": "/k/azure"},
    }


def test_keys_teams_and_the_budgets_without_headroom() -> None:
    lane = tables(headroom=("org",))
    assert lane["keys"] == {DIGEST: "search"} and lane["takes_keys"]
    assert lane["teams"] == {"search": {"rate_limited": False, "models": {"gpt-4o": True}},
                             "batch": {"rate_limited": True, "models": False}}
    assert lane["watched"] == [{"team": "", "key": "", "model": "gpt-4o", "provider": ""}]
    assert "x-api-key" in lane["dropped_headers"]


def test_the_listener_runs_the_lane_before_the_workers_admission() -> None:
    snapshot = compile_policy(load_documents({"p.yaml": POLICY}), GatewaySettings())
    [listener] = snapshot.of_type(LISTENER).values()
    hcm = to_dict(listener)["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    lane = names.index("switchboard.lane")
    # The usage event's remover and the reply's translator, on the reply's way, come after
    # the usage readers: the usage is read from the provider's reply.
    assert names[lane + 1:lane + 4] == ["switchboard.added_usage", "switchboard.translated_reply",
                                        "envoy.filters.http.ext_proc"]
    assert names.index("switchboard.reply_usage") > lane + 3
    # The reader skips what the lane translated, whose translation reports the usage itself,
    # and the streams whose usage the added usage event's remover reads.
    skipped = hcm["http_filters"][names.index("switchboard.reply_usage")]["typed_config"][
        "xds_matcher"]
    assert [m["predicate"].get("single_predicate", {}).get("input", {}).get(
        "typed_config", {}).get("header_name") for m in skipped["matcher_list"]["matchers"]] \
        == [None, "x-switchboard-translated", "x-switchboard-usage-added"]
    translator = hcm["http_filters"][lane + 2]["typed_config"]
    [marked] = translator["xds_matcher"]["matcher_list"]["matchers"]  # skipped unless marked
    assert marked["predicate"]["not_matcher"]["single_predicate"]["input"]["typed_config"][
        "header_name"] == "x-switchboard-translated"
    admission = hcm["http_filters"][lane + 3]["typed_config"]
    # Built only for requests the lane did not admit: a composite delegates to it.
    assert admission["extension_config"]["typed_config"]["@type"].endswith(".Composite")
    [matcher] = admission["xds_matcher"]["matcher_list"]["matchers"]
    # Neither forwarded alone nor admitted for the worker's attempts.
    unmarked = matcher["predicate"]["and_matcher"]["predicate"]
    assert [p["not_matcher"]["single_predicate"]["input"]["typed_config"]["header_name"]
            for p in unmarked] == ["x-switchboard-direct", "x-switchboard-admitted"]
    built = matcher["on_match"]["action"]["typed_config"]["typed_config"]
    assert built["typed_config"]["@type"].endswith("ext_proc.v3.ExternalProcessor")
    assert "switchboard.lane" in snapshot.of_type(EXTENSION)


def test_without_the_lane_there_is_no_extension() -> None:
    policy = POLICY.replace(", admission: envoy", "")
    assert not compile_policy(load_documents({"p.yaml": policy}),
                              GatewaySettings()).of_type(EXTENSION)


def test_with_the_cost_in_replies_the_lane_admits_every_request_for_the_attempts() -> None:
    lane = tables(POLICY.replace("reply_cost: false, ", ""))
    assert not lane["forwards"]
    assert lane["routes"] == {} and lane["attempts"] == {}  # nothing is forwarded alone
    assert lane["credentials"] == {}  # so Envoy reads no provider's key
    assert lane["keys"] == {DIGEST: "search"}


@pytest.mark.parametrize(("value", "lua"), [
    ("gpt-4o", '"gpt-4o"'),
    ('a"b\\c\n', '"a\\034b\\092c\\010"'),
    ("é", '"\\195\\169"'),
    ({"k": [True, 1, 2.5]}, '{["k"]={true,1,2.5}}'),
])
def test_values_become_lua_literals_that_read_back_exactly(value: Any, lua: str) -> None:
    assert to_lua(value) == lua
