"""The workers' view of the policy: providers, models, keys, budgets and prices.

Credentials stay references; each worker resolves them itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format

from control_plane.compiler.direct import forwards_directly
from control_plane.policy import Policy
from control_plane.policy.models import (
    AnthropicProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    Budget,
    BudgetMatch,
    Downgrade,
    MockProvider,
    OpenAIProvider,
    Provider,
    RateLimit,
    VertexProvider,
)
from protos.switchboard.v1 import processor_pb2

# Credentials other than api_key, each a reference the worker resolves by this name.
NAMED_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                     "service_account")


def processor_config(policy: Policy) -> dict[str, Any]:
    models = {name: {"targets": [{"provider": provider, "model": model}
                                 for provider, model in targets]}
              for name, targets in _model_targets(policy)}
    return {**_sections(policy), "models": models}


def processor_resource(policy: Policy) -> processor_pb2.ProcessorConfig:
    """`processor_config` as protobuf, its models filled in field by field: parsing a dict of
    thousands of models is the slow part of building it."""
    config = json_format.ParseDict(_sections(policy), processor_pb2.ProcessorConfig())
    for name, targets in _model_targets(policy):
        model = config.models[name]
        for provider, target_model in targets:
            model.targets.add(provider=provider, model=target_model)
    return config


def _model_targets(policy: Policy) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Each model with its targets' providers and models, in the order they are tried."""
    for name, route in policy.models.items():
        yield name, [(t.provider, t.model or name) for t in route.all_targets]


def _sections(policy: Policy) -> dict[str, Any]:
    """Everything but the models."""
    providers: dict[str, Any] = {}
    for name, provider in policy.providers.items():
        entry: dict[str, Any] = {"kind": provider.kind}
        if not isinstance(provider, MockProvider):
            entry["base_url"] = provider.endpoint
            entry["list_prices"] = has_list_prices(provider)
            if api_key := getattr(provider, "api_key", None):
                entry["api_key_ref"] = api_key
            if refs := {key: ref for key in NAMED_CREDENTIALS
                        if (ref := getattr(provider, key, None))}:
                entry["credential_refs"] = refs
        if options := _options(provider):
            entry["options"] = options
        providers[name] = entry
    teams = {
        name: {"key_hashes": team.keys, "models": team.models or [],
               "all_models": team.models is None,
               **_rate_limit("rate_limit", team.rate_limit),
               **_rate_limit("key_rate_limit", team.key_rate_limit)}
        for name, team in policy.teams.items()
    }
    budgets = {name: _budget(budget, budget.match) for name, budget in policy.budgets.items()}
    for name, team in policy.teams.items():
        if team.budget is not None:
            budgets[f"team:{name}"] = _budget(team.budget, BudgetMatch(team=name))
    prices = {key: {field: str(value) for field, value in price.model_dump().items()
                    if value is not None}
              for key, price in policy.prices.items()}
    retention = policy.state.usage_retention
    state = {"backend": policy.state.backend, "path": policy.state.path or "",
             "url_ref": policy.state.url or "",
             "usage_retention_s": math.ceil(retention) if retention is not None else 0}
    return {"providers": providers, "teams": teams, "budgets": budgets, "prices": prices,
            "state": state, "direct_forwarding": forwards_directly(policy)}


def _rate_limit(field: str, limit: RateLimit | None) -> dict[str, Any]:
    if limit is None:
        return {}
    return {field: {"requests_per_minute": limit.requests_per_minute or 0,
                    "tokens_per_minute": limit.tokens_per_minute or 0}}


def _budget(budget: Budget, match: BudgetMatch) -> dict[str, Any]:
    on_exceed = budget.on_exceed
    downgrade = on_exceed.downgrade if isinstance(on_exceed, Downgrade) else ""
    return {"limit_usd": str(budget.limit_usd), "period": budget.period,
            "timezone": budget.timezone,
            "on_exceed": "downgrade" if downgrade else str(on_exceed),
            "downgrade_model": downgrade,
            "match": match.model_dump(exclude_none=True)}


def has_list_prices(provider: Provider) -> bool:
    """A server that merely speaks OpenAI's schema (vLLM, Ollama behind kind: openai) is not
    billed at OpenAI's list prices; it is priced only through `prices:`."""
    return not (isinstance(provider, OpenAIProvider)
                and provider.base_url != OpenAIProvider.model_fields["base_url"].default)


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
