"""Watch one ConfigMap through the Kubernetes API and hand its policy files to a callback.

The source lists the ConfigMap (``fieldSelector=metadata.name=NAME``, so RBAC can restrict it
to that one object with ``resourceNames``), then watches from the list's ``resourceVersion``.
A watch the server closes normally is resumed from the last version seen; a ``410 Gone``
(the version fell out of the server's window) triggers a fresh list; any other failure is
retried after an exponential backoff. The callback receives ``{file name: YAML text}`` for the
keys ending in ``.yaml``/``.yml`` and is called only when that mapping changes. Parsing and
validating the policy is the callback's business, not this module's.

The ``kubernetes`` client is blocking: lists run in worker threads (``asyncio.to_thread``) and
each watch stream is read by a daemon thread that forwards lines to the event loop, so a watch
blocked on an idle connection never delays process exit.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

OnChange = Callable[[dict[str, str]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

POLICY_SUFFIXES = (".yaml", ".yml")
_HTTP_GONE = 410

# Failures worth retrying: API errors, broken connections, garbage on the wire.
_TRANSIENT = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class ResourceExpiredError(Exception):
    """The watch's resourceVersion is too old for the API server: list again."""


class WatchFailedError(Exception):
    """The API server ended a watch with an ERROR event other than 410."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with proportional jitter: ``initial * factor**n``, capped."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, failures - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))


def policy_documents(configmap: Mapping[str, Any]) -> dict[str, str]:
    """The ConfigMap's policy files: ``data`` keys ending in ``.yaml``/``.yml``, sorted."""
    data = configmap.get("data") or {}
    return {key: str(data[key]) for key in sorted(data) if key.endswith(POLICY_SUFFIXES)}


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


class ConfigMapSource:
    """Keeps a callback fed with the policy files of one ConfigMap.

    ``api`` is a ``kubernetes.client.CoreV1Api``. ``run()`` never returns; cancel its task
    to stop it.
    """

    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        on_change: OnChange,
        *,
        backoff: Backoff | None = None,
        watch_timeout_seconds: int = 300,
        request_timeout_seconds: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self._watch_timeout = watch_timeout_seconds
        self._request_timeout = request_timeout_seconds
        self._sleep = sleep
        self._rng = rng
        self._last: dict[str, str] | None = None
        self._failures = 0
        self._log = structlog.get_logger(__name__).bind(configmap=f"{namespace}/{name}")

    @property
    def field_selector(self) -> str:
        return f"metadata.name={self._name}"

    async def run(self) -> NoReturn:
        while True:
            try:
                version = await self._list()
                while True:  # resume after each watch the server closes normally
                    version, saw_events = await self._watch(version)
                    if not saw_events:  # never spin on a server or proxy that closes at once
                        await self._sleep(self._backoff.initial)
            except ResourceExpiredError:
                self._log.info("configmap_watch_expired_relisting")
            except (*_TRANSIENT, WatchFailedError) as exc:
                self._failures += 1
                delay = self._backoff.delay(self._failures, self._rng)
                self._log.warning(
                    "configmap_watch_failed",
                    error=str(exc),
                    failures=self._failures,
                    retry_in=delay,
                )
                await self._sleep(delay)

    async def _list(self) -> str:
        response = await asyncio.to_thread(
            self._api.list_namespaced_config_map,
            self._namespace,
            field_selector=self.field_selector,
            _preload_content=False,
            _request_timeout=self._request_timeout,
        )
        body: dict[str, Any] = json.loads(response.data)
        items = body.get("items") or []
        if items:
            await self._emit(items[0])
        else:
            self._log.warning("configmap_not_found_waiting")
        return _resource_version(body) or "0"

    async def _watch(self, version: str) -> tuple[str, bool]:
        """Follow one watch connection; return the last resourceVersion seen and whether
        any event arrived."""
        lines = _ThreadedLines(lambda: self._open_watch(version))
        saw_events = False
        try:
            async for line in lines:
                if line.strip():
                    version = await self._handle_event(json.loads(line), version)
                    saw_events = True
                    self._failures = 0
        finally:
            lines.stop()
        return version, saw_events

    def _open_watch(self, version: str) -> Iterator[str]:
        response = self._api.list_namespaced_config_map(
            self._namespace,
            field_selector=self.field_selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=(self._request_timeout, self._watch_timeout + self._request_timeout),
        )
        try:
            yield from _lines(response.stream(amt=None, decode_content=True))
        finally:
            response.release_conn()

    async def _handle_event(self, event: Mapping[str, Any], version: str) -> str:
        kind = event.get("type")
        obj: Mapping[str, Any] = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == _HTTP_GONE:
                raise ResourceExpiredError(str(obj.get("message", "")))
            raise WatchFailedError(f"watch error {code}: {obj.get('message', '')}")
        new_version = _resource_version(obj) or version
        if kind in ("ADDED", "MODIFIED"):
            await self._emit(obj)
        elif kind == "DELETED":
            # Keep serving the last good policy; a re-created ConfigMap is emitted again.
            self._last = None
            self._log.warning("configmap_deleted_keeping_last_policy")
        return new_version

    async def _emit(self, configmap: Mapping[str, Any]) -> None:
        documents = policy_documents(configmap)
        if documents == self._last:
            return
        self._last = documents
        self._log.info(
            "configmap_policy_changed",
            files=sorted(documents),
            resource_version=_resource_version(configmap),
        )
        try:
            await self._on_change(dict(documents))
        except Exception:
            # The watch must survive a policy the loader rejects: the next edit may fix it.
            self._log.exception("configmap_policy_callback_failed")


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Split a chunked watch body into its newline-delimited JSON events."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace")
    if pending.strip():
        yield pending.decode("utf-8", errors="replace")


_END = object()


class _ThreadedLines:
    """Reads a blocking line iterator on a daemon thread and yields its lines asynchronously."""

    def __init__(self, open_lines: Callable[[], Iterator[str]]) -> None:
        self._open_lines = open_lines
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._stopped = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._pump, name="configmap-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped.set()

    def _pump(self) -> None:
        try:
            for line in self._open_lines():
                if self._stopped.is_set():
                    return
                self._put(line)
        except BaseException as exc:  # handed to the event loop, which re-raises it
            self._put(exc)
        else:
            self._put(_END)

    def __aiter__(self) -> _ThreadedLines:
        return self

    async def __anext__(self) -> str:
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, str)
        return item
