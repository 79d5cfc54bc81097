"""Budgets stay exact under concurrency: coroutines, and separate OS processes.

The budget is $1.00 and each request reserves $0.03, so exactly 33 of 200 requests fit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path

from ext_proc.state.ledger import Ledger
from ext_proc.state.model import BudgetRule, RateLimitRule, ReservationRequest, scope_key
from ext_proc.state.periods import Period
from ext_proc.state.redis_ledger import RedisLedger
from ext_proc.state.sqlite_ledger import SqliteLedger
from tests.support.redis_server import RedisServer

BUDGET = BudgetRule("small", scope_key(team="t"), Decimal("1.00"), Period.MONTH)
ORG = BudgetRule("org", scope_key(), Decimal("1000"), Period.MONTH)
COST = Decimal("0.03")
FITS = 33
TOTAL = 200
_JOIN_TIMEOUT_S = 30


def request(rid: str) -> ReservationRequest:
    return ReservationRequest(
        rid,
        COST,
        tokens=10,
        budgets=(BUDGET, ORG),
        rate_limits=(RateLimitRule(scope_key(team="t"), tokens_per_minute=1_000_000),),
    )


async def reserve_many(ledger: Ledger, prefix: str, count: int) -> int:
    results = await asyncio.gather(
        *(ledger.reserve(request(f"{prefix}-{i}")) for i in range(count))
    )
    return sum(a.admitted for a in results)


async def assert_exact(ledger: Ledger, admitted: int) -> None:
    assert admitted == FITS
    status = await ledger.budget_status(BUDGET)
    assert status.reserved_usd == COST * FITS
    assert status.reserved_usd <= BUDGET.limit_usd
    assert (await ledger.budget_status(ORG)).reserved_usd == COST * FITS


async def test_sqlite_200_concurrent_reservations(tmp_path: Path) -> None:
    ledger = await SqliteLedger.open(tmp_path / "l.db")
    try:
        await assert_exact(ledger, await reserve_many(ledger, "r", TOTAL))
    finally:
        await ledger.close()


async def test_redis_200_concurrent_reservations(redis_server: RedisServer) -> None:
    ledger = RedisLedger.from_url(redis_server.url, prefix=f"c:{{{uuid.uuid4().hex}}}:")
    try:
        await assert_exact(ledger, await reserve_many(ledger, "r", TOTAL))
    finally:
        await ledger.close()


def _process_main(
    kind: str,
    target: str,
    prefix: str,
    count: int,
    barrier: Barrier,
    results: multiprocessing.Queue[int],
) -> None:
    async def run() -> int:
        ledger: Ledger
        if kind == "sqlite":
            ledger = await SqliteLedger.open(target)
        else:
            ledger = RedisLedger.from_url(target, prefix=prefix)
        try:
            await asyncio.to_thread(barrier.wait, _JOIN_TIMEOUT_S)
            return await reserve_many(ledger, f"p{os.getpid()}", count)
        finally:
            await ledger.close()

    results.put(asyncio.run(run()))


def run_processes(kind: str, target: str, prefix: str, processes: int) -> int:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process_main, args=(kind, target, prefix, TOTAL // processes, barrier, results)
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        counts = [results.get(timeout=_JOIN_TIMEOUT_S) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=_JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return sum(counts)


async def test_sqlite_four_processes_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    admitted = await asyncio.to_thread(run_processes, "sqlite", str(db), "p", 4)
    ledger = await SqliteLedger.open(db)
    try:
        await assert_exact(ledger, admitted)
    finally:
        await ledger.close()


async def test_redis_two_processes_share_budgets(redis_server: RedisServer) -> None:
    prefix = f"mp:{{{uuid.uuid4().hex}}}:"
    admitted = await asyncio.to_thread(run_processes, "redis", redis_server.url, prefix, 2)
    ledger = RedisLedger.from_url(redis_server.url, prefix=prefix)
    try:
        await assert_exact(ledger, admitted)
    finally:
        await ledger.close()
