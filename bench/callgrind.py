"""Counting a process's instructions with valgrind's callgrind: the same count for the same
work whatever else the machine does, so changes too small for timed runs still show.

The counters of a process running under callgrind are zeroed and read from outside it with
`callgrind_control` (a process may do it to itself: callgrind takes the command while the
process waits for it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

DUMP_TIMEOUT_S = 60.0


def valgrind_command(out_dir: Path, *, trace_children: bool = False) -> list[str]:
    """The command prefix that runs a program under callgrind, its dumps in `out_dir`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    return [valgrind, "--tool=callgrind", *(["--trace-children=yes"] if trace_children else []),
            f"--callgrind-out-file={out_dir}/callgrind.%p"]


def zero(pid: int) -> float:
    """Zeroes `pid`'s counters; when (monotonic seconds)."""
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    return time.monotonic()


def counted(pid: int, out_dir: Path) -> int:
    """`pid`'s instructions since its counters were last zeroed: callgrind dumps them to a
    file in `out_dir`."""
    before = set(out_dir.glob(f"callgrind.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + DUMP_TIMEOUT_S
    while not (new := set(out_dir.glob(f"callgrind.{pid}.*")) - before):
        if time.monotonic() > deadline:
            raise RuntimeError(f"callgrind wrote no dump for {pid}: "
                               f"{sorted(p.name for p in out_dir.glob('callgrind*'))}")
        time.sleep(0.2)
    [dump] = new
    time.sleep(0.5)  # written whole before it is read
    return summary(dump)


def summary(dump: Path) -> int:
    """The instructions a callgrind dump counts."""
    found = re.search(r"^summary: (\d+)", dump.read_text(), re.MULTILINE)
    assert found is not None, dump
    return int(found.group(1))
