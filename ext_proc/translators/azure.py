"""Azure OpenAI: OpenAI's schema behind a deployment path and an api-version query.

The target's model names the deployment. Chat and embeddings pass through like OpenAI's;
Anthropic Messages clients take the same translation as for any OpenAI-compatible server.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.base import Backend
from ext_proc.translators.openai_openai import OpenAIToOpenAI
from ext_proc.translators.paths import join_path

DEFAULT_API_VERSION = "2024-10-21"
_OPERATIONS = {ClientApi.OPENAI_CHAT: "chat/completions",
               ClientApi.ANTHROPIC_MESSAGES: "chat/completions",
               ClientApi.OPENAI_EMBEDDINGS: "embeddings"}


def deployment_path(api: ClientApi, backend: Backend) -> str:
    query = urlencode({"api-version": backend.options.get("api_version", DEFAULT_API_VERSION)})
    deployment = quote(backend.model, safe="")
    return join_path(backend.base_url,
                     f"/openai/deployments/{deployment}/{_OPERATIONS[api]}?{query}")


def azure_openai(api: ClientApi, backend: Backend) -> OpenAIToOpenAI:
    return OpenAIToOpenAI(api, backend, deployment_path(api, backend))


def azure_messages(api: ClientApi, backend: Backend) -> AnthropicToOpenAI:
    return AnthropicToOpenAI(api, backend, deployment_path(api, backend))
