"""Workers' metrics: counted in memory, published as snapshots, summed by the pool."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from ext_proc.pool_metrics import (
    METRICS_DIR_ENV,
    SnapshotPublisher,
    create_metrics_dir,
    exposition,
    remove_metrics_dir,
)

# What one worker process does: count an attempt of 100 input and 7 output tokens for $0.25,
# and publish it as it stops.
WORKER = """
import asyncio, os
from datetime import UTC, datetime
from decimal import Decimal
from prometheus_client import CollectorRegistry
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.pool_metrics import METRICS_DIR_ENV, SnapshotPublisher

record = UsageRecord(time=datetime.now(UTC), request_id="r", team="search", key_id="k",
                     requested_model="gpt", provider="oai", provider_model="gpt-4o-mini",
                     usage=TokenUsage(input=100, output=7), cost_usd=Decimal("0.25"),
                     status=200, outcome=Outcome.OK, latency_s=0.5)
registry = CollectorRegistry()
AttemptMetrics(registry).observe(record, AttemptLabels(
    "chat", "openai", "oai", "gpt", "gpt-4o-mini", "search"))
asyncio.run(SnapshotPublisher(registry, os.environ[METRICS_DIR_ENV]).publish())
"""
LABELS = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
          "gen_ai_request_model": "gpt", "gen_ai_response_model": "gpt-4o-mini",
          "switchboard_provider": "oai", "team": "search"}


@dataclass
class Pool:
    workers: int = 2
    running: int = 2
    restarts: int = 1


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def run_worker(metrics_dir: str) -> None:
    subprocess.run([sys.executable, "-c", WORKER], check=True, timeout=60,
                   env={**os.environ, METRICS_DIR_ENV: metrics_dir},
                   cwd=Path(__file__).parents[3])


def test_the_pool_sums_every_worker_even_after_it_exited() -> None:
    metrics_dir = create_metrics_dir()
    try:
        run_worker(metrics_dir)
        run_worker(metrics_dir)  # two processes, two pids, two snapshots
        assert len(list(Path(metrics_dir).glob("worker-*.json"))) == 2
        found = samples(exposition(Pool(), metrics_dir).decode())
        key = frozenset(LABELS.items())
        assert found["switchboard_cost_usd_total", key] == 0.5
        assert found["gen_ai_client_token_usage_sum",
                     key | {("gen_ai_token_type", "input")}] == 200
        assert found["gen_ai_client_token_usage_count",
                     key | {("gen_ai_token_type", "output")}] == 2
        assert found["gen_ai_client_token_usage_bucket",
                     key | {("gen_ai_token_type", "output"), ("le", "16.0")}] == 2
        assert found["gen_ai_client_token_usage_bucket",
                     key | {("gen_ai_token_type", "output"), ("le", "4.0")}] == 0
        assert found["switchboard_ext_proc_workers", frozenset({("state", "running")})] == 2
        assert found["switchboard_ext_proc_worker_restarts_total", frozenset()] == 1
        assert not any(name.endswith("_created") for name, _ in found)
    finally:
        remove_metrics_dir(metrics_dir)
    assert not Path(metrics_dir).exists()


def test_without_its_directory_the_pool_reports_itself_only() -> None:
    text = exposition(Pool(), None).decode()
    assert "switchboard_ext_proc_workers" in text and "gen_ai_" not in text
    assert "gen_ai_" not in exposition(Pool(), "/nonexistent/metrics").decode()


async def test_a_worker_publishes_its_counts_each_interval_and_only_when_they_change(
        tmp_path: Path) -> None:
    registry = CollectorRegistry()
    counter = Counter("switchboard_things", "Things.", registry=registry)
    publisher = SnapshotPublisher(registry, str(tmp_path), pid=7)
    counter.inc(3)
    running = asyncio.create_task(publisher.run(interval_s=0.01))
    await asyncio.sleep(0.3)  # thirty intervals
    running.cancel()
    assert samples(exposition(Pool(), str(tmp_path)).decode())[
        "switchboard_things_total", frozenset()] == 3
    assert await publisher.publish() is False  # nothing new, nothing written
    counter.inc()
    assert await publisher.publish() is True  # as the worker stops
    assert samples(exposition(Pool(), str(tmp_path)).decode())[
        "switchboard_things_total", frozenset()] == 4
    assert await asyncio.to_thread(os.listdir, tmp_path) == ["worker-7.json"]  # no partial


async def test_without_a_directory_a_worker_publishes_nothing() -> None:
    publisher = SnapshotPublisher(CollectorRegistry(), None)
    await publisher.run()  # returns at once
    assert await publisher.publish() is False
