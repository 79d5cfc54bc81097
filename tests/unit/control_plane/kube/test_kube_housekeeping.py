"""Housekeeping gated by the real Lease elector, against recorded API responses: while another
replica holds the Lease this one writes nothing; once it has taken the Lease over, it does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kube_fake_apiserver import Echo, FakeApiServer, Reply, fixture
from kubernetes import client

from control_plane.housekeeping import Housekeeper, HousekeepingReport
from control_plane.kube.leader import LeaderElectionConfig, LeaderElector
from control_plane.policy import load_documents
from ext_proc.ledgers import Ledgers
from ext_proc.state.ledger import DEFAULT_RESERVATION_TTL
from ext_proc.state.model import BudgetRule, ReservationRequest, scope_key
from ext_proc.state.periods import Period
from ext_proc.view import StateView
from tests.unit.control_plane.housekeeping_fakes import CountingLedgers
from tests.unit.control_plane.kube.fake_clock import FakeClock

LEASE = "/apis/coordination.k8s.io/v1/namespaces/gateway/leases/switchboard-control-plane"
ME = "switchboard-control-plane-5f6b-xyz12"
BUDGET = BudgetRule("org-monthly", scope_key(), Decimal("100"), Period.MONTH)
POLICY = load_documents({"p.yaml": "providers: {demo: {kind: mock}}\n"
                                   "models: {demo: {targets: [{provider: demo}]}}\n"})




@pytest.fixture
def clocks() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ledgers(tmp_path: Path, clocks: FakeClock) -> AsyncIterator[CountingLedgers]:
    built = CountingLedgers(Ledgers(str(tmp_path), str(tmp_path), clock=clocks))
    yield built
    await built.inner.close()


async def test_only_the_lease_holder_housekeeps(
    apiserver: FakeApiServer, api_client: client.ApiClient, clocks: FakeClock,
    ledgers: CountingLedgers,
) -> None:
    ledger = await ledgers.inner.get(StateView())
    await ledger.reserve(ReservationRequest("abandoned", Decimal(3), tokens=1, budgets=(BUDGET,)))
    clocks.advance((DEFAULT_RESERVATION_TTL + timedelta(seconds=1)).total_seconds())

    elector = LeaderElector(
        client.CoordinationV1Api(api_client),
        LeaderElectionConfig(namespace="gateway", name="switchboard-control-plane", identity=ME),
        clock=clocks)
    keeper = Housekeeper(lambda: POLICY, ledgers, leadership=elector, clock=clocks)
    held = fixture("lease_held_by_other.json")
    apiserver.queue("GET", LEASE, Reply(200, held), Reply(200, held))
    apiserver.queue("PUT", LEASE, Echo(200, "9050"))

    # Another replica holds the Lease: a follower writes nothing, not even opening the ledger.
    assert await elector.step() is False
    assert await keeper.run_once() is None
    assert ledgers.opened == []
    assert (await ledger.budget_status(BUDGET)).reserved_usd == Decimal(3)

    # The holder stops renewing; 15 s later (our own clock) this replica takes over and leads.
    clocks.advance(15)
    assert await elector.step() is True
    assert await keeper.run_once() == HousekeepingReport(1, 0)
    assert (await ledger.budget_status(BUDGET)).reserved_usd == 0

    # Renewals fail past the renew deadline: it stops leading, and stops housekeeping.
    clocks.advance(10)
    assert not elector.is_leader
    assert await keeper.run_once() is None
