"""Who may call, and which budgets and rate limits a request counts against.

Built once per policy version from the ProcessorConfig; both call sites use it: the router
(admission: identify the key, reserve the worst case) and every attempt (charge what it cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from control_plane.keys import key_hash
from ext_proc.metering.pricing import PriceOverride, PriceTable
from ext_proc.state.model import BudgetRule, OnExceed, RateLimitRule, scope_key
from ext_proc.state.periods import Period
from protos.switchboard.v1 import processor_pb2


@dataclass(frozen=True, slots=True)
class Caller:
    """The team and key a request is charged to; both empty when the gateway takes no keys."""

    team: str = ""
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class TeamAccess:
    name: str
    models: frozenset[str] | None  # None: every model
    rate_limit: RateLimitRule | None
    key_rate_limit: tuple[int | None, int | None] | None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class ScopedBudget:
    rule: BudgetRule
    team: str
    key: str
    model: str
    provider: str

    def applies(self, caller: Caller, model: str, providers: Iterable[str]) -> bool:
        return ((not self.team or self.team == caller.team)
                and (not self.key or self.key == caller.key_id)
                and (not self.model or self.model == model)
                and (not self.provider or self.provider in providers))


_MAX_CACHED_RULES = 10_000


@dataclass(frozen=True)
class AccessView:
    teams_by_key: Mapping[str, TeamAccess] = field(default_factory=dict)
    budgets: tuple[ScopedBudget, ...] = ()
    prices: PriceTable = field(default_factory=PriceTable)
    # Every admission and usage record asks which budgets apply; the answer holds for the
    # policy version, and callers, models and providers are the policy's (bounded all the
    # same, in case).
    _rules: dict[tuple[Caller, str, frozenset[str]], tuple[BudgetRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _limits: dict[Caller, tuple[RateLimitRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def takes_keys(self) -> bool:
        return bool(self.teams_by_key)

    def identify(self, presented: str) -> Caller | None:
        """The caller a key belongs to, or None.

        The lookup compares SHA-256 digests, never the key: how long a comparison takes can
        tell an attacker at most how many leading digest bytes matched, which says nothing
        about any key (finding a key for a digest prefix is a preimage search)."""
        digest = key_hash(presented)
        team = self.teams_by_key.get(digest)
        return None if team is None else Caller(team.name, digest)

    def team(self, caller: Caller) -> TeamAccess | None:
        return self.teams_by_key.get(caller.key_id)

    def budget_rules(self, caller: Caller, model: str,
                     providers: Iterable[str]) -> tuple[BudgetRule, ...]:
        key = (caller, model, frozenset(providers))
        rules = self._rules.get(key)
        if rules is None:
            if len(self._rules) >= _MAX_CACHED_RULES:
                self._rules.clear()
            rules = self._rules[key] = tuple(
                b.rule for b in self.budgets if b.applies(caller, model, key[2]))
        return rules

    def rate_limits(self, caller: Caller) -> tuple[RateLimitRule, ...]:
        """The same tuple for a caller each time, as budget_rules' (the spending charges of a
        record are reused for the next one with the same rules' objects: state/plan.py)."""
        limits = self._limits.get(caller)
        if limits is None:
            if len(self._limits) >= _MAX_CACHED_RULES:
                self._limits.clear()
            limits = self._limits[caller] = self._team_limits(caller)
        return limits

    def _team_limits(self, caller: Caller) -> tuple[RateLimitRule, ...]:
        team = self.team(caller)
        if team is None:
            return ()
        limits = [team.rate_limit] if team.rate_limit else []
        if team.key_rate_limit is not None:
            rpm, tpm = team.key_rate_limit
            limits.append(RateLimitRule(scope_key(key=caller.key_id), rpm, tpm))
        return tuple(limits)


def _limit(limit: processor_pb2.RateLimit) -> tuple[int | None, int | None]:
    return (limit.requests_per_minute or None, limit.tokens_per_minute or None)


def scoped_budget(name: str, budget: processor_pb2.Budget) -> ScopedBudget:
    match = budget.match
    parts = {k: v for k, v in (("team", match.team), ("key", match.key),
                               ("model", match.model), ("provider", match.provider)) if v}
    rule = BudgetRule(name=name, scope=scope_key(**parts), limit_usd=Decimal(budget.limit_usd),
                      period=Period(budget.period), tz=budget.timezone or "UTC",
                      on_exceed=OnExceed(budget.on_exceed or "block"),
                      downgrade_model=budget.downgrade_model or None)
    return ScopedBudget(rule, match.team, match.key, match.model, match.provider)


def _price(price: processor_pb2.Price) -> PriceOverride:
    def optional(text: str) -> Decimal | None:
        return Decimal(text) if text else None

    return PriceOverride(Decimal(price.input_per_mtok or "0"),
                         Decimal(price.output_per_mtok or "0"),
                         optional(price.cached_read_per_mtok),
                         optional(price.cache_write_per_mtok))


def build_access(config: processor_pb2.ProcessorConfig) -> AccessView:
    teams: dict[str, TeamAccess] = {}
    for name, team in config.teams.items():
        has_team_limit = team.HasField("rate_limit")
        access = TeamAccess(
            name=name,
            models=None if team.all_models else frozenset(team.models),
            rate_limit=(RateLimitRule(scope_key(team=name), *_limit(team.rate_limit))
                        if has_team_limit else None),
            key_rate_limit=_limit(team.key_rate_limit) if team.HasField("key_rate_limit")
            else None)
        for key in team.key_hashes:
            teams[key] = access
    budgets = tuple(scoped_budget(name, budget) for name, budget in sorted(config.budgets.items()))
    prices = PriceTable.with_genai_prices(
        {key: _price(price) for key, price in config.prices.items()})
    return AccessView(MappingProxyType(teams), budgets, prices)
