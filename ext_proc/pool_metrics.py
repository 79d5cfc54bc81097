"""The workers' metrics, summed over every worker process, for the pool's `/metrics`.

Each worker runs prometheus-client in multiprocess mode: its counters and histograms live in
memory-mapped files named after its pid in one directory, which the pool creates fresh each
time it starts (so counts begin at zero like any restarted process's) and removes when it
stops. A worker that exits leaves its files: what it counted stays in the sums, and the
counters never go backwards while the pool runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


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


def worker_exited(path: str, pid: int) -> None:
    """Forget the exited worker's live gauges (its counters and histograms stay summed)."""
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


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


def exposition(pool: PoolState, metrics_dir: str | None) -> bytes:
    """The text exposition of the pool and of every worker's series, summed. Reads files:
    call it off the event loop."""
    registry = CollectorRegistry()
    registry.register(_PoolCollector(pool))
    if metrics_dir is None or not Path(metrics_dir).is_dir():
        return generate_latest(registry)
    workers = CollectorRegistry()
    MultiProcessCollector(workers, path=metrics_dir)  # type: ignore[no-untyped-call]
    try:
        return generate_latest(registry) + generate_latest(workers)
    except OSError:  # the pool is stopping and removed the directory meanwhile
        return generate_latest(registry)
