"""Grouping of usage records in Python, for stores without SQL (the Redis ledger)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ext_proc.metering.usage import Outcome, UsageRecord
from ext_proc.state.model import GroupBy, UsageRow


def group_value(record: UsageRecord, by: GroupBy) -> str:
    match by:
        case "team":
            return record.team
        case "model":
            return record.requested_model
        case "provider_model":
            return record.provider_model
        case "provider":
            return record.provider
        case "key":
            return record.key_id


@dataclass
class _Acc:
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_read: int = 0
    cache_creation: int = 0
    reasoning: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    estimated: int = 0
    failed: int = 0

    def add(self, record: UsageRecord) -> None:
        u = record.usage
        self.attempts += 1
        self.input_tokens += u.input
        self.output_tokens += u.output
        self.cached_read += u.cached_read
        self.cache_creation += u.cache_creation
        self.reasoning += u.reasoning
        if record.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost += record.cost_usd
        self.estimated += int(u.estimated)
        self.failed += int(record.outcome is not Outcome.OK)


def summarize(records: Iterable[UsageRecord], by: GroupBy) -> list[UsageRow]:
    groups: dict[str, _Acc] = {}
    for record in records:
        groups.setdefault(group_value(record, by), _Acc()).add(record)
    rows = [
        UsageRow(
            group=name,
            attempts=acc.attempts,
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            cached_read_tokens=acc.cached_read,
            cache_creation_tokens=acc.cache_creation,
            reasoning_tokens=acc.reasoning,
            cost_usd=acc.cost,
            unpriced_attempts=acc.unpriced,
            estimated_attempts=acc.estimated,
            failed_attempts=acc.failed,
        )
        for name, acc in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row.cost_usd, -row.attempts, row.group))
