"""The workers' view of the policy: providers and models, with credentials as references."""

from __future__ import annotations

from typing import Any

from control_plane.policy import Policy
from control_plane.policy.models import AnthropicProvider, MockProvider


def processor_config(policy: Policy) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for name, provider in policy.providers.items():
        entry: dict[str, Any] = {"kind": provider.kind}
        if not isinstance(provider, MockProvider):
            entry["base_url"] = provider.base_url
            if provider.api_key:
                entry["api_key_ref"] = provider.api_key
        if isinstance(provider, AnthropicProvider):
            entry["options"] = {"version": provider.version}
        providers[name] = entry
    models = {
        name: {"targets": [{"provider": t.provider, "model": t.model or name}
                           for t in route.all_targets]}
        for name, route in policy.models.items()
    }
    return {"providers": providers, "models": models}
