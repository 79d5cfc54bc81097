"""Leader election among control-plane replicas through a ``coordination.k8s.io/v1`` Lease.

Every replica serves xDS; only the leader runs budget and usage housekeeping. The algorithm is
the one client-go uses:

- A candidate reads the Lease. If it is missing, the candidate creates it naming itself.
- If another holder owns it, the candidate waits until the record has stayed unchanged for
  ``leaseDurationSeconds`` *as measured by the candidate's own monotonic clock* (never by
  comparing the holder's ``renewTime`` with local wall time, so clock skew between nodes
  cannot shorten a lease). Then it takes the Lease over with an update carrying the
  ``resourceVersion`` it read: of two candidates racing, the API server accepts one and answers
  the other ``409 Conflict``.
- The leader renews every ``retry_period``. If it cannot renew for ``renew_deadline`` (shorter
  than the lease duration) it steps down *before* anyone else may take over; ``is_leader``
  checks that deadline on every read, so a stalled renew loop cannot leave a stale leader.
- On shutdown the leader releases the Lease (empty holder) so a follower takes over at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

Sleep = Callable[[float], Awaitable[None]]
Callback = Callable[[], None]

_NOT_FOUND = 404
_CONFLICT = 409
_TRANSIENT = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time (timezone-aware UTC), written into the Lease."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for every local expiry decision."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)
    request_timeout: timedelta = field(default=timedelta(seconds=5))

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity (the pod name)")
        if not self.lease_duration > self.renew_deadline > self.retry_period > timedelta(0):
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease the election reads."""

    holder: str | None
    lease_duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str

    @classmethod
    def from_json(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(lease["metadata"]["resourceVersion"]),
        )


def micro_time(moment: datetime) -> datetime:
    """A timestamp the API server parses as MicroTime.

    The client serialises datetimes with ``isoformat()``, which drops the fraction when it is
    zero; the server's MicroTime parser requires six fractional digits. One microsecond of
    difference is harmless, a rejected renew is not.
    """
    moment = moment.astimezone(UTC)
    return moment if moment.microsecond else moment.replace(microsecond=1)


class LeaderElector:
    """Campaigns for one Lease; ``api`` is a ``kubernetes.client.CoordinationV1Api``."""

    def __init__(
        self,
        api: Any,
        config: LeaderElectionConfig,
        *,
        clock: Clock | None = None,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._api = api
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._sleep = sleep
        self._leader = False
        self._last_renew = 0.0
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._log = structlog.get_logger(__name__).bind(
            lease=f"{config.namespace}/{config.name}", identity=config.identity
        )

    @property
    def is_leader(self) -> bool:
        """True only while the last successful renew is younger than the renew deadline."""
        age = self._clock.monotonic() - self._last_renew
        return self._leader and age < self._config.renew_deadline.total_seconds()

    @property
    def observed_holder(self) -> str | None:
        return self._observed.holder if self._observed else None

    async def run(self) -> None:
        """Campaign and renew until cancelled; on cancellation release a held Lease."""
        try:
            while True:
                await self.step()
                await self._sleep(self._config.retry_period.total_seconds())
        except asyncio.CancelledError:
            await self.release()
            raise

    async def step(self) -> bool:
        """One acquire-or-renew attempt; returns whether this replica leads afterwards."""
        try:
            renewed = await self._try_acquire_or_renew()
        except _TRANSIENT as exc:
            self._log.warning("lease_request_failed", error=str(exc))
            renewed = False
        if renewed:
            self._last_renew = self._clock.monotonic()
            self._set_leader(True)
        elif self._leader and (not self.is_leader or self._held_by_other()):
            self._set_leader(False)
        return self.is_leader

    async def release(self) -> None:
        """Give the Lease up if this replica holds it, so a follower need not wait it out."""
        if not self._leader:
            return
        self._set_leader(False)
        try:
            current = await self._read()
            if current is None or current.holder != self._config.identity:
                return
            body = self._lease_body(
                holder=None,
                lease_duration_seconds=1,
                transitions=current.transitions,
                resource_version=current.resource_version,
                acquire_time=current.acquire_time or "",
            )
            await self._call(self._api.replace_namespaced_lease, self._config.name, body=body)
            self._log.info("lease_released")
        except _TRANSIENT as exc:
            self._log.warning("lease_release_failed", error=str(exc))

    # -- the algorithm ---------------------------------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        current = await self._read()
        if current is None:
            return await self._create()
        self._observe(current)
        me = self._config.identity
        if current.holder not in (None, me) and not self._expired(current):
            return False
        changing_hands = current.holder != me
        body = self._lease_body(
            holder=me,
            lease_duration_seconds=self._lease_seconds(),
            transitions=current.transitions + (1 if changing_hands else 0),
            resource_version=current.resource_version,
            acquire_time=None if changing_hands else (current.acquire_time or ""),
        )
        try:
            updated = await self._call(
                self._api.replace_namespaced_lease, self._config.name, body=body
            )
        except ApiException as exc:
            if exc.status == _CONFLICT:  # somebody else wrote first; re-read next round
                self._log.info("lease_update_conflict")
                return False
            raise
        self._observe(LeaseRecord.from_json(updated))
        if changing_hands:
            self._log.info("lease_acquired", previous_holder=current.holder)
        return True

    async def _create(self) -> bool:
        body = self._lease_body(
            holder=self._config.identity,
            lease_duration_seconds=self._lease_seconds(),
            transitions=0,
            resource_version=None,
            acquire_time=None,
        )
        try:
            created = await self._call(self._api.create_namespaced_lease, body=body)
        except ApiException as exc:
            if exc.status == _CONFLICT:  # created by another candidate in the meantime
                return False
            raise
        self._observe(LeaseRecord.from_json(created))
        self._log.info("lease_created")
        return True

    def _observe(self, record: LeaseRecord) -> None:
        previous = self._observed
        if previous != record:
            self._observed = record
            self._observed_at = self._clock.monotonic()

    def _expired(self, record: LeaseRecord) -> bool:
        duration = record.lease_duration_seconds or self._lease_seconds()
        return self._clock.monotonic() - self._observed_at >= duration

    def _held_by_other(self) -> bool:
        holder = self.observed_holder
        return holder is not None and holder != self._config.identity

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        self._log.info("leadership_changed", leader=leader)
        callback = self._on_started if leader else self._on_stopped
        if callback is not None:
            callback()

    # -- API plumbing ----------------------------------------------------------------------

    def _lease_seconds(self) -> int:
        return int(self._config.lease_duration.total_seconds())

    def _lease_body(
        self,
        *,
        holder: str | None,
        lease_duration_seconds: int,
        transitions: int,
        resource_version: str | None,
        acquire_time: str | None,
    ) -> dict[str, Any]:
        """A whole Lease for create or replace (PUT replaces every field, so carry them all).

        ``acquire_time``: ``None`` stamps now (a new holder), ``""`` leaves it unset, any other
        value is the existing acquire time, kept as it was.
        """
        now = micro_time(self._clock.now())
        metadata: dict[str, Any] = {"name": self._config.name, "namespace": self._config.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": lease_duration_seconds,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if acquire_time is None:
            spec["acquireTime"] = now
        elif acquire_time:
            spec["acquireTime"] = micro_time(datetime.fromisoformat(acquire_time))
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _read(self) -> LeaseRecord | None:
        try:
            lease = await self._call(self._api.read_namespaced_lease, self._config.name)
        except ApiException as exc:
            if exc.status == _NOT_FOUND:
                return None
            raise
        return LeaseRecord.from_json(lease)

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        response = await asyncio.to_thread(
            method,
            *args,
            namespace=self._config.namespace,
            _preload_content=False,
            _request_timeout=self._config.request_timeout.total_seconds(),
            **kwargs,
        )
        decoded: dict[str, Any] = json.loads(response.data)
        return decoded
