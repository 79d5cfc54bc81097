"""Natural group commit for a SQLite connection owned by one thread.

Every write the event loop asks for while the thread is busy joins the next batch; a batch is
one ``BEGIN IMMEDIATE`` … ``COMMIT`` with one savepoint per write, so a failing write is undone
alone and the others commit. An idle ledger commits each write at once (no added delay); a
busy one commits many per transaction: one write lock, one WAL append and one wake-up of the
event loop for the whole batch instead of one per write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

Write = Callable[[sqlite3.Connection], Any]


class GroupCommitter:
    def __init__(self, executor: Executor, connection: Callable[[], sqlite3.Connection]) -> None:
        self._executor = executor
        self._connection = connection
        self._queued: list[tuple[Write, asyncio.Future[Any]]] = []
        self._committing = False

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction, shared with the writes queued beside it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((fn, future))
        if not self._committing:
            self._commit_next()
        return await future

    def _commit_next(self) -> None:
        batch, self._queued = self._queued, []
        self._committing = True
        done = asyncio.get_running_loop().run_in_executor(
            self._executor, self._commit, [fn for fn, _ in batch])
        done.add_done_callback(lambda outcome: self._settle(batch, outcome))

    def _settle(self, batch: list[tuple[Write, asyncio.Future[Any]]],
                outcome: asyncio.Future[list[tuple[bool, Any]]]) -> None:
        self._committing = False
        error = asyncio.CancelledError() if outcome.cancelled() else outcome.exception()
        for index, (_, future) in enumerate(batch):
            if future.done():  # its caller was cancelled; the write happened all the same
                continue
            if error is not None:
                future.set_exception(error)
                continue
            ok, value = outcome.result()[index]
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if self._queued:
            self._commit_next()

    def _commit(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        """On the connection's thread: every write of the batch in one transaction."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        results: list[tuple[bool, Any]] = []
        try:
            for fn in writes:
                conn.execute("SAVEPOINT write")
                try:
                    results.append((True, fn(conn)))
                except Exception as exc:  # this write's failure is its caller's, not the batch's
                    conn.execute("ROLLBACK TO write")
                    results.append((False, exc))
                conn.execute("RELEASE write")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results
