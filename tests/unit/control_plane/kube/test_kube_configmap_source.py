"""ConfigMapSource against recorded API responses served by a fake API server on loopback."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from kube_fake_apiserver import FakeApiServer, Reply, Stream, fixture
from kubernetes import client

from control_plane.kube.configmap_source import Backoff, ConfigMapSource, policy_documents

CONFIGMAPS = "/api/v1/namespaces/gateway/configmaps"
V1 = policy_documents(fixture("configmap_list.json")["items"][0])
V2 = policy_documents(fixture("watch_modified.json")["object"])
WAIT = 5.0  # an upper bound on waiting for the fake server, never a synchronisation sleep


@dataclass
class Harness:
    apiserver: FakeApiServer
    changes: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    sleeps: list[float] = field(default_factory=list)
    fail_callback: bool = False
    source: ConfigMapSource | None = None

    def start(self) -> asyncio.Task[Any]:
        assert self.source is not None
        return asyncio.create_task(self.source.run())

    async def on_change(self, documents: dict[str, str]) -> None:
        await self.changes.put(documents)
        if self.fail_callback:
            raise ValueError("policy rejected")

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    async def next_change(self) -> dict[str, str]:
        return await asyncio.wait_for(self.changes.get(), WAIT)

    async def requests(self, count: int) -> list[Any]:
        return await asyncio.to_thread(self.apiserver.wait_for_requests, count, WAIT)


@pytest.fixture
def harness(apiserver: FakeApiServer, api_client: client.ApiClient) -> Harness:
    h = Harness(apiserver)
    h.source = ConfigMapSource(
        client.CoreV1Api(api_client),
        "gateway",
        "switchboard-policy",
        h.on_change,
        backoff=Backoff(initial=0.5, maximum=4.0, jitter=0.0),
        sleep=h.sleep,
        rng=random.Random(7),
    )
    return h


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_policy_documents_keeps_yaml_keys_sorted() -> None:
    cm = {"data": {"b.yml": "b", "a.yaml": "a", "README.md": "x", "c.json": "{}"}}
    assert list(policy_documents(cm).items()) == [("a.yaml", "a"), ("b.yml", "b")]
    assert policy_documents({"binaryData": {"a.yaml": "eA=="}}) == {}


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (50, 4.0)],
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert Backoff(initial=0.5, maximum=4.0, jitter=0.0).delay(failures) == expected


def test_backoff_jitter_stays_within_its_band() -> None:
    rng = random.Random(1)
    delays = {Backoff(initial=1.0, jitter=0.2).delay(1, rng) for _ in range(200)}
    assert min(delays) >= 0.8
    assert max(delays) <= 1.2
    assert len(delays) > 1


async def test_lists_then_watches_from_the_list_version(harness: Harness) -> None:
    harness.apiserver.queue("GET", CONFIGMAPS, Reply(200, fixture("configmap_list.json")))
    harness.apiserver.queue(
        "GET", CONFIGMAPS, Stream([fixture("watch_modified.json")], hold=True), watch=True
    )
    task = harness.start()
    assert await harness.next_change() == V1
    assert await harness.next_change() == V2
    listed, watched = await harness.requests(2)
    await stop(task)

    assert listed.query == {"fieldSelector": "metadata.name=switchboard-policy"}
    assert watched.query["watch"] == "true"
    assert watched.query["fieldSelector"] == "metadata.name=switchboard-policy"
    assert watched.query["resourceVersion"] == "48211"
    assert watched.query["allowWatchBookmarks"] == "true"
    assert "README.md" not in V1
    assert "teams.yml" in V2
    assert harness.sleeps == []


async def test_resumes_from_bookmark_and_skips_unchanged_data(harness: Harness) -> None:
    harness.apiserver.queue("GET", CONFIGMAPS, Reply(200, fixture("configmap_list.json")))
    harness.apiserver.queue(
        "GET",
        CONFIGMAPS,
        Stream([fixture("watch_modified.json"), fixture("watch_modified_same_data.json")]),
        Stream([fixture("watch_bookmark.json")]),
        watch=True,
    )
    task = harness.start()
    assert await harness.next_change() == V1
    assert await harness.next_change() == V2
    requests = await harness.requests(4)  # list, watch, watch after close, watch after bookmark
    await stop(task)

    assert [r.query.get("resourceVersion") for r in requests] == [None, "48211", "48307", "48990"]
    assert harness.changes.empty()  # the annotation-only change did not reach the callback


async def test_expired_watch_relists_without_backoff(harness: Harness) -> None:
    harness.apiserver.queue(
        "GET",
        CONFIGMAPS,
        Reply(200, fixture("configmap_list.json")),
        Reply(200, fixture("configmap_list.json")),
    )
    harness.apiserver.queue(
        "GET", CONFIGMAPS, Stream([fixture("watch_error_gone.json")]), watch=True
    )
    task = harness.start()
    assert await harness.next_change() == V1
    requests = await harness.requests(4)  # list, watch (410), list again, watch
    await stop(task)

    assert [r.query.get("watch") for r in requests[:4]] == [None, "true", None, "true"]
    assert harness.sleeps == []
    assert harness.changes.empty()  # the relist found the same data: no second callback


async def test_api_errors_back_off_exponentially_then_recover(harness: Harness) -> None:
    harness.apiserver.queue(
        "GET",
        CONFIGMAPS,
        Reply(403, fixture("status_forbidden.json")),
        Reply(500, fixture("status_internal_error.json")),
        Reply(500, fixture("status_internal_error.json")),
        Reply(200, fixture("configmap_list.json")),
    )
    task = harness.start()
    assert await harness.next_change() == V1
    await harness.requests(5)
    await stop(task)

    assert harness.sleeps == [0.5, 1.0, 2.0]


async def test_broken_watch_connection_is_retried(harness: Harness) -> None:
    harness.apiserver.queue(
        "GET",
        CONFIGMAPS,
        Reply(200, fixture("configmap_list.json")),
        Reply(200, fixture("configmap_list.json")),
    )
    harness.apiserver.queue(
        "GET",
        CONFIGMAPS,
        Stream([fixture("watch_modified.json")], broken=True),
        Stream([], hold=True),
        watch=True,
    )
    task = harness.start()
    assert await harness.next_change() == V1
    assert await harness.next_change() == V2
    await harness.requests(4)  # list, broken watch, list, watch
    await stop(task)

    assert harness.sleeps == [0.5]
    assert await harness.next_change() == V1  # the relist sees the listed data again


async def test_missing_configmap_waits_for_creation(harness: Harness) -> None:
    harness.apiserver.queue("GET", CONFIGMAPS, Reply(200, fixture("configmap_list_empty.json")))
    harness.apiserver.queue(
        "GET", CONFIGMAPS, Stream([fixture("watch_added.json")], hold=True), watch=True
    )
    task = harness.start()
    assert await harness.next_change() == V1
    await stop(task)
    assert harness.changes.empty()


async def test_deletion_keeps_policy_and_recreation_is_emitted(harness: Harness) -> None:
    harness.apiserver.queue("GET", CONFIGMAPS, Reply(200, fixture("configmap_list.json")))
    events = [fixture("watch_deleted.json"), fixture("watch_added.json")]
    harness.apiserver.queue("GET", CONFIGMAPS, Stream(events, hold=True), watch=True)
    task = harness.start()
    assert await harness.next_change() == V1
    assert await harness.next_change() == V1  # re-created with the same data: emitted again
    await stop(task)


async def test_callback_failure_does_not_stop_the_watch(harness: Harness) -> None:
    harness.fail_callback = True
    harness.apiserver.queue("GET", CONFIGMAPS, Reply(200, fixture("configmap_list.json")))
    harness.apiserver.queue(
        "GET", CONFIGMAPS, Stream([fixture("watch_modified.json")], hold=True), watch=True
    )
    task = harness.start()
    assert await harness.next_change() == V1
    assert await harness.next_change() == V2
    assert not task.done()
    await stop(task)
