"""The built-in policy `switchboard up` serves when given none.

It always serves the mock provider, and adds each real provider whose key is in the
environment. It is plain policy YAML, validated by the same code as any other.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

DEFAULT_POLICY_NAME = "<built-in default policy>"

# Provider name -> (policy entry, environment variable, models served by default).
_REAL_PROVIDERS: dict[str, tuple[dict[str, str], str, tuple[str, ...]]] = {
    "openai": ({"kind": "openai", "api_key": "env:OPENAI_API_KEY"}, "OPENAI_API_KEY",
               ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini",
                "text-embedding-3-small", "text-embedding-3-large")),
    "anthropic": ({"kind": "anthropic", "api_key": "env:ANTHROPIC_API_KEY"}, "ANTHROPIC_API_KEY",
                  ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")),
    "gemini": ({"kind": "gemini", "api_key": "env:GEMINI_API_KEY"}, "GEMINI_API_KEY",
               ("gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004")),
}


def default_policy_documents(environ: Mapping[str, str]) -> dict[str, str]:
    providers: dict[str, dict[str, str]] = {"mock": {"kind": "mock"}}
    models: dict[str, dict[str, object]] = {"mock": {"targets": [{"provider": "mock"}]}}
    for name, (entry, variable, served) in _REAL_PROVIDERS.items():
        if environ.get(variable):
            providers[name] = entry
            for model in served:
                models[model] = {"targets": [{"provider": name}]}
    text = yaml.safe_dump({"providers": providers, "models": models}, sort_keys=False)
    return {DEFAULT_POLICY_NAME: text}
