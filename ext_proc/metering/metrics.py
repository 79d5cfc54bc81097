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

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType

import structlog
from prometheus_client import CollectorRegistry

from ext_proc.contract import ClientApi
from ext_proc.metering.tally import Counter, Histogram, Tally
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


class _NeverFailing:
    """Metrics never fail a request or cost it its usage record: an update that cannot be made
    is logged and dropped. One object for every use: a generator-made context manager costs
    a worker ~1 µs each time, on every request it meters."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool:
        if not isinstance(error, Exception):
            return False  # none, or one that must go on (a cancellation, an exit)
        log.error("metrics not updated", error=repr(error))
        return True


_NEVER_FAILING = _NeverFailing()


def never_failing() -> _NeverFailing:
    return _NEVER_FAILING


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
    """One label set's keys into every family, built once: an attempt's counting is then
    dictionary updates and nothing else."""

    __slots__ = ("common", "details", "input", "keyed", "output")

    def __init__(self, labels: AttemptLabels) -> None:
        self.common = labels.values()
        self.input, self.output = (*self.common, "input"), (*self.common, "output")
        self.details = tuple(((*self.common, token_type), field)
                             for token_type, field in _DETAILS)
        self.keyed: dict[tuple[str, ...], tuple[str, ...]] = {}

    def key(self, *extra: str) -> tuple[str, ...]:
        """The common values and `extra`, the same tuple each time."""
        key = self.keyed.get(extra)
        if key is None:
            key = self.keyed[extra] = (*self.common, *extra)
        return key


# The detail token types, and the TokenUsage field that counts each.
_DETAILS = (("cache_read", "cached_read"), ("cache_creation", "cache_creation"),
            ("reasoning", "reasoning"))


class AttemptMetrics:
    """The per-attempt instruments, registered on the registry the caller owns."""

    def __init__(self, registry: CollectorRegistry) -> None:
        common = list(COMMON_LABELS)
        self._series: dict[AttemptLabels, _Series] = {}
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used (gen_ai.client.token.usage).",
            [*common, "gen_ai_token_type"], TOKEN_BUCKETS)
        self.token_detail = Counter(
            "switchboard_tokens_detail",
            "Cached-read, cache-creation and reasoning tokens (subsets of input/output).",
            [*common, "gen_ai_token_type"])
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration).",
            [*common, "error_type"], DURATION_BUCKETS)
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first streamed chunk (gen_ai.client.operation.time_to_first_chunk).",
            common, TTFC_BUCKETS)
        self.cost = Counter("switchboard_cost_usd",
                            "Cost of attempts in USD, where a price is known.", common)
        self.unpriced = Counter(
            "switchboard_unpriced_attempts",
            "Attempts whose cost is unknown because no price exists for the model.", common)
        self.estimated = Counter(
            "switchboard_estimated_usage_attempts",
            "Attempts whose token usage was estimated because the upstream reported none.",
            common)
        self.attempts = Counter(
            "switchboard_attempts",
            "Upstream attempts, by how they ended and the HTTP status (0: none arrived).",
            [*common, "outcome", "http_response_status_code"])
        registry.register(Tally(self.token_usage, self.token_detail, self.duration,
                                self.time_to_first_chunk, self.cost, self.unpriced,
                                self.estimated, self.attempts))

    def observe(self, record: UsageRecord, labels: AttemptLabels) -> None:
        """Record one attempt that reached a provider (or the mock), once."""
        with never_failing():
            self._observe(record, labels)

    def _observe(self, record: UsageRecord, labels: AttemptLabels) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(labels)
        usage = record.usage
        if usage.total or usage.estimated:
            self.token_usage.observe(series.input, usage.input)
            if labels.operation != "embeddings":
                self.token_usage.observe(series.output, usage.output)
        for key, field in series.details:
            if count := getattr(usage, field):
                self.token_detail.add(key, count)
        self.duration.observe(series.key(error_type(record)), record.latency_s)
        if record.ttft_s is not None:
            self.time_to_first_chunk.observe(series.common, record.ttft_s)
        if record.cost_usd is None:
            self.unpriced.add(series.common)
        else:
            self.cost.add(series.common, float(record.cost_usd))
        if usage.estimated:
            self.estimated.add(series.common)
        self.attempts.add(series.key(record.outcome.value, str(record.status)))

    def refused(self, labels: AttemptLabels, status: int) -> None:
        """Record an attempt the worker refused (bad request, provider misconfigured)."""
        with never_failing():
            self.attempts.add((*labels.values(), REFUSED, str(status)))
