"""The routing policy as immutable, strict pydantic models.

Every model rejects unknown keys, so a typo is an error with a line number rather than a
silently ignored setting. Cross-references (a target naming a provider) are checked in
`reference_issues`, which reports the exact field that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

    @property
    def endpoint(self) -> str:
        return self.base_url


class AnthropicProvider(Strict):
    """Anthropic's Messages API."""

    kind: Literal["anthropic"]
    base_url: BaseUrl = "https://api.anthropic.com"
    api_key: SecretRef | None = None
    version: str = Field(default="2023-06-01", pattern=r"^\d{4}-\d{2}-\d{2}$",
                         description="The anthropic-version header sent on every request.")

    @property
    def endpoint(self) -> str:
        return self.base_url


class AzureOpenAIProvider(Strict):
    """Azure OpenAI: the target's model names the deployment."""

    kind: Literal["azure-openai"]
    base_url: BaseUrl = Field(description="The resource, https://NAME.openai.azure.com.")
    api_key: SecretRef
    api_version: str = Field(default="2024-10-21", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")

    @property
    def endpoint(self) -> str:
        return self.base_url


class BedrockProvider(Strict):
    """Amazon Bedrock's Converse API (and InvokeModel for embeddings), signed with SigV4."""

    kind: Literal["bedrock"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    base_url: BaseUrl | None = None
    aws_access_key_id: SecretRef
    aws_secret_access_key: SecretRef
    aws_session_token: SecretRef | None = None

    @property
    def endpoint(self) -> str:
        return self.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"


class GeminiProvider(Strict):
    """Google's Gemini API (generativelanguage.googleapis.com) with an API key."""

    kind: Literal["gemini"]
    base_url: BaseUrl = "https://generativelanguage.googleapis.com"
    api_key: SecretRef

    @property
    def endpoint(self) -> str:
        return self.base_url


class VertexProvider(Strict):
    """Gemini models on Vertex AI, authorised by a service account's OAuth2 tokens."""

    kind: Literal["vertex"]
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    location: str = Field(pattern=r"^(global|[a-z]+-[a-z]+\d+)$")
    base_url: BaseUrl | None = None
    service_account: SecretRef = Field(
        description="Reference to the service account's JSON key.")

    @property
    def endpoint(self) -> str:
        if self.base_url:
            return self.base_url
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"


class MockProvider(Strict):
    """Answers locally in the caller's schema; for demos, tests and benchmarks."""

    kind: Literal["mock"]


Provider = Annotated[
    OpenAIProvider | AnthropicProvider | AzureOpenAIProvider | BedrockProvider | GeminiProvider
    | VertexProvider | MockProvider,
    Field(discriminator="kind")]


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
    """Concurrency limits of a model's cluster (shared by single-target models that inherit
    them); past them Envoy answers 503 at once (overflow)."""

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
    reply_cost: bool = Field(default=True, description=(
        "Put each request's cost in its reply (x-switchboard-cost-usd; usage.cost in a "
        "stream's usage event). Off, a request that its one provider takes as it is (same "
        "API, the provider's model name, a stream that asks for its usage) is forwarded by "
        "Envoy alone after admission and metered from Envoy's access log: faster, with the "
        "cost only in the usage records and metrics."))
    admission: Literal["worker", "envoy"] = Field(default="worker", description=(
        "Who admits a request. worker: a worker checks its key and reserves its worst case "
        "on every budget. envoy: Envoy checks the key itself while every budget the request "
        "counts against has more than budget_headroom of its limit left and its team has "
        "no rate limit, and sends it on with no admission call (with reply_cost: false, "
        "forwarding it alone when its provider takes it as it is); every other request is "
        "admitted by a worker, exactly."))
    budget_headroom: float = Field(default=0.1, gt=0, le=1, description=(
        "With admission: envoy, the share of a budget's limit under which every request "
        "that counts against it is admitted by a worker (checked every second)."))


_KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_key_hash(value: str) -> str:
    if not _KEY_HASH.match(value):
        raise ValueError("a gateway key is listed by its hash, sha256:<64 hex digits> "
                         "(`switchboard keys create --team T` prints it), never the key itself")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/Paris)") from None
    return value


KeyHash = Annotated[str, AfterValidator(_check_key_hash)]
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
Usd = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class Downgrade(Strict):
    downgrade: str = Field(description="The model that serves requests once the budget is spent.")


class Budget(Strict):
    """A spending limit in USD over a calendar period, for the requests its `match` selects."""

    limit_usd: Usd
    period: Literal["day", "week", "month"]
    timezone: TimeZone = "UTC"
    on_exceed: Literal["block", "warn"] | Downgrade = "block"


class BudgetMatch(Strict):
    """Which requests a budget counts; every field given must match, none given = all."""

    team: str | None = None
    key: KeyHash | None = None
    model: str | None = None
    provider: str | None = None


class OrgBudget(Budget):
    match: BudgetMatch = Field(default_factory=BudgetMatch)


class RateLimit(Strict):
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class Team(Strict):
    keys: list[KeyHash] = Field(default_factory=list)
    models: list[str] | None = Field(
        default=None, description="Models the team may use; omitted means every model.")
    budget: Budget | None = None
    rate_limit: RateLimit | None = Field(default=None, description="For the whole team.")
    key_rate_limit: RateLimit | None = Field(default=None, description="For each of its keys.")


class Price(Strict):
    """USD per million tokens; cache prices default to the input price."""

    input_per_mtok: Usd
    output_per_mtok: Usd
    cached_read_per_mtok: Usd | None = None
    cache_write_per_mtok: Usd | None = None


class State(Strict):
    """Where budgets, rate limits and usage records live."""

    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str | None = Field(
        default=None, description="SQLite file; default: ledger.sqlite in the state directory.")
    url: SecretRef | None = Field(
        default=None, description="Reference to the Redis URL (it may carry a password).")
    usage_retention: Duration | None = Field(
        default=None, description=(
            "Delete usage records older than this (e.g. 90d): the control plane's "
            "housekeeping does it, and the workers for the SQLite file they write (in "
            "Kubernetes, out of the control plane's reach). Default: keep them (Redis caps "
            "its stream at about a million records either way)."))


class Policy(Strict):
    providers: dict[str, Provider] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    gateway: Gateway = Field(default_factory=Gateway)
    teams: dict[str, Team] = Field(default_factory=dict)
    budgets: dict[str, OrgBudget] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    state: State = Field(default_factory=State)

    @field_validator("providers", "teams", "budgets")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"name {name!r} must match {_NAME.pattern}")
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


def access_issues(policy: Policy) -> Iterator[tuple[Loc, str]]:
    """Teams, budgets, prices and state that name something undefined or contradict."""
    models = set(policy.models)
    owner: dict[str, str] = {}
    for team_name, team in policy.teams.items():
        for index, model in enumerate(team.models or ()):
            if model not in models:
                yield ("teams", team_name, "models", index), f"unknown model {model!r}"
        for index, key in enumerate(team.keys):
            if key in owner:
                yield (("teams", team_name, "keys", index),
                       f"this key already belongs to team {owner[key]!r}")
            owner.setdefault(key, team_name)
        if team.budget is not None:
            yield from _downgrade_issues(("teams", team_name, "budget"), team.budget, models)
    for name, budget in policy.budgets.items():
        loc: Loc = ("budgets", name)
        yield from _downgrade_issues(loc, budget, models)
        match = budget.match
        if match.team is not None and match.team not in policy.teams:
            yield (*loc, "match", "team"), f"unknown team {match.team!r}"
        if match.model is not None and match.model not in models:
            yield (*loc, "match", "model"), f"unknown model {match.model!r}"
        if match.provider is not None and match.provider not in policy.providers:
            yield (*loc, "match", "provider"), f"unknown provider {match.provider!r}"
    for key in policy.prices:
        provider, _, model = key.partition("/")
        if provider not in policy.providers or not model:
            yield ("prices", key), ("expected PROVIDER/MODEL or PROVIDER/* with a provider "
                                    f"defined in providers, got {key!r}")
    if policy.state.backend == "redis" and policy.state.url is None:
        yield ("state", "url"), "the redis backend needs url: a reference to the Redis URL"


def _downgrade_issues(loc: Loc, budget: Budget, models: set[str]) -> Iterator[tuple[Loc, str]]:
    if isinstance(budget.on_exceed, Downgrade) and budget.on_exceed.downgrade not in models:
        yield ((*loc, "on_exceed", "downgrade"),
               f"unknown model {budget.on_exceed.downgrade!r}")
