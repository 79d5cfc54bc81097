"""A model's failover settings with `defaults` filled in: what the compiler turns into Envoy's
retry policy, outlier detection and circuit breakers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from control_plane.policy.models import (
    CircuitBreakers,
    Defaults,
    ModelRoute,
    OutlierDetection,
    RetryBackOff,
    Strict,
)

S = TypeVar("S", bound=Strict)


@dataclass(frozen=True)
class Failover:
    # Attempts of one pass over the targets: one per priority; a weighted split without
    # fallbacks passes over its targets instead.
    pass_attempts: int
    spread: bool  # a priority holds several targets (a weighted split)
    fallback_on: tuple[str, ...]
    retries: int
    per_try_timeout: float | None
    per_try_idle_timeout: float | None
    back_off: RetryBackOff
    outlier_detection: OutlierDetection
    circuit_breakers: CircuitBreakers


def resolve(route: ModelRoute, defaults: Defaults) -> Failover:
    weighted = route.strategy == "weighted"
    if not weighted:
        pass_attempts = len(route.targets)
    else:
        pass_attempts = 1 + len(route.fallbacks) if route.fallbacks else len(route.targets)
    return Failover(
        pass_attempts=pass_attempts,
        spread=weighted and len(route.targets) > 1,
        fallback_on=tuple(str(c) for c in (route.fallback_on or defaults.fallback_on)),
        retries=route.retries if route.retries is not None else defaults.retries,
        per_try_timeout=route.per_try_timeout or defaults.per_try_timeout,
        per_try_idle_timeout=route.per_try_idle_timeout or defaults.per_try_idle_timeout,
        back_off=_merge(defaults.retry_back_off, route.retry_back_off),
        outlier_detection=_merge(defaults.outlier_detection, route.outlier_detection),
        circuit_breakers=_merge(defaults.circuit_breakers, route.circuit_breakers),
    )


def inputs(route: ModelRoute) -> tuple[object, ...]:
    """What `resolve` reads of a model: models with equal inputs resolve alike, so thousands
    of them can share one result."""
    return (route.strategy, len(route.targets), len(route.fallbacks),
            None if route.fallback_on is None else tuple(route.fallback_on), route.retries,
            route.timeout, route.per_try_timeout, route.per_try_idle_timeout,
            route.retry_back_off, route.outlier_detection, route.circuit_breakers)


def _merge(default: S, override: S | None) -> S:
    """The fields a model wrote replace the org-wide ones; the others are inherited."""
    if override is None:
        return default
    return default.model_copy(update={name: getattr(override, name)
                                      for name in override.model_fields_set})
