"""`state.usage_retention` for a SQLite ledger, applied by the workers that write the file.

The file lives where the workers run: on a laptop beside the control plane, whose
housekeeping prunes it too (control_plane/housekeeping.py), but in Kubernetes in each gateway
pod, out of the control plane's reach, where only the workers can. Every worker of a pod
prunes the same file; a delete of old records is idempotent, so the repeats cost one indexed
query each. A ledger kept small also keeps its inserts fast (a usage insert takes twice as
long at a million rows as on an empty file).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from ext_proc.ledgers import Ledgers
from ext_proc.state.ledger import LedgerError
from ext_proc.view import ProcessorView

log = structlog.get_logger("retention")

PRUNE_INTERVAL_S = 600.0


async def prune_once(view: ProcessorView, ledgers: Ledgers,
                     now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """Delete the SQLite ledger's usage records older than the policy's retention; the
    count deleted (0 for Redis, or when the policy keeps every record)."""
    if view.state.backend != "sqlite" or view.usage_retention_s <= 0:
        return 0
    ledger = await ledgers.get(view.state)
    pruned = await ledger.prune_usage(now() - timedelta(seconds=view.usage_retention_s))
    if pruned:
        log.info("usage records pruned", pruned=pruned, retention_s=view.usage_retention_s)
    return pruned


async def prune_periodically(view: Callable[[], ProcessorView], ledgers: Ledgers,
                             interval_s: float = PRUNE_INTERVAL_S,
                             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Prune every `interval_s`, the first time at a random point of the first interval, so
    that the workers of a pod take turns; until cancelled."""
    await sleep(random.uniform(0, interval_s))
    while True:
        try:
            await prune_once(view(), ledgers)
        except LedgerError as exc:
            log.warning("usage records not pruned; retrying next round", error=str(exc))
        await sleep(interval_s)
