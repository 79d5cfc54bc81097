"""A model's failover policy as Envoy clusters and retry policies."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.compiler import GatewaySettings, compile_policy
from control_plane.policy import PolicyError, load_documents
from control_plane.policy.models import Policy
from tests.unit.control_plane.compiled import compiled, model_route
from tests.unit.control_plane.compiled import model_cluster as compiled_cluster

PROVIDERS = """
providers:
  a: {kind: openai, base_url: "http://10.0.0.1:8000/v1"}
  b: {kind: openai, base_url: "http://10.0.0.2:8000/v1"}
  c: {kind: anthropic, base_url: "http://10.0.0.3:8000"}
"""


def _policy(models: str, defaults: str = "") -> Policy:
    return load_documents({"p.yaml": PROVIDERS + defaults + "models:\n" + models})


def _route(policy: Policy, model: str) -> dict[str, Any]:
    action: dict[str, Any] = model_route(compiled(policy), model)["route"]
    return action


def model_cluster(model: str, policy: Policy) -> dict[str, Any]:
    return compiled_cluster(compiled(policy), model)


def _priorities(policy: Policy, model: str) -> list[list[tuple[str, int]]]:
    cluster = model_cluster(model, policy)
    return [[(e["metadata"]["filter_metadata"]["switchboard"]["provider"],
              e["load_balancing_weight"]) for e in p["lb_endpoints"]]
            for p in cluster["load_assignment"]["endpoints"]]


def test_fallback_targets_are_priorities_in_order_and_each_retry_moves_on() -> None:
    policy = _policy("""
  m:
    targets: [{provider: a}, {provider: b}, {provider: c}]
    per_try_idle_timeout: 20s
    retries: 1
""")
    assert _priorities(policy, "m") == [[("a", 1)], [("b", 1)], [("c", 1)]]
    retry = _route(policy, "m")["retry_policy"]
    assert retry["num_retries"] == 3
    assert retry["retry_on"] == "5xx,connect-failure,gateway-error,reset,retriable-status-codes"
    assert retry["retriable_status_codes"] == [429]
    assert retry["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert retry["per_try_idle_timeout"] == "20s"
    assert retry["retry_back_off"] == {"base_interval": "0.025s", "max_interval": "0.250s"}
    assert retry["rate_limited_retry_back_off"] == {
        "reset_headers": [{"name": "retry-after"}],  # format: SECONDS, the default
        "max_interval": "2s"}
    assert "retry_host_predicate" not in retry


def test_a_weighted_split_shares_priority_0_and_its_fallbacks_follow() -> None:
    policy = _policy("""
  canary:
    strategy: weighted
    targets: [{provider: a, weight: 90}, {provider: b, weight: 10}]
    fallbacks: [{provider: c, model: claude-x}]
""")
    assert _priorities(policy, "canary") == [[("a", 90), ("b", 10)], [("c", 1)]]
    retry = _route(policy, "canary")["retry_policy"]
    assert retry["num_retries"] == 1  # the weighted pick, then the fallback
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    cluster = model_cluster("canary", policy)
    # An ejected canary must not push the main target's traffic onto the fallback.
    assert cluster["load_assignment"]["policy"]["overprovisioning_factor"] >= 10_000


def test_a_weighted_split_without_fallbacks_retries_on_its_other_target() -> None:
    policy = _policy("""
  split:
    strategy: weighted
    targets: [{provider: a, weight: 3}, {provider: b, weight: 1}]
""")
    assert _priorities(policy, "split") == [[("a", 3), ("b", 1)]]
    assert _route(policy, "split")["retry_policy"]["num_retries"] == 1


def test_models_inherit_defaults_field_by_field() -> None:
    policy = _policy("""
  m:
    targets: [{provider: a}, {provider: b}]
    outlier_detection: {consecutive_5xx: 2}
    retry_back_off: {retry_after_max: null}
    circuit_breakers: {max_requests: 50}
  n: {targets: [{provider: a}, {provider: b}], outlier_detection: {enabled: false}}
""", defaults="""
defaults:
  per_try_idle_timeout: 30s
  outlier_detection: {base_ejection_time: 5s}
  retry_back_off: {base_interval: 100ms, max_interval: 1s}
  circuit_breakers: {max_pending_requests: 7}
""")
    cluster = model_cluster("m", policy)
    outlier = cluster["outlier_detection"]
    assert (outlier["consecutive_5xx"], outlier["base_ejection_time"]) == (2, "5s")
    assert outlier["enforcing_consecutive_gateway_failure"] == 100
    assert cluster["circuit_breakers"]["thresholds"][0] == {
        "max_connections": 100_000, "max_pending_requests": 7, "max_requests": 50,
        "max_retries": 10_000}
    retry = _route(policy, "m")["retry_policy"]
    assert retry["per_try_idle_timeout"] == "30s"
    assert retry["retry_back_off"] == {"base_interval": "0.100s", "max_interval": "1s"}
    assert "rate_limited_retry_back_off" not in retry
    assert "outlier_detection" not in model_cluster("n", policy)


def test_a_single_target_without_retries_or_per_try_timeouts_has_no_retry_policy() -> None:
    policy = _policy("  m: {targets: [{provider: a}]}\n")
    assert "retry_policy" not in _route(policy, "m")


def test_every_setting_compiles_into_valid_envoy_resources() -> None:
    policy = _policy("""
  canary:
    strategy: weighted
    targets: [{provider: a, weight: 90}, {provider: b, weight: 10}]
    fallbacks: [{provider: c}]
    per_try_timeout: 30s
    per_try_idle_timeout: 10s
    retries: 2
    circuit_breakers: {max_retries: 3}
""")
    assert compile_policy(policy, GatewaySettings()).version


@pytest.mark.parametrize(("models", "expected"), [
    ("  m: {targets: [{provider: a}], fallbacks: [{provider: b}]}\n",
     "p.yaml:7: models.m: fallbacks go with strategy: weighted; with strategy: "
     "fallback list every target in targets, in order"),
    ("  m: {strategy: weighted, targets: [{provider: a}], fallbacks: [{provider: z}]}\n",
     "p.yaml:7: models.m.fallbacks[0].provider: unknown provider 'z' (defined: a, b, c)"),
    ("  m: {targets: [{provider: a}], retry_back_off: {base_interval: 2s, max_interval: 1s}}\n",
     "p.yaml:7: models.m.retry_back_off: max_interval must not be shorter than "
     "base_interval"),
    ("  m: {targets: [{provider: a}], outlier_detection: {max_ejection_percent: 150}}\n",
     "p.yaml:7: models.m.outlier_detection.max_ejection_percent: Input should be less than or "
     "equal to 100"),
])
def test_invalid_failover_settings_name_the_field(models: str, expected: str) -> None:
    with pytest.raises(PolicyError) as raised:
        _policy(models)
    assert [str(issue) for issue in raised.value.issues] == [expected]
