"""One attempt, as the upstream ext_proc sees it: rewrite the request for the backend Envoy
picked, then translate that backend's response back into the client's schema.

Envoy opens one gRPC stream per attempt; this object lives for that stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import structlog
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf import struct_pb2

from ext_proc.access import Caller
from ext_proc.contract import (
    ATTEMPT_COUNT_HEADER,
    BUDGET_WARNING_HEADER,
    CLIENT_PATH_HEADER,
    COST_HEADER,
    EXT_PROC_ATTRIBUTES,
    INTERNAL_HEADER_PREFIX,
    KEY_ID_HEADER,
    METADATA_NAMESPACE,
    PROVIDER_HEADER,
    REQUESTED_MODEL_HEADER,
    RESPONSE_CODE_ATTRIBUTE,
    RESPONSE_MODEL_HEADER,
    RESPONSE_PROVIDER_HEADER,
    STREAM_KEY,
    TARGET_MODEL_HEADER,
    TEAM_HEADER,
    ClientApi,
    client_api_for_path,
)
from ext_proc.credentials import CredentialUnavailable
from ext_proc.meter import estimate_tokens, estimated_usage, format_usd, price, token_usage
from ext_proc.metering.metrics import OPERATION_NAMES, AttemptLabels
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.mutations import header_map, header_mutation, immediate
from ext_proc.outgoing import DROPPED_HEADERS, provider_headers
from ext_proc.stream_cost import StreamCost, stream_cost
from ext_proc.stream_guard import StreamGuard
from ext_proc.translators.base import (
    BodyMode,
    ClientRequest,
    LocalReply,
    TranslationError,
    Translator,
    UpstreamRequest,
    Usage,
    as_passthrough,
    body_size,
)
from ext_proc.translators.common import is_event_stream, provider_events
from ext_proc.translators.registry import translator_factory
from ext_proc.view import ProcessorView, ProviderView

log = structlog.get_logger("attempt")

_BODY_MODES = {"none": pm.ProcessingMode.NONE, "buffered": pm.ProcessingMode.BUFFERED,
               "streamed": pm.ProcessingMode.STREAMED}


class AttemptError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Attempt:
    def __init__(self, view: Callable[[], ProcessorView]) -> None:
        self._view = view
        self.view = ProcessorView.empty()  # the policy version this attempt was served under
        self._api = ClientApi.OPENAI_CHAT
        self._provider: ProviderView | None = None
        self._translator: Translator | None = None
        self._request_headers: dict[str, str] = {}
        self._guard: StreamGuard | None = None
        self._stream_cost: StreamCost | None = None
        self.outcome = ""
        # The status of the answer the worker gave itself, when it refused the attempt.
        self.refused_status: int | None = None
        # Metering: what was sent, what came back, when.
        self._started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._request_body = b""  # empty when forwarded unread
        self._request_size = 0
        self._sent = False
        self._status = 0
        self._first_byte: float | None = None
        self._usage: Usage | None = None
        self._events = 0
        self._reply_tokens = 0  # estimated output of a reply that reported no usage
        self._finished = False
        self._headers_skipped = False  # the reply's status comes with its body
        self._final_price: tuple[TokenUsage, Decimal | None] | None = None

    def summary(self) -> dict[str, str]:
        """The fields of this attempt's log line."""
        outcome = self.outcome
        if self._guard is not None and not self._guard.finished:
            outcome += " cut"  # the stream ended without its end: a reset mid-stream
        return {"api": self._api.value,
                "provider": self._provider.name if self._provider else "",
                "model": self._request_headers.get(TARGET_MODEL_HEADER, ""),
                "outcome": outcome}

    def handle(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse:
        phase = request.WhichOneof("request")
        try:
            if phase == "request_headers":
                return self._on_request_headers(request)
            if phase == "request_body":
                return self._on_request_body(request.request_body.body)
            if phase == "response_headers":
                return self._on_response_headers(request.response_headers)
            if phase == "response_body":
                if not self._status:  # the reply's headers were skipped
                    self._begin_reply(_status_attribute(request), {})
                return self._on_response_body(request.response_body)
        except (AttemptError, TranslationError) as exc:
            return self._error(exc.status, str(exc))
        return self._error(500, f"unexpected ext_proc message {phase}")

    def _on_request_headers(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse:
        headers = request.request_headers
        self._request_headers = header_map(headers)
        api = client_api_for_path(self._request_headers.get(CLIENT_PATH_HEADER, ""))
        if api is None:
            raise AttemptError(500, "the request names no client API")
        self._api = api
        provider_name = self._request_headers.get(PROVIDER_HEADER, "")
        self.view = view = self._view()
        self._provider = provider = view.providers.get(provider_name)
        if provider is None:
            raise AttemptError(503, f"provider {provider_name!r} is not in this worker's policy "
                                    f"version {view.version!r} yet")
        if provider.credential_error:
            raise AttemptError(503, f"provider {provider_name!r} is misconfigured: "
                                    "its credential could not be read")
        factory = translator_factory(self._api, provider.kind)
        if factory is None:
            raise AttemptError(400, f"{self._api.path} cannot be served by a "
                                    f"{provider.kind} backend")
        model = self._request_headers.get(TARGET_MODEL_HEADER, "")
        self._translator = factory(self._api, provider.backend(model))
        if headers.end_of_stream:
            raise AttemptError(400, "the request has no body")
        namespace = request.metadata_context.filter_metadata.get(METADATA_NAMESPACE)
        reply_mode = self._reply_mode(namespace)
        if (forwarded := self._forward_unread(namespace)) is not None:
            reply_mode.request_body_mode = pm.ProcessingMode.NONE
            return ep.ProcessingResponse(
                request_headers=ep.HeadersResponse(response=forwarded), mode_override=reply_mode)
        reply_mode.request_body_mode = pm.ProcessingMode.BUFFERED
        return ep.ProcessingResponse(request_headers=ep.HeadersResponse(),
                                     mode_override=reply_mode)

    def _reply_mode(self, namespace: struct_pb2.Struct | None) -> pm.ProcessingMode:
        """The reply's headers are worth a message only for what a worker sets on them: the
        cost (a policy that puts it in replies) and a stream's. Otherwise a whole reply comes
        in one message, its status as an attribute; Envoy drops its content-length, which a
        translated body would change. `namespace`: what Envoy read from the body."""
        stream = namespace.fields.get(STREAM_KEY) if namespace is not None else None
        if self.view.direct_forwarding and not (stream is not None and stream.bool_value):
            self._headers_skipped = True
            return pm.ProcessingMode(response_header_mode=pm.ProcessingMode.SKIP,
                                     response_body_mode=pm.ProcessingMode.BUFFERED)
        return pm.ProcessingMode(response_header_mode=pm.ProcessingMode.SEND)

    def _forward_unread(self, namespace: struct_pb2.Struct | None) -> ep.CommonResponse | None:
        """The rewrite of a request whose body goes to the backend unchanged, decided from what
        Envoy read from the body before routing, so the body is never sent here (one message
        fewer); None when the translator must read the body."""
        passthrough = as_passthrough(self._translator)
        if namespace is None or passthrough is None:
            return None
        metadata = dict(namespace.items())
        size = body_size(metadata)
        client = ClientRequest.of_metadata(metadata)
        upstream = passthrough.unchanged(client) if size is not None else None
        if size is None or upstream is None:
            return None
        self._request_size = size
        self._stream_cost = self._costed(client)
        return self._rewrite(upstream, None, self._request_size)

    def _on_request_body(self, raw: bytes) -> ep.ProcessingResponse:
        assert self._translator is not None
        assert self._provider is not None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AttemptError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise AttemptError(400, "The request body must be a JSON object.")
        result = self._translator.request(body, raw)
        self._request_body = raw
        self._request_size = len(raw)
        self._stream_cost = self._costed(ClientRequest.of_body(body))
        if isinstance(result, LocalReply):
            self._sent = True
            self.outcome = f"local {result.status}"
            self._status, self._usage, self._finished = result.status, result.usage, True
            self._first_byte = time.monotonic()
            costed = (self._stream_cost.send(result.body, True, self._priced)
                      if self._stream_cost is not None else None)
            return immediate(result.status, costed or result.body,
                             {**result.headers, **self._served_by(), **self._cost_header()},
                             "switchboard_local")
        sent = raw if result.body is None else result.body
        common = self._rewrite(result, sent, len(sent))
        if result.body is not None:
            common.body_mutation.body = result.body
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))

    def _rewrite(self, result: UpstreamRequest, sent: bytes | None,
                 length: int) -> ep.CommonResponse:
        """Path, host, length and credential for this attempt's backend, set on the header
        map every attempt shares (so all of them, every time), the client's key and our
        internal headers removed. `sent` is None for a body forwarded unread: no credential
        that signs the body (SigV4) belongs to a translator that forwards one."""
        assert self._provider is not None
        try:
            headers = provider_headers(self._provider, result, length, sent)
        except CredentialUnavailable as exc:
            raise AttemptError(503, str(exc)) from None
        self._sent = True
        remove = DROPPED_HEADERS | {k for k in self._request_headers
                                    if k.startswith(INTERNAL_HEADER_PREFIX)}
        return ep.CommonResponse(header_mutation=header_mutation(headers, remove))

    def _begin_reply(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        assert self._translator is not None
        self.outcome = str(status)
        self._status = status
        mode: BodyMode = self._translator.response_body_mode(status, headers)
        if mode == "streamed":
            self._guard = StreamGuard(self._api)
        return mode

    def _on_response_headers(self, headers: ep.HttpHeaders) -> ep.ProcessingResponse:
        response_headers = header_map(headers)
        mode = self._begin_reply(int(response_headers.get(":status", "0") or 0),
                                 response_headers)
        reply = ep.ProcessingResponse(response_headers=ep.HeadersResponse())
        if mode == "streamed":
            # A streamed body may be rewritten chunk by chunk: its length is not known ahead,
            # and a translated binary stream (Bedrock's) reaches the client as SSE.
            sse = {} if is_event_stream(response_headers) else {
                "content-type": "text/event-stream"}
            reply.response_headers.response.header_mutation.CopyFrom(
                header_mutation(sse, ["content-length"]))
        if mode != "none":
            reply.mode_override.CopyFrom(pm.ProcessingMode(response_body_mode=_BODY_MODES[mode]))
        return reply

    def _on_response_body(self, body: ep.HttpBody) -> ep.ProcessingResponse:
        assert self._translator is not None
        common = ep.CommonResponse()
        if self._first_byte is None:
            self._first_byte = time.monotonic()
        if self._guard is not None:
            translated = self._translator.response_chunk(body.body, body.end_of_stream)
            self._usage = translated.usage or self._usage
            self._finished = body.end_of_stream
            sent = body.body if translated.body is None else translated.body
            self._events += provider_events(body.body)
            if self._stream_cost is not None and (costed := self._stream_cost.send(
                    sent, body.end_of_stream, self._priced)) is not None:
                sent, translated = costed, replace(translated, body=costed)
            if tail := self._guard.watch(sent, body.end_of_stream):
                translated = replace(translated, body=sent + tail)
        else:
            translated = self._translator.response_body(body.body)
            self._usage, self._finished = translated.usage, True
            if translated.usage is None and self._api is not ClientApi.OPENAI_EMBEDDINGS:
                self._reply_tokens = estimate_tokens(body.body)
            set_headers = self._cost_header()  # none when the headers were skipped
            # Skipped headers cannot be changed; Envoy dropped their length itself.
            if translated.body is not None and not self._headers_skipped:
                set_headers["content-length"] = str(len(translated.body))  # changed with it
            if set_headers:
                common.header_mutation.CopyFrom(header_mutation(set_headers))
        if translated.body is not None:
            common.body_mutation.body = translated.body
        return ep.ProcessingResponse(response_body=ep.BodyResponse(response=common))

    def _costed(self, client: ClientRequest) -> StreamCost | None:
        """What writes the cost into a stream's usage event, unless the policy keeps the cost
        out of replies (`gateway.reply_cost: false`)."""
        return None if self.view.direct_forwarding else stream_cost(self._api, client)

    def _cost_header(self) -> dict[str, str]:
        if self.view.direct_forwarding:
            return {}  # the policy keeps the cost out of replies
        _, cost = self._priced()
        return {COST_HEADER: format_usd(cost)} if cost is not None else {}

    def _priced(self) -> tuple[TokenUsage, Decimal | None]:
        """The attempt's usage and cost; priced once the reply is complete, then reused by
        the cost header and the usage record."""
        if self._final_price is not None:
            return self._final_price
        usage = self._metered_usage()
        priced = usage, self._cost(usage)
        if self._finished:
            self._final_price = priced
        return priced

    def _cost(self, usage: TokenUsage) -> Decimal | None:
        if self._provider is None:
            return None
        model = self._request_headers.get(TARGET_MODEL_HEADER, "")
        return price(self.view, self._provider, model, usage, self._started_at)

    def _metered_usage(self) -> TokenUsage:
        if self._usage is not None:
            return token_usage(self._usage)
        if not 200 <= self._status < 300:
            return TokenUsage()
        # Served, but no usage reported (a stream cut before its usage, or a provider that
        # reports none): estimated, and marked so.
        output = self._events if self._guard is not None else self._reply_tokens
        return estimated_usage(self._request_body, self._request_size, output)

    @property
    def _complete(self) -> bool:
        """The provider's body ended, or the client was sent the stream's terminator."""
        return self._finished or (self._guard is not None and self._guard.finished)

    @property
    def caller(self) -> Caller:
        return Caller(self._request_headers.get(TEAM_HEADER, ""),
                      self._request_headers.get(KEY_ID_HEADER, ""))

    def usage_record(self, cancelled: bool) -> UsageRecord | None:
        """The record of this attempt, or None if it never reached a provider."""
        if not self._sent or self._provider is None:
            return None
        usage, cost = self._priced()
        if self._status == 0:
            outcome = Outcome.NO_RESPONSE
        elif (cancelled or self._guard is not None) and not self._complete:
            # Envoy cancels the stream, or for a client gone mid-stream just closes it.
            outcome = Outcome.CLIENT_DISCONNECT
        elif 200 <= self._status < 300:
            outcome = Outcome.OK
        else:
            outcome = Outcome.UPSTREAM_ERROR
        attempt = self._request_headers.get(ATTEMPT_COUNT_HEADER, "1")
        headers = self._request_headers
        return UsageRecord(
            time=self._started_at, request_id=headers.get("x-request-id", ""),
            team=headers.get(TEAM_HEADER, ""), key_id=headers.get(KEY_ID_HEADER, ""),
            requested_model=headers.get(REQUESTED_MODEL_HEADER, ""),
            provider=self._provider.name, provider_model=headers.get(TARGET_MODEL_HEADER, ""),
            usage=usage, cost_usd=cost,
            status=self._status, outcome=outcome,
            latency_s=time.monotonic() - self._started,
            ttft_s=(self._first_byte - self._started
                    if self._first_byte is not None and self._guard is not None
                    else None),
            attempt=int(attempt) if attempt.isdigit() else 1)

    def labels(self) -> AttemptLabels:
        """This attempt's metric labels: names from the policy, never ids."""
        headers = self._request_headers
        provider = self._provider
        return AttemptLabels(
            operation=OPERATION_NAMES[self._api],
            provider_kind=provider.kind if provider else "",
            provider=provider.name if provider else headers.get(PROVIDER_HEADER, ""),
            requested_model=headers.get(REQUESTED_MODEL_HEADER, ""),
            response_model=headers.get(TARGET_MODEL_HEADER, ""),
            team=headers.get(TEAM_HEADER, ""))

    def _served_by(self) -> dict[str, str]:
        """What Envoy adds to a provider's reply, for a reply the worker gives itself."""
        if self._provider is None:
            return {}
        served = {RESPONSE_PROVIDER_HEADER: self._provider.name,
                  RESPONSE_MODEL_HEADER: self._request_headers.get(TARGET_MODEL_HEADER, "")}
        if warning := self._request_headers.get(BUDGET_WARNING_HEADER):
            served[BUDGET_WARNING_HEADER] = warning
        return served

    def _error(self, status: int, message: str) -> ep.ProcessingResponse:
        self.outcome = f"refused {status}"
        self.refused_status = status
        log.info("attempt refused", status=status, reason=message,
                 provider=self._provider.name if self._provider else None)
        # Plain text: the listener's local_reply_config wraps it in the client API's schema.
        return immediate(status, message.encode(), {"content-type": "text/plain"},
                         "switchboard_error")


def _status_attribute(request: ep.ProcessingRequest) -> int:
    """The reply's status, which Envoy sends with the first message of a reply whose headers
    were skipped (the upstream filter asks for the attribute)."""
    attributes = request.attributes.get(EXT_PROC_ATTRIBUTES)
    code = attributes.fields.get(RESPONSE_CODE_ATTRIBUTE) if attributes is not None else None
    if code is None:
        raise AttemptError(502, "Envoy sent the reply without its status")
    return int(code.number_value)
