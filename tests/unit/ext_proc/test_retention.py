"""`state.usage_retention` applied by the workers to the SQLite ledger they write: compiled into
their view, old records deleted from a real SQLite file, the rest kept, and a failing round
logged and retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from control_plane.compiler.processor import processor_resource
from control_plane.policy import load_documents
from ext_proc.ledgers import Ledgers
from ext_proc.retention import prune_once, prune_periodically
from ext_proc.state.ledger import ChargedRecord, LedgerError
from ext_proc.state.sqlite_ledger import SqliteLedger
from ext_proc.view import ProcessorView, StateView, build_view
from tests.unit.ext_proc.state.conftest import FakeClock, usage_record

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def test_the_policys_retention_reaches_the_workers_view(tmp_path: Path) -> None:
    config = processor_resource(load_documents({"p.yaml": "state: {usage_retention: 90d}\n"}))
    view = await build_view("v", config, str(tmp_path))
    assert view.usage_retention_s == 90 * 86400
    kept = processor_resource(load_documents({"p.yaml": "providers: {}\n"}))
    assert (await build_view("v", kept, str(tmp_path))).usage_retention_s == 0


async def test_records_older_than_the_retention_are_deleted_from_the_sqlite_file(
        tmp_path: Path) -> None:
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    view = ProcessorView("v", {}, state=StateView(), usage_retention_s=86400)
    ledger = await ledgers.get(view.state)
    try:
        await ledger.record_usage(*(ChargedRecord(usage_record(FakeClock(NOW - age), rid))
                                    for rid, age in [("old", timedelta(days=2)),
                                                     ("older", timedelta(days=9)),
                                                     ("recent", timedelta(hours=23))]))
        assert await prune_once(view, ledgers, now=lambda: NOW) == 2
        rows = await ledger.usage_summary("team", NOW - timedelta(days=30))
        assert [row.attempts for row in rows] == [1]  # "recent" alone
        assert await prune_once(view, ledgers, now=lambda: NOW) == 0  # a repeat: nothing
    finally:
        await ledgers.close()


@pytest.mark.parametrize("view", [
    ProcessorView("v", {}, state=StateView(), usage_retention_s=0),  # the policy keeps all
    ProcessorView("v", {}, state=StateView("redis", url_ref="env:UNSET"),
                  usage_retention_s=86400),  # the control plane's to prune
])
async def test_nothing_is_pruned_without_a_retention_or_from_redis(
        tmp_path: Path, view: ProcessorView) -> None:
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    assert await prune_once(view, ledgers) == 0
    assert not ledgers._open  # no ledger was even opened


async def test_a_failing_round_is_logged_and_the_next_one_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[datetime] = []

    async def failing(self: SqliteLedger, before: datetime) -> int:
        rounds.append(before)
        raise LedgerError("database is locked")

    monkeypatch.setattr(SqliteLedger, "prune_usage", failing)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise RuntimeError("enough")

    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    view = ProcessorView("v", {}, state=StateView(), usage_retention_s=60)
    with capture_logs() as logs, pytest.raises(RuntimeError, match="enough"):
        await prune_periodically(lambda: view, ledgers, interval_s=600, sleep=sleep)
    await ledgers.close()
    assert 0 <= waits[0] <= 600 and waits[1:] == [600, 600]  # a random start, then regular
    assert len(rounds) == 2
    failed = [e for e in logs if e["event"] == "usage records not pruned; retrying next round"]
    assert [e["error"] for e in failed] == ["database is locked"] * 2
