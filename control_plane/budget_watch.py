"""Which budgets still have headroom, for Envoy's own admission (compiler/lane.py).

Every second, each budget's spend and reservations are read from the ledger the workers
write. A budget with more than `gateway.budget_headroom` of its limit left lets Envoy admit
the requests that count against it; any other budget sends them to a worker, which reserves
each one's worst case and refuses exactly at the limit. Whatever cannot be read (no ledger
within reach, the store down, a policy just applied) counts as no headroom: the worker decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Protocol

import structlog

from control_plane.compiler.lane import admits_in_envoy
from control_plane.policy import Policy
from control_plane.usage import LedgerSource, ledger_reachable, state_of
from ext_proc.access import scoped_budget
from protos.switchboard.v1 import processor_pb2

log = structlog.get_logger("budget_watch")

INTERVAL_S = 1.0


class Lane(Protocol):
    """The control plane, as this loop sees it."""

    @property
    def policy(self) -> Policy | None: ...

    @property
    def local_sqlite(self) -> bool: ...

    @property
    def budgets(self) -> Mapping[str, processor_pb2.Budget]: ...

    def set_budget_headroom(self, policy: Policy, names: frozenset[str]) -> None: ...


class BudgetWatch:
    def __init__(self, lane: Lane, ledgers: LedgerSource, *, interval_s: float = INTERVAL_S,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._lane = lane
        self._ledgers = ledgers
        self._interval_s = interval_s
        self._sleep = sleep

    async def run(self) -> None:
        while True:
            await self.run_once()
            await self._sleep(self._interval_s)

    async def run_once(self) -> frozenset[str] | None:
        """The budgets found with headroom; None when the policy has no lane."""
        policy = self._lane.policy
        if policy is None or not admits_in_envoy(policy):
            return None
        try:
            names = await self._with_headroom(policy)
        except Exception as exc:  # the worker decides until the ledger answers again
            log.error("budgets not read; workers admit every budgeted request",
                      error=f"{type(exc).__name__}: {exc}")
            names = frozenset()
        self._lane.set_budget_headroom(policy, names)
        return names

    async def _with_headroom(self, policy: Policy) -> frozenset[str]:
        budgets = self._lane.budgets
        if not budgets or not ledger_reachable(policy, self._lane.local_sqlite):
            return frozenset()
        ledger = await self._ledgers.get(state_of(policy))
        share = Decimal(str(policy.gateway.budget_headroom))
        names = set()
        for name, budget in budgets.items():
            rule = scoped_budget(name, budget).rule
            status = await ledger.budget_status(rule)
            if status.remaining_usd > rule.limit_usd * share:
                names.add(name)
        return frozenset(names)

