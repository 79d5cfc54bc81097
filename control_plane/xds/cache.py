"""Holds the current snapshot and tells every open stream when it changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from control_plane.xds.snapshot import Snapshot

SNAPSHOT_CHANGED = object()


@dataclass
class ClientStatus:
    """What one connected client last accepted or refused, per type."""

    node_id: str
    acked: dict[str, str] = field(default_factory=dict)
    nacked: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (version, error)


class SnapshotCache:
    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._subscribers: set[asyncio.Queue[object]] = set()
        self.clients: dict[int, ClientStatus] = {}

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def set(self, snapshot: Snapshot) -> bool:
        """Install `snapshot`; False when it is the version already served."""
        if self._snapshot is not None and self._snapshot.version == snapshot.version:
            return False
        self._snapshot = snapshot
        for queue in self._subscribers:
            queue.put_nowait(SNAPSHOT_CHANGED)
        return True

    def subscribe(self, queue: asyncio.Queue[object]) -> None:
        self._subscribers.add(queue)

    def unsubscribe(self, queue: asyncio.Queue[object]) -> None:
        self._subscribers.discard(queue)
