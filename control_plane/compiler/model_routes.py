"""Each model's route: to the model's cluster, with its timeout and retry policy, whichever
client API was called (the path was matched before the model was looked up, and each attempt
learns the API from the path the client called).

One route per model, copied from a template parsed once per distinct timeout and failover
setting: Envoy's cost grows with the number of routes, and parsing dicts is the slow part of
compiling thousands of models.
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

# Replaced in every copy of a template.
_CLUSTER_PLACEHOLDER = "-"


class ModelRoutes:
    def __init__(self, defaults: Defaults) -> None:
        self._defaults = defaults
        self._templates: dict[tuple[float, Failover], route_components_pb2.Route] = {}

    def route(self, route: ModelRoute, placement: Placement) -> route_components_pb2.Route:
        copy = route_components_pb2.Route()
        copy.CopyFrom(self._template(route.timeout or self._defaults.timeout,
                                     placement.failover))
        copy.route.cluster = placement.cluster
        if placement.target_model is not None:
            metadata = copy.metadata.filter_metadata[METADATA_NAMESPACE]
            metadata[ROUTE_TARGET_MODEL_KEY] = placement.target_model
        return copy

    def _template(self, timeout: float, failover: Failover) -> route_components_pb2.Route:
        key = (timeout, failover)
        template = self._templates.get(key)
        if template is None:
            action: dict[str, Any] = {"cluster": _CLUSTER_PLACEHOLDER,
                                      "timeout": seconds(timeout)}
            if (retries := retry_policy(failover)) is not None:
                action["retry_policy"] = retries
            template = self._templates[key] = json_format.ParseDict(
                {"match": {"prefix": "/"}, "route": action}, route_components_pb2.Route())
        return template
