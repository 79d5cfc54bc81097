"""A model's fallback rules as an Envoy retry policy across the priorities of its cluster."""

from __future__ import annotations

from typing import Any

from control_plane.policy.models import Defaults, ModelRoute

_CLASS_TO_RETRY_ON = {
    "5xx": "5xx",
    "4xx": "retriable-4xx",
    "timeout": "gateway-error",
    "connect-failure": "connect-failure",
    "reset": "reset",
}


def retry_policy(route: ModelRoute, defaults: Defaults) -> dict[str, Any] | None:
    retries = (len(route.targets) - 1) + (route.retries if route.retries is not None
                                          else defaults.retries)
    if retries == 0:
        return None
    conditions = [str(c) for c in (route.fallback_on or defaults.fallback_on)]
    retry_on = sorted({_CLASS_TO_RETRY_ON[c] for c in conditions if c in _CLASS_TO_RETRY_ON})
    codes = sorted(int(c) for c in conditions if c.isdigit())
    if codes:
        retry_on.append("retriable-status-codes")
    policy: dict[str, Any] = {
        "retry_on": ",".join(retry_on),
        "num_retries": retries,
        "retriable_status_codes": codes,
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority"
                ".previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
    }
    per_try = route.per_try_timeout or defaults.per_try_timeout
    if per_try is not None:
        policy["per_try_timeout"] = f"{per_try:.3f}s"
    return policy
