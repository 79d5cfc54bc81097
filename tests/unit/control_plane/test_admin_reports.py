"""The admin API's reports and metrics: honest about a ledger it cannot read (SQLite on the
gateway pods), and showing leadership and housekeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from control_plane.admin import admin_app
from control_plane.compiler import GatewaySettings
from control_plane.housekeeping import Housekeeper
from control_plane.service import ControlPlane
from ext_proc.ledgers import Ledgers

POLICY = """providers: {demo: {kind: mock}}
models: {demo: {targets: [{provider: demo}]}}
budgets: {org: {limit_usd: 10, period: day}}
"""


@dataclass
class StubLeader:
    is_leader: bool


@pytest.fixture
async def ledgers(tmp_path: Path) -> AsyncIterator[Ledgers]:
    built = Ledgers(str(tmp_path), str(tmp_path))
    yield built
    await built.close()


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                             base_url="http://admin")


async def test_reports_refuse_a_sqlite_ledger_kept_on_the_gateway_pods(ledgers: Ledgers) -> None:
    control_plane = ControlPlane(GatewaySettings(), local_sqlite=False)
    assert control_plane.apply({"p.yaml": POLICY})
    async with client(admin_app(control_plane, ledgers=ledgers)) as admin:
        for path in ("/usage", "/budgets"):
            response = await admin.get(path)
            assert response.status_code == 409
            assert "state.backend redis" in response.json()["detail"]


async def test_reports_read_a_local_sqlite_ledger(ledgers: Ledgers) -> None:
    control_plane = ControlPlane(GatewaySettings())  # switchboard up: the workers' file is here
    assert control_plane.apply({"p.yaml": POLICY})
    async with client(admin_app(control_plane, ledgers=ledgers)) as admin:
        usage = await admin.get("/usage", params={"by": "team", "since": "1h"})
        assert usage.status_code == 200 and usage.json()["rows"] == []
        (budget,) = (await admin.get("/budgets")).json()
        assert (budget["name"], budget["spent_usd"]) == ("org", "0")


async def test_metrics_and_status_show_leadership_and_housekeeping(ledgers: Ledgers) -> None:
    control_plane = ControlPlane(GatewaySettings())
    assert control_plane.apply({"p.yaml": POLICY})
    leader = StubLeader(False)
    keeper = Housekeeper(lambda: control_plane.policy, ledgers, leadership=leader)
    await keeper.run_once()
    async with client(admin_app(control_plane, ledgers=ledgers, housekeeper=keeper)) as admin:
        metrics = (await admin.get("/metrics")).text
        assert "switchboard_control_plane_leader 0.0" in metrics
        assert "switchboard_policy_change_rejected 0.0" in metrics
        assert "switchboard_housekeeping_expired_reservations_total 0.0" in metrics
        status = (await admin.get("/status")).json()["housekeeping"]
        assert status["leader"] is False
        assert status["paused"] == "another replica leads"

        leader.is_leader = True
        await keeper.run_once()
        metrics = (await admin.get("/metrics")).text
        assert "switchboard_control_plane_leader 1.0" in metrics
        status = (await admin.get("/status")).json()["housekeeping"]
        assert (status["leader"], status["paused"]) == (True, None)
        assert status["last_run_at"] > 0


async def test_metrics_without_housekeeping(ledgers: Ledgers) -> None:
    control_plane = ControlPlane(GatewaySettings())
    async with client(admin_app(control_plane, ledgers=ledgers)) as admin:
        response = await admin.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "switchboard_policy_applied_timestamp_seconds 0.0" in response.text
        assert "switchboard_control_plane_leader" not in response.text
