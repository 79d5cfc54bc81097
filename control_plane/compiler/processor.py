"""The workers' view of the policy: providers, models, keys, budgets and prices.

Credentials stay references; each worker resolves them itself.
"""

from __future__ import annotations

from typing import Any

from control_plane.policy import Policy
from control_plane.policy.models import (
    AnthropicProvider,
    Budget,
    BudgetMatch,
    Downgrade,
    MockProvider,
    RateLimit,
)


def processor_config(policy: Policy) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for name, provider in policy.providers.items():
        entry: dict[str, Any] = {"kind": provider.kind}
        if not isinstance(provider, MockProvider):
            entry["base_url"] = provider.base_url
            # A server that merely speaks a provider's schema (vLLM behind kind: openai) is not
            # billed at that provider's list prices.
            entry["list_prices"] = provider.base_url == type(provider).model_fields[
                "base_url"].default
            if provider.api_key:
                entry["api_key_ref"] = provider.api_key
        if isinstance(provider, AnthropicProvider):
            entry["options"] = {"version": provider.version}
        providers[name] = entry
    models = {
        name: {"targets": [{"provider": t.provider, "model": t.model or name}
                           for t in route.targets]}
        for name, route in policy.models.items()
    }
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
    state = {"backend": policy.state.backend, "path": policy.state.path or "",
             "url_ref": policy.state.url or ""}
    return {"providers": providers, "models": models, "teams": teams, "budgets": budgets,
            "prices": prices, "state": state}


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
