"""Connects the control plane to the Kubernetes API when it runs in a cluster."""

from __future__ import annotations

import asyncio

import structlog

from control_plane.kube.configmap_source import ConfigMapSource
from control_plane.kube.leader import LeaderElectionConfig, LeaderElector
from control_plane.service import ControlPlane

log = structlog.get_logger("kube")


def _split(reference: str) -> tuple[str, str]:
    namespace, _, name = reference.partition("/")
    if not namespace or not name:
        raise ValueError(f"expected NAMESPACE/NAME, got {reference!r}")
    return namespace, name


def _load_config() -> None:
    from kubernetes import config

    config.load_incluster_config()  # type: ignore[no-untyped-call]


def follow_configmap(control_plane: ControlPlane, reference: str) -> asyncio.Task[None]:
    """Apply the ConfigMap's policy files as soon as the API server reports a change."""
    from kubernetes import client

    _load_config()
    namespace, name = _split(reference)

    async def apply(docs: dict[str, str]) -> None:
        control_plane.apply(docs)

    source = ConfigMapSource(client.CoreV1Api(), namespace, name, apply)
    return asyncio.create_task(source.run())


def campaign(reference: str, identity: str) -> tuple[LeaderElector, asyncio.Task[None]]:
    """Hold the Lease while this replica leads; every replica serves xDS either way. The
    elector's ``is_leader`` gates housekeeping; cancelling the task releases the Lease."""
    from kubernetes import client

    _load_config()
    namespace, name = _split(reference)

    def started() -> None:
        log.info("leading", lease=reference, identity=identity)

    def stopped() -> None:
        log.info("no longer leading", lease=reference, identity=identity)

    elector = LeaderElector(client.CoordinationV1Api(),
                            LeaderElectionConfig(namespace, name, identity),
                            on_started_leading=started, on_stopped_leading=stopped)
    return elector, asyncio.create_task(elector.run())
