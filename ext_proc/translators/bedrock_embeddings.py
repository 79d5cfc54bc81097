"""OpenAI embeddings served by Bedrock's InvokeModel: Amazon Titan and Cohere embed models.

Each family has its own body, chosen by the model id's prefix. Titan embeds one text per call,
so a list of several inputs is refused rather than silently sent as several calls. Cohere
reports no token count in its body; Bedrock's x-amzn-bedrock-input-token-count header does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.translators.base import Backend, TranslationError, UpstreamRequest, Usage
from ext_proc.translators.bedrock_schema import model_path
from ext_proc.translators.embeddings import EmbeddingsRequest, floats

INPUT_TOKENS_HEADER = "x-amzn-bedrock-input-token-count"
_TITAN, _COHERE = "amazon.titan-embed", "cohere.embed"


class BedrockEmbeddings:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        # Cross-region inference profiles prefix the id with a geography ("us.cohere...").
        names = (backend.model, backend.model.split(".", 1)[-1])
        self._family = next((f for f in (_TITAN, _COHERE)
                             if any(name.startswith(f) for name in names)), "")

    def request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        body: dict[str, Any]
        if self._family == _TITAN:
            if len(request.inputs) != 1:
                raise TranslationError("Titan embedding models take one input per request")
            body = {"inputText": request.inputs[0]}
            if request.dimensions is not None:
                body["dimensions"] = request.dimensions
        elif self._family == _COHERE:
            if request.dimensions is not None:
                raise TranslationError("Cohere embedding models on Bedrock take no 'dimensions'")
            body = {"texts": request.inputs, "input_type": "search_document"}
        else:
            raise TranslationError(f"{self._backend.model!r} is not a Titan or Cohere embedding "
                                   "model on Bedrock")
        return UpstreamRequest(model_path(self._backend, "invoke"), orjson.dumps(body))

    def vectors(self, reply: dict[str, Any],
                headers: Mapping[str, str]) -> tuple[list[list[float]], Usage | None] | None:
        header = headers.get(INPUT_TOKENS_HEADER, "")
        tokens = int(header) if header.isdigit() else None
        if self._family == _TITAN:
            vector = floats(reply.get("embedding"))
            count = reply.get("inputTextTokenCount")
            if isinstance(count, int) and not isinstance(count, bool):
                tokens = count
            vectors = [vector] if vector is not None else None
        else:
            raw = reply.get("embeddings")
            if isinstance(raw, dict):  # asked with embedding_types: {"float": [...]}
                raw = raw.get("float")
            vectors = [v for item in raw if (v := floats(item)) is not None] if isinstance(
                raw, list) else None
            if vectors is not None and isinstance(raw, list) and len(vectors) != len(raw):
                vectors = None
        if vectors is None:
            return None
        return vectors, None if tokens is None else Usage(input_tokens=tokens)
