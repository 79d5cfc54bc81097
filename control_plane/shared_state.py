"""The store the deployment provides for budgets and usage, when the policy names none.

The Helm chart runs Redis (or is pointed at one) and starts the control plane with
``--state-redis-url env:SWITCHBOARD_REDIS_URL``. A policy that says nothing about its store then
keeps budgets, rate limits and usage records in that Redis, shared by every gateway pod, with no
edit to the policy. A policy that insists on SQLite is refused with a message naming the file and
line: under such a deployment its budgets would silently be per pod, and reset with every pod.
A policy that names its own Redis keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from control_plane.policy import Policy, PolicyError
from control_plane.policy.errors import PolicyIssue
from control_plane.policy.models import State

_STATE_SECTION = re.compile(r"^state\s*:", re.MULTILINE)


def check_redis_url_ref(url_ref: str) -> str:
    """The reference itself is validated like the policy's own ``state.url``."""
    State(backend="redis", url=url_ref)
    return url_ref


def with_shared_state(policy: Policy, docs: Mapping[str, str], redis_url_ref: str | None
                      ) -> Policy:
    """``policy`` with the deployment's Redis as its store; PolicyError if it insists on SQLite."""
    if redis_url_ref is None:
        return policy
    state = policy.state
    declared = state.model_fields_set
    if state.backend == "redis":
        return policy
    if "backend" not in declared and "path" not in declared:
        shared = state.model_copy(update={"backend": "redis", "url": state.url or redis_url_ref})
        return policy.model_copy(update={"state": shared})
    file, line = _state_location(docs)
    raise PolicyError([PolicyIssue(
        file, line, "state.backend",
        "this deployment keeps budgets and usage in a shared Redis "
        f"(--state-redis-url {redis_url_ref}); a SQLite ledger would be per gateway pod: "
        "remove state.backend and state.path, or declare backend: redis")])


def _state_location(docs: Mapping[str, str]) -> tuple[str, int]:
    for file in sorted(docs):
        match = _STATE_SECTION.search(docs[file])
        if match is not None:
            return file, docs[file].count("\n", 0, match.start()) + 1
    return "<policy>", 0
