"""The meter writes the records submitted while a write is under way together, in the next
write: one ledger write per attempt costs about twice the CPU of one per four."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ext_proc.access import Caller
from ext_proc.ledgers import Ledgers
from ext_proc.meter import Meter, MeteredAttempt
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.state.ledger import ChargedRecord
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.unit.ext_proc.test_meter_retry import _record
from tests.unit.ext_proc.test_release import BUDGETED

LABELS = AttemptLabels("chat", "openai", "p", "m", "m", "t")


def _attempt(request_id: str) -> MeteredAttempt:
    return MeteredAttempt(_record(request_id, 5), Caller("t", "k"), LABELS)


async def test_records_submitted_during_a_write_share_the_next_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[list[str]] = []
    first_may_finish = asyncio.Event()
    record_usage = SqliteLedger.record_usage

    async def slow_first(self: SqliteLedger, *records: ChargedRecord) -> None:
        writes.append([c.record.request_id for c in records])
        if len(writes) == 1:
            await first_may_finish.wait()
        await record_usage(self, *records)

    monkeypatch.setattr(SqliteLedger, "record_usage", slow_first)
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    meter.submit(BUDGETED, _attempt("a"))
    for _ in range(100):  # until the first write is under way
        if writes:
            break
        await asyncio.sleep(0.01)
    meter.submit(BUDGETED, _attempt("b"))
    meter.submit(BUDGETED, _attempt("c"), _attempt("d"))
    first_may_finish.set()
    await asyncio.wait_for(meter.drain(), 5)
    await ledgers.close()
    assert writes == [["a"], ["b", "c", "d"]]
