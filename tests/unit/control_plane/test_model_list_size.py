from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from control_plane.policy.models import Policy
from tests.unit.control_plane.compiled import compiled


def test_a_long_model_list_fits_envoys_direct_response_limit() -> None:
    models = {f"model-{i:04d}": {"targets": [{"provider": "demo"}]} for i in range(500)}
    policy = Policy.model_validate({"providers": {"demo": {"kind": "mock"}}, "models": models})
    config = compiled(policy).routes
    bodies = [route["direct_response"]["body"]["inline_string"] for route in _routes(config)
              if "direct_response" in route]
    assert max(len(b.encode()) for b in bodies) > 4096  # the default limit would refuse it
    assert config["max_direct_response_body_size_bytes"] >= max(len(b.encode()) for b in bodies)


def _routes(node: Any) -> Iterator[dict[str, Any]]:
    """Every route of the configuration, in route lists and in match trees alike."""
    if isinstance(node, dict):
        if "match" in node:
            yield node
        for value in node.values():
            yield from _routes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _routes(value)
