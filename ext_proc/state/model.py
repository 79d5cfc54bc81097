"""Values exchanged with a Ledger: rules, reservation requests, admission decisions, rows.

Money units (see docs/state.md):
- budget counters hold integer micro-USD, charged with ceiling rounding so rounding never lets
  spend exceed a limit; micro-USD keeps counters exact as Lua doubles up to $9 billion;
- usage records hold integer nano-USD (round half even), so tiny requests still add up.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Literal

from ext_proc.state.periods import Period

MICROS_PER_USD = Decimal(1_000_000)
NANOS_PER_USD = Decimal(1_000_000_000)

GroupBy = Literal["team", "model", "provider_model", "provider", "key"]


def usd_to_micros_ceil(usd: Decimal) -> int:
    return int((usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def micros_to_usd(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


def usd_to_nanos(usd: Decimal) -> int:
    return int((usd * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def scope_key(**parts: str) -> str:
    """Canonical scope string: ``scope_key()`` is the org, ``scope_key(team="a", model="b")``
    is ``model=b,team=a`` whatever the argument order."""
    if not parts:
        return "org"
    return ",".join(f"{name}={parts[name]}" for name in sorted(parts))


class OnExceed(enum.StrEnum):
    BLOCK = "block"
    WARN = "warn"
    DOWNGRADE = "downgrade"


@dataclass(frozen=True, slots=True)
class BudgetRule:
    name: str  # policy name, shown in messages
    scope: str  # from scope_key(); rules with equal scope, period and tz share one counter
    limit_usd: Decimal
    period: Period
    tz: str = "UTC"
    on_exceed: OnExceed = OnExceed.BLOCK
    downgrade_model: str | None = None  # required when on_exceed is DOWNGRADE

    def __post_init__(self) -> None:
        if self.limit_usd < 0:
            raise ValueError("limit_usd must be >= 0")
        if (self.on_exceed is OnExceed.DOWNGRADE) != (self.downgrade_model is not None):
            raise ValueError("downgrade_model is required exactly when on_exceed is downgrade")


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    scope: str  # e.g. scope_key(team="search") or scope_key(key="sha256:...")
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    reservation_id: str  # the request id; settle/release use it
    cost_usd: Decimal  # worst case: estimated input + max output at list price; 0 if unpriced
    tokens: int  # estimated input + max output, charged to tokens-per-minute limits
    budgets: tuple[BudgetRule, ...] = ()
    rate_limits: tuple[RateLimitRule, ...] = ()

    def __post_init__(self) -> None:
        if self.cost_usd < 0 or self.tokens < 0:
            raise ValueError("cost_usd and tokens must be >= 0")


class LimitKind(enum.StrEnum):
    BUDGET = "budget"
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"


@dataclass(frozen=True, slots=True)
class Denial:
    """A limit the request would push past (a refusal, or a warning for warn budgets)."""

    kind: LimitKind
    name: str
    scope: str
    limit: Decimal  # USD for budgets, a count for rate limits
    used: Decimal  # spent + reserved before this request, same unit
    requested: Decimal
    resets_at: datetime
    on_exceed: OnExceed = OnExceed.BLOCK
    downgrade_model: str | None = None

    def message(self) -> str:
        resets = self.resets_at.isoformat()
        if self.kind is LimitKind.BUDGET:
            return (
                f"Budget '{self.name}' ({self.scope}) of ${self.limit} is exhausted "
                f"(${self.used} used); it resets at {resets}."
            )
        unit = "requests" if self.kind is LimitKind.REQUESTS_PER_MINUTE else "tokens"
        return (
            f"Rate limit of {self.limit} {unit} per minute for {self.scope} reached; "
            f"it resets at {resets}."
        )


@dataclass(frozen=True, slots=True)
class Admission:
    reservation_id: str
    admitted: bool
    denials: tuple[Denial, ...] = ()  # why it was refused (empty when admitted)
    warnings: tuple[Denial, ...] = ()  # warn budgets over their limit; request admitted

    @property
    def downgrade_model(self) -> str | None:
        """The model to retry with when every refusal is a downgrade budget."""
        if self.admitted or not self.denials:
            return None
        if all(d.on_exceed is OnExceed.DOWNGRADE for d in self.denials):
            return self.denials[0].downgrade_model
        return None

    def message(self) -> str:
        return " ".join(d.message() for d in self.denials)

    def retry_after_seconds(self, now: datetime) -> int:
        """For a Retry-After header: when the latest refusing limit resets."""
        if not self.denials:
            return 0
        latest = max(d.resets_at for d in self.denials)
        return max(1, math.ceil((latest - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    rule: BudgetRule
    spent_usd: Decimal
    reserved_usd: Decimal
    window_start: datetime
    resets_at: datetime

    @property
    def remaining_usd(self) -> Decimal:
        return max(Decimal(0), self.rule.limit_usd - self.spent_usd - self.reserved_usd)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of ``usage_summary``; ``cost_usd`` sums the priced attempts only."""

    group: str
    attempts: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    unpriced_attempts: int
    estimated_attempts: int
    failed_attempts: int
