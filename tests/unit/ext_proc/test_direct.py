"""Which requests admission hands to Envoy to forward alone, and the usage record built from
the access-log entry of one (the entry as Envoy's gRPC access log sends it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from envoy.data.accesslog.v3 import accesslog_pb2 as al

from ext_proc.access import AccessView, Caller
from ext_proc.contract import DIRECT_HEADER, REPLY_USAGE_KEY, ClientApi
from ext_proc.direct import DirectUsage, direct_forward, reply_usage_object
from ext_proc.meter import MeteredAttempt
from ext_proc.metering.pricing import PriceOverride, PriceTable
from ext_proc.metering.usage import Outcome, TokenUsage
from ext_proc.secrets import Secret
from ext_proc.view import ProcessorView, ProviderView, TargetView

VIEW = ProcessorView(
    "v1",
    providers={"oai": ProviderView("oai", "openai", "https://api.example.com/v1",
                                   Secret("sk-provider")),
               "claude": ProviderView("claude", "anthropic", "https://claude.example.com",
                                      Secret("sk-ant"), {"version": "2023-06-01"}),
               "broken": ProviderView("broken", "openai", "https://b.example.com/v1", None,
                                      credential_error="env:MISSING: not set")},
    models={"gpt-4o": (TargetView("oai", "gpt-4o"),),
            "renamed": (TargetView("oai", "gpt-4o"),),
            "claude-x": (TargetView("claude", "claude-x"),),
            "two": (TargetView("oai", "two"), TargetView("claude", "two")),
            "broken": (TargetView("broken", "broken"),)},
    access=AccessView(prices=PriceTable({"oai/*": PriceOverride(
        Decimal(2), Decimal(8), Decimal(1), None)})),
    direct_forwarding=True,
)
CALLER = Caller("search", "sha256:" + "ab" * 32)
# One for the module: its entries share what each was for, as a worker's do.
_DIRECT_USAGE = DirectUsage()


def direct_usage(log: al.HTTPAccessLogEntry, view: ProcessorView) -> MeteredAttempt | None:
    return _DIRECT_USAGE(log, log.common_properties.metadata.filter_metadata["switchboard"],
                         view)


def metadata(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "body_size": "321", **extra}


def test_an_unchanged_request_gets_its_providers_path_host_and_credential() -> None:
    forward = direct_forward(VIEW, ClientApi.OPENAI_CHAT, CALLER, metadata("gpt-4o"))
    assert forward is not None
    assert forward.set_headers == {
        ":path": "/v1/chat/completions", ":authority": "api.example.com",
        "content-length": "321", "content-type": "application/json",
        "authorization": "Bearer sk-provider", DIRECT_HEADER: "1"}
    assert {"x-api-key", "accept-encoding"} <= forward.remove_headers
    assert forward.metadata == {"provider": "oai", "model": "gpt-4o", "team": "search",
                                "key_id": CALLER.key_id}


def test_an_anthropic_request_keeps_its_schema_and_gets_the_version() -> None:
    forward = direct_forward(VIEW, ClientApi.ANTHROPIC_MESSAGES, CALLER, metadata("claude-x"))
    assert forward is not None
    assert forward.set_headers["x-api-key"] == "sk-ant"
    assert forward.set_headers["anthropic-version"] == "2023-06-01"
    assert forward.set_headers[":path"] == "/v1/messages"


@pytest.mark.parametrize(("model", "extra"), [
    ("renamed", {}),  # the body names another model than the provider's
    ("two", {}),  # attempts may go to different providers
    ("broken", {}),  # the attempt explains the missing credential
    ("gpt-4o", {"stream": True}),  # the usage chunk must be asked for, and removed again
    ("gpt-4o", {"body_size": ""}),  # no length known
    ("unknown", {}),
])
def test_requests_the_worker_must_see_are_not_forwarded_alone(model: str,
                                                             extra: dict[str, Any]) -> None:
    assert direct_forward(VIEW, ClientApi.OPENAI_CHAT, CALLER, metadata(model, **extra)) is None


def test_a_stream_that_asks_for_its_usage_is_forwarded_alone() -> None:
    forward = direct_forward(VIEW, ClientApi.OPENAI_CHAT, CALLER,
                             metadata("gpt-4o", stream=True, include_usage=True))
    assert forward is not None and forward.set_headers[DIRECT_HEADER] == "1"
    forward = direct_forward(VIEW, ClientApi.ANTHROPIC_MESSAGES, CALLER,
                             metadata("claude-x", stream=True))  # Anthropic always reports it
    assert forward is not None


def test_nothing_is_forwarded_alone_unless_the_policy_says_so() -> None:
    assert direct_forward(replace(VIEW, direct_forwarding=False), ClientApi.OPENAI_CHAT, CALLER,
                          metadata("gpt-4o")) is None


def test_a_translated_pair_is_never_forwarded_alone() -> None:
    # An Anthropic client asking for an OpenAI provider's model needs the worker.
    assert direct_forward(VIEW, ClientApi.ANTHROPIC_MESSAGES, CALLER, metadata("gpt-4o")) is None


def entry(status: int = 200, usage: dict[str, float] | None = None,
          **flags: bool) -> al.HTTPAccessLogEntry:
    log = al.HTTPAccessLogEntry()
    common = log.common_properties
    common.start_time.FromDatetime(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    common.time_to_last_downstream_tx_byte.FromMilliseconds(250)
    common.upstream_request_attempt_count = 2
    for name, value in flags.items():
        setattr(common.response_flags, name, value)
    common.metadata.filter_metadata["switchboard"].update({
        "model": "gpt-4o", "client_path": "/v1/chat/completions", "body_size": "400",
        "direct": {"provider": "oai", "model": "gpt-4o", "team": "search",
                   "key_id": CALLER.key_id}})
    if usage is not None:
        common.metadata.filter_metadata["switchboard"][REPLY_USAGE_KEY] = orjson.dumps(
            usage).decode()
    log.request.request_id = "req-1"
    log.response.response_code.value = status
    log.response.response_body_bytes = 800
    return log


def test_the_record_comes_from_the_replys_usage_and_is_priced() -> None:
    direct = direct_usage(entry(usage={
        "prompt_tokens": 1200, "completion_tokens": 7,
        "prompt_tokens_details.cached_tokens": 1024}), VIEW)
    assert direct is not None
    record = direct.record
    assert record.usage == TokenUsage(input=1200, output=7, cached_read=1024)
    assert record.cost_usd == Decimal(176 * 2 + 1024 + 7 * 8) / 10**6
    assert (record.request_id, record.team, record.key_id) == ("req-1", "search", CALLER.key_id)
    assert (record.requested_model, record.provider, record.provider_model) == (
        "gpt-4o", "oai", "gpt-4o")
    assert (record.status, record.outcome, record.attempt) == (200, Outcome.OK, 2)
    assert record.latency_s == 0.25
    assert record.time == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert direct.labels.operation == "chat" and direct.labels.provider_kind == "openai"
    assert record.ttft_s is None  # not a stream


def test_a_streams_record_has_its_time_to_first_byte() -> None:
    log = entry(usage={"prompt_tokens": 10, "completion_tokens": 5})
    log.common_properties.metadata.filter_metadata["switchboard"].update({"stream": True})
    log.common_properties.time_to_first_upstream_rx_byte.FromMilliseconds(40)
    direct = direct_usage(log, VIEW)
    assert direct is not None and direct.record.ttft_s == 0.04


def test_a_reply_without_usage_is_estimated_from_the_sizes() -> None:
    direct = direct_usage(entry(), VIEW)
    assert direct is not None
    assert direct.record.usage == TokenUsage(input=100, output=200, estimated=True)


@pytest.mark.parametrize("reported", ["", "{", "[1]", '"text"'])
def test_a_usage_value_that_cannot_be_read_is_a_reply_without_usage(reported: str) -> None:
    log = entry()
    log.common_properties.metadata.filter_metadata["switchboard"][REPLY_USAGE_KEY] = reported
    direct = direct_usage(log, VIEW)
    assert direct is not None
    assert direct.record.usage == TokenUsage(input=100, output=200, estimated=True)


def test_usage_fields_are_read_as_numbers_only() -> None:
    assert reply_usage_object(
        '{"prompt_tokens": 12.0, "completion_tokens": true, "input_tokens": "3",'
        ' "prompt_tokens_details.cached_tokens": 2, "output_tokens": 1.5}') == {
        "prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": 2},
        "output_tokens": 1.5}
    assert reply_usage_object('{"prompt_tokens": 12, "input_tokens": 3}',
                              ClientApi.ANTHROPIC_MESSAGES) == {"input_tokens": 3}


@pytest.mark.parametrize(("flags", "status", "outcome", "recorded_status"), [
    ({"upstream_connection_failure": True}, 503, Outcome.CONNECT_FAILURE, 0),
    ({"upstream_request_timeout": True}, 504, Outcome.TIMEOUT, 0),
    ({"upstream_remote_reset": True}, 503, Outcome.NO_RESPONSE, 0),
    ({"downstream_connection_termination": True}, 200, Outcome.CLIENT_DISCONNECT, 200),
    ({}, 429, Outcome.UPSTREAM_ERROR, 429),
])
def test_failures_are_recorded_with_no_usage(flags: dict[str, bool], status: int,
                                             outcome: Outcome, recorded_status: int) -> None:
    direct = direct_usage(entry(status, **flags), VIEW)
    assert direct is not None
    assert (direct.record.outcome, direct.record.status) == (outcome, recorded_status)
    if recorded_status != 200:
        assert direct.record.usage == TokenUsage()


def test_a_client_that_hangs_up_after_the_final_usage_had_the_whole_answer() -> None:
    # OpenAI's SDK closes at [DONE], which may come before the provider's body ends.
    direct = direct_usage(entry(usage={"prompt_tokens": 10, "completion_tokens": 5},
                                downstream_connection_termination=True), VIEW)
    assert direct is not None
    assert (direct.record.outcome, direct.record.status) == (Outcome.OK, 200)
    assert direct.record.usage == TokenUsage(input=10, output=5)


def anthropic_entry(usage: dict[str, float], **flags: bool) -> al.HTTPAccessLogEntry:
    log = entry(usage=usage, **flags)
    log.common_properties.metadata.filter_metadata["switchboard"].update({
        "model": "claude-x", "client_path": "/v1/messages",
        "direct": {"provider": "claude", "model": "claude-x"}})
    return log


def test_an_anthropic_stream_cut_after_its_start_keeps_the_prompt_and_estimates_the_rest() -> None:
    # message_start's counts are read, except its placeholder output count; the final
    # output count (message_delta) never came.
    direct = direct_usage(anthropic_entry({"input_tokens": 40, "cache_read_input_tokens": 8},
                                          downstream_remote_reset=True), VIEW)
    assert direct is not None
    assert direct.record.outcome == Outcome.CLIENT_DISCONNECT
    assert direct.record.usage == TokenUsage(input=48, output=200, cached_read=8, estimated=True)


def test_a_whole_anthropic_stream_is_read_as_reported() -> None:
    direct = direct_usage(anthropic_entry({"input_tokens": 40, "output_tokens": 12}), VIEW)
    assert direct is not None and direct.record.outcome == Outcome.OK
    assert direct.record.usage == TokenUsage(input=40, output=12)


def test_an_entry_of_a_request_the_worker_saw_is_not_recorded_again() -> None:
    log = entry()
    del log.common_properties.metadata.filter_metadata["switchboard"].fields["direct"]
    assert direct_usage(log, VIEW) is None

