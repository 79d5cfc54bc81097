"""Where a provider is reached: its address, and verified TLS to its host."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control_plane.compiler.settings import GatewaySettings
from control_plane.policy.models import MockProvider, Provider
from control_plane.xds.resources import any_of

# The endpoint metadata key by which an endpoint picks its cluster's transport socket.
TLS_MATCH_KEY = "envoy.transport_socket_match"


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


def tls_match(host: str, settings: GatewaySettings) -> dict[str, Any]:
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
