"""The meter writes the records submitted while a write is under way together, in the next
write: one ledger write per attempt costs about twice the CPU of one per four."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ext_proc.access import Caller, ScopedBudget
from ext_proc.ledgers import Ledgers
from ext_proc.meter import Meter, MeteredAttempt
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.state.ledger import ChargedRecord
from ext_proc.state.model import scope_key
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.unit.ext_proc.test_meter_retry import _record
from tests.unit.ext_proc.test_release import BUDGETED, TEAM_BUDGET, ledger_writes

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


async def test_each_attempt_of_a_write_counts_against_its_own_callers_budgets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules found for one attempt serve the next only while its caller, model and
    provider stay the same."""
    model_budget = replace(TEAM_BUDGET, name="m2-monthly", scope=scope_key(model="m2"))
    provider_budget = replace(TEAM_BUDGET, name="p2-monthly", scope=scope_key(provider="p2"))
    view = replace(BUDGETED, access=replace(BUDGETED.access, budgets=(
        *BUDGETED.access.budgets, ScopedBudget(model_budget, "", "", "m2", ""),
        ScopedBudget(provider_budget, "", "", "", "p2"))))
    search, other = Caller("search", "k1"), Caller("other", "k2")
    attempts = [(search, "m", "p"), (search, "m", "p"), (search, "m2", "p"), (search, "m2", "p2"),
                (other, "m2", "p2"), (Caller("search", "k1"), "m2", "p2"), (search, "m", "p")]
    writes = ledger_writes(monkeypatch)
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    meter = Meter(ledgers, AttemptMetrics(CollectorRegistry()))
    meter.submit(view, *(MeteredAttempt(
        replace(_record(str(n), 5), requested_model=model, provider=provider), caller, LABELS)
        for n, (caller, model, provider) in enumerate(attempts)))
    await asyncio.wait_for(meter.drain(), 5)
    await ledgers.close()
    team_and_model = (TEAM_BUDGET, model_budget)
    assert [c.budgets for write in writes for c in write] == [
        (TEAM_BUDGET,), (TEAM_BUDGET,), team_and_model, (*team_and_model, provider_budget),
        (model_budget, provider_budget), (*team_and_model, provider_budget), (TEAM_BUDGET,)]
