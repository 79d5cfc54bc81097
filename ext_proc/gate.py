"""The router-level call, once per request before routing: who is calling, may they use this
model, and does the request fit their budgets and rate limits.

Envoy sends only the request headers here, after its Lua has read the body
(control_plane/compiler/lua/request_fields.lua): the model and max tokens arrive as metadata,
the body size as content-length, so admission costs one message. The worst case is reserved;
each attempt later charges what it really cost, and the reservation is released when Envoy
logs the finished request (see ext_proc/release.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from prometheus_client import CollectorRegistry

from ext_proc.access import Caller
from ext_proc.contract import (
    BUDGET_WARNING_METADATA_KEY,
    DIRECT_METADATA_KEY,
    DOWNGRADED_FROM_KEY,
    KEY_ID_HEADER,
    METADATA_NAMESPACE,
    MODEL_KEY,
    RESERVATION_METADATA_KEY,
    ROUTE_MODEL_HEADER,
    TEAM_HEADER,
    ClientApi,
    client_api_for_path,
)
from ext_proc.direct import direct_forward
from ext_proc.ledgers import Ledgers
from ext_proc.metering.admission_metrics import (
    AdmissionMetrics,
    AdmissionOutcome,
    BudgetAction,
    refusal_outcome,
)
from ext_proc.mutations import header_map, header_mutation, immediate
from ext_proc.state.ledger import LedgerError
from ext_proc.state.model import Admission, ReservationRequest
from ext_proc.state.periods import Clock, system_clock
from ext_proc.view import ProcessorView

log = structlog.get_logger("gate")

# Output tokens assumed when the client sets no limit (the default the gateway gives Anthropic).
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# Prompt tokens are estimated from the body size: JSON text averages well over 3 bytes a token
# (English ~4, CJK 3 per character plus syntax), so this leans high, as a reservation should.
BYTES_PER_TOKEN = 3


class GateRefusal(Exception):
    def __init__(self, status: int, message: str, outcome: AdmissionOutcome,
                 headers: Mapping[str, str] | None = None, team: str = "", model: str = ""):
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.headers = dict(headers or {})
        self.team = team
        self.model = model  # a model of the policy, or empty


def presented_key(headers: Mapping[str, str]) -> str:
    """OpenAI clients send `Authorization: Bearer`; Anthropic's send `x-api-key` (or Bearer)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip()


def _max_output(metadata: Mapping[str, Any], api: ClientApi | None) -> int:
    if api is ClientApi.OPENAI_EMBEDDINGS:
        return 0
    for name in ("max_completion_tokens", "max_tokens"):
        value = metadata.get(name)
        if isinstance(value, int | float) and value > 0:
            return int(value)
    return DEFAULT_MAX_OUTPUT_TOKENS


class Gate:
    def __init__(self, view: Callable[[], ProcessorView], ledgers: Ledgers,
                 clock: Clock = system_clock, metrics: AdmissionMetrics | None = None) -> None:
        self._view = view
        self._ledgers = ledgers
        self._clock = clock
        self._metrics = metrics or AdmissionMetrics(CollectorRegistry())

    async def admit(self, request: ep.ProcessingRequest) -> ep.ProcessingResponse:
        headers = header_map(request.request_headers)
        namespace = request.metadata_context.filter_metadata.get(METADATA_NAMESPACE)
        metadata = dict(namespace.items()) if namespace is not None else {}
        try:
            return await self._admit(headers, metadata)
        except GateRefusal as refusal:
            self._metrics.decided(refusal.team, refusal.model, refusal.outcome)
            log.info("request refused", status=refusal.status, reason=str(refusal),
                     request_id=headers.get("x-request-id", ""))
            return immediate(refusal.status, str(refusal).encode(),
                             {"content-type": "text/plain", **refusal.headers},
                             "switchboard_gate")

    async def _admit(self, headers: Mapping[str, str],
                     metadata: Mapping[str, Any]) -> ep.ProcessingResponse:
        view = self._view()
        access = view.access
        caller = Caller()
        if access.takes_keys:
            key = presented_key(headers)
            found = access.identify(key) if key else None
            if found is None:
                raise GateRefusal(401, "A valid gateway key is required (Authorization: Bearer "
                                       "<key> or x-api-key: <key>).",
                                  AdmissionOutcome.UNAUTHENTICATED)
            caller = found
        set_headers = {TEAM_HEADER: caller.team, KEY_ID_HEADER: caller.key_id}
        model = metadata.get(MODEL_KEY)
        if not isinstance(model, str) or model not in view.models:
            # Nothing to reserve: the route answers 400 or 404 itself.
            self._metrics.decided(caller.team, "", AdmissionOutcome.UNKNOWN_MODEL)
            return _continue(set_headers)
        team = access.team(caller)
        if team is not None and not team.allows(model):
            raise GateRefusal(403, f"Team '{caller.team}' may not use the model '{model}'.",
                              AdmissionOutcome.FORBIDDEN, team=caller.team, model=model)
        api = client_api_for_path(headers.get(":path", ""))
        request_id = headers.get("x-request-id", "")
        admission = await self._reserve(view, caller, model, request_id, headers, metadata, api)
        served = model
        if not admission.admitted and (downgrade := admission.downgrade_model):
            self._metrics.budgets(admission.denials, BudgetAction.DOWNGRADED)
            served = downgrade
            admission = await self._reserve(view, caller, downgrade, request_id, headers,
                                            metadata, api)
        if not admission.admitted:
            self._metrics.budgets(admission.denials, BudgetAction.BLOCKED)
            now = self._clock()
            raise GateRefusal(429, admission.message(), refusal_outcome(admission.denials),
                              {"retry-after": str(admission.retry_after_seconds(now))},
                              team=caller.team, model=model)
        if admission.warnings:
            self._metrics.budgets(admission.warnings, BudgetAction.WARNED)
            # In metadata, not a request header: the attempt strips internal request headers
            # before the upstream filter could copy one into the reply.
            warning = " ".join(w.message() for w in admission.warnings)
            log.warning("budget exceeded (warn)", request_id=request_id,
                        budgets=[w.name for w in admission.warnings])
        dynamic: dict[str, Any] = {}
        if admission.warnings:
            dynamic[BUDGET_WARNING_METADATA_KEY] = warning
        if request_id and admission.reservation_id:
            dynamic[RESERVATION_METADATA_KEY] = request_id
        remove: frozenset[str] = frozenset()
        if served != model:
            set_headers[ROUTE_MODEL_HEADER] = served
            dynamic[MODEL_KEY] = served
            dynamic[DOWNGRADED_FROM_KEY] = model
            log.info("request downgraded", request_id=request_id, model=model, to=served)
        elif (direct := direct_forward(view, api, caller, metadata)) is not None:
            # No attempt will read the team and key headers: they go in the metadata.
            set_headers, remove = direct.set_headers, direct.remove_headers
            dynamic[DIRECT_METADATA_KEY] = direct.metadata
        self._metrics.decided(caller.team, model, AdmissionOutcome.DOWNGRADED if served != model
                              else AdmissionOutcome.ADMITTED)
        return _continue(set_headers, dynamic, reroute=served != model, remove=remove)

    async def _reserve(self, view: ProcessorView, caller: Caller, model: str, request_id: str,
                       headers: Mapping[str, str], metadata: Mapping[str, Any],
                       api: ClientApi | None) -> Admission:
        access = view.access
        targets = view.models.get(model, ())
        budgets = access.budget_rules(caller, model, {t.provider for t in targets})
        rate_limits = access.rate_limits(caller)
        if not budgets and not rate_limits:
            return Admission("", True)
        length = headers.get("content-length", "0")
        estimated_input = math.ceil(int(length) / BYTES_PER_TOKEN) if length.isdigit() else 0
        max_output = _max_output(metadata, api)
        now = self._clock()
        cost = max((_worst_case(view, t.provider, t.model, estimated_input, max_output, now)
                    for t in targets), default=Decimal(0))
        try:
            ledger = await self._ledgers.get(view.state)
            return await ledger.reserve(ReservationRequest(
                request_id, cost, estimated_input + max_output, budgets, rate_limits))
        except LedgerError as exc:
            # Budgets promise exactness; without the store they cannot be kept.
            log.error("usage store unavailable", error=str(exc))
            raise GateRefusal(503, "The gateway's usage store is unavailable.",
                              AdmissionOutcome.STORE_UNAVAILABLE, team=caller.team,
                              model=model) from None


def _worst_case(view: ProcessorView, provider_name: str, model: str, estimated_input: int,
                max_output: int, now: datetime) -> Decimal:
    provider = view.providers.get(provider_name)
    if provider is None:
        return Decimal(0)
    cost = view.access.prices.worst_case_cost(
        provider.kind, provider.name, model, estimated_input=estimated_input,
        max_output=max_output, at=now, use_builtin=provider.list_prices)
    return cost or Decimal(0)  # unpriced: reserves nothing (docs/state.md)


def _continue(set_headers: Mapping[str, str], dynamic: Mapping[str, Any] | None = None,
              reroute: bool = False, remove: frozenset[str] = frozenset()
              ) -> ep.ProcessingResponse:
    common = ep.CommonResponse(header_mutation=header_mutation(
        {k: v for k, v in set_headers.items() if v}, remove), clear_route_cache=reroute)
    reply = ep.ProcessingResponse(request_headers=ep.HeadersResponse(response=common))
    if dynamic:
        reply.dynamic_metadata.update({METADATA_NAMESPACE: dict(dynamic)})
    return reply
