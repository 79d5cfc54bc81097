"""The one place a translator is chosen: by client API and backend schema."""

from __future__ import annotations

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_anthropic import AnthropicToAnthropic
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.azure import azure_messages, azure_openai
from ext_proc.translators.base import TranslatorFactory
from ext_proc.translators.bedrock import BedrockConverse
from ext_proc.translators.bedrock_embeddings import BedrockEmbeddings
from ext_proc.translators.embeddings import embeddings_via
from ext_proc.translators.gemini import GeminiGenerate
from ext_proc.translators.gemini_embeddings import GeminiEmbeddings
from ext_proc.translators.mock import MockBackend
from ext_proc.translators.openai_anthropic import OpenAIToAnthropic
from ext_proc.translators.openai_openai import OpenAIToOpenAI
from ext_proc.translators.via_messages import via

_MESSAGES_SHAPED = (ClientApi.OPENAI_CHAT, ClientApi.ANTHROPIC_MESSAGES)

TRANSLATORS: dict[tuple[ClientApi, str], TranslatorFactory] = {
    (ClientApi.OPENAI_CHAT, "openai"): OpenAIToOpenAI,
    (ClientApi.OPENAI_EMBEDDINGS, "openai"): OpenAIToOpenAI,
    (ClientApi.OPENAI_CHAT, "anthropic"): OpenAIToAnthropic,
    (ClientApi.ANTHROPIC_MESSAGES, "anthropic"): AnthropicToAnthropic,
    (ClientApi.ANTHROPIC_MESSAGES, "openai"): AnthropicToOpenAI,
    (ClientApi.OPENAI_CHAT, "azure-openai"): azure_openai,
    (ClientApi.OPENAI_EMBEDDINGS, "azure-openai"): azure_openai,
    (ClientApi.ANTHROPIC_MESSAGES, "azure-openai"): azure_messages,
    **{(api, "bedrock"): via(BedrockConverse) for api in _MESSAGES_SHAPED},
    (ClientApi.OPENAI_EMBEDDINGS, "bedrock"): embeddings_via(BedrockEmbeddings),
    **{(api, kind): via(GeminiGenerate) for api in _MESSAGES_SHAPED
       for kind in ("gemini", "vertex")},
    **{(ClientApi.OPENAI_EMBEDDINGS, kind): embeddings_via(GeminiEmbeddings)
       for kind in ("gemini", "vertex")},
    **{(api, "mock"): MockBackend for api in ClientApi},
}


def translator_factory(api: ClientApi, kind: str) -> TranslatorFactory | None:
    return TRANSLATORS.get((api, kind))
