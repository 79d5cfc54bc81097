"""The control plane's /metrics: the policy it serves and where its xDS clients stand."""

from __future__ import annotations

from control_plane.admin_metrics import client_state, metrics_registry
from control_plane.compiler import GatewaySettings
from control_plane.service import ControlPlane
from control_plane.xds.cache import ClientStatus

POLICY = {"policy.yaml": "providers: {demo: {kind: mock}}\n"
                         "models: {mock: {targets: [{provider: demo}]}}\n"}


def test_client_states() -> None:
    assert client_state(ClientStatus("a", acked={"t1": "v2", "t2": "v2"}), "v2") == "current"
    assert client_state(ClientStatus("b", acked={"t1": "v1"}), "v2") == "behind"
    assert client_state(ClientStatus("c"), "v2") == "behind"
    assert client_state(ClientStatus("d", acked={"t1": "v2"}, nacked={"t2": ("v2", "no")}),
                        "v2") == "nacking"


async def test_policy_and_clients() -> None:
    control_plane = ControlPlane(GatewaySettings())
    registry = metrics_registry(control_plane)
    assert registry.get_sample_value("switchboard_policy_applied_timestamp_seconds") == 0
    assert control_plane.apply(POLICY)
    version = control_plane.status.version
    control_plane.cache.clients[1] = ClientStatus("envoy", acked={"t": version})
    control_plane.cache.clients[2] = ClientStatus("ext-proc-0", acked={"t": "old"})
    assert registry.get_sample_value("switchboard_policy_info", {"version": version}) == 1
    assert registry.get_sample_value("switchboard_xds_clients", {"state": "current"}) == 1
    assert registry.get_sample_value("switchboard_xds_clients", {"state": "behind"}) == 1
    assert registry.get_sample_value("switchboard_policy_change_rejected") == 0
    assert not control_plane.apply({"policy.yaml": "models: [\n"})
    assert registry.get_sample_value("switchboard_policy_change_rejected") == 1
    assert registry.get_sample_value("switchboard_policy_info", {"version": version}) == 1
    assert registry.get_sample_value("process_cpu_seconds_total") is not None


def test_the_admin_api_serves_them() -> None:
    from fastapi.testclient import TestClient

    from control_plane.admin import admin_app

    control_plane = ControlPlane(GatewaySettings())
    control_plane.apply(POLICY)
    response = TestClient(admin_app(control_plane)).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert f'switchboard_policy_info{{version="{control_plane.status.version}"}} 1.0' in (
        response.text)
