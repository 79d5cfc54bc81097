"""What admission counts: its decisions by team, model and outcome, and exhausted budgets by
name and by what the gateway did (a real SQLite ledger decides)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from prometheus_client import CollectorRegistry

from control_plane.keys import create_key
from ext_proc.access import AccessView, ScopedBudget, TeamAccess
from ext_proc.gate import Gate
from ext_proc.ledgers import Ledgers
from ext_proc.metering.admission_metrics import AdmissionMetrics
from ext_proc.metering.pricing import PriceOverride, PriceTable
from ext_proc.state.model import BudgetRule, OnExceed, scope_key
from ext_proc.state.periods import Period
from ext_proc.view import ProcessorView, ProviderView, TargetView

KEY, KEY_HASH = create_key("search")
MODELS = ("plain", "warned", "blocked", "big", "cheap")


def _budget(name: str, model: str, on_exceed: OnExceed = OnExceed.BLOCK,
            downgrade: str | None = None) -> ScopedBudget:
    # A limit of $0: every priced request exceeds it.
    rule = BudgetRule(name, scope_key(model=model), Decimal(0), Period.DAY,
                      on_exceed=on_exceed, downgrade_model=downgrade)
    return ScopedBudget(rule, team="", key="", model=model, provider="")


VIEW = ProcessorView(
    "v1",
    providers={"demo": ProviderView("demo", "mock", "", None)},
    models={m: (TargetView("demo", m),) for m in MODELS},
    access=AccessView(
        teams_by_key={KEY_HASH: TeamAccess("search", frozenset(MODELS) - {"plain"}, None, None)},
        budgets=(_budget("heads-up", "warned", OnExceed.WARN), _budget("cap", "blocked"),
                 _budget("big-daily", "big", OnExceed.DOWNGRADE, "cheap")),
        prices=PriceTable({"demo/*": PriceOverride(Decimal(1), Decimal(1), None, None)})),
)


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[tuple[Gate, CollectorRegistry]]:
    registry = CollectorRegistry()
    ledgers = Ledgers(str(tmp_path), str(tmp_path))
    yield Gate(lambda: VIEW, ledgers, metrics=AdmissionMetrics(registry)), registry
    await ledgers.close()


def request(model: str, key: str = KEY) -> ep.ProcessingRequest:
    headers = {":path": "/v1/chat/completions", "authorization": f"Bearer {key}",
               "content-length": "300", "x-request-id": f"r-{model}"}
    message = ep.ProcessingRequest(request_headers=ep.HttpHeaders(
        headers=base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode())
                                            for k, v in headers.items()])))
    message.metadata_context.filter_metadata["switchboard"].update({"model": model})
    return message


def admissions(registry: CollectorRegistry, team: str, model: str, outcome: str) -> float | None:
    return registry.get_sample_value("switchboard_admissions_total", {
        "team": team, "gen_ai_request_model": model, "outcome": outcome})


def budget(registry: CollectorRegistry, name: str, action: str) -> float | None:
    return registry.get_sample_value("switchboard_budget_exceeded_total",
                                     {"budget": name, "action": action})


async def test_budget_outcomes_are_counted_by_budget_name(
        gate: tuple[Gate, CollectorRegistry]) -> None:
    admit, registry = gate
    for model in ("warned", "blocked", "big"):
        await admit.admit(request(model))
    assert budget(registry, "heads-up", "warned") == 1
    assert budget(registry, "cap", "blocked") == 1
    assert budget(registry, "big-daily", "downgraded") == 1
    assert admissions(registry, "search", "warned", "admitted") == 1
    assert admissions(registry, "search", "blocked", "budget_exceeded") == 1
    assert admissions(registry, "search", "big", "downgraded") == 1


async def test_refusals_are_counted_without_unbounded_labels(
        gate: tuple[Gate, CollectorRegistry]) -> None:
    admit, registry = gate
    refused = await admit.admit(request("cheap", key="sb-not-a-key"))
    assert refused.immediate_response.status.code == 401
    await admit.admit(request("plain"))  # not among the team's models: 403
    await admit.admit(request("no-such-model-123"))
    assert admissions(registry, "", "", "unauthenticated") == 1
    assert admissions(registry, "search", "plain", "forbidden") == 1
    assert admissions(registry, "search", "", "unknown_model") == 1
