"""What the data-path benchmark sends and what its fake upstream answers, and the two Envoy
configurations it runs besides Switchboard: the fake upstream and the plain proxy."""

from __future__ import annotations

from typing import Any

import orjson

MESSAGES = [
    {"role": "system", "content": "You are a careful assistant. Answer briefly and cite the "
                                  "relevant section of the style guide when it applies."},
    {"role": "user", "content": "Here is a paragraph from our release notes. " * 12},
    {"role": "assistant", "content": "Understood. What would you like me to do with it?"},
    {"role": "user", "content": "Rewrite it in plain English for customers, under 80 words."},
]


def chat_request(model: str, stream: bool = False, include_usage: bool = False) -> bytes:
    """A ~1.3 KB chat request, the size PERF-NOTES measured with."""
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "temperature": 0.2,
                            "max_tokens": 256}
    if stream:
        body["stream"] = True
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def messages_request(model: str, stream: bool = False) -> bytes:
    """The same conversation as an Anthropic Messages request (~1.3 KB)."""
    body: dict[str, Any] = {"model": model, "max_tokens": 256, "temperature": 0.2,
                            "system": MESSAGES[0]["content"], "messages": MESSAGES[1:]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


CHAT_COMPLETION = orjson.dumps({
    "id": "chatcmpl-bench0000000000000000000001", "object": "chat.completion",
    "created": 1_750_000_000, "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
        "role": "assistant", "refusal": None,
        "content": "Version 2.4 makes exports faster and fixes the sync bug that some of you "
                   "reported. Reports now open in half the time, and your saved filters are "
                   "kept when you switch projects. Nothing changes in how you sign in."}}],
    "usage": {"prompt_tokens": 312, "completion_tokens": 48, "total_tokens": 360,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0,
                                            "rejected_prediction_tokens": 0}},
})

ANTHROPIC_MESSAGE = orjson.dumps({
    "id": "msg_bench0000000000000000000001", "type": "message", "role": "assistant",
    "model": "claude-sonnet-4-5-20250929", "stop_reason": "end_turn", "stop_sequence": None,
    "content": [{"type": "text", "text":
                 "Version 2.4 makes exports faster and fixes the sync bug that some of you "
                 "reported. Reports now open in half the time, and your saved filters are kept "
                 "when you switch projects. Nothing changes in how you sign in."}],
    "usage": {"input_tokens": 312, "output_tokens": 48, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0},
})


def chat_stream() -> bytes:
    """As OpenAI streams with `stream_options.include_usage` (API reference, "Create chat
    completion", streaming): the usage comes last before [DONE], in a chunk of its own whose
    `choices` is empty."""
    words = orjson.loads(CHAT_COMPLETION)["choices"][0]["message"]["content"].split(" ")
    chunks = []
    for index in range(0, len(words), 4):
        chunks.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                       "created": 1_750_000_000, "model": "gpt-4o-mini", "choices": [{
                           "index": 0, "finish_reason": None,
                           "delta": {"content": " ".join(words[index:index + 4]) + " "}}]})
    chunks.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                   "created": 1_750_000_000, "model": "gpt-4o-mini",
                   "choices": [{"index": 0, "finish_reason": "stop", "delta": {}}]})
    chunks.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                   "created": 1_750_000_000, "model": "gpt-4o-mini", "choices": [],
                   "usage": {"prompt_tokens": 312, "completion_tokens": 48,
                             "total_tokens": 360}})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def anthropic_stream() -> bytes:
    """ANTHROPIC_MESSAGE as Anthropic streams it (API reference, "Streaming Messages"):
    message_start with the input usage, one text block in deltas of a few words, a ping,
    message_delta with the final usage, message_stop."""
    message = orjson.loads(ANTHROPIC_MESSAGE)
    words = message["content"][0]["text"].split(" ")
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"})]
    for index in range(0, len(words), 4):
        events.append(("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": " ".join(words[index:index + 4]) + " "}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"})]
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                    for name, data in events)


# Upstream paths: the provider's base URL picks the kind of answer.
OPENAI_BASE = "/v1"
STREAM_BASE = "/stream/v1"
ANTHROPIC_BASE = "/anthropic"
ANTHROPIC_STREAM_BASE = "/anthropic-stream"


def _direct(path: str, body: bytes, content_type: str) -> dict[str, Any]:
    return {"match": {"path": path}, "direct_response": {
                "status": 200, "body": {"inline_string": body.decode()}},
            "response_headers_to_add": [{"header": {"key": "content-type",
                                                    "value": content_type}}]}


def _listener(name: str, port: int, routes: list[dict[str, Any]],
              filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1",
                                                         "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name, "codec_type": "AUTO",
                    "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"],
                                                        "routes": routes}]},
                    "http_filters": [*filters, {
                        "name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                     "router.v3.Router"}}]}}]}]}


def _admin(port: int) -> dict[str, Any]:
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}


def upstream_config(port: int, admin_port: int) -> dict[str, Any]:
    """The fake provider: answers at once. The buffer filter reads the whole request first;
    a direct response sent before the POST body was read closes the connection."""
    routes = [
        _direct(OPENAI_BASE + "/chat/completions", CHAT_COMPLETION, "application/json"),
        _direct(STREAM_BASE + "/chat/completions", chat_stream(), "text/event-stream"),
        _direct(ANTHROPIC_BASE + "/v1/messages", ANTHROPIC_MESSAGE, "application/json"),
        _direct(ANTHROPIC_STREAM_BASE + "/v1/messages", anthropic_stream(),
                "text/event-stream"),
    ]
    buffer = {"name": "envoy.filters.http.buffer", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
        "max_request_bytes": 1_048_576}}
    return {"admin": _admin(admin_port),
            "static_resources": {"listeners": [_listener("fake", port, routes, [buffer])]}}


def plain_proxy_config(port: int, admin_port: int, upstream_port: int) -> dict[str, Any]:
    """Plain Envoy: one route, one cluster, nothing else: what the gateway is compared with."""
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "60s"}}]
    cluster = {
        "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
        "circuit_breakers": {"thresholds": [{"max_connections": 100_000,
                                             "max_pending_requests": 100_000,
                                             "max_requests": 100_000}]},
        "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": upstream_port}}}}]}]}}
    return {"admin": _admin(admin_port),
            "static_resources": {"listeners": [_listener("plain", port, routes, [])],
                                 "clusters": [cluster]}}
