"""The processes a gateway started, found through /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> dict[int, str]:
    """Direct children of `pid`: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited meanwhile
        # The command name in parentheses may hold spaces: the fields follow the last ')'.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def worker_pids(gateway_pid: int) -> dict[str, int]:
    """ext_proc worker node id -> pid, for a `switchboard up` or `ext-proc` process."""
    workers = {}
    for pid, cmdline in children(gateway_pid).items():
        if "ext_proc.worker" in cmdline:
            node = cmdline.split("--node-id ", 1)[1].split(" ", 1)[0]
            workers[node] = pid
    return workers
