"""One attempt's rewriting, message by message, as Envoy would send them."""

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
    "alpha": ProviderView("alpha", "openai", "https://alpha.example/v1", Secret("alpha-key")),
    "local": ProviderView("local", "openai", "http://10.0.0.7:8000/openai/v1", None),
    "demo": ProviderView("demo", "mock", "", None),
})


def headers_message(**headers: str) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k.replace("_", "-"), raw_value=v.encode())
                 for k, v in headers.items()])))


def body_message(body: dict[str, object]) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=orjson.dumps(body),
                                                         end_of_stream=True))


def run(provider: str, model: str, body: dict[str, object],
        **extra: str) -> tuple[dict[str, str], set[str], bytes]:
    attempt = Attempt(lambda: VIEW)
    attempt.handle(headers_message(**{
        "x_switchboard_provider": provider, "x_switchboard_target_model": model,
        "x_switchboard_client_path": "/v1/chat/completions", ":path": "/v1/chat/completions",
        **extra}))
    reply = attempt.handle(body_message(body)).request_body.response
    set_headers = {h.header.key: h.header.raw_value.decode()
                   for h in reply.header_mutation.set_headers}
    return set_headers, set(reply.header_mutation.remove_headers), reply.body_mutation.body


def test_sets_path_authority_length_and_the_providers_key() -> None:
    body = {"model": "gpt-4o", "messages": []}
    headers, removed, new_body = run("alpha", "gpt-4o", body,
                                     authorization="Bearer client-gateway-key")
    assert headers[":path"] == "/v1/chat/completions"
    assert headers[":authority"] == "alpha.example"
    assert headers["authorization"] == "Bearer alpha-key"
    assert headers["content-length"] == str(len(orjson.dumps(body)))
    assert new_body == b""  # unchanged body: nothing to replace
    assert "x-switchboard-provider" in removed
    assert "x-api-key" in removed


def test_a_provider_without_key_removes_whatever_an_earlier_attempt_set() -> None:
    headers, removed, new_body = run(
        "local", "llama-3", {"model": "smart", "messages": []},
        authorization="Bearer alpha-key", content_length="999")
    assert "authorization" in removed
    assert "authorization" not in headers
    assert headers[":path"] == "/openai/v1/chat/completions"
    assert headers[":authority"] == "10.0.0.7:8000"
    assert orjson.loads(new_body)["model"] == "llama-3"
    assert headers["content-length"] == str(len(new_body))


def test_unknown_provider_is_a_503_not_a_crash() -> None:
    attempt = Attempt(lambda: VIEW)
    reply = attempt.handle(headers_message(x_switchboard_provider="ghost",
                                           x_switchboard_client_path="/v1/chat/completions"))
    assert reply.immediate_response.status.code == 503
    assert b"not in this worker's policy" in reply.immediate_response.body


def test_the_mock_answers_without_any_provider() -> None:
    attempt = Attempt(lambda: VIEW)
    attempt.handle(headers_message(x_switchboard_provider="demo",
                                   x_switchboard_target_model="mock",
                                   x_switchboard_client_path="/v1/chat/completions"))
    reply = attempt.handle(body_message({"model": "mock",
                                         "messages": [{"role": "user", "content": "hi"}]}))
    assert reply.immediate_response.status.code == 200
    assert orjson.loads(reply.immediate_response.body)["choices"][0]["message"]["content"] == (
        "This is a mock reply from Switchboard to: hi")


def test_metric_labels_come_from_the_policy_and_a_refusal_keeps_its_status() -> None:
    attempt = Attempt(lambda: VIEW)
    attempt.handle(headers_message(x_switchboard_provider="ghost",
                                   x_switchboard_target_model="gpt-4o",
                                   x_switchboard_requested_model="smart",
                                   x_switchboard_team="search", x_switchboard_key_id="sha256:k",
                                   x_switchboard_client_path="/v1/embeddings"))
    assert attempt.refused_status == 503
    assert attempt.usage_record(cancelled=False) is None  # nothing reached a provider
    labels = attempt.labels()
    assert (labels.operation, labels.provider_kind, labels.provider) == ("embeddings", "",
                                                                         "ghost")
    assert (labels.requested_model, labels.response_model, labels.team) == ("smart", "gpt-4o",
                                                                            "search")


def test_a_served_attempt_is_labelled_with_its_providers_kind() -> None:
    attempt = Attempt(lambda: VIEW)
    attempt.handle(headers_message(x_switchboard_provider="demo",
                                   x_switchboard_target_model="mock",
                                   x_switchboard_requested_model="mock",
                                   x_switchboard_client_path="/v1/messages"))
    attempt.handle(body_message({"model": "mock", "max_tokens": 5,
                                 "messages": [{"role": "user", "content": "hi"}]}))
    assert attempt.refused_status is None
    labels = attempt.labels()
    assert (labels.operation, labels.provider_kind, labels.provider, labels.team) == (
        "chat", "mock", "demo", "")


def forwarded(metadata: dict[str, object], model: str = "gpt-4o") -> ep.ProcessingResponse:
    """The reply to request headers that carry what Envoy read from the body."""
    message = headers_message(
        x_switchboard_provider="alpha", x_switchboard_target_model=model,
        x_switchboard_client_path="/v1/chat/completions", content_length="777")
    message.metadata_context.filter_metadata["switchboard"].update(metadata)
    return Attempt(lambda: VIEW).handle(message)


def test_a_body_naming_the_providers_model_is_forwarded_unread() -> None:
    reply = forwarded({"model": "gpt-4o", "body_size": "42"})
    assert reply.mode_override.request_body_mode == pm.ProcessingMode.NONE
    mutation = reply.request_headers.response.header_mutation
    set_headers = {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}
    assert set_headers["content-length"] == "42"  # the client's, whatever an attempt set
    assert set_headers["authorization"] == "Bearer alpha-key"
    assert set_headers[":path"] == "/v1/chat/completions"
    assert "x-switchboard-provider" in mutation.remove_headers


@pytest.mark.parametrize("metadata", [
    {"model": "alias", "body_size": "42"},  # renamed for the provider
    {"model": "gpt-4o", "downgraded_from": "gpt-5", "body_size": "42"},  # body names gpt-5
    {"model": "gpt-4o", "stream": True, "body_size": "42"},  # the gateway asks for usage
    {"model": "gpt-4o"},  # no length to restore
], ids=["renamed", "downgraded", "stream-without-usage", "no-size"])
def test_a_body_that_needs_reading_is_asked_for(metadata: dict[str, object]) -> None:
    reply = forwarded(metadata)
    assert reply.mode_override.request_body_mode == pm.ProcessingMode.BUFFERED
    assert not reply.request_headers.response.header_mutation.set_headers


def test_a_stream_that_asks_for_usage_is_forwarded_unread() -> None:
    reply = forwarded({"model": "gpt-4o", "stream": True, "include_usage": True,
                       "body_size": "42"})
    assert reply.mode_override.request_body_mode == pm.ProcessingMode.NONE
