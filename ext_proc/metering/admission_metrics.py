"""Prometheus counters of admission: what the router-level call decided (and Envoy's lane,
which only admits, counted when the request's access-log entry arrives), and which budgets
were exceeded and what that did to the request.

Labels are bounded by the policy: a team name, a model name from the policy (empty when the
client named none the policy knows), a budget name, and short fixed lists.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from ext_proc.metering.metrics import never_failing
from ext_proc.state.model import Denial, LimitKind


class AdmissionOutcome(enum.StrEnum):
    ADMITTED = "admitted"
    DOWNGRADED = "downgraded"  # admitted for the downgrade model
    UNKNOWN_MODEL = "unknown_model"  # passed on; the route answers 400 or 404
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403: the team may not use the model
    BUDGET_EXCEEDED = "budget_exceeded"  # 429, at least one budget refused
    RATE_LIMITED = "rate_limited"  # 429, only rate limits refused
    STORE_UNAVAILABLE = "store_unavailable"  # 503: the usage store failed


class BudgetAction(enum.StrEnum):
    BLOCKED = "blocked"  # the request was refused (429)
    WARNED = "warned"  # admitted with x-switchboard-budget-warning
    DOWNGRADED = "downgraded"  # admitted for the budget's downgrade model


def refusal_outcome(denials: Iterable[Denial]) -> AdmissionOutcome:
    if any(d.kind is LimitKind.BUDGET for d in denials):
        return AdmissionOutcome.BUDGET_EXCEEDED
    return AdmissionOutcome.RATE_LIMITED


class AdmissionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.admissions = Counter(
            "switchboard_admissions",
            "Requests seen by admission (the router-level call or Envoy's lane), by its decision.",
            ["team", "gen_ai_request_model", "outcome"],
            registry=registry,
        )
        self.budgets_exceeded = Counter(
            "switchboard_budget_exceeded",
            "Requests that found a budget exhausted, by budget and by what the gateway did.",
            ["budget", "action"],
            registry=registry,
        )

    def decided(self, team: str, model: str, outcome: AdmissionOutcome, count: int = 1) -> None:
        with never_failing():
            self.admissions.labels(team=team, gen_ai_request_model=model,
                                   outcome=outcome.value).inc(count)

    def budgets(self, denials: Iterable[Denial], action: BudgetAction) -> None:
        """Count each budget among `denials` (rate limits are not budgets: skipped)."""
        with never_failing():
            for denial in denials:
                if denial.kind is LimitKind.BUDGET:
                    self.budgets_exceeded.labels(budget=denial.name, action=action.value).inc()
