"""Per-attempt Prometheus instruments, named after the OpenTelemetry GenAI semantic conventions.

OTel names map to Prometheus the way the OTel Prometheus exporter does it: dots become
underscores, a unit in braces (``{token}``) is dropped, ``s`` becomes ``_seconds``, a counter
gains ``_total``:

- ``gen_ai.client.token.usage``                  -> ``gen_ai_client_token_usage`` (histogram)
- ``gen_ai.client.operation.duration``           -> ``gen_ai_client_operation_duration_seconds``
- ``gen_ai.client.operation.time_to_first_chunk`` -> ``..._time_to_first_chunk_seconds``

Attributes become labels the same way (``gen_ai.provider.name`` -> ``gen_ai_provider_name``).
Every label value comes from the policy (teams, model names, provider names) or from a short
fixed list, so the number of series stays bounded: no request ids, no key ids.
Cached, cache-creation and reasoning tokens are subsets of input/output, so they go to a separate
counter rather than into the histogram, where summing token types would double count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from ext_proc.contract import ClientApi
from ext_proc.metering.usage import Outcome, UsageRecord

log = structlog.get_logger("metrics")

# Bucket boundaries recommended by the semantic conventions.
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFC_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# Policy provider ``kind`` -> well-known ``gen_ai.provider.name`` value.
SEMCONV_PROVIDER_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "openai": "openai",
        "azure": "azure.ai.openai",
        "anthropic": "anthropic",
        "bedrock": "aws.bedrock",
        "gemini": "gcp.gemini",
        "vertex": "gcp.vertex_ai",
        "mistral": "mistral_ai",
        "groq": "groq",
        "deepseek": "deepseek",
        "xai": "x_ai",
        "cohere": "cohere",
        "perplexity": "perplexity",
    }
)

# The client API an attempt serves -> ``gen_ai.operation.name``.
OPERATION_NAMES: Mapping[ClientApi, str] = MappingProxyType(
    {
        ClientApi.OPENAI_CHAT: "chat",
        ClientApi.ANTHROPIC_MESSAGES: "chat",
        ClientApi.OPENAI_EMBEDDINGS: "embeddings",
    }
)

COMMON_LABELS = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "switchboard_provider",
    "team",
)
# An attempt the worker answered itself before anything reached a provider.
REFUSED = "refused"


@contextlib.contextmanager
def never_failing() -> Iterator[None]:
    """Metrics never fail a request or cost it its usage record: an update that cannot be made
    is logged and dropped."""
    try:
        yield
    except Exception as exc:
        log.error("metrics not updated", error=repr(exc))


def semconv_provider_name(kind: str) -> str:
    return SEMCONV_PROVIDER_NAMES.get(kind, kind)


@dataclass(frozen=True, slots=True)
class AttemptLabels:
    """Who served an attempt, for whom: the labels every per-attempt series carries."""

    operation: str  # "chat" or "embeddings"
    provider_kind: str  # the policy's provider kind ("openai", "bedrock", "mock", ...)
    provider: str  # the policy's provider name
    requested_model: str  # the model the client asked for (after any downgrade)
    response_model: str  # the provider's model that served it
    team: str  # empty when the gateway takes no keys

    def values(self) -> tuple[str, ...]:
        """The label values, in the order of COMMON_LABELS."""
        return (self.operation, semconv_provider_name(self.provider_kind),
                self.requested_model, self.response_model, self.provider, self.team)

    def as_labels(self) -> dict[str, str]:
        return dict(zip(COMMON_LABELS, self.values(), strict=True))


def error_type(record: UsageRecord) -> str:
    """``error.type`` of an attempt: empty when it succeeded, the HTTP status when the provider
    answered with an error, else how it ended (``no_response``, ``client_disconnect``)."""
    if record.outcome is Outcome.OK:
        return ""
    if record.outcome is Outcome.UPSTREAM_ERROR and record.status:
        return str(record.status)
    return record.outcome.value


class _Series:
    """One label set's children of every metric: an attempt hashes its labels once."""

    __slots__ = ("_children", "_values")

    def __init__(self, labels: AttemptLabels) -> None:
        self._values = labels.values()
        self._children: dict[tuple[object, ...], Any] = {}

    def child(self, metric: MetricWrapperBase, *extra: str) -> Any:
        """`metric`'s series for these labels, then `extra` values for the metric's own labels
        in their declared order (each metric declares the common labels first)."""
        key = (metric, *extra)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*self._values, *extra)
        return child


class AttemptMetrics:
    """The per-attempt instruments, registered on the registry the caller owns."""

    def __init__(self, registry: CollectorRegistry) -> None:
        common = list(COMMON_LABELS)
        # Each label set's children: `labels()` validates and locks on every call.
        self._series: dict[AttemptLabels, _Series] = {}
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used (gen_ai.client.token.usage).",
            [*common, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.token_detail = Counter(
            "switchboard_tokens_detail",
            "Cached-read, cache-creation and reasoning tokens (subsets of input/output).",
            [*common, "gen_ai_token_type"],
            registry=registry,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration).",
            [*common, "error_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first streamed chunk (gen_ai.client.operation.time_to_first_chunk).",
            common,
            buckets=TTFC_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "switchboard_cost_usd",
            "Cost of attempts in USD, where a price is known.",
            common,
            registry=registry,
        )
        self.unpriced = Counter(
            "switchboard_unpriced_attempts",
            "Attempts whose cost is unknown because no price exists for the model.",
            common,
            registry=registry,
        )
        self.estimated = Counter(
            "switchboard_estimated_usage_attempts",
            "Attempts whose token usage was estimated because the upstream reported none.",
            common,
            registry=registry,
        )
        self.attempts = Counter(
            "switchboard_attempts",
            "Upstream attempts, by how they ended and the HTTP status (0: none arrived).",
            [*common, "outcome", "http_response_status_code"],
            registry=registry,
        )

    def observe(self, record: UsageRecord, labels: AttemptLabels) -> None:
        """Record one attempt that reached a provider (or the mock), once."""
        with never_failing():
            self._observe(record, labels)

    def _observe(self, record: UsageRecord, labels: AttemptLabels) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(labels)
        child = series.child
        usage = record.usage
        if usage.total or usage.estimated:
            child(self.token_usage, "input").observe(usage.input)
            if labels.operation != "embeddings":
                child(self.token_usage, "output").observe(usage.output)
        for token_type, count in (
            ("cache_read", usage.cached_read),
            ("cache_creation", usage.cache_creation),
            ("reasoning", usage.reasoning),
        ):
            if count:
                child(self.token_detail, token_type).inc(count)
        child(self.duration, error_type(record)).observe(record.latency_s)
        if record.ttft_s is not None:
            child(self.time_to_first_chunk).observe(record.ttft_s)
        if record.cost_usd is None:
            child(self.unpriced).inc()
        else:
            child(self.cost).inc(float(record.cost_usd))
        if usage.estimated:
            child(self.estimated).inc()
        child(self.attempts, record.outcome.value, str(record.status)).inc()

    def refused(self, labels: AttemptLabels, status: int) -> None:
        """Record an attempt the worker refused (bad request, provider misconfigured)."""
        with never_failing():
            self.attempts.labels(**labels.as_labels(), outcome=REFUSED,
                                 http_response_status_code=str(status)).inc()
