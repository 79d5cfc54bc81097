"""Turns a ReservationRequest into counter charges, and counter readings into an Admission.

Both ledgers share this module, so they differ only in how they apply charges atomically:
"if no enforced charge would pass its limit, apply them all; otherwise apply none".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from ext_proc.state.model import (
    Admission,
    BudgetRule,
    Denial,
    LimitKind,
    OnExceed,
    RateLimitRule,
    ReservationRequest,
    micros_to_usd,
    usd_to_micros_ceil,
)
from ext_proc.state.periods import Period, budget_window, minute_window

# Counters outlive their window so that a settle arriving late still finds them.
COUNTER_GRACE = timedelta(days=1)


class Unit(enum.StrEnum):
    USD_MICROS = "usd"
    TOKENS = "tok"
    REQUESTS = "req"


class Charge(NamedTuple):
    """One counter's share of a request. A tuple: every record makes one per budget."""

    key: str  # counter id, unique per scope and window
    limit: int
    amount: int
    unit: Unit
    enforce: bool  # False: counted but never refuses (warn budgets)
    refundable: bool  # False: counted as spent at once, never released (request counts)
    expires_at_ms: int  # counter may be dropped after this (clock time, ms)


@dataclass(frozen=True, slots=True)
class _Subject:
    kind: LimitKind
    name: str
    scope: str
    resets_at: datetime
    on_exceed: OnExceed
    downgrade_model: str | None


@dataclass(frozen=True, slots=True)
class ChargePlan:
    charges: tuple[Charge, ...]
    subjects: tuple[_Subject, ...]


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def budget_counter_key(rule: BudgetRule, window_start: datetime) -> str:
    return f"b|{rule.scope}|{rule.period}|{rule.tz}|{to_ms(window_start)}"


# Each budget counter's last window, key, limit and expiry: the same for every request in
# the window. Keyed by what they are made of (hashing a whole rule costs more than this).
_COUNTERS: dict[tuple[str, Period, str, Decimal],
                tuple[tuple[datetime, datetime], str, int, int]] = {}
_COUNTERS_MAX = 4096


def _budget_counter(rule: BudgetRule, window: tuple[datetime, datetime]) -> tuple[str, int, int]:
    """A budget's counter in one window (budget_window's tuple): its key, its limit in
    micro-dollars and when it may be dropped."""
    made_of = (rule.scope, rule.period, rule.tz, rule.limit_usd)
    last = _COUNTERS.get(made_of)
    if last is not None and last[0] is window:
        return last[1], last[2], last[3]
    if len(_COUNTERS) >= _COUNTERS_MAX:
        _COUNTERS.clear()
    start, end = window
    key, limit, expires = (budget_counter_key(rule, start), usd_to_micros_ceil(rule.limit_usd),
                           to_ms(end + COUNTER_GRACE))
    _COUNTERS[made_of] = (window, key, limit, expires)
    return key, limit, expires


def _budget_charge(rule: BudgetRule, cost_micros: int, now: datetime) -> tuple[Charge, datetime]:
    """`rule`'s charge of `cost_micros` in the window holding `now`, and when that ends."""
    window = budget_window(now, rule.period, rule.tz)
    key, limit_micros, expires_at_ms = _budget_counter(rule, window)
    end = window[1]
    return Charge(key=key, limit=limit_micros, amount=cost_micros, unit=Unit.USD_MICROS,
                  enforce=rule.on_exceed is not OnExceed.WARN, refundable=True,
                  expires_at_ms=expires_at_ms), end


def _rate_charge(limit: RateLimitRule, unit: Unit, per_minute: int, amount: int,
                 now: datetime) -> tuple[Charge, datetime]:
    """A tokens- or requests-per-minute charge in the minute holding `now`, and its end."""
    start, end = minute_window(now)
    return Charge(key=f"{unit}|{limit.scope}|{to_ms(start) // 60_000}", limit=per_minute,
                  amount=amount, unit=unit, enforce=True,
                  refundable=unit is not Unit.REQUESTS,
                  expires_at_ms=to_ms(end + COUNTER_GRACE)), end


def plan_charges(request: ReservationRequest, now: datetime) -> ChargePlan:
    charges: list[Charge] = []
    subjects: list[_Subject] = []
    cost = usd_to_micros_ceil(request.cost_usd)
    for rule in request.budgets:
        charge, end = _budget_charge(rule, cost, now)
        charges.append(charge)
        subjects.append(
            _Subject(
                LimitKind.BUDGET, rule.name, rule.scope, end, rule.on_exceed, rule.downgrade_model
            )
        )
    for limit in request.rate_limits:
        for kind, per_minute, amount, unit in (
            (LimitKind.REQUESTS_PER_MINUTE, limit.requests_per_minute, 1, Unit.REQUESTS),
            (LimitKind.TOKENS_PER_MINUTE, limit.tokens_per_minute, request.tokens, Unit.TOKENS),
        ):
            if per_minute is None:
                continue
            charge, end = _rate_charge(limit, unit, per_minute, amount, now)
            charges.append(charge)
            subjects.append(_Subject(kind, limit.scope, limit.scope, end, OnExceed.BLOCK, None))
    return ChargePlan(tuple(charges), tuple(subjects))


def spend_charges(
    budgets: tuple[BudgetRule, ...],
    rate_limits: tuple[RateLimitRule, ...],
    cost_usd: Decimal,
    tokens: int,
    now: datetime,
) -> tuple[Charge, ...]:
    """What an attempt actually spent, added to its budgets and tokens-per-minute counters.

    Request counts are left out: the admission already counted the request."""
    cost = usd_to_micros_ceil(cost_usd)
    return tuple([Charge(c.key, c.limit, cost if c.unit is Unit.USD_MICROS else tokens, c.unit,
                         c.enforce, c.refundable, c.expires_at_ms)
                  for c in _spending(budgets, rate_limits, now)])


# The last rules' spending charges, their amounts left at 0, and from when until when they
# hold: the policy's access view hands out one rules tuple per caller (and model), so the
# records of a write mostly share their rules' objects and each only fills in its amounts.
# The rules are held and compared by identity.
_LAST_SPENDING: list[tuple[tuple[BudgetRule, ...], tuple[RateLimitRule, ...], datetime,
                           datetime, tuple[Charge, ...]]] = []


def _spending(budgets: tuple[BudgetRule, ...], rate_limits: tuple[RateLimitRule, ...],
              now: datetime) -> tuple[Charge, ...]:
    if _LAST_SPENDING:
        last_budgets, last_limits, since, until, charges = _LAST_SPENDING[0]
        if budgets is last_budgets and rate_limits is last_limits and since <= now < until:
            return charges
    spent = [_budget_charge(rule, 0, now) for rule in budgets]
    spent += [_rate_charge(limit, Unit.TOKENS, limit.tokens_per_minute, 0, now)
              for limit in rate_limits if limit.tokens_per_minute is not None]
    charges = tuple(charge for charge, _ in spent)
    until = min((end for _, end in spent), default=now + COUNTER_GRACE)
    _LAST_SPENDING[:] = [(budgets, rate_limits, now, until, charges)]
    return charges


def is_over(charge: Charge, used: int) -> bool:
    return used + charge.amount > charge.limit


def blocks(charges: tuple[Charge, ...], used: list[int]) -> bool:
    return any(c.enforce and is_over(c, u) for c, u in zip(charges, used, strict=True))


def _display(charge: Charge, value: int) -> Decimal:
    return micros_to_usd(value) if charge.unit is Unit.USD_MICROS else Decimal(value)


def build_admission(
    request: ReservationRequest, plan: ChargePlan, used: list[int], admitted: bool
) -> Admission:
    """``used`` is each counter's spent + reserved *before* this request."""
    denials: list[Denial] = []
    warnings: list[Denial] = []
    for charge, subject, before in zip(plan.charges, plan.subjects, used, strict=True):
        if not is_over(charge, before):
            continue
        denial = Denial(
            kind=subject.kind,
            name=subject.name,
            scope=subject.scope,
            limit=_display(charge, charge.limit),
            used=_display(charge, before),
            requested=_display(charge, charge.amount),
            resets_at=subject.resets_at,
            on_exceed=subject.on_exceed,
            downgrade_model=subject.downgrade_model,
        )
        (denials if charge.enforce else warnings).append(denial)
    if admitted:
        return Admission(request.reservation_id, True, (), tuple(warnings))
    return Admission(request.reservation_id, False, tuple(denials), tuple(warnings))
