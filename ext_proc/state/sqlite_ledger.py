"""Ledger on one SQLite file (WAL), shared safely by every worker process of a node.

Every state change runs in a ``BEGIN IMMEDIATE`` transaction: the write lock is taken before
the counters are read, so check-and-reserve is atomic across processes, not only across
coroutines. Blocking sqlite3 calls run on one thread per ledger, never on the event loop;
that thread owns the connection. Writes queued while it is busy share the next transaction
(ext_proc/state/group_commit.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from ext_proc.metering.usage import UsageRecord
from ext_proc.state.group_commit import GroupCommitter
from ext_proc.state.ledger import (
    DEFAULT_RESERVATION_TTL,
    TOMBSTONE_TTL,
    ChargedRecord,
    LedgerError,
    ReservationExists,
)
from ext_proc.state.model import (
    Admission,
    BudgetRule,
    BudgetStatus,
    GroupBy,
    ReservationRequest,
    UsageRow,
    micros_to_usd,
    nanos_to_usd,
    usd_to_micros_ceil,
    usd_to_nanos,
)
from ext_proc.state.periods import Clock, budget_window, system_clock
from ext_proc.state.plan import (
    Charge,
    Unit,
    blocks,
    budget_counter_key,
    build_admission,
    plan_charges,
    to_ms,
)
from ext_proc.state.sqlite_schema import GROUP_COLUMNS, SCHEMA, upgrade

T = TypeVar("T")
Charges = tuple[Charge, ...]

_SWEEP_BATCH = 100
_PRUNE_BATCH = 5_000
_OPEN_DEADLINE_S = 30.0
_USAGE_COLUMNS = 19
_REQUEST_ID = 1  # its place in a usage row (_usage_values)
_USAGE_ROW = f"INTO usage VALUES ({', '.join('?' * _USAGE_COLUMNS)})"
_INSERT_USAGE = f"INSERT {_USAGE_ROW}"
_INSERT_NEW_USAGE = f"INSERT OR IGNORE {_USAGE_ROW}"
_REPLACE_USAGE = f"INSERT OR REPLACE {_USAGE_ROW}"


def settle_amount(unit: str, reserved: int, cost_usd: Decimal | None, tokens: int | None) -> int:
    """The real amount for one stored charge; unknown actuals keep the reservation."""
    if unit == Unit.USD_MICROS and cost_usd is not None:
        return usd_to_micros_ceil(cost_usd)
    if unit == Unit.TOKENS and tokens is not None:
        return tokens
    return reserved


def _new_records(conn: sqlite3.Connection, rows: list[tuple[tuple[object, ...], Charges]],
                 ) -> list[tuple[tuple[object, ...], Charges]]:
    """Stores the batch's records; the rows of those not stored before. All are new but
    after a retried write, so one statement for all, and row by row only when one was not."""
    conn.execute("SAVEPOINT records")
    try:
        conn.executemany(_INSERT_USAGE, [values for values, _ in rows])
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO records")
    else:
        conn.execute("RELEASE records")
        return rows
    conn.execute("RELEASE records")
    new = []
    for values, charges in rows:
        if conn.execute(_INSERT_NEW_USAGE, values).rowcount == 0:
            conn.execute(_REPLACE_USAGE, values)  # written before: replaced, not charged twice
        else:
            new.append((values, charges))
    return new


def _usage_values(record: UsageRecord) -> tuple[object, ...]:
    """A record as a row of the usage table, in its column order."""
    u = record.usage
    return (
        to_ms(record.time),
        record.request_id,
        record.attempt,
        record.team,
        record.key_id,
        record.requested_model,
        record.provider,
        record.provider_model,
        u.input,
        u.output,
        u.cached_read,
        u.cache_creation,
        u.reasoning,
        int(u.estimated),
        None if record.cost_usd is None else usd_to_nanos(record.cost_usd),
        record.status,
        str(record.outcome),
        record.latency_s,
        record.ttft_s,
    )


def _usage_row(r: tuple[object, ...]) -> UsageRow:
    ints = [int(str(v)) for v in r[1:]]  # SQLite returns int for every aggregate here
    return UsageRow(
        group=str(r[0]),
        attempts=ints[0],
        input_tokens=ints[1],
        output_tokens=ints[2],
        cached_read_tokens=ints[3],
        cache_creation_tokens=ints[4],
        reasoning_tokens=ints[5],
        cost_usd=nanos_to_usd(ints[6]),
        unpriced_attempts=ints[7],
        estimated_attempts=ints[8],
        failed_attempts=ints[9],
    )


class SqliteLedger:
    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = system_clock,
        reservation_ttl: timedelta = DEFAULT_RESERVATION_TTL,
        busy_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self._path = str(path)
        self._clock = clock
        self._reservation_ttl_ms = int(reservation_ttl.total_seconds() * 1000)
        self._busy_timeout_s = busy_timeout.total_seconds()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-ledger")
        self._conn: sqlite3.Connection | None = None
        self._writes = GroupCommitter(self._executor, self._connection)

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        clock: Clock = system_clock,
        reservation_ttl: timedelta = DEFAULT_RESERVATION_TTL,
        busy_timeout: timedelta = timedelta(seconds=10),
    ) -> SqliteLedger:
        """Open (creating if needed) the ledger file; use this rather than the constructor."""
        ledger = cls(path, clock=clock, reservation_ttl=reservation_ttl, busy_timeout=busy_timeout)
        try:
            await ledger._run(ledger._connect)
        except BaseException:
            ledger._executor.shutdown(wait=False)
            raise
        return ledger

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise LedgerError(f"sqlite ledger {self._path}: {exc}") from exc

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        # Several processes may create the file at once; switching to WAL needs a moment
        # with no other writer, so retry until a deadline.
        deadline = time.monotonic() + _OPEN_DEADLINE_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                upgrade(conn)
                conn.execute("COMMIT")
                break
            except sqlite3.OperationalError:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.05)
        self._conn = conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write transaction, committed with the writes queued beside it."""
        try:
            return await self._writes.write(fn)
        except sqlite3.Error as exc:
            raise LedgerError(f"sqlite ledger {self._path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("ledger is closed")
        return self._conn

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    # -- reservations -----------------------------------------------------------------------

    async def reserve(self, request: ReservationRequest) -> Admission:
        now = self._clock()
        plan = plan_charges(request, now)
        now_ms = to_ms(now)

        def work(conn: sqlite3.Connection) -> tuple[list[int], bool]:
            self._sweep(conn, now_ms)
            if conn.execute(
                "SELECT 1 FROM reservations WHERE id = ?", (request.reservation_id,)
            ).fetchone():
                raise ReservationExists(request.reservation_id)
            used = []
            for charge in plan.charges:
                row = conn.execute(
                    "SELECT settled + reserved FROM counters WHERE key = ?", (charge.key,)
                ).fetchone()
                used.append(int(row[0]) if row else 0)
            if blocks(plan.charges, used):
                return used, False
            stored = []
            for charge in plan.charges:
                column = "reserved" if charge.refundable else "settled"
                conn.execute(
                    f"INSERT INTO counters (key, {column}, expires_at) VALUES (?, ?, ?) "
                    f"ON CONFLICT (key) DO UPDATE SET {column} = {column} + excluded.{column}",
                    (charge.key, charge.amount, charge.expires_at_ms),
                )
                if charge.refundable:
                    stored.append([charge.key, charge.amount, charge.unit, charge.expires_at_ms])
            conn.execute(
                "INSERT INTO reservations (id, state, expires_at, charges) "
                "VALUES (?, 'active', ?, ?)",
                (request.reservation_id, now_ms + self._reservation_ttl_ms, json.dumps(stored)),
            )
            return used, True

        used, admitted = await self._write(work)
        return build_admission(request, plan, used, admitted)

    async def settle(
        self, reservation_id: str, *, cost_usd: Decimal | None, tokens: int | None
    ) -> bool:
        def amount(unit: str, reserved: int) -> int:
            return settle_amount(unit, reserved, cost_usd, tokens)

        return await self._write(lambda conn: self._finish(conn, reservation_id, amount))

    async def release(self, reservation_id: str) -> bool:
        return await self._write(
            lambda conn: self._finish(conn, reservation_id, lambda _u, _r: 0))

    async def release_when_recorded(self, reservation_id: str, attempts: int) -> bool | None:
        def work(conn: sqlite3.Connection) -> bool | None:
            row = conn.execute("SELECT recorded FROM reservations WHERE id = ?",
                               (reservation_id,)).fetchone()
            if row is not None and row[0] < attempts:
                return None
            return self._finish(conn, reservation_id, lambda _u, _r: 0)

        return await self._write(work)

    def _finish(
        self,
        conn: sqlite3.Connection,
        reservation_id: str,
        amount: Callable[[str, int], int],
    ) -> bool:
        row = conn.execute(
            "SELECT state, charges FROM reservations WHERE id = ?", (reservation_id,)
        ).fetchone()
        if row is None:
            return False
        state, charges = row
        for key, reserved, unit, expires_at in json.loads(charges):
            # An expired reservation no longer counts as reserved; only add what was spent.
            held = reserved if state == "active" else 0
            conn.execute(
                "INSERT INTO counters (key, settled, reserved, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET settled = settled + excluded.settled, "
                "reserved = reserved + excluded.reserved",
                (key, amount(unit, reserved), -held, expires_at),
            )
        conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
        return True

    def _sweep(self, conn: sqlite3.Connection, now_ms: int) -> int:
        rows = conn.execute(
            "SELECT id, charges FROM reservations WHERE state = 'active' AND expires_at <= ? "
            "LIMIT ?",
            (now_ms, _SWEEP_BATCH),
        ).fetchall()
        tombstone_until = now_ms + int(TOMBSTONE_TTL.total_seconds() * 1000)
        for reservation_id, charges in rows:
            for key, reserved, _unit, _expires in json.loads(charges):
                conn.execute(
                    "UPDATE counters SET reserved = reserved - ? WHERE key = ?", (reserved, key)
                )
            conn.execute(
                "UPDATE reservations SET state = 'expired', expires_at = ? WHERE id = ?",
                (tombstone_until, reservation_id),
            )
        conn.execute(
            "DELETE FROM reservations WHERE state = 'expired' AND expires_at <= ?", (now_ms,)
        )
        conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now_ms,))
        return len(rows)

    async def sweep_expired(self) -> int:
        now_ms = self._now_ms()
        return await self._write(lambda conn: self._sweep(conn, now_ms))

    async def budget_status(self, rule: BudgetRule) -> BudgetStatus:
        start, end = budget_window(self._clock(), rule.period, rule.tz)
        key = budget_counter_key(rule, start)

        def read() -> tuple[int, int]:
            assert self._conn is not None
            row = self._conn.execute(
                "SELECT settled, reserved FROM counters WHERE key = ?", (key,)
            ).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        settled, reserved = await self._run(read)
        return BudgetStatus(rule, micros_to_usd(settled), micros_to_usd(reserved), start, end)

    # -- usage records ----------------------------------------------------------------------

    async def record_usage(self, *records: ChargedRecord) -> None:
        now = self._clock()
        rows = [(_usage_values(c.record), c.charges(now)) for c in records]

        def write(conn: sqlite3.Connection) -> None:
            new = _new_records(conn, rows)
            # Counted on their request's reservation, if it holds one, for its release.
            conn.executemany("UPDATE reservations SET recorded = recorded + 1 WHERE id = ?",
                             [(values[_REQUEST_ID],) for values, _ in new])
            # Summed per counter first: the records of a batch mostly charge the same few.
            totals: dict[str, list[int]] = {}
            for _, charges in new:
                for charge in charges:
                    total = totals.setdefault(charge.key, [0, charge.expires_at_ms])
                    total[0] += charge.amount
            conn.executemany(
                "INSERT INTO counters (key, settled, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET settled = settled + excluded.settled",
                [(key, amount, expires_at_ms) for key, (amount, expires_at_ms) in totals.items()])

        await self._write(write)

    async def usage_summary(self, by: GroupBy, since: datetime) -> list[UsageRow]:
        column = GROUP_COLUMNS[by]  # a fixed whitelist, so the f-string below is safe
        query = (
            f"SELECT {column}, COUNT(*), SUM(input_tokens), SUM(output_tokens), "
            "SUM(cached_read), SUM(cache_creation), SUM(reasoning), "
            "COALESCE(SUM(cost_nanos), 0), SUM(cost_nanos IS NULL), SUM(estimated), "
            "SUM(outcome != 'ok') "
            f"FROM usage WHERE time_ms >= ? GROUP BY {column}"
        )

        def read() -> list[UsageRow]:
            assert self._conn is not None
            cursor = self._conn.execute(query, (to_ms(since.astimezone(UTC)),))
            return [_usage_row(tuple(r)) for r in cursor.fetchall()]

        rows = await self._run(read)
        return sorted(rows, key=lambda row: (-row.cost_usd, -row.attempts, row.group))

    async def prune_usage(self, before: datetime) -> int:
        before_ms = to_ms(before.astimezone(UTC))

        def delete_batch(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM usage WHERE rowid IN "
                "(SELECT rowid FROM usage WHERE time_ms < ? LIMIT ?)",
                (before_ms, _PRUNE_BATCH),
            )
            return int(cursor.rowcount)

        # One short transaction per batch, so the workers' writes are never held up for long.
        # The freed pages are reused by later records; the file does not grow again.
        total = 0
        while True:
            deleted: int = await self._write(delete_batch)
            total += deleted
            if deleted < _PRUNE_BATCH:
                return total

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._run(shut)
        finally:
            self._executor.shutdown(wait=True)
