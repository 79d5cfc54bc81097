"""Usage records and their aggregation, run against both ledgers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ext_proc.metering.usage import Outcome, UsageRecord
from ext_proc.state import redis_ledger, sqlite_ledger
from ext_proc.state.ledger import ChargedRecord, Ledger
from ext_proc.state.model import BudgetRule, GroupBy, scope_key
from ext_proc.state.periods import Period
from ext_proc.state.redis_ledger import STREAM_SKEW, RedisLedger
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.support.redis_server import RedisServer
from tests.unit.ext_proc.state.conftest import FakeClock
from tests.unit.ext_proc.state.conftest import usage_record as record

MONTHLY = BudgetRule("org-monthly", scope_key(), Decimal("100"), Period.MONTH)


async def store(ledger: Ledger, *records: UsageRecord,
                budgets: tuple[BudgetRule, ...] = ()) -> None:
    await ledger.record_usage(*(ChargedRecord(r, budgets) for r in records))


async def test_records_are_aggregated(ledger: Ledger, clock: FakeClock) -> None:
    old = record(clock, "old", cost="5")
    await store(ledger, old)
    clock.advance(timedelta(hours=30))
    since = clock() - timedelta(hours=24)
    await store(ledger, record(clock, "r1", outcome=Outcome.UPSTREAM_ERROR, cost="0"))
    await store(ledger, record(clock, "r1", attempt=1, provider="bedrock"))
    await store(ledger, record(clock, "r2", cost="0.000000001", estimated=True))
    await store(ledger, record(clock, "r3", team="ads", model="llama", cost=None,
                               outcome=Outcome.CLIENT_DISCONNECT))

    by_team = await ledger.usage_summary("team", since)
    assert [r.group for r in by_team] == ["search", "ads"]
    search, ads = by_team
    assert search.attempts == 3
    assert search.cost_usd == Decimal("0.010000001")
    assert (search.input_tokens, search.output_tokens) == (300, 60)
    assert (search.cached_read_tokens, search.cache_creation_tokens) == (120, 30)
    assert search.reasoning_tokens == 15
    assert (search.failed_attempts, search.estimated_attempts) == (1, 1)
    assert (ads.unpriced_attempts, ads.cost_usd, ads.failed_attempts) == (1, Decimal(0), 1)


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("model", {"smart", "llama"}),
        ("provider", {"anthropic", "bedrock"}),
        ("provider_model", {"anthropic-model", "bedrock-model"}),
        ("key", {"sha256:search", "sha256:ads"}),
    ],
)
async def test_group_by(ledger: Ledger, clock: FakeClock, by: GroupBy, groups: set[str]) -> None:
    await store(ledger, record(clock, "a"))
    await store(ledger, record(clock, "b", provider="bedrock", team="ads", model="llama"))
    rows = await ledger.usage_summary(by, clock() - timedelta(minutes=1))
    assert {r.group for r in rows} == groups


async def test_rewriting_a_record_does_not_double_count(ledger: Ledger, clock: FakeClock) -> None:
    await store(ledger, record(clock, "a", cost="1"))
    await store(ledger, record(clock, "a", cost="2"))
    (row,) = await ledger.usage_summary("team", clock() - timedelta(minutes=1))
    assert (row.attempts, row.cost_usd) == (1, Decimal(2))


async def test_a_batch_charges_each_new_record_once(
    ledger: Ledger, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis writes two records a script call here: the batch spans three calls, a repeat of
    # "a" falling in the second.
    monkeypatch.setattr(redis_ledger, "RECORD_CALL_MAX", 2)
    await store(ledger, record(clock, "earlier", cost="1"), budgets=(MONTHLY,))
    # Three new records, one of them twice, and a repeat of the earlier one.
    await store(ledger, record(clock, "a", cost="2"), record(clock, "b", cost="4"),
                record(clock, "a", cost="2"), record(clock, "c", cost="8"),
                record(clock, "earlier", cost="1"), budgets=(MONTHLY,))
    assert (await ledger.budget_status(MONTHLY)).spent_usd == Decimal(15)
    (row,) = await ledger.usage_summary("team", clock() - timedelta(minutes=1))
    assert (row.attempts, row.cost_usd) == (4, Decimal(15))


# -- retention --------------------------------------------------------------------------------


async def test_sqlite_prune_deletes_records_older_than_the_cutoff(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_ledger, "_PRUNE_BATCH", 2)  # several batches
    ledger = await SqliteLedger.open(tmp_path / "ledger.db", clock=clock)
    try:
        for i in range(5):
            await store(ledger, record(clock, f"old{i}", cost="1"), budgets=(MONTHLY,))
        clock.advance(timedelta(hours=48))
        await store(ledger, record(clock, "new", cost="1"), budgets=(MONTHLY,))

        assert await ledger.prune_usage(clock() - timedelta(hours=24)) == 5
        (row,) = await ledger.usage_summary("team", clock() - timedelta(days=30))
        assert row.attempts == 1
        assert await ledger.prune_usage(clock() - timedelta(hours=24)) == 0
        # Budgets are counters of their own: pruning records never gives money back.
        assert (await ledger.budget_status(MONTHLY)).spent_usd == Decimal(6)
    finally:
        await ledger.close()


async def test_redis_prune_trims_by_storage_time_with_the_skew_margin(
    redis_server: RedisServer,
) -> None:
    now = datetime.now(UTC)
    ledger = RedisLedger.from_url(redis_server.url, clock=lambda: now,
                                  prefix=f"test:{{{uuid.uuid4().hex}}}:")
    clock = FakeClock(now)
    try:
        for i in range(3):
            await store(ledger, record(clock, f"r{i}"), budgets=(MONTHLY,))
        # Records stored less than STREAM_SKEW before the cutoff are kept: never early.
        assert await ledger.prune_usage(now + STREAM_SKEW - timedelta(seconds=30)) == 0
        assert len(await ledger.usage_summary("team", now - timedelta(hours=1))) == 1
        assert await ledger.prune_usage(now + STREAM_SKEW + timedelta(seconds=30)) == 3
        assert await ledger.usage_summary("team", now - timedelta(hours=1)) == []
        assert (await ledger.budget_status(MONTHLY)).spent_usd == Decimal("0.03")
    finally:
        await ledger.close()


async def test_redis_records_a_batch_after_the_server_forgot_its_scripts(
    redis_server: RedisServer, clock: FakeClock
) -> None:
    ledger = RedisLedger.from_url(redis_server.url, clock=clock,
                                  prefix=f"test:{{{uuid.uuid4().hex}}}:")
    other = aioredis.from_url(redis_server.url)
    try:
        await store(ledger, record(clock, "a", cost="1"), budgets=(MONTHLY,))
        await other.script_flush()  # as after a Redis restart
        await store(ledger, record(clock, "b", cost="2"), record(clock, "c", cost="4"),
                    budgets=(MONTHLY,))
        assert (await ledger.budget_status(MONTHLY)).spent_usd == Decimal(7)
        (row,) = await ledger.usage_summary("team", clock() - timedelta(minutes=1))
        assert row.attempts == 3
    finally:
        await other.aclose()
        await ledger.close()

