"""Budget behaviour, run against both the SQLite and the Redis ledger."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ext_proc.state.ledger import ChargedRecord, Ledger, LedgerError, ReservationExists
from ext_proc.state.model import (
    BudgetRule,
    LimitKind,
    OnExceed,
    ReservationRequest,
    scope_key,
)
from ext_proc.state.periods import Period
from ext_proc.state.redis_ledger import RedisLedger
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.unit.ext_proc.state.conftest import FakeClock, usage_record

TEAM = BudgetRule("search-monthly", scope_key(team="search"), Decimal("1.00"), Period.MONTH)
ORG = BudgetRule("org-daily", scope_key(), Decimal("10"), Period.DAY)


def req(rid: str, cost: str, *rules: BudgetRule) -> ReservationRequest:
    return ReservationRequest(rid, Decimal(cost), tokens=100, budgets=rules or (TEAM,))


async def test_reserve_until_exhausted_then_block_with_message(ledger: Ledger) -> None:
    for i in range(3):
        assert (await ledger.reserve(req(f"r{i}", "0.30"))).admitted
    refused = await ledger.reserve(req("r3", "0.30"))
    assert not refused.admitted
    (denial,) = refused.denials
    assert denial.kind is LimitKind.BUDGET
    assert denial.name == "search-monthly"
    assert denial.resets_at == datetime(2025, 4, 1, tzinfo=UTC)
    assert "search-monthly" in refused.message()
    assert "2025-04-01T00:00:00+00:00" in refused.message()
    status = await ledger.budget_status(TEAM)
    assert status.reserved_usd == Decimal("0.9")
    assert status.spent_usd == 0


async def test_settle_replaces_reservation_with_real_cost(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.50"))
    assert await ledger.settle("a", cost_usd=Decimal("0.123456"), tokens=40)
    status = await ledger.budget_status(TEAM)
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.123456"), Decimal(0))
    assert not await ledger.settle("a", cost_usd=Decimal(1), tokens=1)  # idempotent
    assert (await ledger.budget_status(TEAM)).spent_usd == Decimal("0.123456")


async def test_settle_rounds_cost_up_to_the_micro_dollar(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.5"))
    await ledger.settle("a", cost_usd=Decimal("0.0000001"), tokens=1)
    assert (await ledger.budget_status(TEAM)).spent_usd == Decimal("0.000001")


async def test_unknown_cost_keeps_the_reserved_amount(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.25"))
    await ledger.settle("a", cost_usd=None, tokens=None)
    assert (await ledger.budget_status(TEAM)).spent_usd == Decimal("0.25")


async def test_release_gives_everything_back(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.90"))
    assert not (await ledger.reserve(req("b", "0.20"))).admitted
    assert await ledger.release("a")
    assert not await ledger.release("a")
    assert (await ledger.reserve(req("b", "0.20"))).admitted
    status = await ledger.budget_status(TEAM)
    assert (status.spent_usd, status.reserved_usd) == (Decimal(0), Decimal("0.2"))


async def test_all_or_nothing_across_scopes(ledger: Ledger) -> None:
    small = BudgetRule("model-cap", scope_key(model="gpt-4o"), Decimal("0.10"), Period.DAY)
    refused = await ledger.reserve(req("a", "0.20", TEAM, ORG, small))
    assert not refused.admitted
    assert [d.name for d in refused.denials] == ["model-cap"]
    # Nothing was reserved on the budgets that had room.
    assert (await ledger.budget_status(TEAM)).reserved_usd == 0
    assert (await ledger.budget_status(ORG)).reserved_usd == 0


async def test_duplicate_reservation_id_is_an_error(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.1"))
    with pytest.raises(ReservationExists):
        await ledger.reserve(req("a", "0.1"))


async def test_warn_budget_admits_and_reports(ledger: Ledger) -> None:
    warn = BudgetRule(
        "soft", scope_key(team="x"), Decimal("0.10"), Period.DAY, on_exceed=OnExceed.WARN
    )
    first = await ledger.reserve(req("a", "0.08", warn))
    assert first.admitted
    assert not first.warnings
    second = await ledger.reserve(req("b", "0.08", warn))
    assert second.admitted
    assert [w.name for w in second.warnings] == ["soft"]
    assert (await ledger.budget_status(warn)).reserved_usd == Decimal("0.16")


async def test_downgrade_budget_names_the_cheaper_model(ledger: Ledger) -> None:
    rule = BudgetRule(
        "gpt-4o-cap",
        scope_key(model="gpt-4o"),
        Decimal("0.10"),
        Period.MONTH,
        on_exceed=OnExceed.DOWNGRADE,
        downgrade_model="gpt-4o-mini",
    )
    refused = await ledger.reserve(req("a", "0.20", rule, TEAM))
    assert not refused.admitted
    assert refused.downgrade_model == "gpt-4o-mini"
    # A block budget among the refusals wins over downgrading.
    tight = BudgetRule("t", scope_key(team="search"), Decimal("0.01"), Period.MONTH)
    assert (await ledger.reserve(req("b", "0.20", rule, tight))).downgrade_model is None


async def test_period_resets_on_calendar_boundary(ledger: Ledger, clock: FakeClock) -> None:
    daily = BudgetRule("d", scope_key(team="t"), Decimal("1"), Period.DAY, tz="America/New_York")
    clock.now = datetime(2025, 3, 14, 3, 59, tzinfo=UTC)  # 23:59 on the 13th in New York
    await ledger.reserve(req("a", "1", daily))
    await ledger.settle("a", cost_usd=Decimal(1), tokens=1)
    assert not (await ledger.reserve(req("b", "0.01", daily))).admitted
    clock.now = datetime(2025, 3, 14, 4, 0, tzinfo=UTC)  # midnight in New York (EDT)
    assert (await ledger.reserve(req("c", "1", daily))).admitted
    status = await ledger.budget_status(daily)
    assert status.window_start == datetime(2025, 3, 14, 4, 0, tzinfo=UTC)
    assert status.resets_at == datetime(2025, 3, 15, 4, 0, tzinfo=UTC)


async def test_expired_reservation_stops_counting(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.reserve(req("crashed", "0.9"))
    clock.advance(timedelta(minutes=16))  # past the default 15-minute reservation TTL
    assert (await ledger.reserve(req("next", "0.9"))).admitted
    assert (await ledger.budget_status(TEAM)).reserved_usd == Decimal("0.9")


async def test_late_settle_after_expiry_still_charges_once(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.reserve(req("slow", "0.5"))
    clock.advance(timedelta(minutes=16))
    assert await ledger.sweep_expired() == 1
    assert (await ledger.budget_status(TEAM)).reserved_usd == 0
    assert await ledger.settle("slow", cost_usd=Decimal("0.4"), tokens=10)
    assert not await ledger.settle("slow", cost_usd=Decimal("0.4"), tokens=10)
    status = await ledger.budget_status(TEAM)
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.4"), Decimal(0))


async def test_unpriced_request_reserves_zero_and_is_admitted(ledger: Ledger) -> None:
    exhausted = BudgetRule("zero", scope_key(team="z"), Decimal(0), Period.DAY)
    assert (await ledger.reserve(req("a", "0", exhausted))).admitted
    assert not (await ledger.reserve(req("b", "0.000001", exhausted))).admitted


async def test_store_failure_is_a_ledger_error(tmp_path: Path) -> None:
    # Nothing listens on a port we just bound and released.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis_ledger = RedisLedger.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(LedgerError):
            await redis_ledger.reserve(req("a", "0.1"))
    finally:
        await redis_ledger.close()
    (tmp_path / "dir.db").mkdir()  # a directory cannot be opened as a database
    with pytest.raises(LedgerError):
        await SqliteLedger.open(tmp_path / "dir.db")


async def test_release_waits_for_every_attempts_usage_record(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.reserve(req("a", "0.90"))
    first = ChargedRecord(usage_record(clock, "a", attempt=1), (TEAM,))
    await ledger.record_usage(first)
    await ledger.record_usage(first)  # stored again (a retried write): still one record
    assert await ledger.release_when_recorded("a", 2) is None  # attempt 2 not recorded yet
    assert (await ledger.budget_status(TEAM)).reserved_usd == Decimal("0.9")
    await ledger.record_usage(ChargedRecord(usage_record(clock, "a", attempt=2), (TEAM,)))
    assert await ledger.release_when_recorded("a", 2) is True
    assert await ledger.release_when_recorded("a", 2) is False
    status = await ledger.budget_status(TEAM)
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.02"), Decimal(0))


async def test_release_without_attempts_needs_no_record(ledger: Ledger) -> None:
    await ledger.reserve(req("a", "0.90"))
    assert await ledger.release_when_recorded("a", 0) is True
