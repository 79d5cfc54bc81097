"""The routing policy as immutable, strict pydantic models.

Every model rejects unknown keys, so a typo is an error with a line number rather than a
silently ignored setting. Cross-references (a target naming a provider) are checked in
`reference_issues`, which reports the exact field that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from control_plane.policy.durations import ByteSize, Duration

Loc = tuple[str | int, ...]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
_SECRET_REF = re.compile(
    r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+|secret:[a-z0-9.-]+/[A-Za-z0-9._-]+)$")


def _check_secret_ref(value: str) -> str:
    if not _SECRET_REF.match(value):
        raise ValueError(
            "a credential must be a reference: env:VARIABLE, file:/absolute/path or "
            "secret:NAME/KEY (never the key itself)"
        )
    return value


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("a base URL takes no query string or fragment")
    return value.rstrip("/")


SecretRef = Annotated[str, AfterValidator(_check_secret_ref)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]

FALLBACK_CLASSES = ("4xx", "5xx", "timeout", "connect-failure", "reset")
DEFAULT_FALLBACK_ON: tuple[str | int, ...] = ("429", "5xx", "timeout", "connect-failure", "reset")
def _check_fallback(value: str | int) -> str:
    text = str(value)
    if text in FALLBACK_CLASSES or (text.isdigit() and 400 <= int(text) <= 599):
        return text
    raise ValueError(
        f"expected a status code 400-599 or one of {', '.join(FALLBACK_CLASSES)}, got {value!r}"
    )


FallbackCondition = Annotated[str | int, AfterValidator(_check_fallback)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAIProvider(Strict):
    """OpenAI, or any server that speaks its API (vLLM, Ollama, Groq, Together...)."""

    kind: Literal["openai"]
    base_url: BaseUrl = "https://api.openai.com/v1"
    api_key: SecretRef | None = None


class AnthropicProvider(Strict):
    """Anthropic's Messages API."""

    kind: Literal["anthropic"]
    base_url: BaseUrl = "https://api.anthropic.com"
    api_key: SecretRef | None = None
    version: str = Field(default="2023-06-01", pattern=r"^\d{4}-\d{2}-\d{2}$",
                         description="The anthropic-version header sent on every request.")


class MockProvider(Strict):
    """Answers locally in the caller's schema; for demos, tests and benchmarks."""

    kind: Literal["mock"]


Provider = Annotated[OpenAIProvider | AnthropicProvider | MockProvider, Field(discriminator="kind")]


class Target(Strict):
    provider: str
    model: str | None = Field(default=None, description="The provider's name for the model.")
    weight: int = Field(default=1, ge=1, le=10_000)


class RetryBackOff(Strict):
    """Exponential back-off with full jitter between attempts; `retry-after` replaces it."""

    base_interval: Duration = 0.025
    max_interval: Duration = 0.25
    # A provider's retry-after up to this long is waited for; a longer one is ignored and the
    # next attempt goes out after the exponential back-off. null: never wait for retry-after.
    retry_after_max: Duration | None = 2.0

    @model_validator(mode="after")
    def _ordered(self) -> RetryBackOff:
        if self.max_interval < self.base_interval:
            raise ValueError("max_interval must not be shorter than base_interval")
        return self


class OutlierDetection(Strict):
    """Skip a target that keeps failing, for a while, instead of paying a failed attempt on
    every request. Connection failures, resets and timeouts count as 5xx."""

    enabled: bool = True
    consecutive_5xx: int = Field(default=5, ge=1, le=10_000)
    consecutive_gateway_errors: int = Field(default=5, ge=1, le=10_000)
    interval: Duration = 10.0
    base_ejection_time: Duration = 30.0
    max_ejection_percent: int = Field(default=50, ge=0, le=100)


class CircuitBreakers(Strict):
    """Per-model concurrency limits; past them Envoy answers 503 at once (overflow)."""

    max_connections: int = Field(default=100_000, ge=1)
    max_pending_requests: int = Field(default=100_000, ge=1)
    max_requests: int = Field(default=100_000, ge=1)
    max_retries: int = Field(default=10_000, ge=0)


class ModelRoute(Strict):
    strategy: Literal["fallback", "weighted"] = "fallback"
    targets: list[Target] = Field(min_length=1)
    # Weighted only: tried in order, each after the one before, once a weighted attempt failed.
    fallbacks: list[Target] = Field(default_factory=list)
    fallback_on: list[FallbackCondition] | None = None
    timeout: Duration | None = None
    per_try_timeout: Duration | None = None
    per_try_idle_timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    # Fields left out inherit from `defaults`, one by one.
    retry_back_off: RetryBackOff | None = None
    outlier_detection: OutlierDetection | None = None
    circuit_breakers: CircuitBreakers | None = None

    @model_validator(mode="after")
    def _fallbacks_need_weights(self) -> ModelRoute:
        if self.fallbacks and self.strategy != "weighted":
            raise ValueError("fallbacks go with strategy: weighted; with strategy: fallback "
                             "list every target in targets, in order")
        return self

    @property
    def all_targets(self) -> list[Target]:
        return [*self.targets, *self.fallbacks]


class Defaults(Strict):
    """Org-wide defaults that every model inherits unless it says otherwise."""

    timeout: Duration = 300.0
    per_try_timeout: Duration | None = None
    per_try_idle_timeout: Duration | None = None
    fallback_on: list[FallbackCondition] = Field(
        default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    retries: int = Field(default=0, ge=0, le=10)
    retry_back_off: RetryBackOff = Field(default_factory=RetryBackOff)
    outlier_detection: OutlierDetection = Field(default_factory=OutlierDetection)
    circuit_breakers: CircuitBreakers = Field(default_factory=CircuitBreakers)


class Gateway(Strict):
    max_request_bytes: ByteSize = 16 * 1024 * 1024


class Policy(Strict):
    providers: dict[str, Provider] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    gateway: Gateway = Field(default_factory=Gateway)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: dict[str, Provider]) -> dict[str, Provider]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"provider name {name!r} must match {_NAME.pattern}")
        return value

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelRoute]) -> dict[str, ModelRoute]:
        for name in value:
            if not _MODEL_NAME.match(name):
                raise ValueError(f"model name {name!r} must match {_MODEL_NAME.pattern}")
        return value


def reference_issues(policy: Policy) -> Iterator[tuple[Loc, str]]:
    """Fields that name something the policy does not define."""
    for model_name, route in policy.models.items():
        for field_name in ("targets", "fallbacks"):
            for index, target in enumerate(getattr(route, field_name)):
                yield from _target_issues(policy, (
                    "models", model_name, field_name, index), target)


def _target_issues(policy: Policy, loc: Loc, target: Target) -> Iterator[tuple[Loc, str]]:
    if target.provider not in policy.providers:
        known = ", ".join(sorted(policy.providers)) or "none"
        yield (*loc, "provider"), f"unknown provider {target.provider!r} (defined: {known})"
    if target.model is not None and not _MODEL_NAME.match(target.model):
        yield (*loc, "model"), f"model name {target.model!r} must match {_MODEL_NAME.pattern}"
