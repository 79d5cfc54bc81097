"""USD prices: the policy's ``prices:`` overrides first, then the genai-prices table.

A model with no price anywhere costs ``None`` (unknown), never 0: a silent zero would let
unpriced traffic slip past every budget unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol

from ext_proc.metering.usage import TokenUsage

_PER = Decimal(1_000_000)

# Policy provider ``kind`` -> genai-prices provider id. Kinds not listed (mock, ...) have no
# built-in prices; they are priced only through overrides.
GENAI_PRICES_PROVIDER_IDS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "openai",
        "azure": "azure",
        "azure-openai": "azure",
        "anthropic": "anthropic",
        "bedrock": "aws",
        "gemini": "google",
        "vertex": "google",
        "mistral": "mistral",
        "groq": "groq",
        "deepseek": "deepseek",
        "xai": "x-ai",
        "cohere": "cohere",
        "together": "together",
        "fireworks": "fireworks",
        "openrouter": "openrouter",
    }
)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """USD per million tokens. Cache prices default to the input price when absent."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        for value in (
            self.input_per_mtok,
            self.output_per_mtok,
            self.cached_read_per_mtok,
            self.cache_write_per_mtok,
        ):
            if value is not None and (not value.is_finite() or value < 0):
                raise ValueError("prices must be finite and >= 0")

    def cost(self, usage: TokenUsage) -> Decimal:
        cached = (
            self.input_per_mtok if self.cached_read_per_mtok is None else self.cached_read_per_mtok
        )
        write = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        micro = (
            usage.uncached_input * self.input_per_mtok
            + usage.cached_read * cached
            + usage.cache_creation * write
            + usage.output * self.output_per_mtok
        )
        return micro / _PER


class BuiltinPrices(Protocol):
    """A built-in price source; returns None when it does not know the model."""

    def cost(
        self, provider_id: str, model: str, usage: TokenUsage, at: datetime | None
    ) -> Decimal | None: ...


class GenaiPrices:
    """genai-prices' bundled snapshot (no network: its auto-update is never started here)."""

    def cost(
        self, provider_id: str, model: str, usage: TokenUsage, at: datetime | None
    ) -> Decimal | None:
        # Imported lazily: the data module is large and only workers that price need it.
        import genai_prices

        gp_usage = genai_prices.Usage(
            input_tokens=usage.input,
            output_tokens=usage.output,
            cache_read_tokens=usage.cached_read,
            cache_write_tokens=usage.cache_creation,
        )
        try:
            calc = genai_prices.calc_price(
                gp_usage, model, provider_id=provider_id, genai_request_timestamp=at
            )
        except LookupError:
            return None
        return calc.total_price


class PriceTable:
    """Immutable price lookup built once per policy version.

    Override keys are ``provider/model`` (the provider *name* from the policy) or
    ``provider/*`` for every model of a provider, e.g. a self-hosted server that costs nothing.
    """

    def __init__(
        self,
        overrides: Mapping[str, PriceOverride] | None = None,
        builtin: BuiltinPrices | None = None,
    ) -> None:
        self._overrides = MappingProxyType(dict(overrides or {}))
        self._builtin = builtin

    @classmethod
    def with_genai_prices(cls, overrides: Mapping[str, PriceOverride] | None = None) -> PriceTable:
        return cls(overrides, GenaiPrices())

    def override_for(self, provider_name: str, model: str) -> PriceOverride | None:
        return self._overrides.get(f"{provider_name}/{model}") or self._overrides.get(
            f"{provider_name}/*"
        )

    def cost(
        self,
        provider_kind: str,
        provider_name: str,
        model: str,
        usage: TokenUsage,
        *,
        at: datetime | None = None,
        use_builtin: bool = True,
    ) -> Decimal | None:
        """Cost in USD, or None when no price is known.

        Pass ``use_builtin=False`` for a provider whose ``kind`` is only a wire format (an
        OpenAI-compatible vLLM server): public list prices would be wrong for it.
        """
        override = self.override_for(provider_name, model)
        if override is not None:
            return override.cost(usage)
        provider_id = GENAI_PRICES_PROVIDER_IDS.get(provider_kind)
        if not use_builtin or provider_id is None or self._builtin is None:
            return None
        return self._builtin.cost(provider_id, model, usage, at)

    def worst_case_cost(
        self,
        provider_kind: str,
        provider_name: str,
        model: str,
        *,
        estimated_input: int,
        max_output: int,
        at: datetime | None = None,
        use_builtin: bool = True,
    ) -> Decimal | None:
        """What to reserve before the request: every input token uncached, full output."""
        usage = TokenUsage(input=estimated_input, output=max_output, estimated=True)
        return self.cost(provider_kind, provider_name, model, usage, at=at, use_builtin=use_builtin)
