"""Shared by the housekeeping tests, with and without leader election."""

from __future__ import annotations

from dataclasses import dataclass, field

from ext_proc.ledgers import Ledgers
from ext_proc.state.ledger import Ledger
from ext_proc.view import StateView


@dataclass
class CountingLedgers:
    """The real ledgers, counting how often housekeeping asked for one."""

    inner: Ledgers
    opened: list[StateView] = field(default_factory=list)

    async def get(self, state: StateView) -> Ledger:
        self.opened.append(state)
        return await self.inner.get(state)
