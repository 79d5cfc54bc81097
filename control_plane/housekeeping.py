"""Budget and usage housekeeping, written by one control-plane replica at a time.

Every ``reserve`` already expires overdue reservations as it goes, so admission is exact
without this loop. The loop keeps the stored state tidy when traffic is quiet or gone:

- it expires reservations whose worker never settled or released them (a crashed worker), so
  ``/budgets`` and the budget counters stop showing them as held;
- it deletes usage records older than the policy's ``state.usage_retention``.

Only the leader writes: with leader election (several control-plane replicas) a follower skips
every round, and the new leader picks up within one interval after it takes over the Lease.
Both writes are idempotent, so the short overlap when leadership moves (the old leader's round
already under way) cannot double anything. Without election (one replica, ``switchboard up``)
the only control plane always leads.

With a SQLite ledger the workers' file must be on this host (``switchboard up``, or the systemd
units sharing ``/var/lib/switchboard``). In Kubernetes each gateway pod keeps its own SQLite
file, out of the control plane's reach: there the loop leaves SQLite alone, every worker's
``reserve`` does the expiry and the workers apply the retention (ext_proc/retention.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from control_plane.policy import Policy
from control_plane.usage import LedgerSource, ledger_reachable, state_of
from ext_proc.state.ledger import LedgerError

log = structlog.get_logger("housekeeping")

DEFAULT_INTERVAL = timedelta(seconds=30)
# sweep_expired handles a bounded batch per call; a backlog takes several calls.
_SWEEP_ROUNDS = 100


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...


class AlwaysLeader:
    """The only control plane: no election, always leading."""

    @property
    def is_leader(self) -> bool:
        return True


@dataclass(frozen=True)
class HousekeepingReport:
    expired_reservations: int
    pruned_usage_records: int


@dataclass
class HousekeepingStatus:
    """What the admin API shows: the last round this replica ran, and how it ended."""

    last_run_at: float = 0.0
    last_report: HousekeepingReport | None = None
    last_error: str = ""
    skipped: str = ""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Housekeeper:
    def __init__(
        self,
        policy: Callable[[], Policy | None],
        ledgers: LedgerSource,
        *,
        leadership: Leadership | None = None,
        local_sqlite: bool = True,
        interval: timedelta = DEFAULT_INTERVAL,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("the housekeeping interval must be positive")
        self._policy = policy
        self._ledgers = ledgers
        self.leadership: Leadership = leadership or AlwaysLeader()
        self._local_sqlite = local_sqlite
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self.status = HousekeepingStatus()
        self.expired_total = 0
        self.pruned_total = 0
        self.failures_total = 0

    async def run(self) -> None:
        """A round now, then one every interval, until cancelled."""
        while True:
            await self.run_once()
            await self._sleep(self._interval.total_seconds())

    async def run_once(self) -> HousekeepingReport | None:
        """One round; None when this replica had nothing to do or could not do it."""
        skipped = self._skip_reason()
        if skipped != self.status.skipped:
            if skipped:
                log.info("housekeeping paused", reason=skipped)
            else:
                log.info("housekeeping resumed")
            self.status.skipped = skipped
        if skipped:
            return None
        policy = self._policy()
        assert policy is not None  # _skip_reason checked it
        try:
            report = await self._tidy(policy)
        except LedgerError as exc:
            self._failed(str(exc))
            return None
        except Exception as exc:  # never let housekeeping take xDS down with it
            self._failed(f"{type(exc).__name__}: {exc}")
            log.exception("housekeeping round crashed")
            return None
        self.status.last_run_at = time.time()
        self.status.last_report = report
        self.status.last_error = ""
        self.expired_total += report.expired_reservations
        self.pruned_total += report.pruned_usage_records
        if report.expired_reservations or report.pruned_usage_records:
            log.info("housekeeping", expired_reservations=report.expired_reservations,
                     pruned_usage_records=report.pruned_usage_records)
        return report

    def _failed(self, error: str) -> None:
        self.failures_total += 1
        self.status.last_error = error
        log.warning("housekeeping failed; retrying next round", error=error)

    def _skip_reason(self) -> str:
        if not self.leadership.is_leader:
            return "another replica leads"
        policy = self._policy()
        if policy is None:
            return "no policy loaded yet"
        if not ledger_reachable(policy, self._local_sqlite):
            return "the SQLite ledger lives on the gateway pods"
        return ""

    async def _tidy(self, policy: Policy) -> HousekeepingReport:
        ledger = await self._ledgers.get(state_of(policy))
        expired = 0
        for _ in range(_SWEEP_ROUNDS):
            swept = await ledger.sweep_expired()
            expired += swept
            if swept == 0 or not self.leadership.is_leader:
                break
        pruned = 0
        retention = policy.state.usage_retention
        if retention is not None and self.leadership.is_leader:
            pruned = await ledger.prune_usage(self._clock() - timedelta(seconds=retention))
        return HousekeepingReport(expired, pruned)
