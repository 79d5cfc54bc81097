from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from ext_proc.metering.pricing import PriceOverride, PriceTable
from ext_proc.metering.usage import TokenUsage

USAGE = TokenUsage(input=1_000_000, output=100_000, cached_read=400_000, cache_creation=100_000)


class FixedBuiltin:
    """A stand-in for genai-prices that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def cost(
        self, provider_id: str, model: str, usage: TokenUsage, at: datetime | None
    ) -> Decimal | None:
        self.calls.append((provider_id, model))
        return Decimal("1.5") if model == "known" else None


def test_override_prices_each_token_class() -> None:
    price = PriceOverride(
        Decimal(2),
        Decimal(10),
        cached_read_per_mtok=Decimal("0.5"),
        cache_write_per_mtok=Decimal("2.5"),
    )
    # 0.5M uncached x 2 + 0.4M x 0.5 + 0.1M x 2.5 + 0.1M output x 10
    assert price.cost(USAGE) == Decimal("1") + Decimal("0.2") + Decimal("0.25") + Decimal("1")


def test_override_cache_prices_default_to_input() -> None:
    assert PriceOverride(Decimal(1), Decimal(0)).cost(USAGE) == Decimal(1)


def test_negative_price_is_rejected() -> None:
    with pytest.raises(ValueError, match="prices must be"):
        PriceOverride(Decimal(-1), Decimal(0))


def test_override_wins_then_wildcard_then_builtin() -> None:
    builtin = FixedBuiltin()
    table = PriceTable(
        {
            "llama/llama-3.1-8b": PriceOverride(Decimal(0), Decimal(0)),
            "vllm/*": PriceOverride(Decimal(1), Decimal(1)),
        },
        builtin,
    )
    assert table.cost("openai", "llama", "llama-3.1-8b", USAGE) == 0
    assert table.cost("openai", "vllm", "anything", USAGE) == Decimal("1.1")
    assert table.cost("bedrock", "bedrock", "known", USAGE) == Decimal("1.5")
    assert builtin.calls == [("aws", "known")]


def test_unknown_is_none_never_zero() -> None:
    table = PriceTable({}, FixedBuiltin())
    assert table.cost("openai", "openai", "unknown-model", USAGE) is None
    assert table.cost("mock", "demo", "known", USAGE) is None  # kind without built-in prices
    assert table.cost("openai", "llama", "known", USAGE, use_builtin=False) is None


@pytest.mark.parametrize(
    ("kind", "model", "expected"),
    [
        # $2.50 in / $1.25 cached / $10 out per MTok (genai-prices' table for gpt-4o)
        ("openai", "gpt-4o", Decimal("0.0025") + Decimal("0.001")),
        # $3 in / $15 out per MTok
        ("anthropic", "claude-sonnet-4-5", Decimal("0.003") + Decimal("0.0015")),
    ],
)
def test_genai_prices_builtin(kind: str, model: str, expected: Decimal) -> None:
    table = PriceTable.with_genai_prices()
    usage = TokenUsage(input=1000, output=100)
    assert table.cost(kind, kind, model, usage) == expected


def test_genai_prices_cached_tokens_are_cheaper() -> None:
    table = PriceTable.with_genai_prices()
    plain = table.cost("anthropic", "anthropic", "claude-sonnet-4-5", TokenUsage(input=1000))
    cached = table.cost(
        "anthropic", "anthropic", "claude-sonnet-4-5", TokenUsage(input=1000, cached_read=1000)
    )
    assert plain is not None
    assert cached == plain / 10


def test_genai_prices_unknown_model_and_bedrock_ids() -> None:
    table = PriceTable.with_genai_prices()
    usage = TokenUsage(input=1000, output=100)
    assert table.cost("openai", "openai", "no-such-model-xyz", usage) is None
    bedrock = table.cost("bedrock", "bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", usage)
    assert bedrock is not None
    assert bedrock > 0


def test_worst_case_reserves_full_output_uncached() -> None:
    table = PriceTable({"p/m": PriceOverride(Decimal(1), Decimal(4))})
    assert table.worst_case_cost(
        "openai", "p", "m", estimated_input=1000, max_output=500
    ) == Decimal("0.003")
