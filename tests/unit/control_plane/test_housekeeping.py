"""Leader-gated housekeeping: the leader (or the only control plane) expires abandoned
reservations and applies usage retention; a follower touches nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from control_plane.housekeeping import Housekeeper, HousekeepingReport
from control_plane.policy import Policy, load_documents
from ext_proc.ledgers import Ledgers
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.state.ledger import DEFAULT_RESERVATION_TTL, ChargedRecord, Ledger, LedgerError
from ext_proc.state.model import BudgetRule, ReservationRequest, scope_key
from ext_proc.state.periods import Period
from ext_proc.view import StateView
from tests.unit.control_plane.housekeeping_fakes import CountingLedgers
from tests.unit.ext_proc.state.conftest import FakeClock

BUDGET = BudgetRule("org-monthly", scope_key(), Decimal("100"), Period.MONTH)
POLICY = """
providers: {demo: {kind: mock}}
models: {demo: {targets: [{provider: demo}]}}
"""


def policy(state: str = "") -> Policy:
    return load_documents({"policy.yaml": POLICY + state})


@dataclass
class StubLeader:
    """Stands in for the Lease elector: only ``is_leader`` is read."""

    is_leader: bool



@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 14, 12, 0, 30, tzinfo=UTC))


@pytest.fixture
async def ledgers(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CountingLedgers]:
    built = CountingLedgers(Ledgers(str(tmp_path), str(tmp_path / "secrets"), clock=clock))
    yield built
    await built.inner.close()


def usage(clock: FakeClock, request_id: str) -> UsageRecord:
    return UsageRecord(
        time=clock(), request_id=request_id, team="search", key_id="sha256:k",
        requested_model="demo", provider="demo", provider_model="demo",
        usage=TokenUsage(input=10, output=5), cost_usd=Decimal("0.01"), status=200,
        outcome=Outcome.OK, latency_s=0.1, ttft_s=None)


async def seed(ledgers: CountingLedgers, clock: FakeClock) -> Ledger:
    """An old usage record, then a reservation its (crashed) worker never settles; by the end
    the record is two days old and the reservation past its TTL."""
    ledger = await ledgers.inner.get(StateView())
    await ledger.record_usage(ChargedRecord(usage(clock, "old")))
    clock.advance(timedelta(days=2))
    await ledger.record_usage(ChargedRecord(usage(clock, "recent")))
    admission = await ledger.reserve(
        ReservationRequest("abandoned", Decimal("5"), tokens=100, budgets=(BUDGET,)))
    assert admission.admitted
    clock.advance(DEFAULT_RESERVATION_TTL + timedelta(seconds=1))
    return ledger


async def attempts(ledger: Ledger, clock: FakeClock) -> int:
    rows = await ledger.usage_summary("team", clock() - timedelta(days=30))
    return sum(row.attempts for row in rows)


async def test_the_leader_expires_reservations_and_applies_retention(
    ledgers: CountingLedgers, clock: FakeClock
) -> None:
    ledger = await seed(ledgers, clock)
    assert (await ledger.budget_status(BUDGET)).reserved_usd == Decimal(5)
    live = policy("state: {usage_retention: 1d}\n")
    keeper = Housekeeper(lambda: live, ledgers, leadership=StubLeader(True), clock=clock)

    assert await keeper.run_once() == HousekeepingReport(
        expired_reservations=1, pruned_usage_records=1)
    assert (await ledger.budget_status(BUDGET)).reserved_usd == 0
    assert await attempts(ledger, clock) == 1  # only the recent record is left
    assert (keeper.expired_total, keeper.pruned_total) == (1, 1)
    assert keeper.status.last_run_at > 0
    # Idempotent: a second round finds nothing left to do.
    assert await keeper.run_once() == HousekeepingReport(0, 0)


async def test_a_follower_does_nothing(ledgers: CountingLedgers, clock: FakeClock) -> None:
    ledger = await seed(ledgers, clock)
    live = policy("state: {usage_retention: 1d}\n")
    keeper = Housekeeper(lambda: live, ledgers, leadership=StubLeader(False), clock=clock)

    assert await keeper.run_once() is None
    assert ledgers.opened == []  # it did not even open the ledger
    assert (await ledger.budget_status(BUDGET)).reserved_usd == Decimal(5)
    assert await attempts(ledger, clock) == 2
    assert keeper.status.skipped == "another replica leads"
    assert keeper.status.last_run_at == 0


async def test_housekeeping_follows_leadership_as_it_moves(
    ledgers: CountingLedgers, clock: FakeClock
) -> None:
    ledger = await seed(ledgers, clock)
    leader = StubLeader(False)
    live = policy()
    keeper = Housekeeper(lambda: live, ledgers, leadership=leader, clock=clock)

    assert await keeper.run_once() is None
    leader.is_leader = True  # this replica took the Lease over
    assert await keeper.run_once() == HousekeepingReport(1, 0)
    assert keeper.status.skipped == ""
    await ledger.reserve(ReservationRequest("again", Decimal(1), tokens=1, budgets=(BUDGET,)))
    clock.advance(DEFAULT_RESERVATION_TTL + timedelta(seconds=1))
    leader.is_leader = False  # lost it: the new leader does the next round, not this one
    assert await keeper.run_once() is None
    assert (await ledger.budget_status(BUDGET)).reserved_usd == Decimal(1)


async def test_without_election_the_only_control_plane_leads(
    ledgers: CountingLedgers, clock: FakeClock
) -> None:
    await seed(ledgers, clock)
    live = policy()
    keeper = Housekeeper(lambda: live, ledgers, clock=clock)  # switchboard up: no Lease
    assert keeper.leadership.is_leader
    # No retention declared: records are kept, reservations still expire.
    assert await keeper.run_once() == HousekeepingReport(1, 0)


async def test_a_sqlite_ledger_on_other_hosts_is_left_alone(
    ledgers: CountingLedgers, clock: FakeClock
) -> None:
    live = policy("state: {usage_retention: 1d}\n")
    keeper = Housekeeper(lambda: live, ledgers, leadership=StubLeader(True),
                         local_sqlite=False, clock=clock)
    assert await keeper.run_once() is None
    assert ledgers.opened == []
    assert keeper.status.skipped == "the SQLite ledger lives on the gateway pods"


async def test_nothing_to_do_before_a_policy_is_loaded(ledgers: CountingLedgers) -> None:
    keeper = Housekeeper(lambda: None, ledgers)
    assert await keeper.run_once() is None
    assert ledgers.opened == []


class FailingLedgers:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get(self, state: StateView) -> Ledger:
        raise self.error


@pytest.mark.parametrize("error", [LedgerError("redis ledger: connection refused"),
                                   RuntimeError("a bug")])
async def test_a_failed_round_is_reported_and_the_next_one_runs(error: Exception) -> None:
    live = policy()
    keeper = Housekeeper(lambda: live, FailingLedgers(error))
    assert await keeper.run_once() is None
    assert await keeper.run_once() is None
    assert keeper.failures_total == 2
    assert str(error) in keeper.status.last_error


async def test_the_loop_runs_a_round_every_interval_until_cancelled(
    ledgers: CountingLedgers, clock: FakeClock
) -> None:
    live = policy()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    keeper = Housekeeper(lambda: live, ledgers, interval=timedelta(seconds=7), clock=clock,
                         sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await keeper.run()
    assert slept == [7.0, 7.0, 7.0]
    assert len(ledgers.opened) == 3  # a round before each sleep, the first one at once


def test_the_interval_must_be_positive(ledgers: CountingLedgers) -> None:
    with pytest.raises(ValueError, match="positive"):
        Housekeeper(lambda: None, ledgers, interval=timedelta(0))
