"""Clusters as protobuf: one priority per fallback target, each attempt processed upstream.

What clusters have in common (upstream filters, circuit breakers, outlier detection, TLS per
provider host) is parsed once per compile and copied: parsing dicts is the slow part of
compiling thousands of models.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2
from google.protobuf import json_format

from control_plane.compiler.direct import forwards_directly
from control_plane.compiler.endpoints import TLS_MATCH_KEY, Address, provider_address, tls_match
from control_plane.compiler.placement import ClusterSpec
from control_plane.compiler.settings import GatewaySettings
from control_plane.compiler.upstream import TargetModelSource, upstream_filters
from control_plane.policy import Policy
from control_plane.policy.models import CircuitBreakers, OutlierDetection
from control_plane.xds.resources import any_of
from ext_proc.contract import METADATA_NAMESPACE

# In percent: even one healthy target in 1000 keeps all of a priority's traffic.
_NEVER_SPILL = 100_000

_TemplateKey = tuple[bool, OutlierDetection, CircuitBreakers]


class ClusterBuilder:
    """Builds the clusters of one compile, from templates it parses once per setting."""

    def __init__(self, policy: Policy, settings: GatewaySettings) -> None:
        self._policy = policy
        self._settings = settings
        self._templates: dict[_TemplateKey, cluster_pb2.Cluster] = {}
        self._tls_matches: dict[str, cluster_pb2.Cluster.TransportSocketMatch] = {}

    def build(self, spec: ClusterSpec) -> cluster_pb2.Cluster:
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(self._template(spec))
        cluster.name = spec.name
        cluster.alt_stat_name = spec.stat_name
        assignment = cluster.load_assignment
        assignment.cluster_name = spec.name
        addresses: list[Address] = []
        for target in spec.targets:
            address = provider_address(self._policy.providers[target.provider], self._settings)
            addresses.append(address)
            if target.priority == len(assignment.endpoints):
                assignment.endpoints.add(priority=target.priority)
            _endpoint(assignment.endpoints[target.priority].lb_endpoints.add(),
                      target.provider, target.model, address, target.weight)
        cluster.type = (cluster_pb2.Cluster.STATIC if all(a.is_ip for a in addresses)
                        else cluster_pb2.Cluster.STRICT_DNS)
        for host in sorted({a.host for a in addresses if a.tls}):
            cluster.transport_socket_matches.append(self._tls_match(host))
        return cluster

    def _template(self, spec: ClusterSpec) -> cluster_pb2.Cluster:
        key = (spec.shared, spec.outlier_detection, spec.circuit_breakers)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = json_format.ParseDict(
                cluster_template(self._settings, forwards_directly(self._policy), *key),
                cluster_pb2.Cluster())
        return template

    def _tls_match(self, host: str) -> cluster_pb2.Cluster.TransportSocketMatch:
        match = self._tls_matches.get(host)
        if match is None:
            match = self._tls_matches[host] = json_format.ParseDict(
                tls_match(host, self._settings), cluster_pb2.Cluster.TransportSocketMatch())
        return match


def cluster_template(settings: GatewaySettings, direct: bool, shared: bool,
                     outlier_detection: OutlierDetection,
                     circuit_breakers: CircuitBreakers) -> dict[str, Any]:
    """Everything of a cluster but its name, endpoints, address type and TLS hosts."""
    source = TargetModelSource.ROUTE if shared else TargetModelSource.ENDPOINT
    cluster: dict[str, Any] = {
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            # Envoy moves a share of a priority's traffic to the next one as soon as some of
            # its hosts are ejected (by 1.4 x the healthy fraction). A weighted split must keep
            # its traffic while any of its targets is healthy; fallbacks are for failures.
            "policy": {"overprovisioning_factor": _NEVER_SPILL},
        },
        "circuit_breakers": {"thresholds": [_thresholds(circuit_breakers)]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": any_of(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {
                    "explicit_http_config": {"http_protocol_options": {}},
                    "common_http_protocol_options": {"idle_timeout": "60s"},
                    "http_filters": upstream_filters(settings, source, direct),
                }),
        },
    }
    if outlier_detection.enabled:
        cluster["outlier_detection"] = _outlier_detection(outlier_detection)
    return cluster


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


def _endpoint(endpoint: endpoint_components_pb2.LbEndpoint, provider: str, model: str | None,
              address: Address, weight: int) -> None:
    socket_address = endpoint.endpoint.address.socket_address
    socket_address.address = address.host
    socket_address.port_value = address.port
    endpoint.endpoint.hostname = address.host
    metadata = endpoint.metadata.filter_metadata[METADATA_NAMESPACE]
    metadata["provider"] = provider
    if model is not None:
        metadata["model"] = model
    if address.tls:
        endpoint.metadata.filter_metadata[TLS_MATCH_KEY]["sni"] = address.host
    endpoint.load_balancing_weight.value = weight
