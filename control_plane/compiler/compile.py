"""Compile a validated policy into one consistent snapshot."""

from __future__ import annotations

from control_plane.compiler.clusters import ClusterBuilder
from control_plane.compiler.listener import listener
from control_plane.compiler.placement import plan_clusters
from control_plane.compiler.processor import processor_resource
from control_plane.compiler.routes import route_configuration
from control_plane.compiler.settings import GatewaySettings
from control_plane.policy import Policy
from control_plane.xds.resources import CLUSTER, LISTENER, PROCESSOR, ROUTE, typed
from control_plane.xds.snapshot import Snapshot
from ext_proc.contract import PROCESSOR_RESOURCE_NAME


def compile_policy(policy: Policy, settings: GatewaySettings) -> Snapshot:
    listener_config = listener(policy, settings)
    plan = plan_clusters(policy)
    routes = route_configuration(policy, plan)
    builder = ClusterBuilder(policy, settings)
    clusters = [builder.build(spec) for spec in plan.clusters.values()]
    return Snapshot({
        LISTENER: {listener_config["name"]: typed(LISTENER, listener_config)},
        ROUTE: {routes.name: routes},
        CLUSTER: {cluster.name: cluster for cluster in clusters},
        PROCESSOR: {PROCESSOR_RESOURCE_NAME: processor_resource(policy)},
    })
