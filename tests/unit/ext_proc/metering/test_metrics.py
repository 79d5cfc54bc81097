from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ext_proc.contract import ClientApi
from ext_proc.metering.metrics import OPERATION_NAMES, AttemptLabels, AttemptMetrics, error_type
from ext_proc.metering.tally import Counter
from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord

LABELS = AttemptLabels(operation="chat", provider_kind="bedrock", provider="aws-east",
                       requested_model="smart", response_model="claude", team="search")
COMMON = {
    "gen_ai_operation_name": "chat",
    "gen_ai_provider_name": "aws.bedrock",
    "gen_ai_request_model": "smart",
    "gen_ai_response_model": "claude",
    "switchboard_provider": "aws-east",
    "team": "search",
}


def record(cost: Decimal | None, *, ttft: float | None = 0.3, estimated: bool = False,
           usage: TokenUsage | None = None, outcome: Outcome = Outcome.OK,
           status: int = 200) -> UsageRecord:
    return UsageRecord(
        time=datetime(2025, 1, 1, tzinfo=UTC),
        request_id="r",
        team="search",
        key_id="sha256:k",
        requested_model="smart",
        provider="aws-east",
        provider_model="claude",
        usage=usage or TokenUsage(input=100, output=20, cached_read=30, reasoning=5,
                                  estimated=estimated),
        cost_usd=cost,
        status=status,
        outcome=outcome,
        latency_s=1.2,
        ttft_s=ttft,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_semconv_names_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = AttemptMetrics(registry)
    metrics.observe(record(Decimal("0.25")), LABELS)
    metrics.observe(record(Decimal("0.5"), ttft=None), LABELS)
    assert sample(registry, "gen_ai_client_token_usage_sum", **COMMON,
                  gen_ai_token_type="input") == 200
    assert sample(registry, "gen_ai_client_token_usage_sum", **COMMON,
                  gen_ai_token_type="output") == 40
    assert sample(registry, "gen_ai_client_token_usage_count", **COMMON,
                  gen_ai_token_type="output") == 2
    assert sample(registry, "switchboard_tokens_detail_total", **COMMON,
                  gen_ai_token_type="cache_read") == 60
    assert sample(registry, "switchboard_tokens_detail_total", **COMMON,
                  gen_ai_token_type="reasoning") == 10
    assert sample(registry, "switchboard_cost_usd_total", **COMMON) == 0.75
    assert sample(registry, "gen_ai_client_operation_duration_seconds_count", **COMMON,
                  error_type="") == 2
    assert sample(registry, "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                  **COMMON) == 1
    assert sample(registry, "switchboard_attempts_total", **COMMON, outcome="ok",
                  http_response_status_code="200") == 2


def test_unknown_cost_and_estimates_are_counted_not_zeroed() -> None:
    registry = CollectorRegistry()
    AttemptMetrics(registry).observe(record(None, estimated=True),
                                     replace(LABELS, provider_kind="mock"))
    text = generate_latest(registry).decode()
    assert "switchboard_unpriced_attempts_total{" in text
    assert 'gen_ai_provider_name="mock"' in text
    assert "switchboard_cost_usd_total{" not in text
    assert "switchboard_estimated_usage_attempts_total{" in text


def test_a_failed_attempt_without_usage_has_no_token_samples_and_names_its_error() -> None:
    registry = CollectorRegistry()
    metrics = AttemptMetrics(registry)
    metrics.observe(record(Decimal(0), usage=TokenUsage(), outcome=Outcome.UPSTREAM_ERROR,
                           status=429, ttft=None), LABELS)
    metrics.observe(record(Decimal(0), usage=TokenUsage(), outcome=Outcome.NO_RESPONSE,
                           status=0, ttft=None), LABELS)
    text = generate_latest(registry).decode()
    assert "gen_ai_client_token_usage_count{" not in text
    assert sample(registry, "gen_ai_client_operation_duration_seconds_count", **COMMON,
                  error_type="429") == 1
    assert sample(registry, "gen_ai_client_operation_duration_seconds_count", **COMMON,
                  error_type="no_response") == 1
    assert sample(registry, "switchboard_attempts_total", **COMMON, outcome="upstream_error",
                  http_response_status_code="429") == 1
    assert sample(registry, "switchboard_attempts_total", **COMMON, outcome="no_response",
                  http_response_status_code="0") == 1


def test_embeddings_report_input_tokens_only() -> None:
    registry = CollectorRegistry()
    embeddings = replace(LABELS, operation=OPERATION_NAMES[ClientApi.OPENAI_EMBEDDINGS])
    AttemptMetrics(registry).observe(record(Decimal("0.01"), usage=TokenUsage(input=8),
                                            ttft=None), embeddings)
    labels = {**COMMON, "gen_ai_operation_name": "embeddings"}
    assert sample(registry, "gen_ai_client_token_usage_sum", **labels,
                  gen_ai_token_type="input") == 8
    assert sample(registry, "gen_ai_client_token_usage_count", **labels,
                  gen_ai_token_type="output") is None


def test_refused_attempts_are_counted_with_their_status() -> None:
    registry = CollectorRegistry()
    AttemptMetrics(registry).refused(LABELS, 503)
    assert sample(registry, "switchboard_attempts_total", **COMMON, outcome="refused",
                  http_response_status_code="503") == 1


def test_error_type_follows_the_semantic_conventions() -> None:
    assert error_type(record(None)) == ""
    assert error_type(record(None, outcome=Outcome.UPSTREAM_ERROR, status=503)) == "503"
    assert error_type(record(None, outcome=Outcome.CLIENT_DISCONNECT)) == "client_disconnect"


def test_every_client_api_has_an_operation_name() -> None:
    assert set(OPERATION_NAMES) == set(ClientApi)
    assert {OPERATION_NAMES[api] for api in ClientApi} <= {"chat", "embeddings"}


def test_unknown_provider_kinds_keep_their_name() -> None:
    labels = replace(LABELS, provider_kind="vllm").as_labels()
    assert labels["gen_ai_provider_name"] == "vllm"


def test_two_registries_do_not_collide() -> None:
    AttemptMetrics(CollectorRegistry())
    AttemptMetrics(CollectorRegistry())


def test_a_metric_that_cannot_be_written_fails_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = AttemptMetrics(CollectorRegistry())

    def no_room(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Counter, "add", no_room)
    metrics.observe(record(Decimal(1)), LABELS)
    metrics.refused(LABELS, 503)
