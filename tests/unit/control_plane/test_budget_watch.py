"""The budgets Envoy's own admission may take requests for: read from the real SQLite ledger
every round, none when they cannot be read, and only the lane recompiled when they change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from control_plane.budget_watch import BudgetWatch
from control_plane.compiler import GatewaySettings
from control_plane.compiler.processor import processor_resource
from control_plane.service import ControlPlane
from control_plane.xds.resources import EXTENSION
from ext_proc.access import scoped_budget
from ext_proc.ledgers import Ledgers
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.state.ledger import ChargedRecord, Ledger, LedgerError
from ext_proc.view import StateView
from tests.unit.control_plane.test_lane import lane_source

POLICY = """
gateway: {{reply_cost: false, admission: {admission}, budget_headroom: 0.25}}
providers: {{oai: {{kind: openai, api_key: env:OAI_KEY}}}}
models: {{gpt-4o: {{targets: [{{provider: oai}}]}}}}
teams:
  search: {{keys: ["sha256:{digest}"], budget: {{limit_usd: 10, period: day}}}}
budgets:
  org: {{limit_usd: 1000, period: month}}
"""


def docs(admission: str = "envoy") -> dict[str, str]:
    return {"policy.yaml": POLICY.format(admission=admission, digest="a" * 64)}


@pytest.fixture
async def ledgers(tmp_path: Path) -> AsyncIterator[Ledgers]:
    built = Ledgers(str(tmp_path), str(tmp_path / "secrets"))
    yield built
    await built.close()


@pytest.fixture
def control_plane() -> ControlPlane:
    plane = ControlPlane(GatewaySettings())
    assert plane.apply(docs())
    return plane


async def spend(ledger: Ledger, control_plane: ControlPlane, usd: str) -> None:
    """A usage record charged to every budget of the policy, as a worker writes it."""
    assert control_plane.policy is not None
    budgets = processor_resource(control_plane.policy).budgets
    rules = tuple(scoped_budget(name, budget).rule for name, budget in budgets.items())
    await ledger.record_usage(ChargedRecord(UsageRecord(
        time=datetime.now(UTC), request_id=f"r-{usd}", team="search",
        key_id="sha256:" + "a" * 64, requested_model="gpt-4o", provider="oai",
        provider_model="gpt-4o", usage=TokenUsage(input=10, output=5),
        cost_usd=Decimal(usd), status=200, outcome=Outcome.OK, latency_s=0.1, ttft_s=None),
        rules))


async def test_budgets_with_headroom_are_given_to_the_lane(
        control_plane: ControlPlane, ledgers: Ledgers) -> None:
    assert control_plane.budget_headroom == frozenset()  # until read: the worker decides
    assert '["team"]="search"' in lane_source(control_plane)
    watch = BudgetWatch(control_plane, ledgers)
    assert await watch.run_once() == {"org", "team:search"}
    assert control_plane.budget_headroom == {"org", "team:search"}
    assert '["watched"]={}' in lane_source(control_plane)


async def test_a_budget_under_its_headroom_goes_back_to_the_worker(
        control_plane: ControlPlane, ledgers: Ledgers) -> None:
    watch = BudgetWatch(control_plane, ledgers)
    await watch.run_once()
    ledger = await ledgers.get(StateView())
    await spend(ledger, control_plane, "7.4")  # 2.6 of 10 left: above a quarter
    assert await watch.run_once() == {"org", "team:search"}
    version = control_plane.status.version
    await spend(ledger, control_plane, "0.2")  # 2.4 left: below
    assert await watch.run_once() == {"org"}
    assert control_plane.status.version != version
    assert '["watched"]={{["team"]="search"' in lane_source(control_plane)


async def test_only_the_lane_changes_with_the_headroom(
        control_plane: ControlPlane, ledgers: Ledgers) -> None:
    before = control_plane.cache.snapshot
    assert before is not None
    await BudgetWatch(control_plane, ledgers).run_once()
    after = control_plane.cache.snapshot
    assert after is not None and after.version != before.version
    changed = {t for t in after.resources
               if after.serialized(t) != before.serialized(t)}
    assert changed == {EXTENSION}


class FailingLedgers:
    async def get(self, state: StateView) -> Ledger:
        raise LedgerError("redis down")


async def test_a_ledger_that_cannot_be_read_leaves_every_budget_to_the_worker(
        control_plane: ControlPlane, ledgers: Ledgers) -> None:
    await BudgetWatch(control_plane, ledgers).run_once()
    assert await BudgetWatch(control_plane, FailingLedgers()).run_once() == frozenset()
    assert control_plane.budget_headroom == frozenset()


async def test_a_sqlite_ledger_on_other_hosts_is_never_read(ledgers: Ledgers) -> None:
    plane = ControlPlane(GatewaySettings(), local_sqlite=False)  # Kubernetes, SQLite per pod
    assert plane.apply(docs())
    assert await BudgetWatch(plane, FailingLedgers()).run_once() == frozenset()


async def test_a_new_policy_starts_with_the_worker_deciding(
        control_plane: ControlPlane, ledgers: Ledgers) -> None:
    watch = BudgetWatch(control_plane, ledgers)
    await watch.run_once()
    assert control_plane.apply({"policy.yaml": docs()["policy.yaml"] + "\n# edited\n"})
    assert control_plane.budget_headroom == frozenset()


async def test_headroom_read_under_an_older_policy_is_ignored(
        control_plane: ControlPlane) -> None:
    old = control_plane.policy
    assert old is not None
    assert control_plane.apply({"policy.yaml": docs()["policy.yaml"] + "\n# edited\n"})
    control_plane.set_budget_headroom(old, frozenset({"org"}))
    assert control_plane.budget_headroom == frozenset()


async def test_without_the_lane_nothing_is_read(ledgers: Ledgers) -> None:
    plane = ControlPlane(GatewaySettings())
    assert plane.apply(docs(admission="worker"))
    assert await BudgetWatch(plane, FailingLedgers()).run_once() is None
