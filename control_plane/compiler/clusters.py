"""One cluster per model: one priority per fallback target, each attempt processed upstream."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control_plane.compiler.settings import EXT_PROC_CLUSTER, GatewaySettings
from control_plane.policy import Policy
from control_plane.policy.models import MockProvider, ModelRoute, Provider
from control_plane.xds.resources import any_of
from ext_proc.contract import (
    BUDGET_WARNING_HEADER,
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
    priorities: list[list[dict[str, Any]]] = []
    addresses = []
    for target in route.targets:
        address = provider_address(policy.providers[target.provider], settings)
        addresses.append(address)
        endpoint = _endpoint(target.provider, target.model or name, address, target.weight)
        if route.strategy == "weighted" and priorities:
            priorities[0].append(endpoint)
        else:
            priorities.append([endpoint])
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
        },
        "circuit_breakers": {"thresholds": [{
            "max_connections": 100_000, "max_pending_requests": 100_000,
            "max_requests": 100_000, "max_retries": 10_000}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
                    "explicit_http_config": {"http_protocol_options": {}},
                    "common_http_protocol_options": {"idle_timeout": "60s"},
                    "http_filters": upstream_filters(settings),
                }),
        },
    }
    tls_hosts = sorted({a.host for a in addresses if a.tls})
    if tls_hosts:
        cluster["transport_socket_matches"] = [_tls_match(host, settings) for host in tls_hosts]
    return cluster


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

    mutation = {"mutations": {
        "request_mutations": [
            header(PROVIDER_HEADER, upstream("provider")),
            header(TARGET_MODEL_HEADER, upstream("model")),
            header(CLIENT_API_HEADER, f"%METADATA(ROUTE:{METADATA_NAMESPACE}:api)%"),
            header(REQUESTED_MODEL_HEADER, f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:model)%"),
        ],
        "response_mutations": [
            header(RESPONSE_PROVIDER_HEADER, upstream("provider")),
            header(RESPONSE_MODEL_HEADER, upstream("model")),
            # Empty (so not added) unless the router-level call found a warn budget exceeded.
            header(BUDGET_WARNING_HEADER, f"%REQ({BUDGET_WARNING_HEADER})%"),
        ],
    }}
    ext_proc = {
        # A worker that is restarting refuses the stream: open it on another worker.
        "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER},
                         "initial_metadata": [{"key": SITE_METADATA_KEY,
                                               "value": UPSTREAM_SITE}],
                         "retry_policy": {
            "num_retries": 2, "retry_on": "connect-failure,refused-stream,unavailable",
            "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.1s"}}},
        "failure_mode_allow": False,
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
