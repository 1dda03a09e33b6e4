"""The worker processes' server: started early, stopped at once, and started again when needed;
and no worker process outlives the process it works for, whatever signal stops that one."""

import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import copy_photos, free_port, make_settings

from config import PROJECT_DIR
from search_by_image.cli.stopping import STOP_GRACE_S
from search_by_image.index.store import IndexStore
from search_by_image.indexing import local_engine, worker_processes
from search_by_image.indexing.indexer import update_index


def _state(pid: int) -> str:
    for _ in range(100):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.05)
    return state


def test_a_stopped_server_is_gone_and_workers_still_start_after_it(tmp_path, monkeypatch):
    worker_processes.start_early()
    pid = multiprocessing.forkserver._forkserver._forkserver_pid
    assert pid is not None
    worker_processes.stop()
    # killed at once (a zombie until multiprocessing reaps it), not left importing with our stdio
    assert _state(pid) == "Z"
    monkeypatch.setattr(local_engine, "CHUNK", 2)
    settings = make_settings(tmp_path, workers=2, batch_size=2)
    copy_photos(settings.images_dir, ["chelsea.jpg", "coffee.jpg", "dog.jpg", "rocket.jpg"])
    assert update_index(settings, progress=False).embedded == 4
    assert len(IndexStore.load(settings.saved_dir).paths) == 4


def _folder_to_index(root: Path, copies: int = 12) -> Path:
    """The demo photos, `copies` times each under other names: a run that takes seconds."""
    images = root / "images"
    for copy in range(copies):
        for name in copy_photos(images / f"c{copy}"):
            (images / f"c{copy}" / name).rename(images / f"c{copy}" / f"{copy}-{name}")
    return images


def _workers_of(parent: psutil.Process, count: int, deadline_s: float = 120) -> list[psutil.Process]:
    """Every process below `parent` once `count` of them are worker processes (grandchildren:
    the workers' server forks them); fails if `parent` ends first."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        below = parent.children(recursive=True)
        if sum(1 for p in below if p.ppid() != parent.pid) >= count:
            time.sleep(1.0)  # let them start embedding
            return parent.children(recursive=True)
        assert parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE, "ended early"
        time.sleep(0.1)
    pytest.fail("the worker processes never started")


def _still_running(processes: list[psutil.Process], within_s: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    alive = processes
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return alive


@pytest.mark.parametrize(
    "signals", [[signal.SIGKILL], [signal.SIGTERM], [signal.SIGINT], [signal.SIGTERM, signal.SIGINT]]
)
def test_every_indexer_process_ends_with_the_indexer_whatever_stops_it(tmp_path, signals):
    images = _folder_to_index(tmp_path)
    command = [sys.executable, "with_faiss.py", "--images", str(images), "--workers", "2", "--quiet"]
    env = {**os.environ, "SBI_SAVED_DIR": str(tmp_path / "saved"), "SBI_BATCH_SIZE": "2"}
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        indexer = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stderr=stderr)
    try:
        below = _workers_of(psutil.Process(indexer.pid), 2)
        for number in signals:
            os.kill(indexer.pid, number)
        try:  # it unwinds and saves what it embedded: slow on a loaded machine
            indexer.wait(timeout=STOP_GRACE_S + 60)
        except subprocess.TimeoutExpired:
            pytest.fail((tmp_path / "stderr.txt").read_text(errors="replace")[-6000:])
        assert _still_running(below) == []
    finally:
        indexer.kill()
        indexer.wait()


def test_a_service_stopped_while_it_indexes_leaves_no_worker_running(tmp_path):
    images = _folder_to_index(tmp_path)
    env = {
        **os.environ,
        "SBI_IMAGES_DIR": str(images),
        "SBI_SAVED_DIR": str(tmp_path / "saved"),
        "SBI_METADATA_CSV": str(tmp_path / "none.csv"),
        "SBI_INDEX_ON_START": "true",
        "SBI_WORKERS": "2",
        "SBI_BATCH_SIZE": "2",
    }
    command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(free_port())]
    server = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stderr=subprocess.DEVNULL)
    try:
        below = _workers_of(psutil.Process(server.pid), 2)
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=120)
        assert _still_running(below) == []
    finally:
        server.kill()
        server.wait()
