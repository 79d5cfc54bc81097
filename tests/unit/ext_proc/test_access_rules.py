"""The rules a caller counts against come back as the same objects each time they are asked
for: a record's spending charges are reused for the next record with the same rules' objects
(ext_proc/state/plan.py), whoever asks."""

from __future__ import annotations

from decimal import Decimal

from ext_proc.access import AccessView, Caller, ScopedBudget, TeamAccess
from ext_proc.state.model import BudgetRule, Period, RateLimitRule, scope_key

TEAM_LIMIT = RateLimitRule(scope_key(team="search"), 60, 1000)
TEAM_BUDGET = BudgetRule("search-monthly", scope_key(team="search"), Decimal(100), Period.MONTH)
ACCESS = AccessView(
    {"sha256:k1": TeamAccess("search", None, TEAM_LIMIT, (10, 500)),
     "sha256:k2": TeamAccess("search", None, TEAM_LIMIT, None)},
    (ScopedBudget(TEAM_BUDGET, "search", "", "", ""),))


def test_a_callers_rate_limits_are_one_tuple_per_caller() -> None:
    caller = Caller("search", "sha256:k1")
    limits = ACCESS.rate_limits(caller)
    assert limits == (TEAM_LIMIT, RateLimitRule(scope_key(key="sha256:k1"), 10, 500))
    assert ACCESS.rate_limits(Caller("search", "sha256:k1")) is limits
    assert ACCESS.rate_limits(Caller("search", "sha256:k2")) == (TEAM_LIMIT,)
    assert ACCESS.rate_limits(Caller("other", "sha256:unknown")) == ()


def test_a_callers_budget_rules_are_one_tuple_per_caller_model_and_providers() -> None:
    caller = Caller("search", "sha256:k1")
    rules = ACCESS.budget_rules(caller, "gpt-4o", ("oai",))
    assert rules == (TEAM_BUDGET,)
    assert ACCESS.budget_rules(Caller("search", "sha256:k1"), "gpt-4o", ["oai"]) is rules
