"""The workers' view of the policy: providers and models, with credentials as references."""

from __future__ import annotations

from typing import Any

from control_plane.policy import Policy
from control_plane.policy.models import (
    AnthropicProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    MockProvider,
    Provider,
    VertexProvider,
)

# Credentials other than api_key, each a reference the worker resolves by this name.
NAMED_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                     "service_account")


def processor_config(policy: Policy) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for name, provider in policy.providers.items():
        entry: dict[str, Any] = {"kind": provider.kind}
        if not isinstance(provider, MockProvider):
            entry["base_url"] = provider.endpoint
            if api_key := getattr(provider, "api_key", None):
                entry["api_key_ref"] = api_key
            if refs := {key: ref for key in NAMED_CREDENTIALS
                        if (ref := getattr(provider, key, None))}:
                entry["credential_refs"] = refs
        if options := _options(provider):
            entry["options"] = options
        providers[name] = entry
    models = {
        name: {"targets": [{"provider": t.provider, "model": t.model or name}
                           for t in route.targets]}
        for name, route in policy.models.items()
    }
    return {"providers": providers, "models": models}


def _options(provider: Provider) -> dict[str, str]:
    if isinstance(provider, AnthropicProvider):
        return {"version": provider.version}
    if isinstance(provider, AzureOpenAIProvider):
        return {"api_version": provider.api_version}
    if isinstance(provider, BedrockProvider):
        return {"region": provider.region}
    if isinstance(provider, VertexProvider):
        return {"project": provider.project, "location": provider.location}
    return {}
