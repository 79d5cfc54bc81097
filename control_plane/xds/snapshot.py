"""An immutable, internally consistent set of resources with a content-derived version."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import message

from control_plane.xds.resources import CLUSTER, LISTENER, PUSH_ORDER, ROUTE


class InconsistentSnapshot(ValueError):
    pass


@dataclass(frozen=True)
class Snapshot:
    """Resources by type URL, then by name. Equal content gives an equal version."""

    resources: Mapping[str, Mapping[str, message.Message]]
    version: str = field(init=False)

    def __post_init__(self) -> None:
        frozen = {t: MappingProxyType(dict(r)) for t, r in self.resources.items()}
        object.__setattr__(self, "resources", MappingProxyType(frozen))
        object.__setattr__(self, "version", self._digest())
        self._check_consistent()

    def of_type(self, type_url: str) -> Mapping[str, message.Message]:
        return self.resources.get(type_url, MappingProxyType({}))

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for type_url in sorted(self.resources):
            for name in sorted(self.resources[type_url]):
                digest.update(type_url.encode() + b"\0" + name.encode() + b"\0")
                digest.update(self.resources[type_url][name].SerializeToString(deterministic=True))
        return digest.hexdigest()[:16]

    def _check_consistent(self) -> None:
        """Every route config a listener names and every cluster a route names is present."""
        routes = self.of_type(ROUTE)
        clusters = self.of_type(CLUSTER)
        for listener in self.of_type(LISTENER).values():
            for name in _route_config_names(listener):
                if name not in routes:
                    raise InconsistentSnapshot(f"listener names missing route config {name!r}")
        for route_config in routes.values():
            for vhost in route_config.virtual_hosts:  # type: ignore[attr-defined]
                for route in vhost.routes:
                    if route.HasField("route") and route.route.cluster not in clusters:
                        raise InconsistentSnapshot(
                            f"route names missing cluster {route.route.cluster!r}")


def _route_config_names(listener: message.Message) -> list[str]:
    names = []
    for chain in listener.filter_chains:  # type: ignore[attr-defined]
        for network_filter in chain.filters:
            hcm = hcm_pb2.HttpConnectionManager()
            if network_filter.typed_config.Unpack(hcm) and hcm.HasField("rds"):
                names.append(hcm.rds.route_config_name)
    return names


__all__ = ["PUSH_ORDER", "InconsistentSnapshot", "Snapshot"]
