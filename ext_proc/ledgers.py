"""The worker's ledger: opened on first use, for the store the current policy names."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog

from ext_proc.secrets import environment, resolve
from ext_proc.state.ledger import Ledger
from ext_proc.state.periods import Clock, system_clock
from ext_proc.state.sqlite_ledger import SqliteLedger
from ext_proc.view import StateView

log = structlog.get_logger("ledger")

STATE_DIR_ENV = "SWITCHBOARD_STATE_DIR"
LEDGER_FILE = "ledger.sqlite"


def default_state_dir() -> str:
    return os.environ.get(STATE_DIR_ENV) or str(
        Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        / "switchboard")


def sqlite_path(state: StateView, state_dir: str) -> str:
    return state.path or str(Path(state_dir) / LEDGER_FILE)


class Ledgers:
    def __init__(self, state_dir: str, secrets_dir: str, clock: Clock = system_clock) -> None:
        self._state_dir = state_dir
        self._secrets_dir = secrets_dir
        self._clock = clock
        self._open: dict[StateView, Ledger] = {}
        self._lock = asyncio.Lock()

    async def get(self, state: StateView) -> Ledger:
        ledger = self._open.get(state)
        if ledger is not None:
            return ledger
        async with self._lock:
            if state not in self._open:
                self._open[state] = await self._connect(state)
                log.info("ledger opened", backend=state.backend)
            return self._open[state]

    async def _connect(self, state: StateView) -> Ledger:
        if state.backend == "redis":
            # Imported here: the redis client is a fifth of a worker's start-up, which a
            # restarted worker pays while Envoy waits for it.
            from ext_proc.state.redis_ledger import RedisLedger

            url = await asyncio.to_thread(resolve, state.url_ref, environment(),
                                          self._secrets_dir)
            return RedisLedger.from_url(url.reveal(), clock=self._clock)
        path = sqlite_path(state, self._state_dir)
        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        return await SqliteLedger.open(path, clock=self._clock)

    async def close(self) -> None:
        for ledger in self._open.values():
            await ledger.close()
        self._open.clear()
