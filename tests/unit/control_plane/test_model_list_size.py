from __future__ import annotations

from control_plane.compiler.routes import route_configuration
from control_plane.policy.models import Policy


def test_a_long_model_list_fits_envoys_direct_response_limit() -> None:
    models = {f"model-{i:04d}": {"targets": [{"provider": "demo"}]} for i in range(500)}
    policy = Policy.model_validate({"providers": {"demo": {"kind": "mock"}}, "models": models})
    config = route_configuration(policy)
    bodies = [route["direct_response"]["body"]["inline_string"]
              for host in config["virtual_hosts"] for route in host["routes"]
              if "direct_response" in route]
    assert max(len(b.encode()) for b in bodies) > 4096  # the default limit would refuse it
    assert config["max_direct_response_body_size_bytes"] >= max(len(b.encode()) for b in bodies)
