"""Envoy's bootstrap: just enough to reach the control plane over ADS and the workers.

Everything else (listener, routes, clusters, TLS) arrives over xDS and changes live.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from control_plane.compiler.settings import EXT_PROC_CLUSTER, XDS_CLUSTER


@dataclass(frozen=True)
class BootstrapSettings:
    node_id: str
    xds_host: str
    xds_port: int
    ext_proc_sockets: tuple[str, ...]
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    max_connections: int = 50_000


def bootstrap(settings: BootstrapSettings) -> dict[str, Any]:
    return {
        "node": {"id": settings.node_id, "cluster": "switchboard"},
        "admin": {"address": _socket(settings.admin_host, settings.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                # Envoy's own reconnect back-off grows to 30 s; a restarted control plane
                # should see Envoy again within about two.
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER, "retry_policy": {
                    "retry_back_off": {"base_interval": "0.25s", "max_interval": "2s"}}}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [_xds_cluster(settings), _ext_proc_cluster(settings)]},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                         ".downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": settings.max_connections,
            },
        }]},
    }


def _xds_cluster(settings: BootstrapSettings) -> dict[str, Any]:
    return {
        "name": XDS_CLUSTER,
        "type": "STATIC" if _is_ip(settings.xds_host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": _http2(),
        "load_assignment": {"cluster_name": XDS_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _socket(settings.xds_host, settings.xds_port)}}]}]},
    }


def _ext_proc_cluster(settings: BootstrapSettings) -> dict[str, Any]:
    return {
        "name": EXT_PROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        # The worker with the fewest streams open. Each Envoy thread's access log is one
        # stream for as long as Envoy runs: by round robin, whose start each thread draws
        # alone, every thread's could land on the same worker, which then meters all
        # traffic while the others idle.
        "load_balancing_policy": {"policies": [{"typed_extension_config": {
            "name": "envoy.load_balancing_policies.least_request",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies."
                         "least_request.v3.LeastRequest",
                "selection_method": "FULL_SCAN"}}}]},
        "typed_extension_protocol_options": _http2(),
        # One stream per attempt: the defaults (1024) are far below real load.
        "circuit_breakers": {"thresholds": [{
            "max_connections": 100_000, "max_pending_requests": 100_000,
            "max_requests": 100_000}]},
        "load_assignment": {"cluster_name": EXT_PROC_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"pipe": {"path": path}}}}
            for path in settings.ext_proc_sockets]}]},
    }


def _http2() -> dict[str, Any]:
    return {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }}


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
