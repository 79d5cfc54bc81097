"""A streamed answer through one attempt: watched to its end, whatever the translator."""

from __future__ import annotations

import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from ext_proc.attempt import Attempt
from ext_proc.secrets import Secret
from ext_proc.view import ProcessorView, ProviderView

VIEW = ProcessorView("v1", {
    "alpha": ProviderView("alpha", "openai", "https://alpha.example/v1", Secret("k")),
    "claude": ProviderView("claude", "anthropic", "https://claude.example", Secret("k")),
})
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'


def _headers(**headers: str) -> ep.HttpHeaders:
    return ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=[
        base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]))


def _streaming_attempt(provider: str, api: str, path: str) -> tuple[Attempt, ep.ProcessingResponse]:
    attempt = Attempt(lambda: VIEW)
    attempt.handle(ep.ProcessingRequest(request_headers=_headers(**{
        "x-switchboard-provider": provider, "x-switchboard-target-model": "m",
        "x-switchboard-api": api, ":path": path})))
    attempt.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=orjson.dumps(
        {"model": "m", "stream": True, "max_tokens": 5,
         "messages": [{"role": "user", "content": "hi"}]}), end_of_stream=True)))
    reply = attempt.handle(ep.ProcessingRequest(response_headers=_headers(**{
        ":status": "200", "content-type": "text/event-stream"})))
    return attempt, reply


def _chunk(attempt: Attempt, data: bytes, end: bool) -> bytes:
    reply = attempt.handle(ep.ProcessingRequest(response_body=ep.HttpBody(
        body=data, end_of_stream=end)))
    mutation = reply.response_body.response.body_mutation
    return mutation.body if mutation.HasField("body") else data


def test_an_openai_stream_is_watched_and_a_cut_one_gets_an_error_chunk() -> None:
    attempt, reply = _streaming_attempt("alpha", "openai.chat", "/v1/chat/completions")
    assert reply.mode_override.response_body_mode == pm.ProcessingMode.STREAMED
    assert _chunk(attempt, CHUNK, end=False) == CHUNK
    tail = _chunk(attempt, b"", end=True)
    assert orjson.loads(tail.removeprefix(b"data: "))["error"]["code"] == "bad_gateway"
    assert attempt.summary()["outcome"] == "200"


def test_a_complete_openai_stream_passes_untouched() -> None:
    attempt, _ = _streaming_attempt("alpha", "openai.chat", "/v1/chat/completions")
    assert _chunk(attempt, CHUNK + b"data: [DONE]\n\n", end=False) == CHUNK + b"data: [DONE]\n\n"
    assert _chunk(attempt, b"", end=True) == b""


@pytest.mark.parametrize(("provider", "api", "path"), [
    ("alpha", "openai.chat", "/v1/chat/completions"),
    ("claude", "anthropic.messages", "/v1/messages"),
])
def test_a_stream_reset_midway_is_logged_as_cut(provider: str, api: str, path: str) -> None:
    attempt, _ = _streaming_attempt(provider, api, path)
    _chunk(attempt, b"event: ping\ndata: {}\n\n" if "anthropic" in api else CHUNK, end=False)
    assert attempt.summary()["outcome"] == "200 cut"
