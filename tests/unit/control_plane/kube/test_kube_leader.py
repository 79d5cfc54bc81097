"""Lease-based leader election against recorded API responses, with an injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kube_fake_apiserver import Echo, FakeApiServer, Recorded, Reply, fixture
from kubernetes import client

from control_plane.kube.leader import LeaderElectionConfig, LeaderElector, micro_time
from tests.unit.control_plane.kube.fake_clock import FakeClock

LEASES = "/apis/coordination.k8s.io/v1/namespaces/gateway/leases"
LEASE = f"{LEASES}/switchboard-control-plane"
ME = "switchboard-control-plane-5f6b-xyz12"
OTHER = "switchboard-control-plane-7c9d-abcde"



@dataclass
class Transitions:
    events: list[str] = field(default_factory=list)

    def started(self) -> None:
        self.events.append("started")

    def stopped(self) -> None:
        self.events.append("stopped")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> Transitions:
    return Transitions()


@pytest.fixture
def elector(
    api_client: client.ApiClient, clock: FakeClock, transitions: Transitions
) -> LeaderElector:
    config = LeaderElectionConfig(
        namespace="gateway", name="switchboard-control-plane", identity=ME
    )
    return LeaderElector(
        client.CoordinationV1Api(api_client),
        config,
        clock=clock,
        on_started_leading=transitions.started,
        on_stopped_leading=transitions.stopped,
    )


def writes(apiserver: FakeApiServer) -> list[Recorded]:
    return [r for r in apiserver.requests if r.method in ("POST", "PUT")]


async def test_creates_a_missing_lease_and_leads(
    apiserver: FakeApiServer, elector: LeaderElector, transitions: Transitions
) -> None:
    apiserver.queue("GET", LEASE, Reply(404, fixture("status_lease_not_found.json")))
    apiserver.queue("POST", LEASES, Echo(201, "9100"))

    assert await elector.step() is True
    assert elector.is_leader
    assert transitions.events == ["started"]
    (create,) = writes(apiserver)
    assert create.path == LEASES
    spec = create.body["spec"]
    assert spec["holderIdentity"] == ME
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]
    assert datetime.fromisoformat(spec["renewTime"]) == datetime(
        2026, 11, 22, 10, 0, 1, 250000, tzinfo=UTC
    )
    assert "resourceVersion" not in create.body["metadata"]


async def test_losing_the_create_race_means_following(
    apiserver: FakeApiServer, elector: LeaderElector, transitions: Transitions
) -> None:
    apiserver.queue("GET", LEASE, Reply(404, fixture("status_lease_not_found.json")))
    apiserver.queue("POST", LEASES, Reply(409, fixture("status_lease_already_exists.json")))

    assert await elector.step() is False
    assert transitions.events == []


async def test_waits_out_a_lease_by_local_observation_then_takes_over(
    apiserver: FakeApiServer, elector: LeaderElector, clock: FakeClock, transitions: Transitions
) -> None:
    held = fixture("lease_held_by_other.json")
    apiserver.queue("GET", LEASE, *[Reply(200, held)] * 3)
    apiserver.queue("PUT", LEASE, Echo(200, "9050"))

    assert await elector.step() is False  # first sighting starts the local timer
    assert elector.observed_holder == OTHER
    clock.advance(14.9)
    assert await elector.step() is False  # unchanged for less than leaseDurationSeconds
    clock.advance(0.1)
    assert await elector.step() is True  # unchanged for 15 s of our own clock: expired

    (takeover,) = writes(apiserver)
    assert takeover.body["metadata"]["resourceVersion"] == "9001"  # optimistic concurrency
    spec = takeover.body["spec"]
    assert spec["holderIdentity"] == ME
    assert spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == spec["renewTime"]
    assert transitions.events == ["started"]


async def test_a_renewing_holder_keeps_the_lease(
    apiserver: FakeApiServer, elector: LeaderElector, clock: FakeClock
) -> None:
    apiserver.queue(
        "GET",
        LEASE,
        Reply(200, fixture("lease_held_by_other.json")),
        Reply(200, fixture("lease_held_by_other_renewed.json")),
        Reply(200, fixture("lease_held_by_other_renewed.json")),
    )
    assert await elector.step() is False
    clock.advance(8)
    assert await elector.step() is False  # the holder renewed: the timer restarts
    clock.advance(10)
    assert await elector.step() is False  # 10 s since the renewal, 18 s since first sighting
    assert writes(apiserver) == []


async def test_conflict_on_takeover_means_following(
    apiserver: FakeApiServer, elector: LeaderElector, clock: FakeClock, transitions: Transitions
) -> None:
    apiserver.queue("GET", LEASE, *[Reply(200, fixture("lease_held_by_other.json"))] * 2)
    apiserver.queue("PUT", LEASE, Reply(409, fixture("status_lease_conflict.json")))
    await elector.step()
    clock.advance(16)
    assert await elector.step() is False
    assert transitions.events == []


async def test_a_released_lease_is_taken_at_once(
    apiserver: FakeApiServer, elector: LeaderElector
) -> None:
    apiserver.queue("GET", LEASE, Reply(200, fixture("lease_released.json")))
    apiserver.queue("PUT", LEASE, Echo(200, "9011"))
    assert await elector.step() is True
    assert writes(apiserver)[0].body["spec"]["leaseTransitions"] == 4


async def _lead(apiserver: FakeApiServer, elector: LeaderElector) -> dict[str, Any]:
    apiserver.queue("GET", LEASE, Reply(404, fixture("status_lease_not_found.json")))
    apiserver.queue("POST", LEASES, Echo(201, "9100"))
    assert await elector.step() is True
    created: dict[str, Any] = writes(apiserver)[-1].body
    return dict(created, metadata={**created["metadata"], "resourceVersion": "9100"})


async def test_renewal_keeps_acquire_time_and_transitions(
    apiserver: FakeApiServer, elector: LeaderElector, clock: FakeClock, transitions: Transitions
) -> None:
    mine = await _lead(apiserver, elector)
    clock.advance(2)
    apiserver.queue("GET", LEASE, Reply(200, mine))
    apiserver.queue("PUT", LEASE, Echo(200, "9102"))
    assert await elector.step() is True

    renew = writes(apiserver)[-1]
    assert renew.body["metadata"]["resourceVersion"] == "9100"
    assert renew.body["spec"]["leaseTransitions"] == 0
    acquired = datetime.fromisoformat(renew.body["spec"]["acquireTime"])
    renewed = datetime.fromisoformat(renew.body["spec"]["renewTime"])
    assert renewed - acquired == timedelta(seconds=2)
    assert transitions.events == ["started"]


async def test_leader_steps_down_when_renewals_fail_past_the_deadline(
    apiserver: FakeApiServer, elector: LeaderElector, clock: FakeClock, transitions: Transitions
) -> None:
    await _lead(apiserver, elector)
    apiserver.queue("GET", LEASE, *[Reply(500, fixture("status_internal_error.json"))] * 2)

    clock.advance(9.9)
    assert await elector.step() is True  # renew failed, but within the 10 s renew deadline
    clock.advance(0.1)
    assert elector.is_leader is False  # the property alone enforces the deadline
    assert await elector.step() is False
    assert transitions.events == ["started", "stopped"]


async def test_leader_steps_down_when_someone_else_holds_the_lease(
    apiserver: FakeApiServer, elector: LeaderElector, transitions: Transitions
) -> None:
    await _lead(apiserver, elector)
    apiserver.queue("GET", LEASE, Reply(200, fixture("lease_held_by_other.json")))
    assert await elector.step() is False
    assert transitions.events == ["started", "stopped"]


async def test_release_clears_the_holder(
    apiserver: FakeApiServer, elector: LeaderElector, transitions: Transitions
) -> None:
    mine = await _lead(apiserver, elector)
    apiserver.queue("GET", LEASE, Reply(200, mine))
    apiserver.queue("PUT", LEASE, Echo(200, "9103"))
    await elector.release()

    released = writes(apiserver)[-1]
    assert released.body["metadata"]["resourceVersion"] == "9100"
    assert released.body["spec"].get("holderIdentity") is None
    assert released.body["spec"]["leaseDurationSeconds"] == 1
    assert not elector.is_leader
    assert transitions.events == ["started", "stopped"]


async def test_cancelling_run_releases_the_lease(
    apiserver: FakeApiServer, api_client: client.ApiClient, clock: FakeClock
) -> None:
    led = asyncio.Event()
    config = LeaderElectionConfig(
        namespace="gateway", name="switchboard-control-plane", identity=ME
    )
    elector = LeaderElector(
        client.CoordinationV1Api(api_client), config, clock=clock, on_started_leading=led.set
    )
    apiserver.queue("GET", LEASE, Reply(404, fixture("status_lease_not_found.json")))
    apiserver.queue("POST", LEASES, Echo(201, "9100"))
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(led.wait(), 5)
    created = writes(apiserver)[-1].body
    apiserver.queue(
        "GET",
        LEASE,
        Reply(200, dict(created, metadata={**created["metadata"], "resourceVersion": "9100"})),
    )
    apiserver.queue("PUT", LEASE, Echo(200, "9104"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writes(apiserver)[-1].body["spec"].get("holderIdentity") is None


def test_micro_time_never_drops_the_fraction() -> None:
    whole = datetime(2026, 1, 1, tzinfo=UTC)
    assert "." in micro_time(whole).isoformat()
    assert micro_time(whole.replace(microsecond=5)).microsecond == 5


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10, 10, 2), (15, 10, 10), (15, 10, 0)],
)
def test_config_rejects_unsafe_timings(lease: int, renew: int, retry: int) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElectionConfig(
            namespace="n",
            name="l",
            identity="me",
            lease_duration=timedelta(seconds=lease),
            renew_deadline=timedelta(seconds=renew),
            retry_period=timedelta(seconds=retry),
        )


def test_config_needs_an_identity() -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionConfig(namespace="n", name="l", identity="")
