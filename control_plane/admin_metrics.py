"""The control plane's own metrics, for `GET /metrics` on the admin API: the policy it serves,
where its xDS clients stand, whether it leads and what its housekeeping did, read from its state
at each scrape, plus the process's standard metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control_plane.housekeeping import Housekeeper
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


class HousekeepingCollector(Collector):
    def __init__(self, housekeeper: Housekeeper) -> None:
        self._housekeeper = housekeeper

    def collect(self) -> Iterable[Metric]:
        keeper = self._housekeeper
        yield GaugeMetricFamily(
            "switchboard_control_plane_leader",
            "1 while this replica leads and so writes budget and usage housekeeping, else 0 "
            "(always 1 without leader election).",
            value=1 if keeper.leadership.is_leader else 0)
        yield CounterMetricFamily(
            "switchboard_housekeeping_expired_reservations",
            "Reservations housekeeping expired because no worker settled or released them.",
            value=keeper.expired_total)
        yield CounterMetricFamily(
            "switchboard_housekeeping_pruned_usage_records",
            "Usage records housekeeping deleted under state.usage_retention.",
            value=keeper.pruned_total)
        yield CounterMetricFamily(
            "switchboard_housekeeping_failures",
            "Housekeeping rounds that failed (the usage store, most likely).",
            value=keeper.failures_total)
        yield GaugeMetricFamily(
            "switchboard_housekeeping_last_success_timestamp_seconds",
            "When this replica last completed a housekeeping round (Unix time; 0: never).",
            value=keeper.status.last_run_at)


def metrics_registry(control_plane: ControlPlane,
                     housekeeper: Housekeeper | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    collectors: list[Collector] = [PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR,
                                   ControlPlaneCollector(control_plane)]
    if housekeeper is not None:
        collectors.append(HousekeepingCollector(housekeeper))
    for collector in collectors:
        registry.register(collector)
    return registry
