"""Prometheus instruments named after the OpenTelemetry GenAI semantic conventions.

OTel names map to Prometheus the way the OTel Prometheus exporter does it: dots become
underscores, a unit in braces (``{token}``) is dropped, ``s`` becomes ``_seconds``:

- ``gen_ai.client.token.usage``                  -> ``gen_ai_client_token_usage`` (histogram)
- ``gen_ai.client.operation.duration``           -> ``gen_ai_client_operation_duration_seconds``
- ``gen_ai.client.operation.time_to_first_chunk`` -> ``..._time_to_first_chunk_seconds``

Attributes become labels the same way (``gen_ai.provider.name`` -> ``gen_ai_provider_name``).
Cached, cache-creation and reasoning tokens are subsets of input/output, so they go to a separate
counter rather than into the histogram, where summing token types would double count.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from prometheus_client import CollectorRegistry, Counter, Histogram

from ext_proc.metering.usage import UsageRecord

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

_COMMON = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "switchboard_provider",
    "team",
)


def semconv_provider_name(kind: str) -> str:
    return SEMCONV_PROVIDER_NAMES.get(kind, kind)


class GatewayMetrics:
    """All metering instruments, registered on the registry the caller owns."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used (gen_ai.client.token.usage).",
            [*_COMMON, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.token_detail = Counter(
            "switchboard_tokens_detail",
            "Cached-read, cache-creation and reasoning tokens (subsets of input/output).",
            [*_COMMON, "gen_ai_token_type"],
            registry=registry,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (gen_ai.client.operation.duration).",
            [*_COMMON, "error_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first streamed chunk (gen_ai.client.operation.time_to_first_chunk).",
            list(_COMMON),
            buckets=TTFC_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "switchboard_cost_usd",
            "Cost of served requests in USD, where a price is known.",
            list(_COMMON),
            registry=registry,
        )
        self.unpriced = Counter(
            "switchboard_unpriced_requests",
            "Attempts whose cost is unknown because no price exists for the model.",
            list(_COMMON),
            registry=registry,
        )
        self.estimated = Counter(
            "switchboard_estimated_usage_requests",
            "Attempts whose token usage was estimated because the upstream reported none.",
            list(_COMMON),
            registry=registry,
        )

    def observe(self, record: UsageRecord, *, provider_kind: str, operation: str = "chat") -> None:
        """Record one attempt; the labels come from the record and the provider's kind."""
        common = {
            "gen_ai_operation_name": operation,
            "gen_ai_provider_name": semconv_provider_name(provider_kind),
            "gen_ai_request_model": record.requested_model,
            "switchboard_provider": record.provider,
            "team": record.team,
        }
        usage = record.usage
        self.token_usage.labels(**common, gen_ai_token_type="input").observe(usage.input)
        self.token_usage.labels(**common, gen_ai_token_type="output").observe(usage.output)
        for token_type, count in (
            ("cache_read", usage.cached_read),
            ("cache_creation", usage.cache_creation),
            ("reasoning", usage.reasoning),
        ):
            if count:
                self.token_detail.labels(**common, gen_ai_token_type=token_type).inc(count)
        error_type = "" if record.outcome == "ok" else str(record.outcome)
        self.duration.labels(**common, error_type=error_type).observe(record.latency_s)
        if record.ttft_s is not None:
            self.time_to_first_chunk.labels(**common).observe(record.ttft_s)
        if record.cost_usd is None:
            self.unpriced.labels(**common).inc()
        else:
            self.cost.labels(**common).inc(float(record.cost_usd))
        if usage.estimated:
            self.estimated.labels(**common).inc()
