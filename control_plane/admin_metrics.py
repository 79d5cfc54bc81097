"""The control plane's own metrics, for `GET /metrics` on the admin API: the policy it serves
and where its xDS clients stand, read from its state at each scrape, plus the process's
standard metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control_plane.service import ControlPlane
from control_plane.xds.cache import ClientStatus

CLIENT_STATES = ("current", "behind", "nacking")


def client_state(client: ClientStatus, version: str) -> str:
    """`nacking`: it refused a resource type; `current`: every type it holds is `version`;
    `behind`: anything else (connecting, or still applying a push)."""
    if client.nacked:
        return "nacking"
    if client.acked and all(v == version for v in client.acked.values()):
        return "current"
    return "behind"


class ControlPlaneCollector(Collector):
    def __init__(self, control_plane: ControlPlane) -> None:
        self._control_plane = control_plane

    def collect(self) -> Iterable[Metric]:
        status = self._control_plane.status
        info = GaugeMetricFamily("switchboard_policy_info",
                                 "The policy version served (always 1).", labels=["version"])
        if status.version:
            info.add_metric([status.version], 1)
        yield info
        yield GaugeMetricFamily("switchboard_policy_applied_timestamp_seconds",
                                "When the served policy was applied (Unix time).",
                                value=status.applied_at)
        yield GaugeMetricFamily("switchboard_policy_change_rejected",
                                "1 while the latest policy change is refused and the previous "
                                "policy serves, else 0.",
                                value=1 if status.last_error else 0)
        counts = Counter(client_state(c, status.version)
                         for c in list(self._control_plane.cache.clients.values()))
        clients = GaugeMetricFamily("switchboard_xds_clients",
                                    "Connected xDS clients (Envoys and workers) by state.",
                                    labels=["state"])
        for state in CLIENT_STATES:
            clients.add_metric([state], counts[state])
        yield clients


def metrics_registry(control_plane: ControlPlane) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR,
                      ControlPlaneCollector(control_plane)):
        registry.register(collector)
    return registry
