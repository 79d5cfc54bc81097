"""Bedrock's Converse and InvokeModel translators: what the golden table does not show."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, TranslationError
from ext_proc.translators.bedrock import BedrockConverse
from ext_proc.translators.bedrock_embeddings import BedrockEmbeddings
from ext_proc.translators.embeddings import OpenAIEmbeddings
from ext_proc.translators.via_messages import ViaMessages
from tests.fakes.eventstream import event, frame
from tests.unit.ext_proc.translators import golden as g

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BACKEND = Backend("bedrock", "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com",
                  MODEL, {"region": "us-east-1"})
EVENT_STREAM = {"content-type": "application/vnd.amazon.eventstream"}


def make_openai() -> ViaMessages:
    return ViaMessages(ClientApi.OPENAI_CHAT, BACKEND, BedrockConverse,
                       clock=lambda: 1_700_000_000)


def make_anthropic() -> ViaMessages:
    return ViaMessages(ClientApi.ANTHROPIC_MESSAGES, BACKEND, BedrockConverse)


def test_model_id_is_percent_encoded_in_the_path() -> None:
    result = make_openai().request({"model": "x", "messages": [
        {"role": "user", "content": "hi"}], "stream": True}, b"")
    assert result.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"


def test_openai_client_without_max_tokens_leaves_bedrock_default() -> None:
    result = make_openai().request({"model": "x", "messages": [
        {"role": "user", "content": "hi"}]}, b"")
    assert result.body is not None
    assert "inferenceConfig" not in orjson.loads(result.body)


def test_tool_choice_none_drops_tools_unless_the_history_used_them() -> None:
    tools = [{"name": "now", "input_schema": {"type": "object"}}]
    plain = make_anthropic().request({"max_tokens": 5, "tools": tools, "tool_choice": {
        "type": "none"}, "messages": [{"role": "user", "content": "hi"}]}, b"")
    assert plain.body is not None
    assert "toolConfig" not in orjson.loads(plain.body)
    used = make_anthropic().request({"max_tokens": 5, "tools": tools, "tool_choice": {
        "type": "none"}, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "now",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "noon", "is_error": True}]}]}, b"")
    assert used.body is not None
    body = orjson.loads(used.body)
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "now", "inputSchema": {
        "json": {"type": "object"}}}}]}
    assert body["messages"][2]["content"][0]["toolResult"]["status"] == "error"


def test_stream_ends_only_after_metadata_or_the_end_of_body() -> None:
    translator = make_anthropic()
    translator.response_body_mode(200, EVENT_STREAM)
    first = translator.response_chunk(event("messageStart", {"role": "assistant"})
                                      + event("messageStop", {"stopReason": "end_turn"}), False)
    assert first.body is not None
    assert b"message_stop" not in first.body
    last = translator.response_chunk(b"", True)
    assert last.body is not None
    assert last.body.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")


def test_corrupt_frame_is_an_error_event_not_a_crash() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[-1] ^= 0xFF  # break the message CRC
    translator = make_openai()
    translator.response_body_mode(200, EVENT_STREAM)
    out = translator.response_chunk(bytes(data), True)
    assert out.body is not None
    assert b"corrupt" in out.body
    assert b"[DONE]" not in out.body


def test_unknown_message_type_frame_is_reported() -> None:
    translator = make_anthropic()
    translator.response_body_mode(200, EVENT_STREAM)
    out = translator.response_chunk(frame({":message-type": "error", ":error-code": "Boom",
                                           ":error-message": "broken"}, b""), True)
    assert out.body is not None
    assert b"Boom: broken" in out.body


def embeddings(model: str) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(ClientApi.OPENAI_EMBEDDINGS,
                            Backend("b", "bedrock", "https://b.example", model), BedrockEmbeddings)


def test_titan_embeddings_in_base64_as_the_openai_sdk_asks() -> None:
    translator = embeddings("amazon.titan-embed-text-v2:0")
    request = translator.request({"model": "e", "input": "hello", "dimensions": 256,
                                  "encoding_format": "base64"}, b"")
    assert request.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert request.body is not None
    assert orjson.loads(request.body) == {"inputText": "hello", "dimensions": 256}
    translator.response_body_mode(200, g.JSON_HEADERS)
    out = translator.response_body(orjson.dumps({"embedding": [0.5, -1.0],
                                                 "inputTextTokenCount": 3}))
    assert out.body is not None
    reply = orjson.loads(out.body)
    packed = base64.b64decode(reply["data"][0]["embedding"])
    assert struct.unpack("<2f", packed) == (0.5, -1.0)
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert out.usage is not None
    assert out.usage.input_tokens == 3


def test_titan_refuses_several_inputs() -> None:
    with pytest.raises(TranslationError):
        embeddings("amazon.titan-embed-text-v2:0").request({"input": ["a", "b"]}, b"")


def test_cohere_embeddings_count_tokens_from_the_header() -> None:
    translator = embeddings("us.cohere.embed-english-v3")
    request = translator.request({"model": "e", "input": ["a", "b"]}, b"")
    assert request.body is not None
    assert orjson.loads(request.body) == {"texts": ["a", "b"], "input_type": "search_document"}
    translator.response_body_mode(200, {**g.JSON_HEADERS,
                                        "x-amzn-bedrock-input-token-count": "4"})
    out = translator.response_body(orjson.dumps({"id": "x", "response_type": "embeddings_floats",
                                                 "texts": ["a", "b"],
                                                 "embeddings": [[0.1], [0.2]]}))
    assert out.body is not None
    assert [d["embedding"] for d in orjson.loads(out.body)["data"]] == [[0.1], [0.2]]
    assert out.usage is not None
    assert out.usage.input_tokens == 4


def test_embeddings_error_in_openai_schema() -> None:
    translator = embeddings("amazon.titan-embed-text-v2:0")
    translator.response_body_mode(400, g.JSON_HEADERS)
    out = translator.response_body(b'{"message": "Malformed input request"}')
    assert out.body is not None
    assert orjson.loads(out.body)["error"]["message"] == "Malformed input request"


def test_other_models_are_refused_for_embeddings() -> None:
    with pytest.raises(TranslationError):
        embeddings("meta.llama3-8b-instruct-v1:0").request({"input": "a"}, b"")
