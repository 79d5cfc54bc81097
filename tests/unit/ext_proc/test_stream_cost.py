"""The attempt's cost in the event that carries a stream's final usage."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.metering.usage import TokenUsage
from ext_proc.stream_cost import StreamCost, stream_cost
from ext_proc.translators.base import ClientRequest
from ext_proc.translators.sse import SseParser

COUNTED = TokenUsage(input=1100, output=6, cached_read=1024)
COST = Decimal("0.001224")

OPENAI_TEXT = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
               b'"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}\n\n')
OPENAI_USAGE = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
                b'"usage":{"prompt_tokens":1100,"completion_tokens":6,"total_tokens":1106}}\n\n')
OPENAI_STREAM = OPENAI_TEXT * 3 + OPENAI_USAGE + b"data: [DONE]\n\n"

ANTHROPIC_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1",'
                   b'"usage":{"input_tokens":25,"output_tokens":1}}}\n\n')
ANTHROPIC_TEXT = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"text_delta","text":"Hi"}}\n\n')
ANTHROPIC_DELTA = (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
                   b'"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}\n\n')
ANTHROPIC_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
ANTHROPIC_STREAM = ANTHROPIC_START + ANTHROPIC_TEXT * 3 + ANTHROPIC_DELTA + ANTHROPIC_STOP

STREAMS = {ClientApi.OPENAI_CHAT: OPENAI_STREAM, ClientApi.ANTHROPIC_MESSAGES: ANTHROPIC_STREAM}
ASKED = {"stream": True, "stream_options": {"include_usage": True}}


class Pricer:
    """The attempt's `_priced`, counting its calls."""

    def __init__(self, cost: Decimal | None = COST, usage: TokenUsage = COUNTED) -> None:
        self.result = usage, cost
        self.calls = 0

    def __call__(self) -> tuple[TokenUsage, Decimal | None]:
        self.calls += 1
        return self.result


def writer(api: ClientApi) -> StreamCost:
    made = stream_cost(api, ClientRequest.of_body(ASKED))
    assert made is not None
    return made


def run(writer: StreamCost, chunks: list[bytes], pricer: Pricer | None = None) -> list[bytes]:
    """What the client receives for each chunk, the last one ending the stream."""
    priced = pricer or Pricer()
    out = []
    for index, chunk in enumerate(chunks):
        sent = writer.send(chunk, index == len(chunks) - 1, priced)
        out.append(chunk if sent is None else sent)
    return out


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] + [b""]


def events(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(e.data) for e in SseParser().feed(data, end_of_stream=True)
            if e.data != "[DONE]"]


def usage_objects(api: ClientApi, data: bytes) -> list[dict[str, Any]]:
    if api is ClientApi.OPENAI_CHAT:
        return [e["usage"] for e in events(data) if isinstance(e.get("usage"), dict)]
    return [e["usage"] for e in events(data) if e["type"] == "message_delta"]


@pytest.mark.parametrize("api", list(STREAMS))
def test_the_usage_event_carries_the_cost_as_a_json_number(api: ClientApi) -> None:
    out = b"".join(run(writer(api), [STREAMS[api], b""]))
    [usage] = usage_objects(api, out)
    assert usage["cost"] == pytest.approx(0.001224)
    assert b'"cost":0.001224}' in out  # the text of x-switchboard-cost-usd, not a float's
    # Nothing else changed: the other events are byte for byte the provider's.
    assert out.replace(b',"cost":0.001224', b"") == STREAMS[api]


def test_the_anthropic_message_start_usage_gets_no_cost() -> None:
    out = b"".join(run(writer(ClientApi.ANTHROPIC_MESSAGES), [ANTHROPIC_STREAM, b""]))
    assert "cost" not in events(out)[0]["message"]["usage"]


@pytest.mark.parametrize("api", list(STREAMS))
@pytest.mark.parametrize("size", [1, 7, 97])
def test_an_event_split_across_chunks_is_sent_whole_and_with_the_cost(api: ClientApi,
                                                                     size: int) -> None:
    cost_writer = writer(api)
    out = run(cost_writer, pieces(STREAMS[api], size))
    whole = b"".join(run(writer(api), [STREAMS[api], b""]))
    assert b"".join(out) == whole
    for part in out:  # every piece sent ends where an event ends
        assert part == b"" or part.endswith(b"\n\n")


def test_the_usage_event_may_come_chunks_after_the_usage_was_learnt() -> None:
    # A translator that learns the usage from one event and writes its usage chunk later.
    cost_writer = writer(ClientApi.OPENAI_CHAT)
    pricer = Pricer()
    assert cost_writer.send(OPENAI_TEXT, False, pricer) is None
    sent = cost_writer.send(OPENAI_USAGE + b"data: [DONE]\n\n", False, pricer)
    assert sent is not None
    assert usage_objects(ClientApi.OPENAI_CHAT, sent)[0]["cost"] == pytest.approx(0.001224)
    assert pricer.calls == 1


@pytest.mark.parametrize("api", list(STREAMS))
def test_chunks_without_a_usage_event_pass_unchanged_and_unpriced(api: ClientApi) -> None:
    pricer = Pricer()
    body = ANTHROPIC_TEXT if api is ClientApi.ANTHROPIC_MESSAGES else OPENAI_TEXT
    cost_writer = writer(api)
    assert cost_writer.send(body * 2, False, pricer) is None
    assert cost_writer.send(b"", True, pricer) is None
    assert pricer.calls == 0  # `"usage":null` and text deltas are never parsed


@pytest.mark.parametrize("api", list(STREAMS))
@pytest.mark.parametrize("pricer", [
    Pricer(cost=None),  # no price for this provider and model
    Pricer(usage=TokenUsage(input=1, output=1, estimated=True)),  # never an estimate
])
def test_no_cost_no_field(api: ClientApi, pricer: Pricer) -> None:
    out = run(writer(api), [STREAMS[api], b""], pricer)
    assert out == [STREAMS[api], b""]


def test_a_text_that_quotes_the_usage_mark_is_not_an_event_of_usage() -> None:
    quoting = (b'data: {"choices":[{"index":0,"delta":{"content":"\\"usage\\":{\\"cost\\"'
               b'"}}]}\n\n')
    pricer = Pricer()
    assert run(writer(ClientApi.OPENAI_CHAT), [quoting, b""], pricer) == [quoting, b""]
    assert pricer.calls == 0


def test_a_cost_the_provider_reported_is_replaced_by_the_gateways() -> None:
    upstream = OPENAI_USAGE.replace(b'"total_tokens":1106', b'"total_tokens":1106,"cost":9')
    out = b"".join(run(writer(ClientApi.OPENAI_CHAT), [upstream, b""]))
    assert usage_objects(ClientApi.OPENAI_CHAT, out)[0]["cost"] == pytest.approx(0.001224)


def test_crlf_streams_and_other_fields_of_the_event_are_kept() -> None:
    event = (b'id: 7\r\nevent: message_delta\r\ndata: {"type":"message_delta",\r\n'
             b'data: "usage":{"output_tokens":15}}\r\n\r\n')
    stream = ANTHROPIC_TEXT.replace(b"\n", b"\r\n") + event + ANTHROPIC_STOP
    out = run(writer(ClientApi.ANTHROPIC_MESSAGES), [*pieces(stream, 5)])
    joined = b"".join(out)
    assert b'id: 7\r\nevent: message_delta\r\ndata: {"type":"message_delta","usage":' \
           b'{"output_tokens":15,"cost":0.001224}}\n\r\n' in joined
    parsed = SseParser().feed(joined, end_of_stream=True)
    assert [e.event for e in parsed] == ["content_block_delta", "message_delta", "message_stop"]


def test_a_stream_ending_inside_an_event_sends_what_it_has() -> None:
    cost_writer = writer(ClientApi.OPENAI_CHAT)
    assert cost_writer.send(OPENAI_TEXT + b'data: {"choi', False, Pricer()) == OPENAI_TEXT
    assert cost_writer.send(b"ces", True, Pricer()) == b'data: {"choices'


def test_a_usage_event_ending_the_stream_without_its_blank_line_gets_the_cost() -> None:
    out = b"".join(run(writer(ClientApi.OPENAI_CHAT), [OPENAI_USAGE.rstrip(b"\n")]))
    assert usage_objects(ClientApi.OPENAI_CHAT, out)[0]["cost"] == pytest.approx(0.001224)


@pytest.mark.parametrize(("api", "request_body"), [
    (ClientApi.OPENAI_CHAT, {"stream": True}),  # the client did not ask for usage
    (ClientApi.OPENAI_CHAT, {"stream": True, "stream_options": {"include_usage": False}}),
    (ClientApi.OPENAI_CHAT, {"stream_options": {"include_usage": True}}),  # not a stream
    (ClientApi.ANTHROPIC_MESSAGES, {"stream": False}),
    (ClientApi.OPENAI_EMBEDDINGS, {"stream": True}),
])
def test_clients_without_a_place_for_the_cost_get_no_writer(
        api: ClientApi, request_body: dict[str, Any]) -> None:
    assert stream_cost(api, ClientRequest.of_body(request_body)) is None


def test_an_anthropic_client_needs_no_option() -> None:
    assert stream_cost(ClientApi.ANTHROPIC_MESSAGES, ClientRequest("m", stream=True)) is not None
