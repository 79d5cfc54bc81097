"""A model's fallback rules as an Envoy retry policy across the priorities of its cluster."""

from __future__ import annotations

from typing import Any

from control_plane.compiler.failover import Failover

_CLASS_TO_RETRY_ON = {
    "5xx": "5xx",
    "4xx": "retriable-4xx",
    "timeout": "gateway-error",
    "connect-failure": "connect-failure",
    "reset": "reset",
}


def retry_policy(failover: Failover) -> dict[str, Any] | None:
    """None when there is nothing to retry and no attempt to time."""
    retries = failover.pass_attempts - 1 + failover.retries
    if retries == 0 and failover.per_try_timeout is None and (
            failover.per_try_idle_timeout is None):
        return None
    conditions = failover.fallback_on
    retry_on = sorted({_CLASS_TO_RETRY_ON[c] for c in conditions if c in _CLASS_TO_RETRY_ON})
    codes = sorted(int(c) for c in conditions if c.isdigit())
    if codes:
        retry_on.append("retriable-status-codes")
    back_off = failover.back_off
    policy: dict[str, Any] = {
        "retry_on": ",".join(retry_on),
        "num_retries": retries,
        "retriable_status_codes": codes,
        # Each retry goes to the next priority (the next fallback target); once every
        # priority was tried, Envoy starts again from the first.
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority"
                ".previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
        "retry_back_off": {"base_interval": _seconds(back_off.base_interval),
                           "max_interval": _seconds(back_off.max_interval)},
    }
    if back_off.retry_after_max is not None:
        policy["rate_limited_retry_back_off"] = {
            "reset_headers": [{"name": "retry-after", "format": "SECONDS"}],
            "max_interval": _seconds(back_off.retry_after_max),
        }
    if failover.spread:
        # A retry inside a weighted split should reach another of its targets.
        policy["retry_host_predicate"] = [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host"
                                      ".previous_hosts.v3.PreviousHostsPredicate"}}]
        policy["host_selection_retry_max_attempts"] = 5
    if failover.per_try_timeout is not None:
        policy["per_try_timeout"] = _seconds(failover.per_try_timeout)
    if failover.per_try_idle_timeout is not None:
        policy["per_try_idle_timeout"] = _seconds(failover.per_try_idle_timeout)
    return policy


def _seconds(value: float) -> str:
    return f"{value:.3f}s"
