"""The workers' metrics, summed over every worker process, for the pool's `/metrics`.

Each worker counts in its own memory, where an update is an addition (ext_proc/metering/
tally.py), or a lock and an addition for prometheus-client's counters (in its multiprocess
mode every update also wrote a memory-mapped file, a quarter of the CPU a worker spends
metering a forwarded request). Once a second, and when it
stops, the worker publishes a snapshot of its series to a file named after its pid, in a
directory the pool creates fresh each time it starts (so counts begin at zero like any
restarted process's) and removes when it stops. A worker that exits leaves its last
snapshot: what it counted stays in the sums and the counters never go backwards while the
pool runs. A worker killed outright loses at most its last second of counts; its usage
records are in the ledger. Workers hold counters and histograms only, which sum.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

log = structlog.get_logger("metrics")

METRICS_DIR_ENV = "SWITCHBOARD_METRICS_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PUBLISH_INTERVAL_S = 1.0
_SNAPSHOT_GLOB = "worker-*.json"


class PoolState(Protocol):
    @property
    def workers(self) -> int: ...

    @property
    def running(self) -> int: ...

    @property
    def restarts(self) -> int: ...


def create_metrics_dir() -> str:
    return tempfile.mkdtemp(prefix="switchboard-metrics-")


def remove_metrics_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def snapshot(registry: CollectorRegistry) -> bytes:
    """Every series of `registry`, as the pool sums them. Creation timestamps are left out:
    they would not sum."""
    return orjson.dumps([
        {"name": metric.name, "type": metric.type, "help": metric.documentation,
         "samples": [[s.name, s.labels, s.value] for s in metric.samples
                     if not s.name.endswith("_created")]}
        for metric in registry.collect()])


class SnapshotPublisher:
    """A worker's side: writes its registry's snapshot to the pool's directory."""

    def __init__(self, registry: CollectorRegistry, directory: str | None,
                 pid: int | None = None) -> None:
        self._registry = registry
        self._path = (Path(directory) / f"worker-{pid or os.getpid()}.json"
                      if directory else None)
        self._published = b""

    async def run(self, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        while self._path is not None:
            await asyncio.sleep(interval_s)
            await self.publish()

    async def publish(self) -> bool:
        """Write the snapshot if it changed since the last one written; True if written."""
        data = snapshot(self._registry)
        if self._path is None or data == self._published:
            return False
        try:
            await asyncio.to_thread(_replace, self._path, data)
        except OSError as exc:  # the pool is stopping, or its disk is full: counts wait
            log.error("metrics snapshot not written", error=str(exc))
            return False
        self._published = data
        return True


def _replace(path: Path, data: bytes) -> None:
    # Written aside, then renamed: the pool reads either the last snapshot or this one.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class _PoolCollector(Collector):
    def __init__(self, pool: PoolState) -> None:
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        workers = GaugeMetricFamily("switchboard_ext_proc_workers",
                                    "Worker processes, configured and running.",
                                    labels=["state"])
        workers.add_metric(["configured"], self._pool.workers)
        workers.add_metric(["running"], self._pool.running)
        yield workers
        yield CounterMetricFamily("switchboard_ext_proc_worker_restarts",
                                  "Worker processes restarted after they exited.",
                                  value=self._pool.restarts)


def summed(snapshots: Iterable[bytes]) -> list[Metric]:
    """The families of every snapshot, each series summed over the snapshots holding it."""
    families: dict[str, Metric] = {}
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for data in snapshots:
        family: dict[str, Any]
        for family in orjson.loads(data):
            name = family["name"]
            if name not in families:
                families[name] = Metric(name, family["help"], family["type"])
                totals[name] = {}
            series = totals[name]
            for sample, labels, value in family["samples"]:
                key = (sample, tuple(labels.items()))
                series[key] = series.get(key, 0.0) + value
    for name, metric in families.items():
        for (sample, labels), value in totals[name].items():
            metric.add_sample(sample, dict(labels), value)
    return list(families.values())


class _WorkersCollector(Collector):
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        return summed(_read_all(self._directory))


def _read_all(directory: Path) -> Iterable[bytes]:
    for path in sorted(directory.glob(_SNAPSHOT_GLOB)):
        try:
            yield path.read_bytes()
        except FileNotFoundError:  # the pool is stopping and removed the directory meanwhile
            continue


def exposition(pool: PoolState, metrics_dir: str | None) -> bytes:
    """The text exposition of the pool and of every worker's series, summed. Reads files:
    call it off the event loop."""
    registry = CollectorRegistry()
    registry.register(_PoolCollector(pool))
    if metrics_dir is not None and Path(metrics_dir).is_dir():
        registry.register(_WorkersCollector(Path(metrics_dir)))
    return generate_latest(registry)
