"""The control plane's HTTP admin API: health, readiness, what is being served, usage and
budgets, and its own metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Query, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from control_plane.admin_metrics import metrics_registry
from control_plane.housekeeping import Housekeeper
from control_plane.policy import Policy
from control_plane.policy.durations import parse_duration
from control_plane.service import ControlPlane
from control_plane.usage import (
    SQLITE_ELSEWHERE,
    LedgerSource,
    budget_report,
    ledger_reachable,
    open_ledgers,
    usage_report,
)
from ext_proc.state.ledger import LedgerError

GroupParam = Literal["team", "model", "provider", "provider_model", "key"]


def admin_app(control_plane: ControlPlane, *, ledgers: LedgerSource | None = None,
              housekeeper: Housekeeper | None = None) -> FastAPI:
    app = FastAPI(title="Switchboard admin API", version="1")
    store = ledgers if ledgers is not None else open_ledgers()
    registry = metrics_registry(control_plane, housekeeper)

    def live_policy() -> Policy:
        if control_plane.policy is None:
            raise HTTPException(503, "no policy loaded yet")
        if not ledger_reachable(control_plane.policy, control_plane.local_sqlite):
            raise HTTPException(409, SQLITE_ELSEWHERE)
        return control_plane.policy

    @app.get("/usage", summary="Usage and cost, grouped, since a time ago")
    async def usage(by: GroupParam = "team",
                    since: str = Query("24h", description="a duration: 30m, 24h, 7d")
                    ) -> dict[str, Any]:
        try:
            window = timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            raise HTTPException(400, f"since: {exc}") from None
        try:
            return await usage_report(store, live_policy(), by, window)
        except LedgerError as exc:
            raise HTTPException(503, f"usage store unavailable: {exc}") from None

    @app.get("/budgets", summary="Every budget's spend, reservations and reset time")
    async def budgets() -> list[dict[str, Any]]:
        try:
            return await budget_report(store, live_policy())
        except LedgerError as exc:
            raise HTTPException(503, f"usage store unavailable: {exc}") from None

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        if not control_plane.ready.is_set():
            response.status_code = 503
            return {"status": "no policy loaded"}
        return {"status": "ready", "version": control_plane.status.version}

    @app.get("/metrics", summary="Prometheus metrics of the control plane",
             response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/status")
    def status() -> dict[str, Any]:
        policy = control_plane.status
        return {
            "policy": {"version": policy.version, "applied_at": policy.applied_at,
                       "last_error": policy.last_error, "last_error_at": policy.last_error_at},
            "clients": [
                {"node": client.node_id, "acked": client.acked,
                 "nacked": {t: {"version": v, "error": e}
                            for t, (v, e) in client.nacked.items()}}
                for client in control_plane.cache.clients.values()
            ],
            "housekeeping": None if housekeeper is None else _housekeeping(housekeeper),
        }

    return app


def _housekeeping(keeper: Housekeeper) -> dict[str, Any]:
    status = keeper.status
    report = status.last_report
    return {
        "leader": keeper.leadership.is_leader,
        "paused": status.skipped or None,
        "last_run_at": status.last_run_at,
        "last_error": status.last_error or None,
        "expired_reservations": report.expired_reservations if report else 0,
        "pruned_usage_records": report.pruned_usage_records if report else 0,
    }
