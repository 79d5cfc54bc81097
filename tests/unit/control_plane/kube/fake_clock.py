"""One moving time for the elector (wall and monotonic) and, called, for a ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class FakeClock:
    wall: datetime = datetime(2026, 11, 22, 10, 0, 1, 250000, tzinfo=UTC)
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def __call__(self) -> datetime:  # as a ledger's clock
        return self.wall

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
