"""The access-log service: the records of requests Envoy forwarded alone, one message at a time,
written to a real SQLite ledger in one write per message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from envoy.service.accesslog.v3 import als_pb2
from prometheus_client import CollectorRegistry

from ext_proc.access import ScopedBudget
from ext_proc.contract import LANE_ADMITTED_KEY
from ext_proc.ledgers import Ledgers
from ext_proc.meter import Meter
from ext_proc.metering.admission_metrics import AdmissionMetrics
from ext_proc.metering.metrics import AttemptMetrics
from ext_proc.release import ReservationReleaser
from ext_proc.state.ledger import ChargedRecord
from ext_proc.state.model import BudgetRule, scope_key
from ext_proc.state.periods import Period
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.unit.ext_proc.test_direct import VIEW, entry

TEAM_BUDGET = BudgetRule("search-monthly", scope_key(team="search"), Decimal(100), Period.MONTH)
BUDGETED = replace(VIEW, access=replace(
    VIEW.access, budgets=(ScopedBudget(TEAM_BUDGET, "search", "", "", ""),)))
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}  # $0.002 + $0.0008 at oai's prices


def message(*request_ids: str) -> als_pb2.StreamAccessLogsMessage:
    batch = als_pb2.StreamAccessLogsMessage()
    for request_id in request_ids:
        log = entry(usage=USAGE)
        log.common_properties.start_time.FromDatetime(datetime.now(UTC))
        log.request.request_id = request_id
        batch.http_logs.log_entry.append(log)
    batch.http_logs.log_entry.add()  # an entry of no interest: no switchboard metadata
    return batch


async def stream(*messages: als_pb2.StreamAccessLogsMessage,
                 ) -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
    for batch in messages:
        yield batch


def ledger_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ChargedRecord, ...]]:
    """The records of each SQLite ledger write from now on, as they are written."""
    writes: list[tuple[ChargedRecord, ...]] = []
    record_usage = SqliteLedger.record_usage

    async def kept(self: SqliteLedger, *records: ChargedRecord) -> None:
        writes.append(records)
        await record_usage(self, *records)

    monkeypatch.setattr(SqliteLedger, "record_usage", kept)
    return writes


async def test_each_message_is_recorded_in_one_ledger_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = ledger_writes(monkeypatch)
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    releaser = ReservationReleaser(lambda: BUDGETED, ledgers, meter)
    context: Any = None
    await releaser.StreamAccessLogs(stream(message("a", "b", "c"), message("d")), context)
    await meter.drain()
    await releaser.drain()
    try:
        # A message is never split; one that arrives while a write is under way joins the next.
        assert [[c.record.request_id for c in write] for write in writes] in (
            [["a", "b", "c", "d"]], [["a", "b", "c"], ["d"]])
        assert {c.budgets for write in writes for c in write} == {(TEAM_BUDGET,)}
        ledger = await ledgers.get(BUDGETED.state)
        (row,) = await ledger.usage_summary("team", datetime.now(UTC) - timedelta(minutes=1))
        assert (row.group, row.attempts, row.cost_usd) == ("search", 4, Decimal("0.0112"))
        assert (await ledger.budget_status(TEAM_BUDGET)).spent_usd == Decimal("0.0112")
    finally:
        await ledgers.close()


async def test_the_lanes_admissions_are_counted_once_per_request(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(registry))
    releaser = ReservationReleaser(lambda: BUDGETED, ledgers, meter, AdmissionMetrics(registry))
    batch = message("forwarded", "also-forwarded", "by-the-worker")
    for lane_admitted in batch.http_logs.log_entry[:2]:
        lane_admitted.common_properties.metadata.filter_metadata["switchboard"].update(
            {LANE_ADMITTED_KEY: "search"})
    batch.http_logs.log_entry[0].common_properties.upstream_request_attempt_count = 3
    attempts_only = batch.http_logs.log_entry.add()  # admitted for the workers' attempts
    attempts_only.common_properties.metadata.filter_metadata["switchboard"].update(
        {LANE_ADMITTED_KEY: "search", "model": "either"})
    context: Any = None
    await releaser.StreamAccessLogs(stream(batch), context)
    await meter.drain()
    await releaser.drain()
    await ledgers.close()

    def admitted(model: str) -> float | None:
        return registry.get_sample_value("switchboard_admissions_total", {
            "team": "search", "gen_ai_request_model": model, "outcome": "admitted"})

    assert (admitted("gpt-4o"), admitted("either")) == (2.0, 1.0)
