"""Usage and budget reports, read from the ledger the workers write: for the admin API and
the `switchboard usage` command."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from control_plane.compiler.processor import processor_resource
from control_plane.policy import Policy
from ext_proc.access import build_access
from ext_proc.ledgers import Ledgers, default_state_dir
from ext_proc.secrets import DEFAULT_SECRETS_DIR
from ext_proc.state.ledger import Ledger
from ext_proc.state.model import GroupBy
from ext_proc.view import StateView

GROUPS: tuple[GroupBy, ...] = ("team", "model", "provider", "provider_model", "key")


SQLITE_ELSEWHERE = (
    "usage and budgets are kept by each gateway pod in its own SQLite file, which the control "
    "plane cannot read; declare state.backend redis (the Helm chart does it when redis.enabled, "
    "redis.externalUrl or redis.existingSecret is set) to report them here")


class LedgerSource(Protocol):
    async def get(self, state: StateView) -> Ledger: ...


class LedgerUnreachable(Exception):
    """The policy's ledger is not on this host (SQLite, with the workers elsewhere)."""


def state_of(policy: Policy) -> StateView:
    return StateView(policy.state.backend, policy.state.path or "", policy.state.url or "")


def ledger_reachable(policy: Policy, local_sqlite: bool) -> bool:
    """Whether this process can read the ledger the workers write: Redis always, a SQLite file
    only when the workers run on this host (``switchboard up``, systemd), not in Kubernetes."""
    return policy.state.backend != "sqlite" or local_sqlite


def open_ledgers() -> Ledgers:
    return Ledgers(default_state_dir(),
                   os.environ.get("SWITCHBOARD_SECRETS_DIR", DEFAULT_SECRETS_DIR))


async def usage_report(ledgers: LedgerSource, policy: Policy, by: GroupBy,
                       since: timedelta) -> dict[str, Any]:
    ledger = await ledgers.get(state_of(policy))
    start = datetime.now(UTC) - since
    rows = await ledger.usage_summary(by, start)
    return {"by": by, "since": start.isoformat(), "rows": [
        {"group": r.group, "attempts": r.attempts, "input_tokens": r.input_tokens,
         "output_tokens": r.output_tokens, "cached_read_tokens": r.cached_read_tokens,
         "cache_creation_tokens": r.cache_creation_tokens,
         "reasoning_tokens": r.reasoning_tokens, "cost_usd": str(r.cost_usd),
         "unpriced_attempts": r.unpriced_attempts, "estimated_attempts": r.estimated_attempts,
         "failed_attempts": r.failed_attempts}
        for r in rows]}


async def budget_report(ledgers: LedgerSource, policy: Policy) -> list[dict[str, Any]]:
    config = processor_resource(policy)
    ledger = await ledgers.get(state_of(policy))
    await ledger.sweep_expired()  # so abandoned reservations do not show as held
    report = []
    for scoped in build_access(config).budgets:
        status = await ledger.budget_status(scoped.rule)
        report.append({
            "name": scoped.rule.name, "scope": scoped.rule.scope,
            "period": str(scoped.rule.period), "timezone": scoped.rule.tz,
            "on_exceed": str(scoped.rule.on_exceed), "limit_usd": str(scoped.rule.limit_usd),
            "spent_usd": str(status.spent_usd), "reserved_usd": str(status.reserved_usd),
            "remaining_usd": str(status.remaining_usd),
            "window_start": status.window_start.isoformat(),
            "resets_at": status.resets_at.isoformat()})
    return report
