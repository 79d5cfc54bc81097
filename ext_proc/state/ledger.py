"""The Ledger contract: budgets, rate limits and usage records behind one async interface.

Request path::

    admission = await ledger.reserve(ReservationRequest(...))   # before choosing to proxy
    if not admission.admitted: answer 429 with admission.message()
    ... proxy ...
    await ledger.settle(request_id, cost_usd=..., tokens=...)   # real cost, once at the end
    # or, when nothing was served and nothing billed:
    await ledger.release(request_id)

A reservation never settled or released stops counting ``reservation_ttl`` after it was made
(a crashed worker cannot pin a budget forever). A settle that arrives after that still charges
the real cost, so a slow request is never free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from ext_proc.metering.usage import UsageRecord
from ext_proc.state.model import (
    Admission,
    BudgetRule,
    BudgetStatus,
    GroupBy,
    RateLimitRule,
    ReservationRequest,
    UsageRow,
)
from ext_proc.state.plan import Charge, spend_charges

# Longer than the longest request the gateway lets run (route timeouts x attempts), or a
# reservation would stop counting while its request is still streaming.
DEFAULT_RESERVATION_TTL = timedelta(minutes=15)
# Expired reservations are remembered this long, so a late settle charges the real cost once.
TOMBSTONE_TTL = timedelta(days=1)


class LedgerError(Exception):
    """The store failed; the caller decides between failing open and failing closed."""


class ReservationExists(LedgerError):
    """``reserve`` was called twice with the same reservation id."""


@dataclass(frozen=True, slots=True)
class ChargedRecord:
    """An attempt's usage record, with the budgets its cost counts against and the
    tokens-per-minute limits its tokens count against."""

    record: UsageRecord
    budgets: tuple[BudgetRule, ...] = ()
    rate_limits: tuple[RateLimitRule, ...] = ()

    def charges(self, now: datetime) -> tuple[Charge, ...]:
        """What the record adds to its counters in the windows holding `now`."""
        return spend_charges(self.budgets, self.rate_limits,
                             self.record.cost_usd or Decimal(0), self.record.usage.total, now)


class Ledger(Protocol):
    async def reserve(self, request: ReservationRequest) -> Admission:
        """Check every budget and rate limit of the request and reserve all or none."""
        ...

    async def settle(
        self, reservation_id: str, *, cost_usd: Decimal | None, tokens: int | None
    ) -> bool:
        """Replace the reservation with the real cost and tokens (None keeps the reserved
        amount, the conservative choice). False if it was already settled or released."""
        ...

    async def release(self, reservation_id: str) -> bool:
        """Give the reservation back (request counts stay). False if already finished."""
        ...

    async def release_when_recorded(self, reservation_id: str, attempts: int) -> bool | None:
        """``release``, but only once the usage records of attempts 1..``attempts`` of the
        request (``reservation_id`` is its request id) are stored: released before its charges,
        a request would count for nothing in between. None: not yet, ask again later."""
        ...

    async def budget_status(self, rule: BudgetRule) -> BudgetStatus:
        """Spend and reservations of the rule's current window."""
        ...

    async def sweep_expired(self) -> int:
        """Expire overdue reservations now (``reserve`` also does this as it goes)."""
        ...

    async def record_usage(self, *records: ChargedRecord) -> None:
        """Store each attempt's record and, in the same atomic step, add its cost to its
        budgets and its tokens to its tokens-per-minute limits (never refused: the attempt
        has happened). An unpriced attempt adds $0 and is counted as unpriced. A record
        stored again (a retried write: the same time, request id and attempt) replaces the
        first and charges nothing again.
        Several records at once share one write."""
        ...

    async def usage_summary(self, by: GroupBy, since: datetime) -> list[UsageRow]:
        """Attempts since ``since`` grouped by ``by``, most expensive first."""
        ...

    async def prune_usage(self, before: datetime) -> int:
        """Delete usage records older than ``before`` (retention); returns how many went.
        Budget counters are not touched: they expire with their windows on their own."""
        ...

    async def close(self) -> None: ...
