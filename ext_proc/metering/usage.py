"""Token usage and the per-attempt usage record.

Token counts follow one convention whatever the backend reports, so pricing and budgets never
have to know the provider:

- ``input`` is *all* prompt tokens, including ``cached_read`` and ``cache_creation``
  (OpenAI already reports it that way; an Anthropic translator adds its three fields together).
- ``output`` is all generated tokens, including ``reasoning``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input: int = 0
    output: int = 0
    cached_read: int = 0
    cache_creation: int = 0
    reasoning: int = 0
    # True when a tokenizer counted the tokens because the upstream reported none.
    estimated: bool = False

    def __post_init__(self) -> None:
        if min(self.input, self.output, self.cached_read, self.cache_creation,
               self.reasoning) < 0:  # one test for all: every usage record is built here
            names = ("input", "output", "cached_read", "cache_creation", "reasoning")
            raise ValueError(f"token counts must be >= 0: "
                             f"{[n for n in names if getattr(self, n) < 0]}")
        if self.cached_read + self.cache_creation > self.input:
            raise ValueError("cached_read + cache_creation must be included in input")
        if self.reasoning > self.output:
            raise ValueError("reasoning must be included in output")

    @property
    def uncached_input(self) -> int:
        return self.input - self.cached_read - self.cache_creation

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: TokenUsage) -> TokenUsage:
        # Streams and retried attempts accumulate; one estimated part makes the sum estimated.
        return TokenUsage(
            input=self.input + other.input,
            output=self.output + other.output,
            cached_read=self.cached_read + other.cached_read,
            cache_creation=self.cache_creation + other.cache_creation,
            reasoning=self.reasoning + other.reasoning,
            estimated=self.estimated or other.estimated,
        )


class Outcome(enum.StrEnum):
    """How an attempt ended; ``status`` carries the HTTP code when there was one."""

    OK = "ok"
    UPSTREAM_ERROR = "upstream_error"
    TIMEOUT = "timeout"
    CONNECT_FAILURE = "connect_failure"
    CLIENT_DISCONNECT = "client_disconnect"
    # Envoy gave up on the attempt before any response: connect failure, reset or timeout.
    NO_RESPONSE = "no_response"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One row per attempt that reached a provider (failed attempts and disconnects included)."""

    time: datetime  # when the attempt started, timezone-aware
    request_id: str
    team: str
    key_id: str  # the ``sha256:`` hash of the gateway key, never the key
    requested_model: str
    provider: str  # provider name from the policy, e.g. "openai" or "llama"
    provider_model: str
    usage: TokenUsage
    cost_usd: Decimal | None  # None = no price known; never silently 0
    status: int  # HTTP status from the upstream, 0 when none arrived
    outcome: Outcome
    latency_s: float
    ttft_s: float | None = None  # streams only
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("UsageRecord.time must be timezone-aware")
