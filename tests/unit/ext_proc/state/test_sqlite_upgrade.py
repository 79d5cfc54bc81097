"""A SQLite ledger file made by an earlier version, whose usage table was keyed by request id
and whose reservations did not count their records, still works once opened."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from ext_proc.state.ledger import ChargedRecord
from ext_proc.state.sqlite_ledger import SqliteLedger
from ext_proc.state.sqlite_schema import SCHEMA
from tests.unit.ext_proc.state.conftest import FakeClock, usage_record
from tests.unit.ext_proc.state.test_ledger_budgets import TEAM, req

# The earlier schema's two differences from SCHEMA.
EARLIER_SCHEMA = (SCHEMA
                  .replace(",\n    recorded   INTEGER NOT NULL DEFAULT 0  -- usage records of "
                           "the request stored so far", "")
                  .replace("UNIQUE (time_ms, request_id, attempt)",
                           "PRIMARY KEY (request_id, attempt)")
                  + "CREATE INDEX IF NOT EXISTS usage_time ON usage (time_ms);")


def _columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


async def test_an_earlier_ledger_counts_records_and_releases(tmp_path: Path,
                                                             clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(EARLIER_SCHEMA)
    assert "recorded" not in _columns(path, "reservations")

    ledger = await SqliteLedger.open(path, clock=clock)
    try:
        assert "recorded" in _columns(path, "reservations")
        await ledger.reserve(req("a", "0.90"))
        first = ChargedRecord(usage_record(clock, "a", attempt=1), (TEAM,))
        await ledger.record_usage(first)
        clock.advance(timedelta(seconds=1))
        # The same attempt's record again, later: the earlier key (request id, attempt)
        # replaces it, and charges nothing again.
        await ledger.record_usage(ChargedRecord(usage_record(clock, "a", attempt=1), (TEAM,)))
        assert await ledger.release_when_recorded("a", 2) is None
        await ledger.record_usage(ChargedRecord(usage_record(clock, "a", attempt=2), (TEAM,)))
        assert await ledger.release_when_recorded("a", 2) is True
        status = await ledger.budget_status(TEAM)
        assert (status.spent_usd, status.reserved_usd) == (Decimal("0.02"), Decimal(0))
        (row,) = await ledger.usage_summary("team", clock() - timedelta(minutes=1))
        assert row.attempts == 2
    finally:
        await ledger.close()


async def test_a_new_ledger_keys_its_usage_by_time_first(tmp_path: Path,
                                                         clock: FakeClock) -> None:
    """Records arrive in time order, so each write appends to the same few pages; a key
    led by the request's random id gave each record a page of its own."""
    ledger = await SqliteLedger.open(tmp_path / "ledger.db", clock=clock)
    await ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        indexes = [(row[1], row[2]) for row in conn.execute("PRAGMA index_list(usage)")]
        [(name, unique)] = indexes
        assert unique == 1
        assert [row[2] for row in conn.execute(f"PRAGMA index_info({name})")] == [
            "time_ms", "request_id", "attempt"]
