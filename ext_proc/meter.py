"""What one attempt used and cost, and the usage record that says so.

The record is written in the background: never on the path of the reply to Envoy, and also
when Envoy cancelled the stream (client gone, per-try timeout), so nothing served goes
unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from prometheus_client import CollectorRegistry

from ext_proc.access import Caller
from ext_proc.ledgers import Ledgers
from ext_proc.metering.estimate import BYTES_PER_TOKEN_FLOOR, HeuristicEstimator, TokenEstimator
from ext_proc.metering.metrics import AttemptLabels, AttemptMetrics
from ext_proc.metering.usage import TokenUsage, UsageRecord
from ext_proc.state.ledger import ChargedRecord, LedgerError
from ext_proc.state.model import BudgetRule, RateLimitRule
from ext_proc.translators.base import Usage
from ext_proc.view import ProcessorView, ProviderView

log = structlog.get_logger("meter")

# A write the ledger refused (Redis restarting or out of pooled connections, SQLite locked
# too long) is tried again after each of these delays. A repeat is harmless: records are
# keyed by time, request and attempt, so one stored twice is kept once and charged once.
WRITE_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)

ESTIMATOR: TokenEstimator = HeuristicEstimator()


def token_usage(usage: Usage) -> TokenUsage:
    """A translator's counts (input without cache) in the metering convention (with)."""
    cached = usage.cached_input_tokens + usage.cache_creation_tokens
    return TokenUsage(input=usage.input_tokens + cached,
                      output=max(usage.output_tokens, usage.reasoning_tokens),
                      cached_read=usage.cached_input_tokens,
                      cache_creation=usage.cache_creation_tokens,
                      reasoning=usage.reasoning_tokens)


def estimate_tokens(text: bytes) -> int:
    return ESTIMATOR.count(text.decode("utf-8", "replace"))


def estimated_usage(request_body: bytes, request_size: int, output_tokens: int) -> TokenUsage:
    """For an attempt whose upstream never reported usage: the prompt from the request text
    (JSON included, which leans high), or from its size when the body was forwarded unread
    (the estimator's own floor: a token per 4 bytes); the output as the caller counted it
    (one token per streamed event, providers send about one; the reply's text for a whole
    reply)."""
    prompt = (estimate_tokens(request_body) if request_body
              else math.ceil(request_size / BYTES_PER_TOKEN_FLOOR))
    return TokenUsage(input=prompt, output=output_tokens, estimated=True)


def price(view: ProcessorView, provider: ProviderView, model: str, usage: TokenUsage,
          at: datetime) -> Decimal | None:
    return view.access.prices.cost(provider.kind, provider.name, model, usage, at=at,
                                   use_builtin=provider.list_prices)


def format_usd(cost: Decimal) -> str:
    return f"{cost.normalize():f}"


def _charged(view: ProcessorView, attempts: tuple[MeteredAttempt, ...]) -> list[ChargedRecord]:
    """Each attempt's record with the budgets and rate limits it counts against. A batch's
    attempts mostly come from one key for one model and provider (Envoy's forwarded requests
    share one caller object per key and model), so the rules found for one attempt are
    reused for the next while those stay the same."""
    access, charged = view.access, []
    asked: tuple[Caller, str, str] | None = None
    rules: tuple[tuple[BudgetRule, ...], tuple[RateLimitRule, ...]] = ((), ())
    for attempt in attempts:
        caller, record = attempt.caller, attempt.record
        if (asked is None or caller is not asked[0] or record.requested_model != asked[1]
                or record.provider != asked[2]):
            asked = (caller, record.requested_model, record.provider)
            rules = (access.budget_rules(caller, record.requested_model, (record.provider,)),
                     access.rate_limits(caller))
        charged.append(ChargedRecord(record, *rules))
    return charged


@dataclass(frozen=True, slots=True)
class MeteredAttempt:
    """An attempt's usage record, whose key it was, and its metric labels."""

    record: UsageRecord
    caller: Caller
    labels: AttemptLabels


class Meter:
    """Counts each attempt in the metrics at once, and writes its usage record, and its spend,
    to the ledger in the background: the records submitted while a write is under way go
    together in the next one (one write per record costs twice the CPU of one per four)."""

    def __init__(self, ledgers: Ledgers, metrics: AttemptMetrics | None = None) -> None:
        self._ledgers = ledgers
        self._metrics = metrics or AttemptMetrics(CollectorRegistry())
        self._queued: list[tuple[ProcessorView, tuple[MeteredAttempt, ...]]] = []
        self._writing: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def submit(self, view: ProcessorView, *attempts: MeteredAttempt) -> None:
        """Count `attempts` and write their records, with whatever else is waiting."""
        for attempt in attempts:
            self._metrics.observe(attempt.record, attempt.labels)  # memory: nothing to wait for
        self._queued.append((view, attempts))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queued:
            queued, self._queued = self._queued, []
            # One write per policy version the records were served under (nearly always one).
            by_view: dict[int, tuple[ProcessorView, list[MeteredAttempt]]] = {}
            for view, submitted in queued:
                by_view.setdefault(id(view), (view, []))[1].extend(submitted)
            for view, batch in by_view.values():
                await self._write(view, tuple(batch))

    def refused(self, labels: AttemptLabels, status: int) -> None:
        """An attempt the worker answered itself: counted, with no usage to record."""
        self._metrics.refused(labels, status)

    async def _write(self, view: ProcessorView, attempts: tuple[MeteredAttempt, ...]) -> None:
        charged = _charged(view, attempts)
        for delay in (*WRITE_RETRY_DELAYS_S, None):
            try:
                ledger = await self._ledgers.get(view.state)
                await ledger.record_usage(*charged)
                return
            except LedgerError as exc:
                error = exc
            except Exception:
                await self._write_each(view, charged)
                return
            if delay is None:
                break
            log.warning("usage records not stored yet", error=str(error),
                        records=len(charged), retry_in_s=delay)
            with contextlib.suppress(TimeoutError):  # a stopping worker retries at once
                await asyncio.wait_for(self._stopping.wait(), delay)
        # The log line carries each record, so an operator can still account for them.
        for attempt in attempts:
            log.error("usage record not stored", error=str(error), record=repr(attempt.record))

    async def _write_each(self, view: ProcessorView, charged: list[ChargedRecord]) -> None:
        """One record at a time, after a batch failed for one of them (a provider's absurd
        token count, say): the others are stored, the culprit is logged with its content."""
        for record in charged:
            try:
                ledger = await self._ledgers.get(view.state)
                await ledger.record_usage(record)
            except Exception as exc:
                log.error("usage record not stored", error=repr(exc), record=repr(record.record))

    async def written(self) -> None:
        """Until the records submitted so far are written (or given up on)."""
        if self._writing is not None:
            await asyncio.wait((self._writing,))

    async def drain(self) -> None:
        self._stopping.set()
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
