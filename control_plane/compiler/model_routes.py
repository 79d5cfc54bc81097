"""Each model's route: to the model's cluster, with its timeout and retry policy, whichever
client API was called (the path was matched before the model was looked up, and each attempt
learns the API from the path the client called).

One route per model: Envoy's cost grows with the number of routes. A route is built from
serialized parts, since serialized protobuf messages concatenate into their merge: the part
shared by every model with the same timeout and failover settings (parsed once), then its
cluster, then the provider's model when the cluster is shared. Parsing dicts, or even
copying messages, is the slow part of compiling thousands of models.
"""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2
from google.protobuf import json_format

from control_plane.compiler.failover import Failover
from control_plane.compiler.paths import seconds
from control_plane.compiler.placement import Placement
from control_plane.compiler.retries import retry_policy
from control_plane.compiler.settings import ROUTE_TARGET_MODEL_KEY
from control_plane.policy.models import Defaults, ModelRoute
from ext_proc.contract import METADATA_NAMESPACE


class ModelRoutes:
    def __init__(self, defaults: Defaults) -> None:
        self._defaults = defaults
        self._settings: dict[tuple[float, Failover], bytes] = {}
        self._clusters: dict[str, bytes] = {}
        # Reused for every model's metadata part: cleared and serialized, never handed out.
        self._scratch = route_components_pb2.Route()

    def route(self, route: ModelRoute, placement: Placement) -> bytes:
        """The serialized `envoy.config.route.v3.Route` of one model."""
        parts = self._common(route.timeout or self._defaults.timeout, placement.failover)
        parts += self._cluster(placement.cluster)
        if placement.target_model is not None:
            parts += self._target_model(placement.target_model)
        return parts

    def _target_model(self, model: str) -> bytes:
        scratch = self._scratch
        scratch.Clear()
        scratch.metadata.filter_metadata[METADATA_NAMESPACE].fields[
            ROUTE_TARGET_MODEL_KEY].string_value = model
        serialized: bytes = scratch.SerializeToString()
        return serialized

    def _common(self, timeout: float, failover: Failover) -> bytes:
        key = (timeout, failover)
        common = self._settings.get(key)
        if common is None:
            action: dict[str, Any] = {"timeout": seconds(timeout)}
            if (retries := retry_policy(failover)) is not None:
                action["retry_policy"] = retries
            common = self._settings[key] = json_format.ParseDict(
                {"match": {"prefix": "/"}, "route": action},
                route_components_pb2.Route()).SerializeToString(deterministic=True)
        return common

    def _cluster(self, name: str) -> bytes:
        cluster = self._clusters.get(name)
        if cluster is None:
            cluster = self._clusters[name] = route_components_pb2.Route(
                route=route_components_pb2.RouteAction(cluster=name)).SerializeToString()
        return cluster

