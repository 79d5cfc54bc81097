"""Deployment facts the compiler needs that are not policy: addresses, paths, names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ext_proc.secrets import DEFAULT_SECRETS_DIR

EXT_PROC_CLUSTER = "switchboard_ext_proc"
XDS_CLUSTER = "switchboard_xds"
LISTENER_NAME = "switchboard_http"
ROUTE_CONFIG_NAME = "switchboard_routes"
# Route metadata (in METADATA_NAMESPACE) naming the provider's model, on the routes of models
# whose cluster is shared: the endpoint cannot name it, so the upstream filters read it here.
ROUTE_TARGET_MODEL_KEY = "target_model"


@dataclass(frozen=True)
class GatewaySettings:
    listener_host: str = "127.0.0.1"
    listener_port: int = 10000
    # Where Envoy finds the CA bundle that verifies providers' TLS certificates.
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"
    # How long Envoy waits for one ext_proc reply. Queueing under load counts, so not 200ms.
    ext_proc_message_timeout_s: float = 5.0
    # Where `secret:` credential references point, for Envoy's own admission as for workers.
    secrets_dir: str = field(default_factory=lambda: os.environ.get(
        "SWITCHBOARD_SECRETS_DIR", DEFAULT_SECRETS_DIR))

    @property
    def loopback_host(self) -> str:
        """An address Envoy can reach its own listener on."""
        return "127.0.0.1" if self.listener_host in ("0.0.0.0", "::") else self.listener_host
