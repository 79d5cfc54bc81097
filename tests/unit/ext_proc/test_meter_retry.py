"""A usage write the ledger refuses is tried again: records written while a real Redis server
restarts are stored once it is back; a ledger that keeps failing gets each record logged, and
a stopping worker does not wait out the back-off."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from ext_proc.access import Caller
from ext_proc.ledgers import Ledgers
from ext_proc.meter import WRITE_RETRY_DELAYS_S, Meter, MeteredAttempt
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.release import ReservationReleaser
from ext_proc.state.ledger import ChargedRecord, LedgerError
from ext_proc.state.sqlite_ledger import SqliteLedger
from ext_proc.view import ProcessorView, StateView
from tests.support.redis_server import free_port, start_redis_server
from tests.unit.ext_proc.test_release import BUDGETED, TEAM_BUDGET, message, stream

URL_ENV = "SWITCHBOARD_TEST_REDIS_URL"


async def _log(view: ProcessorView, ledgers: Ledgers, meter: Meter, *request_ids: str) -> None:
    """Envoy's access-log message for `request_ids`, through the worker's own service."""
    context: Any = None
    releaser = ReservationReleaser(lambda: view, ledgers, meter)
    await releaser.StreamAccessLogs(stream(message(*request_ids)), context)


async def test_records_written_while_redis_is_down_are_stored_when_it_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv(URL_ENV, f"redis://127.0.0.1:{port}/0")
    view = replace(BUDGETED, state=StateView("redis", url_ref=f"env:{URL_ENV}"))
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    with capture_logs() as logs:
        await _log(view, ledgers, meter, "a", "b", "c")  # nothing listens on the port yet
        await asyncio.sleep(0.2)
        with start_redis_server(tmp_path, port=port):
            ledger = await ledgers.get(view.state)
            since = datetime.now(UTC) - timedelta(minutes=1)
            for _ in range(100):  # the first retry comes after 0.5 s
                if await ledger.usage_summary("team", since):
                    break
                await asyncio.sleep(0.1)
            await meter.drain()
            (row,) = await ledger.usage_summary("team", since)
            assert (row.attempts, row.cost_usd) == (3, Decimal("0.0084"))
            assert (await ledger.budget_status(TEAM_BUDGET)).spent_usd == Decimal("0.0084")
            await ledgers.close()
    assert [e["event"] for e in logs if e["log_level"] == "warning"][:1] == [
        "usage records not stored yet"]
    assert not [e for e in logs if e["log_level"] == "error"]


async def test_a_ledger_that_keeps_failing_gets_each_record_logged_without_a_wait_at_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def failing(self: SqliteLedger, *records: ChargedRecord) -> None:
        calls.append(len(records))
        raise LedgerError("disk I/O error")

    monkeypatch.setattr(SqliteLedger, "record_usage", failing)
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    with capture_logs() as logs:
        await _log(BUDGETED, ledgers, meter, "a", "b")
        await asyncio.sleep(0.1)
        # The back-off adds up to 15 s; a stopping worker makes its last tries at once.
        assert sum(WRITE_RETRY_DELAYS_S) > 10
        await asyncio.wait_for(meter.drain(), 5)
    await ledgers.close()
    assert calls == [2] * (len(WRITE_RETRY_DELAYS_S) + 1)
    lost = [e for e in logs if e["event"] == "usage record not stored"]
    assert [e["error"] for e in lost] == ["disk I/O error"] * 2
    assert "request_id='a'" in lost[0]["record"] and "request_id='b'" in lost[1]["record"]


async def test_a_record_the_store_cannot_take_is_logged_alone_and_its_batch_is_stored(
        tmp_path: Path) -> None:
    """A provider's absurd token count overflows SQLite's integers: that record is logged
    with its content, and the other records of its access-log message are stored anyway
    (they used to be lost with it)."""
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    labels = AttemptLabels("chat", "openai", "p", "m", "m", "t")
    attempts = [MeteredAttempt(_record(request_id, tokens), Caller("t", "k"), labels)
                for request_id, tokens in (("a", 5), ("b", 10**30), ("c", 7))]
    with capture_logs() as logs:
        meter.submit(BUDGETED, *attempts)
        await asyncio.wait_for(meter.drain(), 5)
    ledger = await ledgers.get(BUDGETED.state)
    (row,) = await ledger.usage_summary("team", datetime.now(UTC) - timedelta(minutes=1))
    await ledgers.close()
    assert (row.attempts, row.input_tokens) == (2, 12)
    [lost] = [e for e in logs if e["event"] == "usage record not stored"]
    assert "request_id='b'" in lost["record"] and "OverflowError" in lost["error"]
    assert not [e for e in logs if e["event"] == "usage records not stored yet"]  # no retries


def _record(request_id: str, input_tokens: int) -> UsageRecord:
    return UsageRecord(
        time=datetime.now(UTC), request_id=request_id, team="t", key_id="k",
        requested_model="m", provider="p", provider_model="m",
        usage=TokenUsage(input=input_tokens, output=1), cost_usd=None, status=200,
        outcome=Outcome.OK, latency_s=0.1, ttft_s=None, attempt=1)
