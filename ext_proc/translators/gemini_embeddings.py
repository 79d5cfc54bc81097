"""OpenAI embeddings served by Google: batchEmbedContents on the Gemini API, predict on Vertex.

The Gemini API reports no token count for embeddings (the usage is left to the metering
layer's estimate); Vertex reports one per input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.translators.base import Backend, UpstreamRequest, Usage
from ext_proc.translators.embeddings import EmbeddingsRequest, floats
from ext_proc.translators.gemini_schema import model_path


class GeminiEmbeddings:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._vertex = backend.kind == "vertex"

    def request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        body: dict[str, Any]
        if self._vertex:
            body = {"instances": [{"content": text} for text in request.inputs]}
            if request.dimensions is not None:
                body["parameters"] = {"outputDimensionality": request.dimensions}
            return UpstreamRequest(model_path(self._backend, "predict"), orjson.dumps(body))
        requests = []
        for text in request.inputs:
            item: dict[str, Any] = {"model": f"models/{self._backend.model}",
                                    "content": {"parts": [{"text": text}]}}
            if request.dimensions is not None:
                item["outputDimensionality"] = request.dimensions
            requests.append(item)
        return UpstreamRequest(model_path(self._backend, "batchEmbedContents"),
                               orjson.dumps({"requests": requests}))

    def vectors(self, reply: dict[str, Any],
                headers: Mapping[str, str]) -> tuple[list[list[float]], Usage | None] | None:
        items = reply.get("predictions" if self._vertex else "embeddings")
        if not isinstance(items, list):
            return None
        vectors: list[list[float]] = []
        tokens = 0
        for item in items:
            holder = item.get("embeddings") if self._vertex and isinstance(item, dict) else item
            if not isinstance(holder, dict) or (vector := floats(holder.get("values"))) is None:
                return None
            vectors.append(vector)
            statistics = holder.get("statistics")
            count = statistics.get("token_count") if isinstance(statistics, dict) else None
            if isinstance(count, (int, float)) and not isinstance(count, bool):
                tokens += int(count)
        return vectors, Usage(input_tokens=tokens) if self._vertex else None
