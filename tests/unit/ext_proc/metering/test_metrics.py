from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest

from ext_proc.metering.metrics import GatewayMetrics
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord


def record(
    cost: Decimal | None, *, ttft: float | None = 0.3, estimated: bool = False
) -> UsageRecord:
    return UsageRecord(
        time=datetime(2025, 1, 1, tzinfo=UTC),
        request_id="r",
        team="search",
        key_id="sha256:k",
        requested_model="smart",
        provider="bedrock",
        provider_model="claude",
        usage=TokenUsage(input=100, output=20, cached_read=30, reasoning=5, estimated=estimated),
        cost_usd=cost,
        status=200,
        outcome=Outcome.OK,
        latency_s=1.2,
        ttft_s=ttft,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_observe_uses_semconv_names_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.observe(record(Decimal("0.25")), provider_kind="bedrock")
    metrics.observe(record(Decimal("0.5"), ttft=None), provider_kind="bedrock")
    common = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "aws.bedrock",
        "gen_ai_request_model": "smart",
        "switchboard_provider": "bedrock",
        "team": "search",
    }
    assert (
        sample(registry, "gen_ai_client_token_usage_sum", **common, gen_ai_token_type="input")
        == 200
    )
    assert (
        sample(registry, "gen_ai_client_token_usage_count", **common, gen_ai_token_type="output")
        == 2
    )
    assert (
        sample(
            registry, "switchboard_tokens_detail_total", **common, gen_ai_token_type="cache_read"
        )
        == 60
    )
    assert sample(registry, "switchboard_cost_usd_total", **common) == 0.75
    assert (
        sample(registry, "gen_ai_client_operation_duration_seconds_count", **common, error_type="")
        == 2
    )
    assert (
        sample(registry, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **common) == 1
    )


def test_unknown_cost_and_estimates_are_counted_not_zeroed() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.observe(record(None, estimated=True), provider_kind="mock")
    text = generate_latest(registry).decode()
    assert "switchboard_unpriced_requests_total{" in text
    assert 'gen_ai_provider_name="mock"' in text
    assert "switchboard_cost_usd_total{" not in text
    assert "switchboard_estimated_usage_requests_total{" in text


def test_two_registries_do_not_collide() -> None:
    GatewayMetrics(CollectorRegistry())
    GatewayMetrics(CollectorRegistry())
