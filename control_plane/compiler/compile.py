"""Compile a validated policy into one consistent snapshot."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.message import Message

from control_plane.compiler.clusters import ClusterBuilder
from control_plane.compiler.lane import admits_in_envoy, lane_extension
from control_plane.compiler.listener import listener
from control_plane.compiler.placement import plan_clusters
from control_plane.compiler.processor import processor_resource
from control_plane.compiler.routes import route_configuration
from control_plane.compiler.settings import GatewaySettings
from control_plane.policy import Policy
from control_plane.xds.resources import CLUSTER, EXTENSION, LISTENER, PROCESSOR, ROUTE, typed
from control_plane.xds.snapshot import Snapshot
from ext_proc.contract import PROCESSOR_RESOURCE_NAME
from protos.switchboard.v1 import processor_pb2


def compile_policy(policy: Policy, settings: GatewaySettings,
                   budget_headroom: Collection[str] = ()) -> Snapshot:
    """`budget_headroom`: the budgets read with headroom (control_plane/budget_watch.py);
    none until they are read."""
    listener_config = listener(policy, settings)
    plan = plan_clusters(policy)
    routes = route_configuration(policy, plan)
    builder = ClusterBuilder(policy, settings)
    clusters = [builder.build(spec) for spec in plan.clusters.values()]
    processor = processor_resource(policy)
    resources = {
        LISTENER: {listener_config["name"]: typed(LISTENER, listener_config)},
        ROUTE: {routes.name: routes},
        CLUSTER: {cluster.name: cluster for cluster in clusters},
        PROCESSOR: {PROCESSOR_RESOURCE_NAME: processor},
    }
    if admits_in_envoy(policy):
        resources[EXTENSION] = _lane(processor, settings, budget_headroom)
    return Snapshot(resources)


def with_budget_headroom(snapshot: Snapshot, settings: GatewaySettings,
                         budget_headroom: Collection[str]) -> Snapshot:
    """The same snapshot with the lane recompiled for `budget_headroom`: nothing else
    changes."""
    if not snapshot.of_type(EXTENSION):
        return snapshot
    processor = snapshot.of_type(PROCESSOR)[PROCESSOR_RESOURCE_NAME]
    assert isinstance(processor, processor_pb2.ProcessorConfig)
    return Snapshot({**snapshot.resources,
                     EXTENSION: _lane(processor, settings, budget_headroom)})


def _lane(processor: processor_pb2.ProcessorConfig, settings: GatewaySettings,
          budget_headroom: Collection[str]) -> dict[str, Message]:
    watched = [name for name in processor.budgets if name not in budget_headroom]
    extension = lane_extension(processor, watched, settings.secrets_dir)
    return {extension["name"]: typed(EXTENSION, extension)}
