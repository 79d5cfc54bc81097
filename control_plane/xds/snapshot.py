"""An immutable, internally consistent set of resources with a content-derived version.

Each resource is serialized once, when the snapshot is built: the same bytes give the version
and go on the wire. The body of a response (everything but its nonce) is built once per type
and subscription and shared by every stream, so a push to many clients costs one
serialization, not one per client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, message
from xds.type.matcher.v3 import matcher_pb2

from control_plane.xds.resources import CLUSTER, LISTENER, PUSH_ORDER, ROUTE

_ROUTE = "type.googleapis.com/envoy.config.route.v3.Route"
_ROUTE_LIST = "type.googleapis.com/envoy.config.route.v3.RouteList"


class InconsistentSnapshot(ValueError):
    pass


@dataclass(frozen=True)
class Snapshot:
    """Resources by type URL, then by name. Equal content gives an equal version."""

    resources: Mapping[str, Mapping[str, message.Message]]
    version: str = field(init=False)
    _serialized: Mapping[str, Mapping[str, bytes]] = field(init=False, repr=False)
    # Response bodies by (type, subscribed names): a memo, filled on first use.
    _bodies: dict[tuple[str, frozenset[str]], bytes] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        frozen = {t: MappingProxyType(dict(r)) for t, r in self.resources.items()}
        object.__setattr__(self, "resources", MappingProxyType(frozen))
        serialized = {t: MappingProxyType({name: resource.SerializeToString(deterministic=True)
                                           for name, resource in r.items()})
                      for t, r in frozen.items()}
        object.__setattr__(self, "_serialized", MappingProxyType(serialized))
        object.__setattr__(self, "version", self._digest())
        self._check_consistent()

    def of_type(self, type_url: str) -> Mapping[str, message.Message]:
        return self.resources.get(type_url, MappingProxyType({}))

    def serialized(self, type_url: str) -> Mapping[str, bytes]:
        return self._serialized.get(type_url, MappingProxyType({}))

    def response_body(self, type_url: str, names: frozenset[str]) -> bytes:
        """A serialized DiscoveryResponse without its nonce, for the resources named (every
        resource of the type when `names` is empty). A stream appends its nonce: serialized
        protobuf messages concatenate into their merge."""
        key = (type_url, names)
        body = self._bodies.get(key)
        if body is None:
            resources = self.serialized(type_url)
            chosen = sorted(names) if names else sorted(resources)
            body = discovery_pb2.DiscoveryResponse(
                version_info=self.version, type_url=type_url,
                resources=[any_pb2.Any(type_url=type_url, value=resources[name])
                           for name in chosen if name in resources],
            ).SerializeToString()
            self._bodies[key] = body
        return body

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for type_url in sorted(self._serialized):
            resources = self._serialized[type_url]
            for name in sorted(resources):
                digest.update(type_url.encode() + b"\0" + name.encode() + b"\0")
                digest.update(resources[name])
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
            for name in _cluster_names(route_config):
                if name not in clusters:
                    raise InconsistentSnapshot(f"route names missing cluster {name!r}")


def _route_config_names(listener: message.Message) -> list[str]:
    names = []
    for chain in listener.filter_chains:  # type: ignore[attr-defined]
        for network_filter in chain.filters:
            hcm = hcm_pb2.HttpConnectionManager()
            if network_filter.typed_config.Unpack(hcm) and hcm.HasField("rds"):
                names.append(hcm.rds.route_config_name)
    return names


def _cluster_names(route_config: message.Message) -> set[str]:
    """Clusters named by the routes of every virtual host, listed or in a match tree."""
    names = set()
    for vhost in route_config.virtual_hosts:  # type: ignore[attr-defined]
        routes = list(vhost.routes)
        if vhost.HasField("matcher"):
            routes.extend(_tree_routes(vhost.matcher))
        for route in routes:
            if route.HasField("route"):
                names.add(route.route.cluster)
    return names


def _tree_routes(matcher: matcher_pb2.Matcher) -> list[route_components_pb2.Route]:
    """The routes that the actions of a match tree (Route or RouteList) hold."""
    on_matches = [matcher.on_no_match] if matcher.HasField("on_no_match") else []
    if matcher.HasField("matcher_list"):
        on_matches.extend(m.on_match for m in matcher.matcher_list.matchers)
    tree = matcher.matcher_tree
    for table in (tree.exact_match_map, tree.prefix_match_map):
        on_matches.extend(table.map.values())
    routes: list[route_components_pb2.Route] = []
    for on_match in on_matches:
        if on_match.HasField("matcher"):
            routes.extend(_tree_routes(on_match.matcher))
            continue
        action = on_match.action.typed_config
        if action.type_url == _ROUTE_LIST:
            routes.extend(route_components_pb2.RouteList.FromString(action.value).routes)
        elif action.type_url == _ROUTE:
            routes.append(route_components_pb2.Route.FromString(action.value))
    return routes


__all__ = ["PUSH_ORDER", "InconsistentSnapshot", "Snapshot"]
