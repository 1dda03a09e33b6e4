"""The worker processes' server: started early, stopped at once, and started again when needed."""

import multiprocessing.forkserver
import time
from pathlib import Path

from helpers import copy_photos, make_settings

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
