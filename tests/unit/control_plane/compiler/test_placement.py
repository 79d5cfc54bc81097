"""Which cluster each model gets: shared by provider and settings, or its own."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.placement import plan_clusters
from control_plane.compiler.settings import ROUTE_TARGET_MODEL_KEY
from control_plane.policy import load_documents
from control_plane.policy.models import Policy
from ext_proc.contract import METADATA_NAMESPACE, RESPONSE_MODEL_HEADER, TARGET_MODEL_HEADER
from tests.unit.control_plane.compiled import compiled, model_cluster, model_route

PROVIDERS = """
providers:
  a: {kind: openai, base_url: "http://10.0.0.1:8000/v1"}
  b: {kind: anthropic, base_url: "https://api.anthropic.com"}
"""


def _policy(models: str, defaults: str = "") -> Policy:
    return load_documents({"p.yaml": PROVIDERS + defaults + "models:\n" + models})


def _clusters(policy: Policy) -> dict[str, str]:
    return {name: placement.cluster for name, placement in plan_clusters(policy).models.items()}


def _upstream_mutations(cluster: dict[str, Any]) -> dict[str, str]:
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    mutations = options["http_filters"][0]["typed_config"]["mutations"]
    return {m["append"]["header"]["key"]: m["append"]["header"]["value"]
            for m in [*mutations["request_mutations"], *mutations["response_mutations"]]}


def test_single_target_models_of_a_provider_share_one_cluster() -> None:
    policy = _policy("""
  m1: {targets: [{provider: a}]}
  m2: {targets: [{provider: a, model: up2}]}
  m3: {targets: [{provider: b}]}
  m4: {strategy: weighted, targets: [{provider: b, weight: 3}]}
  m5: {targets: [{provider: a}], timeout: 5s, per_try_idle_timeout: 1s, retries: 2}
""")
    assert _clusters(policy) == {"m1": "provider:a", "m2": "provider:a", "m3": "provider:b",
                                 "m4": "provider:b", "m5": "provider:a"}
    gateway = compiled(policy)
    assert set(gateway.clusters) == {"provider:a", "provider:b"}
    # The route names the provider's model; the shared endpoints name none.
    metadata = model_route(gateway, "m2")["metadata"]["filter_metadata"][METADATA_NAMESPACE]
    assert metadata[ROUTE_TARGET_MODEL_KEY] == "up2"
    [[endpoint]] = [p["lb_endpoints"]
                    for p in gateway.clusters["provider:a"]["load_assignment"]["endpoints"]]
    assert endpoint["metadata"]["filter_metadata"][METADATA_NAMESPACE] == {"provider": "a"}
    # Route-level settings stay on the route, whatever cluster it shares.
    assert model_route(gateway, "m5")["route"]["retry_policy"]["num_retries"] == 2
    assert "retry_policy" not in model_route(gateway, "m1")["route"]


def test_each_attempt_reads_the_model_from_the_route_in_a_shared_cluster() -> None:
    gateway = compiled(_policy("""
  m1: {targets: [{provider: a}]}
  chain: {targets: [{provider: a}, {provider: b}]}
"""))
    shared = _upstream_mutations(model_cluster(gateway, "m1"))
    own = _upstream_mutations(model_cluster(gateway, "chain"))
    route_model = f"%METADATA(ROUTE:{METADATA_NAMESPACE}:{ROUTE_TARGET_MODEL_KEY})%"
    endpoint_model = f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:model)%"
    assert (shared[TARGET_MODEL_HEADER], shared[RESPONSE_MODEL_HEADER]) == (route_model,
                                                                            route_model)
    assert (own[TARGET_MODEL_HEADER], own[RESPONSE_MODEL_HEADER]) == (endpoint_model,
                                                                      endpoint_model)


def test_other_outlier_detection_gets_another_shared_cluster() -> None:
    policy = _policy("""
  plain: {targets: [{provider: a}]}
  strict1: {targets: [{provider: a}], outlier_detection: {consecutive_5xx: 2}}
  strict2: {targets: [{provider: a}], outlier_detection: {consecutive_5xx: 2}}
  stricter: {targets: [{provider: a}], outlier_detection: {consecutive_5xx: 1}}
  disabled: {targets: [{provider: a}], outlier_detection: {enabled: false}}
  same: {targets: [{provider: a}], outlier_detection: {consecutive_5xx: 5}}
""")
    clusters = _clusters(policy)
    assert clusters["plain"] == clusters["same"] == "provider:a"  # resolves as the defaults
    assert clusters["strict1"] == clusters["strict2"]
    assert clusters["strict1"].startswith("provider:a~")
    assert len({clusters["strict1"], clusters["stricter"], clusters["disabled"], "provider:a"}) == 4
    gateway = compiled(policy)
    assert model_cluster(gateway, "strict1")["outlier_detection"]["consecutive_5xx"] == 2
    assert model_cluster(gateway, "stricter")["outlier_detection"]["consecutive_5xx"] == 1
    assert "outlier_detection" not in model_cluster(gateway, "disabled")


def test_a_model_with_its_own_circuit_breakers_gets_its_own_cluster() -> None:
    policy = _policy("""
  m1: {targets: [{provider: a}]}
  limited: {targets: [{provider: a, model: up}], circuit_breakers: {max_requests: 5}}
  limited_too: {targets: [{provider: a}], circuit_breakers: {max_requests: 5}}
""")
    clusters = _clusters(policy)
    assert (clusters["limited"], clusters["limited_too"]) == ("model:limited",
                                                              "model:limited_too")
    gateway = compiled(policy)
    cluster = model_cluster(gateway, "limited")
    assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] == 5
    [[endpoint]] = [p["lb_endpoints"] for p in cluster["load_assignment"]["endpoints"]]
    assert endpoint["metadata"]["filter_metadata"][METADATA_NAMESPACE] == {
        "provider": "a", "model": "up"}
    assert "metadata" not in model_route(gateway, "limited")  # the endpoint names the model


def test_shared_clusters_carry_the_defaults_and_keep_their_names() -> None:
    models = "  m1: {targets: [{provider: a}]}\n  m2: {targets: [{provider: b}]}\n"
    changed = _policy(models, defaults="""
defaults:
  outlier_detection: {consecutive_5xx: 3}
  circuit_breakers: {max_pending_requests: 7}
""")
    assert _clusters(changed) == _clusters(_policy(models)) == {"m1": "provider:a",
                                                                 "m2": "provider:b"}
    cluster = model_cluster(compiled(changed), "m1")
    assert cluster["outlier_detection"]["consecutive_5xx"] == 3
    assert cluster["circuit_breakers"]["thresholds"][0]["max_pending_requests"] == 7


def test_names_do_not_depend_on_the_other_models() -> None:
    few = _clusters(_policy("  x: {targets: [{provider: a}], "
                            "outlier_detection: {interval: 1s}}\n"))
    many = _clusters(_policy("  w: {targets: [{provider: b}]}\n  x: {targets: [{provider: a}], "
                             "outlier_detection: {interval: 1s}}\n"
                             "  y: {targets: [{provider: a}, {provider: b}]}\n"))
    assert few["x"] == many["x"]


def test_shared_clusters_verify_tls_to_their_provider() -> None:
    gateway = compiled(_policy("  m: {targets: [{provider: b}]}\n"))
    cluster = model_cluster(gateway, "m")
    assert [m["match"]["sni"] for m in cluster["transport_socket_matches"]] == [
        "api.anthropic.com"]
    assert cluster["type"] == "STRICT_DNS"
    assert model_cluster(compiled(_policy("  m: {targets: [{provider: a}]}\n")),
                         "m")["type"] == "STATIC"
