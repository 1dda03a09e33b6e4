"""ray_reaper: a `with_faiss.py --engine ray` run killed with SIGKILL takes its Ray with it.

Before, raylet's children (the dashboard and runtime-env agents, for good; the workers, for a
while) outlived the killed indexer. Another Ray session on the machine is never touched: the
watcher kills only the indexer's descendants and the processes naming its own session folder."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from helpers import copy_photos

from config import PROJECT_DIR

pytest.importorskip("ray")

SESSION = re.compile(rb"session_\d{4}-\d\d-\d\d_[\d_-]+")


def _ray_processes(driver: psutil.Process) -> dict[tuple[int, float], str]:
    """(pid, start time) -> command line of the driver's descendants."""
    found = {}
    for child in driver.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found[(child.pid, child.create_time())] = " ".join(child.cmdline())
    return found


def _alive(processes: dict[tuple[int, float], str], session: str) -> list[str]:
    alive = []
    for (pid, started), command in processes.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {command[:100]}")
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        command = " ".join(process.info["cmdline"] or [])
        if session in command and process.info["status"] != psutil.STATUS_ZOMBIE:
            alive.append(f"{process.info['pid']} {command[:100]}")
    return sorted(set(alive))


def test_a_killed_ray_run_leaves_no_ray_process_behind(tmp_path):
    copy_photos(tmp_path / "images", ["dog.jpg", "eagle.jpg", "kite.jpg", "rocket.jpg"])
    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "with_faiss.py", "--engine", "ray", "--images", str(tmp_path / "images"),
             "--csv", str(tmp_path / "none.csv"), "--output", str(tmp_path / "saved")],
            cwd=PROJECT_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    driver = psutil.Process(run.pid)
    seen: dict[tuple[int, float], str] = {}
    deadline = time.monotonic() + 240
    try:
        # until Ray has started a worker (raylet's child, with the agents already there)
        while not any("default_worker" in command for command in seen.values()):
            assert run.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no Ray worker started"
            seen.update(_ray_processes(driver))
            time.sleep(0.2)
        time.sleep(1)
        seen.update(_ray_processes(driver))
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    sessions = {m.group().decode() for command in seen.values() if (m := SESSION.search(command.encode()))}
    assert len(sessions) == 1, sessions
    session = sessions.pop()
    assert any("raylet" in command for command in seen.values())
    gone_by = time.monotonic() + 20
    while (alive := _alive(seen, session)) and time.monotonic() < gone_by:
        time.sleep(0.5)
    assert not alive, f"still running 20 s after the indexer was killed: {alive}"
