"""One cluster per model: one priority per fallback target, each attempt processed upstream."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control_plane.compiler.failover import resolve
from control_plane.compiler.settings import EXT_PROC_CLUSTER, GatewaySettings
from control_plane.policy import Policy
from control_plane.policy.models import (
    CircuitBreakers,
    MockProvider,
    ModelRoute,
    OutlierDetection,
    Provider,
    Target,
)
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    BUDGET_WARNING_HEADER,
    BUDGET_WARNING_METADATA_KEY,
    CLIENT_API_HEADER,
    METADATA_NAMESPACE,
    PROVIDER_HEADER,
    REQUESTED_MODEL_HEADER,
    RESPONSE_MODEL_HEADER,
    RESPONSE_PROVIDER_HEADER,
    SITE_METADATA_KEY,
    TARGET_MODEL_HEADER,
    UPSTREAM_SITE,
)

TLS_MATCH_KEY = "envoy.transport_socket_match"
# In percent: even one healthy target in 1000 keeps all of a priority's traffic.
_NEVER_SPILL = 100_000


def cluster_name(model: str) -> str:
    return f"model:{model}"


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def provider_address(provider: Provider, settings: GatewaySettings) -> Address:
    if isinstance(provider, MockProvider):
        return Address(settings.loopback_host, settings.listener_port, False)
    parts = urlsplit(provider.endpoint)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    return Address(host, port, tls)


def model_cluster(name: str, route: ModelRoute, policy: Policy,
                  settings: GatewaySettings) -> dict[str, Any]:
    failover = resolve(route, policy.defaults)
    priorities: list[list[dict[str, Any]]] = []
    addresses = []
    for target, priority in _placed(route):
        address = provider_address(policy.providers[target.provider], settings)
        addresses.append(address)
        endpoint = _endpoint(target.provider, target.model or name, address, target.weight)
        if priority == len(priorities):
            priorities.append([])
        priorities[priority].append(endpoint)
    cluster: dict[str, Any] = {
        "name": cluster_name(name),
        "alt_stat_name": "model_" + "".join(c if c.isalnum() else "_" for c in name),
        "type": "STATIC" if all(a.is_ip for a in addresses) else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": cluster_name(name),
            "endpoints": [{"priority": p, "lb_endpoints": eps} for p, eps in enumerate(priorities)],
            # Envoy moves a share of a priority's traffic to the next one as soon as some of
            # its hosts are ejected (by 1.4 x the healthy fraction). A weighted split must keep
            # its traffic while any of its targets is healthy; fallbacks are for failures.
            "policy": {"overprovisioning_factor": _NEVER_SPILL},
        },
        "circuit_breakers": {"thresholds": [_thresholds(failover.circuit_breakers)]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
                    "explicit_http_config": {"http_protocol_options": {}},
                    "common_http_protocol_options": {"idle_timeout": "60s"},
                    "http_filters": upstream_filters(settings),
                }),
        },
    }
    if failover.outlier_detection.enabled:
        cluster["outlier_detection"] = _outlier_detection(failover.outlier_detection)
    tls_hosts = sorted({a.host for a in addresses if a.tls})
    if tls_hosts:
        cluster["transport_socket_matches"] = [_tls_match(host, settings) for host in tls_hosts]
    return cluster


def _placed(route: ModelRoute) -> list[tuple[Target, int]]:
    """Each target with its Envoy priority: fallback targets one after another; a weighted
    split shares priority 0 and its fallbacks follow."""
    if route.strategy == "weighted":
        return ([(t, 0) for t in route.targets]
                + [(t, i + 1) for i, t in enumerate(route.fallbacks)])
    return [(t, i) for i, t in enumerate(route.targets)]


def _thresholds(limits: CircuitBreakers) -> dict[str, Any]:
    return {"max_connections": limits.max_connections,
            "max_pending_requests": limits.max_pending_requests,
            "max_requests": limits.max_requests, "max_retries": limits.max_retries}


def _outlier_detection(settings: OutlierDetection) -> dict[str, Any]:
    return {
        # Local failures (refused connections, resets, timeouts) count as 5xx: a provider that
        # cannot be reached is skipped like one that answers 500.
        "consecutive_5xx": settings.consecutive_5xx,
        "consecutive_gateway_failure": settings.consecutive_gateway_errors,
        "enforcing_consecutive_5xx": 100,
        "enforcing_consecutive_gateway_failure": 100,
        # Ejections come from consecutive errors only; a success-rate verdict needs volumes
        # that most models never see.
        "enforcing_success_rate": 0,
        "interval": f"{settings.interval:.3f}s",
        "base_ejection_time": f"{settings.base_ejection_time:.3f}s",
        "max_ejection_percent": settings.max_ejection_percent,
    }


def _endpoint(provider: str, model: str, address: Address, weight: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {METADATA_NAMESPACE: {
        "provider": provider, "model": model}}
    if address.tls:
        metadata[TLS_MATCH_KEY] = {"sni": address.host}
    return {
        "endpoint": {"address": {"socket_address": {"address": address.host,
                                                    "port_value": address.port}},
                     "hostname": address.host},
        "metadata": {"filter_metadata": metadata},
        "load_balancing_weight": weight,
    }


def _tls_match(host: str, settings: GatewaySettings) -> dict[str, Any]:
    """Verified TLS to one provider host: SNI, the CA bundle, and the host in the SAN."""
    tls = {
        "sni": host,
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "validation_context": {
                "trusted_ca": {"filename": settings.ca_bundle},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": host}}],
            },
        },
    }
    return {
        "name": f"tls:{host}",
        "match": {"sni": host},
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": any_of(
                "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", tls),
        },
    }


def upstream_filters(settings: GatewaySettings) -> list[dict[str, Any]]:
    """Per attempt: name the backend Envoy picked, then let the worker rewrite for it."""
    def header(key: str, value: str) -> dict[str, Any]:
        return {"append": {"header": {"key": key, "value": value},
                           "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}

    def upstream(key: str) -> str:
        return f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:{key})%"

    budget_warning = f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{BUDGET_WARNING_METADATA_KEY})%"
    mutation = {"mutations": {
        "request_mutations": [
            header(PROVIDER_HEADER, upstream("provider")),
            header(TARGET_MODEL_HEADER, upstream("model")),
            header(CLIENT_API_HEADER, f"%METADATA(ROUTE:{METADATA_NAMESPACE}:api)%"),
            header(REQUESTED_MODEL_HEADER, f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:model)%"),
            # For the worker's local replies, which the response mutations below do not reach.
            header(BUDGET_WARNING_HEADER, budget_warning),
        ],
        "response_mutations": [
            header(RESPONSE_PROVIDER_HEADER, upstream("provider")),
            header(RESPONSE_MODEL_HEADER, upstream("model")),
            # Empty (so not added) unless the router-level call found a warn budget exceeded.
            header(BUDGET_WARNING_HEADER, budget_warning),
        ],
    }}
    ext_proc = {
        # A worker that is restarting refuses the stream: open it on another worker.
        "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER},
                         "initial_metadata": [{"key": SITE_METADATA_KEY,
                                               "value": UPSTREAM_SITE}],
                         "retry_policy": {
            "num_retries": 2, "retry_on": "connect-failure,refused-stream,unavailable",
            "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.1s"},
            # Round-robin alone may hand the retry to the dead worker again.
            "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host"
                                          ".previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 3}},
        # Fail closed: an attempt whose worker is gone is not sent unprocessed (it would
        # carry no credential and the client's key); the client gets a 503 in its schema.
        "failure_mode_allow": False,
        "status_on_error": {"code": "ServiceUnavailable"},
        "processing_mode": {
            "request_header_mode": "SEND",
            "request_body_mode": "BUFFERED",
            "response_header_mode": "SEND",
            "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP",
            "response_trailer_mode": "SKIP",
        },
        "allow_mode_override": True,
        "message_timeout": f"{settings.ext_proc_message_timeout_s:.3f}s",
        "mutation_rules": {"allow_all_routing": True},
    }
    return [
        {"name": "envoy.filters.http.header_mutation", "typed_config": any_of(
            "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation", mutation)},
        {"name": "envoy.filters.http.ext_proc", "typed_config": any_of(
            "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor", ext_proc)},
        {"name": "envoy.filters.http.upstream_codec", "typed_config": any_of(
            "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec", {})},
    ]
