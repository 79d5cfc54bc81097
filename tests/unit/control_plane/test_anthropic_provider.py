from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_plane.compiler.processor import processor_config
from control_plane.defaults import default_policy_documents
from control_plane.policy.models import AnthropicProvider, Policy


def test_defaults_and_options() -> None:
    policy = Policy.model_validate({
        "providers": {"claude": {"kind": "anthropic", "api_key": "env:ANTHROPIC_API_KEY"}},
        "models": {"smart": {"targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
    })
    provider = policy.providers["claude"]
    assert isinstance(provider, AnthropicProvider)
    assert provider.base_url == "https://api.anthropic.com"
    assert processor_config(policy)["providers"]["claude"] == {
        "kind": "anthropic", "base_url": "https://api.anthropic.com",
        "api_key_ref": "env:ANTHROPIC_API_KEY", "options": {"version": "2023-06-01"},
        "list_prices": True}


@pytest.mark.parametrize("entry", [
    {"kind": "anthropic", "api_key": "sk-ant-literal"},
    {"kind": "anthropic", "version": "latest"},
    {"kind": "anthropic", "region": "us"},
])
def test_refused(entry: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate({"providers": {"claude": entry}})


def test_default_policy_serves_anthropic_when_its_key_is_set() -> None:
    (text,) = default_policy_documents({"ANTHROPIC_API_KEY": "x"}).values()
    assert "kind: anthropic" in text
    assert "claude-sonnet-4-5" in text
