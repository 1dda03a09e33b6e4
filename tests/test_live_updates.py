"""A real uvicorn under concurrent adds, deletes and searches, and an index rewritten under it."""

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from config import PROJECT_DIR
from conftest import PHOTOS, copy_photos, jpeg_bytes, running_server
from search_by_image.auth import KEYS_FILE, KeyStore
from search_by_image.index_store import IndexStore

NAMES = sorted(p.name for p in PHOTOS.iterdir())


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection, index included (nothing to embed again)."""
    shutil.copytree(demo_collection.images_dir, tmp_path / "images")
    shutil.copy2(demo_collection.metadata_csv, tmp_path / "data.csv")
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    return demo_collection.model_copy(update={
        "images_dir": tmp_path / "images", "metadata_csv": tmp_path / "data.csv",
        "saved_dir": tmp_path / "saved",
    })


def variant(number: int) -> bytes:
    """A new photo per number: a different crop of one of the demo photos."""
    image = Image.open(PHOTOS / NAMES[number % len(NAMES)])
    margin = 0.05 + 0.03 * (number // len(NAMES))
    box = (int(image.width * margin), int(image.height * margin),
           int(image.width * (1 - margin / 2)), int(image.height * (1 - margin)))
    return jpeg_bytes(image.crop(box), quality=85)


class Searcher:
    """Searches until stopped; keeps every status and every (id, path) pair it was shown."""

    def __init__(self, base: str):
        self.base, self.statuses, self.pairs = base, [], set()
        self.stop = threading.Event()

    def __call__(self, number: int) -> None:
        data = variant(number)
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                response = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")},
                                       data={"k": "20"})
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.pairs |= {(h["id"], h["path"]) for h in response.json()["results"]}


def test_concurrent_adds_deletes_and_searches_lose_nothing(collection):
    before = IndexStore.load(collection.saved_dir)
    doomed = before.ids[:4].tolist()
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}
    with running_server(collection) as base, ThreadPoolExecutor(10) as pool:
        searcher = Searcher(base)
        searches = [pool.submit(searcher, n) for n in range(3)]

        def add(number: int) -> dict:
            response = httpx.post(f"{base}/collections/default/images", timeout=120, headers=admin,
                                  files=[("files", (f"{number}.jpg", variant(100 + number), "image/jpeg"))])
            assert response.status_code == 201, response.text
            return response.json()["images"][0]

        def delete(image_id: int) -> None:
            response = httpx.delete(f"{base}/collections/default/images/{image_id}", timeout=120,
                                    headers=admin)
            assert response.status_code == 200, response.text

        writes = [pool.submit(add, n) for n in range(12)] + [pool.submit(delete, i) for i in doomed]
        results = [w.result() for w in writes]
        searcher.stop.set()
        for done in searches:
            done.result()
        added = [r for r in results if r]
        served = httpx.get(f"{base}/collections/default", timeout=10).json()

    expected = (set(before.paths) - {before.paths[before.row_of_id[i]] for i in doomed}) | {
        a["path"] for a in added}
    assert all(a["created"] for a in added) and len({a["id"] for a in added}) == 12
    assert min(a["id"] for a in added) == before.manifest.next_id
    assert served["images"] == len(expected) == 13 + 12 - 4
    after = IndexStore.load(collection.saved_dir)  # what a restart would load
    assert set(after.paths) == expected
    assert {(int(i), p) for i, p in zip(after.ids, after.paths)} >= {(a["id"], a["path"]) for a in added}
    assert searcher.statuses and set(searcher.statuses) == {200}
    final = {p: int(i) for i, p in zip(before.ids, before.paths)} | {a["path"]: a["id"] for a in added}
    assert all(final[path] == image_id for image_id, path in searcher.pairs)  # no mixed snapshot


def test_an_index_rewritten_by_the_indexer_is_served_without_restart_or_failed_requests(collection):
    with running_server(collection, SBI_RELOAD_SECONDS="0.2") as base, ThreadPoolExecutor(3) as pool:
        searcher = Searcher(base)
        searches = [pool.submit(searcher, n) for n in range(2)]
        copy_photos(collection.images_dir / "new", ["eagle.jpg", "kite.jpg"])
        env = {**os.environ, "SBI_IMAGES_DIR": str(collection.images_dir),
               "SBI_METADATA_CSV": str(collection.metadata_csv), "SBI_SAVED_DIR": str(collection.saved_dir)}
        indexer = subprocess.run(
            [sys.executable, "with_faiss.py", "--model", "efficientnet_lite0", "--workers", "0", "--quiet"],
            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
        assert indexer.returncode == 0, indexer.stderr
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/health", timeout=10).json()["images"] != 15:
            assert time.monotonic() < deadline, "the rewritten index was not picked up"
            time.sleep(0.2)
        time.sleep(0.5)  # a few searches on the new index too
        searcher.stop.set()
        for done in searches:
            done.result()
        found = httpx.post(f"{base}/search", timeout=60, data={"k": "2"},
                           files={"file": ("q.jpg", (PHOTOS / "kite.jpg").read_bytes(), "image/jpeg")})
    assert {h["path"] for h in found.json()["results"]} == {"kite.jpg", "new/kite.jpg"}
    assert searcher.statuses and set(searcher.statuses) == {200}
    paths = {p for _, p in searcher.pairs}
    assert paths <= set(NAMES) | {"new/eagle.jpg", "new/kite.jpg"}
