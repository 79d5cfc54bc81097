"""Requests Envoy forwards alone: no upstream worker call, metered from the access log.

When the policy turns `gateway.reply_cost` off, admission looks at a request that has one
target: if the provider takes its body as it is (same API, the model named as the provider
names it, a stream that asks for its usage), admission sets the provider's path, host and
credential on the request itself and marks it with DIRECT_HEADER, which makes every attempt
skip the upstream ext_proc. Envoy reads the reply's usage (a Lua reader of a whole reply's
usage object or a stream's usage events: control_plane/compiler/reply_usage.py) and hands it
over, with what admission noted, in the access-log entry of the finished request; the usage
record is built from that entry. One worker message per request instead of four; the price
is that the reply carries no cost, since it has left before anyone priced it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from envoy.data.accesslog.v3 import accesslog_pb2 as al

from ext_proc.access import Caller
from ext_proc.contract import (
    ANTHROPIC_USAGE_FIELDS,
    BODY_SIZE_KEY,
    CLIENT_PATH_KEY,
    DIRECT_HEADER,
    DIRECT_METADATA_KEY,
    MODEL_KEY,
    OPENAI_USAGE_FIELDS,
    REPLY_FINAL_FIELDS,
    REPLY_USAGE_FIELDS,
    REPLY_USAGE_KEY,
    STREAM_KEY,
    ClientApi,
    client_api_for_path,
)
from ext_proc.credentials import CredentialUnavailable
from ext_proc.meter import MeteredAttempt, estimated_usage, price, token_usage
from ext_proc.metering.estimate import BYTES_PER_TOKEN_FLOOR
from ext_proc.metering.metrics import OPERATION_NAMES, AttemptLabels
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.outgoing import DROPPED_HEADERS, provider_headers
from ext_proc.translators.base import ClientRequest, Usage, as_passthrough, body_size
from ext_proc.translators.common import usage_from_anthropic, usage_from_openai
from ext_proc.translators.registry import translator_factory
from ext_proc.view import ProcessorView, ProviderView


@dataclass(frozen=True)
class DirectForward:
    """What admission adds to a request Envoy forwards alone."""

    set_headers: dict[str, str]
    remove_headers: frozenset[str]
    metadata: dict[str, str]


def direct_forward(view: ProcessorView, api: ClientApi | None, caller: Caller,
                   metadata: Mapping[str, Any]) -> DirectForward | None:
    """The rewrite of a request Envoy can forward without the upstream worker, or None."""
    if not view.direct_forwarding or api is None:
        return None
    client = ClientRequest.of_metadata(metadata)
    targets = view.models.get(client.model, ())
    size = body_size(metadata)
    # One target: every attempt goes to the same provider, so one rewrite serves them all.
    # The length is what the provider receives.
    if len(targets) != 1 or size is None:
        return None
    target = targets[0]
    provider = view.providers.get(target.provider)
    factory = translator_factory(api, provider.kind) if provider is not None else None
    if provider is None or factory is None or provider.credential_error:
        return None  # the attempt explains the failure in the client's schema
    translator = as_passthrough(factory(api, provider.backend(target.model)))
    if translator is None:
        return None
    # A stream that reports its usage only if asked must have been asked by the client.
    upstream = translator.unchanged(client)
    if upstream is None:
        return None
    try:
        headers = provider_headers(provider, upstream, size, None)
    except CredentialUnavailable:
        return None
    headers[DIRECT_HEADER] = "1"
    return DirectForward(headers, DROPPED_HEADERS, {
        "provider": provider.name, "model": target.model,
        "team": caller.team, "key_id": caller.key_id})


# How each client API's reply names its usage; a request forwarded as it is gets a reply in
# the schema the client called.
USAGE_READERS: Mapping[ClientApi, Callable[[Mapping[str, Any]], Usage]] = {
    ClientApi.OPENAI_CHAT: usage_from_openai,
    ClientApi.OPENAI_EMBEDDINGS: usage_from_openai,
    ClientApi.ANTHROPIC_MESSAGES: usage_from_anthropic,
}


@dataclass(frozen=True, slots=True)
class _Served:
    """Whom a forwarded request was for and where it went: the same for every request of one
    key to one model, so read from an entry once per policy version."""

    api: ClientApi
    reply_api: ClientApi  # a reply Envoy translated was read in the provider's schema
    provider: ProviderView | None
    caller: Caller
    labels: AttemptLabels


# Bounds the served cache (paths come from clients); the policy bounds the rest of its key.
_SERVED_MAX = 4096


class DirectUsage:
    """The usage records of requests Envoy forwarded alone, from their access-log entries.
    Every request's entry passes here, so fields are looked up one by one (iterating a
    protobuf map runs in Python), and who each was for is read once (_Served)."""

    def __init__(self) -> None:
        self._view: ProcessorView | None = None
        self._served: dict[tuple[bytes, str, str], _Served | None] = {}

    def __call__(self, entry: al.HTTPAccessLogEntry, namespace: Any,
                 view: ProcessorView) -> MeteredAttempt | None:
        """The record of a request Envoy forwarded alone, given its entry and the entry's
        METADATA_NAMESPACE (the caller has read it); None when the entry is not one (or its
        API cannot be told)."""
        fields = namespace.fields
        marked = fields.get(DIRECT_METADATA_KEY)
        if marked is None:
            return None
        common = entry.common_properties
        served = self._served_by(view, marked.struct_value, _text(fields, CLIENT_PATH_KEY),
                                 _text(fields, MODEL_KEY))
        if served is None:
            return None
        reported = fields.get(REPLY_USAGE_KEY)
        reply = (reply_usage_object(reported.string_value, served.reply_api)
                 if reported is not None else {})
        whole = _whole(served.reply_api, reply)
        status = entry.response.response_code.value
        outcome = _outcome(common, status, whole)
        if outcome in (Outcome.TIMEOUT, Outcome.CONNECT_FAILURE, Outcome.NO_RESPONSE):
            status = 0  # Envoy's own answer, not the provider's
        usage = _usage(served.reply_api, reply, whole, status, _text(fields, BODY_SIZE_KEY),
                       entry.response.response_body_bytes)
        labels, started = served.labels, _datetime(common.start_time)
        cost = (price(view, served.provider, labels.response_model, usage, started)
                if served.provider is not None else None)
        stream = fields.get(STREAM_KEY)
        first_byte = (_seconds(common.time_to_first_upstream_rx_byte)
                      if stream is not None and stream.bool_value
                      and common.HasField("time_to_first_upstream_rx_byte") else None)
        record = UsageRecord(
            time=started, request_id=entry.request.request_id, team=labels.team,
            key_id=served.caller.key_id, requested_model=labels.requested_model,
            provider=labels.provider, provider_model=labels.response_model, usage=usage,
            cost_usd=cost, status=status, outcome=outcome,
            latency_s=_seconds(common.time_to_last_downstream_tx_byte),
            attempt=max(common.upstream_request_attempt_count, 1), ttft_s=first_byte)
        return MeteredAttempt(record, served.caller, labels)

    def _served_by(self, view: ProcessorView, direct: Any, path: str,
                   requested: str) -> _Served | None:
        if view is not self._view or len(self._served) >= _SERVED_MAX:
            self._view, self._served = view, {}
        key = (direct.SerializeToString(), path, requested)
        if key in self._served:
            return self._served[key]
        served = self._served[key] = _served(view, direct.fields, path, requested)
        return served


def _served(view: ProcessorView, direct: Any, path: str, requested: str) -> _Served | None:
    api = client_api_for_path(path)
    if api is None:
        return None
    provider_name = _text(direct, "provider")
    provider = view.providers.get(provider_name)
    caller = Caller(_text(direct, "team"), _text(direct, "key_id"))
    return _Served(api, client_api_for_path(_text(direct, "reply_api")) or api, provider,
                   caller, AttemptLabels(OPERATION_NAMES[api], provider.kind if provider else "",
                                         provider_name, requested, _text(direct, "model"),
                                         caller.team))


def _text(fields: Any, key: str) -> str:
    value = fields.get(key)
    return value.string_value if value is not None else ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(timestamp: Any) -> datetime:
    """A protobuf Timestamp, to the microsecond (its own ToDatetime is Python, and slower)."""
    return _EPOCH + timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


def _seconds(duration: Any) -> float:
    return float(duration.seconds + duration.nanos / 1e9)


def _place(name: str) -> tuple[str, str | None, str]:
    """A usage field's name in metadata, the object holding it in the reply (None: `usage`
    itself; the fields nest one level at most) and its own name there."""
    parent, _, leaf = name.rpartition(".")
    return name, parent or None, leaf


_REPLY_USAGE_PATHS = tuple(_place(name) for name in REPLY_USAGE_FIELDS)
# What each API's usage reader reads (USAGE_READERS): the other schema's names are not looked up.
_API_USAGE_PATHS = {
    ClientApi.OPENAI_CHAT: tuple(_place(name) for name in OPENAI_USAGE_FIELDS),
    ClientApi.OPENAI_EMBEDDINGS: tuple(_place(name) for name in OPENAI_USAGE_FIELDS),
    ClientApi.ANTHROPIC_MESSAGES: tuple(_place(name) for name in ANTHROPIC_USAGE_FIELDS),
}


def reply_usage_object(reported: str, api: ClientApi | None = None) -> dict[str, Any]:
    """The reply's `usage` object as it wrote it, from the fields Envoy's usage reader found
    (REPLY_USAGE_KEY's JSON: {"a.b": 1} -> {"a": {"b": 1}}); only `api`'s fields when given.
    Empty when the value cannot be read (a defect: the request is then metered as one cut
    before its usage)."""
    try:
        fields = orjson.loads(reported)
    except orjson.JSONDecodeError:
        return {}
    usage: dict[str, Any] = {}
    if not isinstance(fields, dict):
        return usage
    for name, parent, leaf in _REPLY_USAGE_PATHS if api is None else _API_USAGE_PATHS[api]:
        number = fields.get(name)
        if isinstance(number, int | float) and not isinstance(number, bool):
            holder = usage if parent is None else usage.setdefault(parent, {})
            holder[leaf] = int(number) if float(number).is_integer() else number
    return usage


def _whole(api: ClientApi, reply: Mapping[str, Any]) -> bool:
    """Whether the reply reached the end of its answer: it reported its final usage (an
    embedding's usage is final as soon as it is there)."""
    if api is ClientApi.OPENAI_EMBEDDINGS:
        return bool(reply)
    return not reply.keys().isdisjoint(REPLY_FINAL_FIELDS)


def _usage(api: ClientApi, reply: Mapping[str, Any], whole: bool, status: int, body_size: str,
           reply_bytes: int) -> TokenUsage:
    if whole:
        return token_usage(USAGE_READERS[api](reply))
    if not 200 <= status < 300:
        return TokenUsage()
    # Served, but cut before its final usage (or a reply that names none): the output
    # estimated from the reply's size, as the worker would; the prompt as the reply's start
    # counted it (Anthropic's message_start), else from the request's size.
    output = (0 if api is ClientApi.OPENAI_EMBEDDINGS
              else math.ceil(reply_bytes / BYTES_PER_TOKEN_FLOOR))
    estimate = estimated_usage(b"", int(body_size) if body_size.isdigit() else 0, output)
    if not reply:
        return estimate
    counted = token_usage(USAGE_READERS[api](reply))
    return replace(counted, output=estimate.output, reasoning=0, estimated=True)


def _served_outcome(status: int) -> Outcome:
    return Outcome.OK if 200 <= status < 300 else Outcome.UPSTREAM_ERROR


def _outcome(common: al.AccessLogCommon, status: int, whole: bool) -> Outcome:
    # Envoy writes the flags only when one is set: most entries have none to read, and an
    # empty one is decided without reading each flag.
    if not common.HasField("response_flags") or common.response_flags.ByteSize() == 0:
        return _served_outcome(status)
    flags = common.response_flags
    if flags.downstream_connection_termination or flags.downstream_remote_reset:
        # A client may hang up once it has the answer's end, before the provider's body
        # ends (OpenAI's SDK does at [DONE]): it had the whole answer.
        if whole and 200 <= status < 300:
            return Outcome.OK
        return Outcome.CLIENT_DISCONNECT
    if flags.upstream_request_timeout:
        return Outcome.TIMEOUT
    if flags.upstream_connection_failure:
        return Outcome.CONNECT_FAILURE
    if (flags.upstream_remote_reset or flags.upstream_connection_termination
            or flags.local_reset or flags.upstream_overflow or flags.no_healthy_upstream):
        return Outcome.NO_RESPONSE
    return _served_outcome(status)
