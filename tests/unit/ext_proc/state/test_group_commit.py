"""Group commit: writes queued together share a transaction, and fail alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ext_proc.state.group_commit import GroupCommitter


class Store:
    """A connection on its own thread that counts the transactions it commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.commits = 0
        self.conn: sqlite3.Connection | None = None
        self.executor.submit(self._open, path).result()
        self.writer = GroupCommitter(self.executor, self.connection)

    def _open(self, path: Path) -> None:
        # No busy wait: a locked file fails a batch at once.
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=0)
        self.conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")

        def count(sql: str) -> None:
            if sql == "COMMIT":
                self.commits += 1

        self.conn.set_trace_callback(count)

    def connection(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    def rows(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            return dict(self.connection().execute("SELECT k, v FROM t").fetchall())

        return self.executor.submit(read).result()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.executor.submit(lambda: s.connection().close()).result()
    s.executor.shutdown()


def insert(key: str, value: int):  # type: ignore[no-untyped-def]
    def write(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?, ?)", (key, value))
        return key

    return write


async def test_an_idle_writer_commits_each_write_at_once(store: Store) -> None:
    assert await store.writer.write(insert("a", 1)) == "a"
    assert await store.writer.write(insert("b", 2)) == "b"
    assert store.commits == 2
    assert store.rows() == {"a": 1, "b": 2}


async def test_writes_queued_while_one_commits_share_the_next_transaction(store: Store) -> None:
    gate = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        gate.wait(5)
        conn.execute("INSERT INTO t VALUES ('first', 0)")

    first = asyncio.create_task(store.writer.write(slow))
    await asyncio.sleep(0.05)  # the thread is now inside the first transaction
    rest = [asyncio.create_task(store.writer.write(insert(f"k{i}", i))) for i in range(50)]
    await asyncio.sleep(0.05)
    gate.set()
    await first
    assert await asyncio.gather(*rest) == [f"k{i}" for i in range(50)]
    assert store.commits == 2  # the first write alone, then the fifty together
    assert len(store.rows()) == 51


async def test_a_failing_write_is_undone_alone(store: Store) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('half', 1)")
        raise ValueError("refused")

    gate = threading.Event()
    blocker = asyncio.create_task(store.writer.write(lambda conn: gate.wait(5)))
    await asyncio.sleep(0.05)
    before = asyncio.create_task(store.writer.write(insert("before", 1)))
    failing = asyncio.create_task(store.writer.write(half_then_fail))
    duplicate = asyncio.create_task(store.writer.write(insert("before", 2)))
    after = asyncio.create_task(store.writer.write(insert("after", 3)))
    gate.set()
    await blocker
    assert await before == "before"
    with pytest.raises(ValueError, match="refused"):
        await failing
    with pytest.raises(sqlite3.IntegrityError):
        await duplicate
    assert await after == "after"
    assert store.rows() == {"before": 1, "after": 3}


async def test_a_batch_that_cannot_begin_fails_every_write_in_it(store: Store) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    results = await asyncio.gather(store.writer.write(insert("x", 1)),
                                   store.writer.write(insert("y", 2)), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
    other.execute("ROLLBACK")
    other.close()
    assert await store.writer.write(insert("z", 3)) == "z"
    assert store.rows() == {"z": 3}


async def test_a_cancelled_caller_does_not_stop_the_batch(store: Store) -> None:
    gate = threading.Event()
    blocker = asyncio.create_task(store.writer.write(lambda conn: gate.wait(5)))
    await asyncio.sleep(0.05)
    cancelled = asyncio.create_task(store.writer.write(insert("c", 1)))
    kept = asyncio.create_task(store.writer.write(insert("k", 2)))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await blocker
    assert await kept == "k"
    assert store.rows() == {"c": 1, "k": 2}
