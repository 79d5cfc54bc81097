"""Ledger on Redis, for ext_proc replicas that share budgets.

Each operation is one Lua script (see redis_scripts), so a request touching org, team, key and
model budgets plus its rate limits reserves all of them or none, whatever the number of
replicas. Usage records go to a capped stream and are grouped in Python on query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ext_proc.metering.usage import Outcome, TokenUsage, UsageRecord
from ext_proc.state.aggregate import summarize
from ext_proc.state.ledger import (
    DEFAULT_RESERVATION_TTL,
    TOMBSTONE_TTL,
    ChargedRecord,
    LedgerError,
    ReservationExists,
)
from ext_proc.state.model import (
    Admission,
    BudgetRule,
    BudgetStatus,
    GroupBy,
    ReservationRequest,
    UsageRow,
    micros_to_usd,
    nanos_to_usd,
    usd_to_micros_ceil,
    usd_to_nanos,
)
from ext_proc.state.periods import Clock, budget_window, system_clock
from ext_proc.state.plan import (
    budget_counter_key,
    build_admission,
    plan_charges,
    to_ms,
)
from ext_proc.state.redis_scripts import FINISH, RECORD, RESERVE, SWEEP

DEFAULT_PREFIX = "switchboard:{ledger}:"
# The most usage records one script call writes (~10 ms of the server's time).
RECORD_CALL_MAX = 500
DEFAULT_MAX_RECORDS = 1_000_000  # approximate stream cap (XADD MAXLEN ~)
# Stream ids come from Redis' clock, record times from the gateway's; read this much earlier
# than ``since`` so clock skew between them cannot hide records.
STREAM_SKEW = timedelta(minutes=10)
_PAGE = 5_000


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def encode_record(record: UsageRecord) -> dict[str, str]:
    u = record.usage
    return {
        "t": str(to_ms(record.time)),
        "rid": record.request_id,
        "att": str(record.attempt),
        "team": record.team,
        "key": record.key_id,
        "model": record.requested_model,
        "prov": record.provider,
        "pmodel": record.provider_model,
        "in": str(u.input),
        "out": str(u.output),
        "cr": str(u.cached_read),
        "cw": str(u.cache_creation),
        "rs": str(u.reasoning),
        "est": str(int(u.estimated)),
        "cost": "" if record.cost_usd is None else str(usd_to_nanos(record.cost_usd)),
        "st": str(record.status),
        "oc": str(record.outcome),
        "lat": repr(record.latency_s),
        "ttft": "" if record.ttft_s is None else repr(record.ttft_s),
    }


def decode_record(f: dict[str, str]) -> UsageRecord:
    return UsageRecord(
        time=datetime.fromtimestamp(int(f["t"]) / 1000, UTC),
        request_id=f["rid"],
        attempt=int(f["att"]),
        team=f["team"],
        key_id=f["key"],
        requested_model=f["model"],
        provider=f["prov"],
        provider_model=f["pmodel"],
        usage=TokenUsage(
            input=int(f["in"]),
            output=int(f["out"]),
            cached_read=int(f["cr"]),
            cache_creation=int(f["cw"]),
            reasoning=int(f["rs"]),
            estimated=f["est"] == "1",
        ),
        cost_usd=None if f["cost"] == "" else nanos_to_usd(int(f["cost"])),
        status=int(f["st"]),
        outcome=Outcome(f["oc"]),
        latency_s=float(f["lat"]),
        ttft_s=None if f["ttft"] == "" else float(f["ttft"]),
    )


class RedisLedger:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        clock: Clock = system_clock,
        prefix: str = DEFAULT_PREFIX,
        reservation_ttl: timedelta = DEFAULT_RESERVATION_TTL,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        # The client must use decode_responses=True (see ``from_url``).
        self._redis = client
        self._clock = clock
        self._prefix = prefix
        self._reservation_ttl_ms = _ms(reservation_ttl)
        self._tomb_ttl_ms = _ms(TOMBSTONE_TTL)
        self._max_records = max_records
        self._reserve = client.register_script(RESERVE)
        self._finish = client.register_script(FINISH)
        self._sweep = client.register_script(SWEEP)
        self._record = client.register_script(RECORD)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Clock = system_clock,
        prefix: str = DEFAULT_PREFIX,
        reservation_ttl: timedelta = DEFAULT_RESERVATION_TTL,
        max_connections: int = 32,
        pool_timeout: timedelta = timedelta(seconds=5),
    ) -> RedisLedger:
        # A blocking pool queues bursts for a free connection instead of failing them.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            max_connections=max_connections,
            timeout=pool_timeout.total_seconds(),
        )
        client = aioredis.Redis(connection_pool=pool)
        return cls(client, clock=clock, prefix=prefix, reservation_ttl=reservation_ttl)

    def _key(self, kind: str, name: str = "") -> str:
        return f"{self._prefix}{kind}{name}"

    async def _call(self, script: Any, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise LedgerError(f"redis ledger: {exc}") from exc

    async def reserve(self, request: ReservationRequest) -> Admission:
        now = self._clock()
        now_ms = to_ms(now)
        plan = plan_charges(request, now)
        args: list[str | int] = [
            self._prefix,
            request.reservation_id,
            now_ms,
            now_ms + self._reservation_ttl_ms,
            self._reservation_ttl_ms + self._tomb_ttl_ms,
            self._tomb_ttl_ms,
            len(plan.charges),
        ]
        for c in plan.charges:
            args += [
                c.key,
                c.limit,
                c.amount,
                int(c.enforce),
                int(c.refundable),
                max(c.expires_at_ms - now_ms, 1000),
                str(c.unit),
                c.expires_at_ms,
            ]
        keys = [self._key("rexp"), self._key("r:", request.reservation_id)]
        keys += [self._key("c:", c.key) for c in plan.charges]
        result = await self._call(self._reserve, keys, args)
        if int(result[0]) == -1:
            raise ReservationExists(request.reservation_id)
        used = [int(v) for v in result[1:]]
        return build_admission(request, plan, used, admitted=int(result[0]) == 1)

    async def _end(self, reservation_id: str, usd: str, tokens: str, release: bool,
                   attempts: int = 0) -> int:
        keys = [self._key("rexp"), self._key("r:", reservation_id)]
        keys += [self._key("u:", f"{reservation_id}:{n}") for n in range(1, attempts + 1)]
        args: list[str | int] = [
            self._prefix,
            reservation_id,
            to_ms(self._clock()),
            self._tomb_ttl_ms,
            usd,
            tokens,
            int(release),
        ]
        return int(await self._call(self._finish, keys, args))

    async def settle(
        self, reservation_id: str, *, cost_usd: Decimal | None, tokens: int | None
    ) -> bool:
        usd = "" if cost_usd is None else str(usd_to_micros_ceil(cost_usd))
        tokens_actual = "" if tokens is None else str(tokens)
        return await self._end(reservation_id, usd, tokens_actual, False) == 1

    async def release(self, reservation_id: str) -> bool:
        return await self._end(reservation_id, "", "", True) == 1

    async def release_when_recorded(self, reservation_id: str, attempts: int) -> bool | None:
        outcome = await self._end(reservation_id, "", "", True, attempts)
        return None if outcome == -1 else outcome == 1

    async def sweep_expired(self) -> int:
        args: list[str | int] = [self._prefix, to_ms(self._clock()), self._tomb_ttl_ms]
        return int(await self._call(self._sweep, [self._key("rexp")], args))

    async def budget_status(self, rule: BudgetRule) -> BudgetStatus:
        start, end = budget_window(self._clock(), rule.period, rule.tz)
        try:
            settled, reserved = await self._redis.hmget(
                self._key("c:", budget_counter_key(rule, start)), ["s", "r"]
            )
        except RedisError as exc:
            raise LedgerError(f"redis ledger: {exc}") from exc
        return BudgetStatus(
            rule, micros_to_usd(int(settled or 0)), micros_to_usd(int(reserved or 0)), start, end
        )

    async def record_usage(self, *records: ChargedRecord) -> None:
        # A script call per RECORD_CALL_MAX records (an access-log message's worth is one),
        # so each record and its charges are one atomic step, the batch one round trip, and
        # no call holds the server for long when writes that queued behind a slow one go
        # together.
        now = self._clock()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(records), RECORD_CALL_MAX):
                    keys, args = self._record_call(records[start:start + RECORD_CALL_MAX], now)
                    await self._record(keys=keys, args=args, client=pipe)
                await pipe.execute()
        except RedisError as exc:
            raise LedgerError(f"redis ledger: {exc}") from exc

    def _record_call(self, records: tuple[ChargedRecord, ...],
                     now: datetime) -> tuple[list[str], list[str | int]]:
        now_ms = to_ms(now)
        keys, batch = [self._key("usage")], []
        for charged in records:
            record, charges = charged.record, charged.charges(now)
            keys.append(self._key("u:", f"{record.request_id}:{record.attempt}"))
            keys += [self._key("c:", c.key) for c in charges]
            batch.append(([part for field in encode_record(record).items() for part in field],
                          [(str(c.amount), str(max(c.expires_at_ms - now_ms, 1000)))
                           for c in charges]))
        return keys, [self._max_records, self._tomb_ttl_ms, orjson.dumps(batch).decode()]

    async def usage_summary(self, by: GroupBy, since: datetime) -> list[UsageRow]:
        since_ms = to_ms(since)
        start = str(max(since_ms - _ms(STREAM_SKEW), 0))
        records: dict[tuple[str, int], UsageRecord] = {}
        try:
            while True:
                # decode_responses=True: ids and fields are str.
                page = cast(
                    "list[tuple[str, dict[str, str]]]",
                    await self._redis.xrange(self._key("usage"), min=start, count=_PAGE),
                )
                for _entry_id, fields in page:
                    record = decode_record(fields)
                    if to_ms(record.time) >= since_ms:
                        # Latest write wins, as in SQLite's INSERT OR REPLACE.
                        records[(record.request_id, record.attempt)] = record
                if len(page) < _PAGE:
                    break
                start = "(" + page[-1][0]
        except RedisError as exc:
            raise LedgerError(f"redis ledger: {exc}") from exc
        return summarize(records.values(), by)

    async def prune_usage(self, before: datetime) -> int:
        """Trim the stream by the time Redis stored each record (its entry id), less
        ``STREAM_SKEW``: a record is kept up to that much longer than ``before`` asks, never
        deleted early, and trimming never has to read the records."""
        min_id = f"{max(to_ms(before) - _ms(STREAM_SKEW), 0)}-0"
        try:
            return int(await self._redis.xtrim(self._key("usage"), minid=min_id,
                                               approximate=False))
        except RedisError as exc:
            raise LedgerError(f"redis ledger: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)
