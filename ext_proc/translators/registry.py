"""The one place a translator is chosen: by client API and backend schema."""

from __future__ import annotations

from ext_proc.contract import ClientApi
from ext_proc.translators.base import TranslatorFactory
from ext_proc.translators.mock import MockBackend
from ext_proc.translators.openai_openai import OpenAIToOpenAI

TRANSLATORS: dict[tuple[ClientApi, str], TranslatorFactory] = {
    (ClientApi.OPENAI_CHAT, "openai"): OpenAIToOpenAI,
    (ClientApi.OPENAI_EMBEDDINGS, "openai"): OpenAIToOpenAI,
    **{(api, "mock"): MockBackend for api in ClientApi},
}


def translator_factory(api: ClientApi, kind: str) -> TranslatorFactory | None:
    return TRANSLATORS.get((api, kind))
