"""A local Ray ends with the indexer that started it, however the indexer ends.

`ray.init` starts gcs_server and raylet with the kernel's parent-death signal, but not what raylet
starts in turn: an indexer killed with SIGKILL left its dashboard agent and runtime-env agent
running for good, and its workers for a while. `watch` starts, before `ray.init`, a small process
(this module run with `python -m`) that waits on the indexer's pidfd and, once it has ended,
SIGKILLs the processes of the indexer's own Ray session and no other: its descendants as last seen
(checked by start time, so a reused pid is left alone), and every process whose command line
names the session's folder (told once `ray.init` has returned: raylet's children are no longer
the indexer's descendants once raylet has died). Linux only (pidfd, /proc); elsewhere nothing.
Kept light: the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

#: How often the indexer's descendants are noted while it lives.
POLL_S = 0.5
#: Sweeps by session folder after the indexer ends (a worker raylet was starting may still be
#: coming up): every POLL_S for 10 s.
SWEEPS = 20
#: A Ray session folder's name, as its processes' command lines carry it.
SESSION = re.compile(rb"session_\d{4}-\d\d-\d\d_[\d_-]+")


def watch() -> subprocess.Popen | None:
    """Start the watcher for this process; None where there is no pidfd."""
    if not hasattr(os, "pidfd_open") or not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C sent to the indexer's process group leaves it to clean up
        text=True,
    )


def tell(watcher: subprocess.Popen | None, session_dir: str | None) -> None:
    """Give the watcher the session's folder, which every one of its processes names."""
    if watcher is not None and watcher.stdin is not None and session_dir:
        with contextlib.suppress(OSError):
            watcher.stdin.write(session_dir + "\n")
            watcher.stdin.flush()


def dismiss(watcher: subprocess.Popen | None) -> None:
    """Stop the watcher once Ray has been shut down normally."""
    if watcher is not None:
        watcher.kill()
        watcher.wait()
        if watcher.stdin is not None:
            with contextlib.suppress(OSError):
                watcher.stdin.close()


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return found


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every descendant of `root`."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = {}, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found[pid] = table[pid][1]
        stack.extend(children.get(pid, []))
    return found


def _sessions_of(pids: list[int]) -> set[str]:
    """The Ray session folders named by these processes' command lines: known even when the
    indexer was killed before `tell` (raylet starts workers while ray.init still runs)."""
    found: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found.update(m.decode() for m in SESSION.findall(Path(f"/proc/{pid}/cmdline").read_bytes()))
    return found


def _naming(marker: str) -> list[int]:
    """Every process whose command line contains `marker`, this one aside."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def main(driver: int) -> None:
    try:
        ended = os.pidfd_open(driver)
    except ProcessLookupError:
        return
    seen: dict[int, int] = {}
    sessions: set[str] = set()
    inputs = [ended, sys.stdin.fileno()]
    while True:
        readable, _, _ = select.select(inputs, [], [], POLL_S)
        if sys.stdin.fileno() in readable:
            line = sys.stdin.readline()
            if line.strip():
                sessions.add(Path(line.strip()).name)  # session_2026-12-07_03-26-14_110409_873
            else:  # end of input: the indexer has ended (or closed it)
                inputs.remove(sys.stdin.fileno())
        if ended in readable:
            break
        now = _descendants(driver)
        sessions |= _sessions_of([pid for pid in now if pid not in seen])
        seen.update(now)
    table = _processes()
    for pid, started in seen.items():
        if pid != os.getpid() and pid in table and table[pid][1] == started:  # not itself: a child too
            _kill(pid)
    for _ in range(SWEEPS if sessions else 0):
        for pid in (pid for session in sessions for pid in _naming(session)):
            _kill(pid)
        select.select([], [], [], POLL_S)


if __name__ == "__main__":
    main(int(sys.argv[1]))
