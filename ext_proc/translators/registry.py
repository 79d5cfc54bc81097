"""The one place a translator is chosen: by client API and backend schema."""

from __future__ import annotations

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_anthropic import AnthropicToAnthropic
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.base import TranslatorFactory
from ext_proc.translators.mock import MockBackend
from ext_proc.translators.openai_anthropic import OpenAIToAnthropic
from ext_proc.translators.openai_openai import OpenAIToOpenAI

TRANSLATORS: dict[tuple[ClientApi, str], TranslatorFactory] = {
    (ClientApi.OPENAI_CHAT, "openai"): OpenAIToOpenAI,
    (ClientApi.OPENAI_EMBEDDINGS, "openai"): OpenAIToOpenAI,
    (ClientApi.OPENAI_CHAT, "anthropic"): OpenAIToAnthropic,
    (ClientApi.ANTHROPIC_MESSAGES, "anthropic"): AnthropicToAnthropic,
    (ClientApi.ANTHROPIC_MESSAGES, "openai"): AnthropicToOpenAI,
    **{(api, "mock"): MockBackend for api in ClientApi},
}


def translator_factory(api: ClientApi, kind: str) -> TranslatorFactory | None:
    return TRANSLATORS.get((api, kind))
