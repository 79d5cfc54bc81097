"""The control plane's HTTP admin API: health, readiness and what is being served."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from control_plane.service import ControlPlane


def admin_app(control_plane: ControlPlane) -> FastAPI:
    app = FastAPI(title="Switchboard admin API", version="1")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        if not control_plane.ready.is_set():
            response.status_code = 503
            return {"status": "no policy loaded"}
        return {"status": "ready", "version": control_plane.status.version}

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
        }

    return app
