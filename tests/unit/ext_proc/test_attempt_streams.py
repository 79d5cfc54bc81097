"""A streamed answer through one attempt: watched to its end, whatever the translator."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from ext_proc.access import AccessView
from ext_proc.attempt import Attempt
from ext_proc.metering.pricing import PriceOverride, PriceTable
from ext_proc.secrets import Secret
from ext_proc.translators.sse import SseParser
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
        "x-switchboard-client-path": path, ":path": path})))
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


PRICED = ProcessorView("v1", VIEW.providers, access=AccessView(prices=PriceTable({
    "claude/m": PriceOverride(Decimal(3), Decimal(15)),
    "alpha/m": PriceOverride(Decimal(2), Decimal(8))})))


def _priced_attempt(provider: str, api: str, path: str, body: dict[str, object]) -> Attempt:
    attempt = Attempt(lambda: PRICED)
    attempt.handle(ep.ProcessingRequest(request_headers=_headers(**{
        "x-switchboard-provider": provider, "x-switchboard-target-model": "m",
        "x-switchboard-client-path": path, ":path": path})))
    attempt.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=orjson.dumps(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
         **body}), end_of_stream=True)))
    attempt.handle(ep.ProcessingRequest(response_headers=_headers(**{
        ":status": "200", "content-type": "text/event-stream"})))
    return attempt


def _anthropic_event(data: dict[str, object]) -> bytes:
    return f"event: {data['type']}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def test_a_translated_stream_carries_the_cost_of_its_usage_record() -> None:
    attempt = _priced_attempt("claude", "openai.chat", "/v1/chat/completions",
                              {"stream": True, "stream_options": {"include_usage": True}})
    sent = [_chunk(attempt, _anthropic_event({"type": "message_start", "message": {
        "id": "m1", "model": "m", "usage": {"input_tokens": 20, "output_tokens": 1}}}), False)]
    # The usage is complete with message_delta; the usage chunk is written at message_stop.
    sent.append(_chunk(attempt, _anthropic_event({
        "type": "message_delta", "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 10}}), False))
    sent.append(_chunk(attempt, _anthropic_event({"type": "message_stop"}), False))
    sent.append(_chunk(attempt, b"", True))
    usage = [orjson.loads(e.data)["usage"] for e in SseParser().feed(b"".join(sent))
             if e.data != "[DONE]" and orjson.loads(e.data).get("usage")]
    expected = Decimal(20 * 3 + 10 * 15) / 10**6
    assert [u["cost"] for u in usage] == [float(expected)]
    record = attempt.usage_record(cancelled=False)
    assert record is not None and record.cost_usd == expected


def test_a_passed_through_stream_cut_inside_its_usage_chunk_gets_the_cost() -> None:
    attempt = _priced_attempt("alpha", "openai.chat", "/v1/chat/completions",
                              {"stream": True, "stream_options": {"include_usage": True}})
    stream = CHUNK + (b'data: {"choices":[],"usage":{"prompt_tokens":100,'
                      b'"completion_tokens":5}}\n\ndata: [DONE]\n\n')
    sent = b"".join(_chunk(attempt, stream[i:i + 10], False) for i in range(0, len(stream), 10))
    sent += _chunk(attempt, b"", True)
    assert sent == stream.replace(b'"completion_tokens":5}', b'"completion_tokens":5,"cost":'
                                  + str(Decimal(100 * 2 + 5 * 8) / 10**6).encode() + b"}")
    record = attempt.usage_record(cancelled=False)
    assert record is not None and record.cost_usd == Decimal("0.00024")


def test_a_mock_stream_carries_its_cost_header_in_its_usage_event() -> None:
    view = ProcessorView("v1", {"demo": ProviderView("demo", "mock", "", None)},
                         access=AccessView(prices=PriceTable({
                             "demo/m": PriceOverride(Decimal(1000), Decimal(1000))})))
    attempt = Attempt(lambda: view)
    attempt.handle(ep.ProcessingRequest(request_headers=_headers(**{
        "x-switchboard-provider": "demo", "x-switchboard-target-model": "m",
        "x-switchboard-client-path": "/v1/messages", ":path": "/v1/messages"})))
    reply = attempt.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=orjson.dumps(
        {"model": "m", "max_tokens": 5, "stream": True,
         "messages": [{"role": "user", "content": "hi"}]}), end_of_stream=True)))
    headers = {h.header.key: h.header.raw_value.decode()
               for h in reply.immediate_response.headers.set_headers}
    delta = next(orjson.loads(e.data) for e in SseParser().feed(reply.immediate_response.body)
                 if e.event == "message_delta")
    assert Decimal(str(delta["usage"]["cost"])) == Decimal(headers["x-switchboard-cost-usd"])
