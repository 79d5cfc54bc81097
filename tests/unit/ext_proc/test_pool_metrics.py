"""Workers' metrics in prometheus-client's multiprocess mode, summed by the pool."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ext_proc.pool_metrics import (
    MULTIPROC_ENV,
    create_metrics_dir,
    exposition,
    remove_metrics_dir,
    worker_exited,
)

# What one worker process does: count an attempt of 100 input and 7 output tokens for $0.25.
WORKER = """
from datetime import UTC, datetime
from decimal import Decimal
from prometheus_client import CollectorRegistry
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord

record = UsageRecord(time=datetime.now(UTC), request_id="r", team="search", key_id="k",
                     requested_model="gpt", provider="oai", provider_model="gpt-4o-mini",
                     usage=TokenUsage(input=100, output=7), cost_usd=Decimal("0.25"),
                     status=200, outcome=Outcome.OK, latency_s=0.5)
AttemptMetrics(CollectorRegistry()).observe(record, AttemptLabels(
    "chat", "openai", "oai", "gpt", "gpt-4o-mini", "search"))
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
                   env={**os.environ, MULTIPROC_ENV: metrics_dir},
                   cwd=Path(__file__).parents[3])


def test_the_pool_sums_every_worker_even_after_it_exited() -> None:
    metrics_dir = create_metrics_dir()
    try:
        run_worker(metrics_dir)
        run_worker(metrics_dir)  # two processes, two pids, two sets of files
        assert len(list(Path(metrics_dir).glob("counter_*.db"))) == 2
        found = samples(exposition(Pool(), metrics_dir).decode())
        key = frozenset(LABELS.items())
        assert found["switchboard_cost_usd_total", key] == 0.5
        assert found["gen_ai_client_token_usage_sum",
                     key | {("gen_ai_token_type", "input")}] == 200
        assert found["gen_ai_client_token_usage_count",
                     key | {("gen_ai_token_type", "output")}] == 2
        assert found["switchboard_ext_proc_workers", frozenset({("state", "running")})] == 2
        assert found["switchboard_ext_proc_worker_restarts_total", frozenset()] == 1
        for pid in {int(p.stem.rsplit("_", 1)[1]) for p in Path(metrics_dir).glob("*.db")}:
            worker_exited(metrics_dir, pid)
        assert samples(exposition(Pool(), metrics_dir).decode())[
            "switchboard_cost_usd_total", key] == 0.5
    finally:
        remove_metrics_dir(metrics_dir)
    assert not Path(metrics_dir).exists()


def test_without_its_directory_the_pool_reports_itself_only() -> None:
    text = exposition(Pool(), None).decode()
    assert "switchboard_ext_proc_workers" in text and "gen_ai_" not in text
    assert "gen_ai_" not in exposition(Pool(), "/nonexistent/metrics").decode()
