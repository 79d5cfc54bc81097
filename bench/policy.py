"""Generated policies for the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class PolicyShape:
    """What a generated policy contains.

    `full_path` adds the request-path features that cost something per request (teams with
    gateway keys, budgets); the data-path harness passes it through so a run can be repeated
    once those features take part in the request path.
    """

    models: int = 1
    openai_url: str = "http://127.0.0.1:9000/v1"
    anthropic_url: str = "http://127.0.0.1:9001"
    full_path: bool = False
    teams: int = 1


def model_name(index: int) -> str:
    return f"model-{index:05d}"


def generate(shape: PolicyShape) -> str:
    """A policy whose models alternate between an OpenAI-schema and an Anthropic-schema
    upstream, half of them renamed for their provider, and one fallback chain per hundred
    (a model with fallback targets gets a cluster of its own; the others share one per provider)."""
    models: dict[str, object] = {}
    for index in range(shape.models):
        provider = "openai" if index % 2 == 0 else "anthropic"
        target: dict[str, object] = {"provider": provider}
        if index % 4 >= 2:
            target["model"] = f"upstream-{index}"
        targets = [target]
        if index % 100 == 99:
            targets.append({"provider": "openai" if provider == "anthropic" else "anthropic"})
        models[model_name(index)] = {"targets": targets}
    policy: dict[str, object] = {
        "providers": {
            "openai": {"kind": "openai", "base_url": shape.openai_url},
            "anthropic": {"kind": "anthropic", "base_url": shape.anthropic_url},
        },
        "models": models,
    }
    if shape.full_path:
        policy.update(full_path_sections(shape))
    return yaml.safe_dump(policy, sort_keys=False, width=200)


def full_path_sections(shape: PolicyShape) -> dict[str, object]:
    """Teams, keys and budgets in the shape DESIGN.md fixes. Whether the policy accepts them
    yet is for the loader to say: the harness reports a refusal instead of guessing."""
    teams = {
        f"team-{t}": {
            "keys": [f"sha256:{t:064x}"],
            "budget": {"limit_usd": 1_000_000, "period": "month"},
        }
        for t in range(shape.teams)
    }
    return {"teams": teams,
            "budgets": {"org-monthly": {"limit_usd": 10_000_000, "period": "month"}}}
