"""What a usage record charges its budgets, as its window moves: each window's counter is
kept and reused, and must follow the clock both ways and the rule's own limit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ext_proc.state.model import BudgetRule, RateLimitRule
from ext_proc.state.periods import Period
from ext_proc.state.plan import Unit, spend_charges

TEAM = BudgetRule(name="team", scope="team:search", limit_usd=Decimal(10), period=Period.DAY)


def budget_charge(rule: BudgetRule, cost: str, now: datetime) -> tuple[str, int, int, int]:
    (charge,) = spend_charges((rule,), (), Decimal(cost), 0, now)
    assert charge.unit is Unit.USD_MICROS
    return charge.key, charge.limit, charge.amount, charge.expires_at_ms


def test_a_budget_charge_follows_its_window_both_ways() -> None:
    day = datetime(2025, 3, 14, 12, tzinfo=UTC)
    first = budget_charge(TEAM, "0.0000011", day)
    assert first[1:3] == (10_000_000, 2)  # micro-dollars, rounded up
    later = budget_charge(TEAM, "1", day.replace(hour=23))
    assert later[0] == first[0] and later[2] == 1_000_000
    next_day = budget_charge(TEAM, "1", datetime(2025, 3, 15, 1, tzinfo=UTC))
    assert next_day[0] != first[0] and next_day[3] > first[3]
    assert budget_charge(TEAM, "1", day)[0] == first[0]  # a clock set back


def test_rules_sharing_a_counter_keep_their_own_limits() -> None:
    now = datetime(2025, 3, 14, 12, tzinfo=UTC)
    raised = BudgetRule(name="team", scope="team:search", limit_usd=Decimal(20),
                        period=Period.DAY)
    assert budget_charge(TEAM, "1", now)[:2] == (budget_charge(raised, "1", now)[0],
                                                 10_000_000)
    assert budget_charge(raised, "1", now)[1] == 20_000_000
    weekly = BudgetRule(name="team", scope="team:search", limit_usd=Decimal(10),
                        period=Period.WEEK)
    assert budget_charge(weekly, "1", now)[0] != budget_charge(TEAM, "1", now)[0]


def test_the_same_rules_charge_each_record_its_own_amounts_in_the_windows_of_its_time() -> None:
    """A write's records share their rules' objects, whose charges are reused while their
    windows hold: each record still gets its own amounts, and a new window its counters."""
    rules, limits = (TEAM,), (RateLimitRule("key:k", None, 1_000),)
    noon = datetime(2025, 3, 14, 12, tzinfo=UTC)

    def charged(cost: str, tokens: int, now: datetime) -> list[tuple[str, int]]:
        return [(c.key, c.amount) for c in spend_charges(rules, limits, Decimal(cost), tokens,
                                                          now)]

    first = charged("1", 10, noon)
    assert [amount for _, amount in first] == [1_000_000, 10]
    same_minute = charged("2", 20, noon.replace(second=30))
    assert same_minute == [(first[0][0], 2_000_000), (first[1][0], 20)]
    next_minute = charged("1", 10, noon.replace(minute=1))
    assert next_minute[0][0] == first[0][0] and next_minute[1][0] != first[1][0]
    next_day = charged("1", 10, datetime(2025, 3, 15, 1, tzinfo=UTC))
    assert next_day[0][0] != first[0][0]
    assert charged("1", 10, noon) == first  # a clock set back
