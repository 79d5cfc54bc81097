"""A wall clock a test can move, in processes it starts: libfaketime (Debian package
`libfaketime`, which `make test` installs) preloaded into them.

- Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC=1`): timers, timeouts and the event
  loop keep the real monotonic clock, so moving the date cannot fire them early or stall them.
- The clock is an offset from real time, read from a file at every clock call
  (`FAKETIME_TIMESTAMP_FILE`, `FAKETIME_NO_CACHE=1`): `set` takes effect at once and the faked
  clock keeps running.
- libfaketime 0.9.10 (Debian 12) breaks `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` when
  the monotonic clock is not faked (wolfcw/libfaketime#426), so `time.sleep` raises EINVAL in a
  faked Python >= 3.11 process. The workers sleep only through asyncio, except the SQLite
  ledger when it retries opening a file that another process is creating: create the ledger
  before starting faked workers.
"""

from __future__ import annotations

import glob
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

_LIBRARY_GLOBS = ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1",
                  "/usr/local/lib/faketime/libfaketimeMT.so.1")


def library() -> str:
    for pattern in _LIBRARY_GLOBS:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    pytest.fail("libfaketime is not installed; the clock tests need it "
                "(Debian/Ubuntu: apt-get install -y libfaketime, or `make test`)", pytrace=False)


class FakeClock:
    def __init__(self, directory: Path) -> None:
        self.file = directory / "faketime.rc"
        self.offset_s = 0.0
        self.file.write_text("+0\n")

    @property
    def env(self) -> dict[str, str]:
        """The environment of a process that runs on this clock."""
        return {"LD_PRELOAD": library(), "FAKETIME_TIMESTAMP_FILE": str(self.file),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def set(self, moment: datetime) -> None:
        """From now on, the faked clock reads `moment` and runs on from there."""
        self.offset_s = moment.timestamp() - time.time()
        temporary = self.file.with_suffix(".tmp")
        temporary.write_text(f"{self.offset_s:+.6f}\n")
        temporary.replace(self.file)  # never read half-written

    def now(self) -> datetime:
        """What the faked processes read now."""
        return datetime.fromtimestamp(time.time() + self.offset_s, UTC)
