"""Gemini API and Vertex AI translators: what the golden table does not show."""

from __future__ import annotations

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, TranslationError
from ext_proc.translators.embeddings import OpenAIEmbeddings
from ext_proc.translators.gemini import GeminiGenerate
from ext_proc.translators.gemini_embeddings import GeminiEmbeddings
from ext_proc.translators.via_messages import ViaMessages
from tests.unit.ext_proc.translators import golden as g

BACKEND = Backend("gemini", "gemini", "https://generativelanguage.googleapis.com",
                  "gemini-2.5-flash")
VERTEX = Backend("vertex", "vertex", "https://europe-west4-aiplatform.googleapis.com",
                 "gemini-2.5-flash", {"project": "demo-project", "location": "europe-west4"})
HELLO = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}


def make_openai() -> ViaMessages:
    return ViaMessages(ClientApi.OPENAI_CHAT, BACKEND, GeminiGenerate,
                       clock=lambda: 1_700_000_000)


def make_anthropic() -> ViaMessages:
    return ViaMessages(ClientApi.ANTHROPIC_MESSAGES, BACKEND, GeminiGenerate)


@pytest.mark.parametrize(("backend", "stream", "path"), [
    (BACKEND, False, "/v1beta/models/gemini-2.5-flash:generateContent"),
    (BACKEND, True, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
    (VERTEX, False, "/v1/projects/demo-project/locations/europe-west4/publishers/google/"
                    "models/gemini-2.5-flash:generateContent"),
])
def test_paths(backend: Backend, stream: bool, path: str) -> None:
    translator = ViaMessages(ClientApi.OPENAI_CHAT, backend, GeminiGenerate)
    assert translator.request({**HELLO, "stream": stream}, b"").path == path


def test_tool_result_for_an_unknown_call_is_refused() -> None:
    with pytest.raises(TranslationError):
        make_anthropic().request({"max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]}, b"")


def test_named_tool_choice_restricts_the_functions() -> None:
    result = make_anthropic().request({
        "max_tokens": 5, "messages": HELLO["messages"],
        "tools": [{"name": "now", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "now"}}, b"")
    assert result.body is not None
    assert orjson.loads(result.body)["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["now"]}}


def test_embeddings_gemini_api_and_vertex() -> None:
    gemini = OpenAIEmbeddings(ClientApi.OPENAI_EMBEDDINGS, Backend(
        "g", "gemini", "https://generativelanguage.googleapis.com", "text-embedding-004"),
        GeminiEmbeddings)
    request = gemini.request({"input": ["a", "b"], "dimensions": 8}, b"")
    assert request.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert request.body is not None
    assert orjson.loads(request.body)["requests"][1] == {
        "model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]},
        "outputDimensionality": 8}
    gemini.response_body_mode(200, g.JSON_HEADERS)
    out = gemini.response_body(b'{"embeddings": [{"values": [1, 2]}, {"values": [3, 4]}]}')
    assert out.body is not None
    assert [d["embedding"] for d in orjson.loads(out.body)["data"]] == [[1.0, 2.0], [3.0, 4.0]]
    assert out.usage is None  # the Gemini API counts no tokens here: metering estimates

    vertex = OpenAIEmbeddings(ClientApi.OPENAI_EMBEDDINGS, Backend(
        "v", "vertex", VERTEX.base_url, "text-embedding-005", VERTEX.options), GeminiEmbeddings)
    request = vertex.request({"input": "a"}, b"")
    assert request.path.endswith("/models/text-embedding-005:predict")
    vertex.response_body_mode(200, g.JSON_HEADERS)
    out = vertex.response_body(orjson.dumps({"predictions": [{"embeddings": {
        "values": [0.5], "statistics": {"token_count": 2, "truncated": False}}}]}))
    assert out.usage is not None
    assert out.usage.input_tokens == 2


def test_stream_without_finish_reason_ends_in_an_error() -> None:
    translator = make_openai()
    translator.response_body_mode(200, g.SSE_HEADERS)
    out = translator.response_chunk((g.FIXTURES / "gemini/streams/truncated.sse").read_bytes(),
                                    True)
    assert out.body is not None
    assert b"[DONE]" not in out.body
    assert b"ended before the answer did" in out.body
