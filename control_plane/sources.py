"""Where policy documents come from: a file or a directory, watched for changes.

Polling, not inotify: it sees a Kubernetes ConfigMap volume's symlink swap, editors that
replace files, and network file systems alike, and 0.5 s is well inside the 3 s budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from control_plane.policy.loader import policy_files

POLL_INTERVAL_S = 0.5


def read_documents(path: Path) -> dict[str, str]:
    return {str(p): p.read_text(encoding="utf-8") for p in policy_files(path)}


class FileSource:
    def __init__(self, path: str | Path, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.path = Path(path)
        self._interval = poll_interval_s

    async def changes(self) -> AsyncIterator[Mapping[str, str]]:
        """The documents now, then again each time their content changes."""
        last: dict[str, str] | None = None
        while True:
            try:
                docs = await asyncio.to_thread(read_documents, self.path)
            except OSError:
                docs = {}  # mid-swap or removed: the next poll decides
            if docs != last and (docs or last is None):
                last = docs
                yield docs
            await asyncio.sleep(self._interval)
