from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ext_proc.state.model import (
    Admission,
    BudgetRule,
    Denial,
    LimitKind,
    OnExceed,
    scope_key,
    usd_to_micros_ceil,
    usd_to_nanos,
)
from ext_proc.state.periods import Period


def test_scope_key_is_canonical() -> None:
    assert scope_key() == "org"
    assert scope_key(team="a", model="b") == scope_key(model="b", team="a") == "model=b,team=a"


def test_money_rounding() -> None:
    assert usd_to_micros_ceil(Decimal("0.0000001")) == 1
    assert usd_to_micros_ceil(Decimal("1.5")) == 1_500_000
    assert usd_to_nanos(Decimal("0.0000000015")) == 2
    assert usd_to_nanos(Decimal("0.0000000025")) == 2


def test_downgrade_needs_a_model() -> None:
    with pytest.raises(ValueError, match="downgrade_model"):
        BudgetRule("b", "org", Decimal(1), Period.DAY, on_exceed=OnExceed.DOWNGRADE)
    with pytest.raises(ValueError, match="limit_usd"):
        BudgetRule("b", "org", Decimal(-1), Period.DAY)


def test_refusal_message_and_retry_after() -> None:
    resets = datetime(2025, 4, 1, tzinfo=UTC)
    denial = Denial(
        LimitKind.BUDGET,
        "team-monthly",
        "team=search",
        Decimal("500"),
        Decimal("499.99"),
        Decimal("0.02"),
        resets,
    )
    admission = Admission("r", False, (denial,))
    assert admission.message() == (
        "Budget 'team-monthly' (team=search) of $500 is exhausted ($499.99 used); "
        "it resets at 2025-04-01T00:00:00+00:00."
    )
    assert admission.retry_after_seconds(datetime(2025, 3, 31, 23, 59, tzinfo=UTC)) == 60
    assert admission.downgrade_model is None
