"""A real uvicorn under concurrent adds, deletes and searches, and an index rewritten under it."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, jpeg_bytes, running_server, writable_copy
from PIL import Image

from config import PROJECT_DIR
from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.index import live_log
from search_by_image.index.live_store import load_live
from search_by_image.index.store import IndexStore
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE
from search_by_image.serving.collection import Collection

NAMES = sorted(p.name for p in PHOTOS.iterdir())


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection, index included (nothing to embed again)."""
    return writable_copy(demo_collection, tmp_path)


def variant(number: int) -> bytes:
    """A new photo per number: a different crop of one of the demo photos."""
    image = Image.open(PHOTOS / NAMES[number % len(NAMES)])
    margin = 0.05 + 0.03 * (number // len(NAMES))
    box = (
        int(image.width * margin),
        int(image.height * margin),
        int(image.width * (1 - margin / 2)),
        int(image.height * (1 - margin)),
    )
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
                response = client.post(
                    "/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": "20"}
                )
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
            response = httpx.post(
                f"{base}/collections/default/images",
                timeout=120,
                headers=admin,
                files=[("files", (f"{number}.jpg", variant(100 + number), "image/jpeg"))],
            )
            assert response.status_code == 201, response.text
            return response.json()["images"][0]

        def delete(image_id: int) -> None:
            response = httpx.delete(
                f"{base}/collections/default/images/{image_id}", timeout=120, headers=admin
            )
            assert response.status_code == 200, response.text

        writes = [pool.submit(add, n) for n in range(12)] + [pool.submit(delete, i) for i in doomed]
        results = [w.result() for w in writes]
        searcher.stop.set()
        for done in searches:
            done.result()
        added = [r for r in results if r]
        served = httpx.get(f"{base}/collections/default", timeout=10).json()

    expected = (set(before.paths) - {before.paths[before.row_of(i)] for i in doomed}) | {
        a["path"] for a in added
    }
    assert all(a["created"] for a in added) and len({a["id"] for a in added}) == 12
    assert min(a["id"] for a in added) == before.manifest.next_id
    assert served["images"] == len(expected) == 13 + 12 - 4
    after, _ = load_live(collection.saved_dir)  # what a restart would load
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
        env = {
            **os.environ,
            "SBI_IMAGES_DIR": str(collection.images_dir),
            "SBI_METADATA_CSV": str(collection.metadata_csv),
            "SBI_SAVED_DIR": str(collection.saved_dir),
        }
        indexer = subprocess.run(
            [sys.executable, "with_faiss.py", "--model", "efficientnet_lite0", "--workers", "0", "--quiet"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert indexer.returncode == 0, indexer.stderr
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/health", timeout=10).json()["images"] != 15:
            assert time.monotonic() < deadline, "the rewritten index was not picked up"
            time.sleep(0.2)
        time.sleep(0.5)  # a few searches on the new index too
        searcher.stop.set()
        for done in searches:
            done.result()
        found = httpx.post(
            f"{base}/search",
            timeout=60,
            data={"k": "2"},
            files={"file": ("q.jpg", (PHOTOS / "kite.jpg").read_bytes(), "image/jpeg")},
        )
    assert {h["path"] for h in found.json()["results"]} == {"kite.jpg", "new/kite.jpg"}
    assert searcher.statuses and set(searcher.statuses) == {200}
    paths = {p for _, p in searcher.pairs}
    assert paths <= set(NAMES) | {"new/eagle.jpg", "new/kite.jpg"}


@pytest.fixture
def admin_client(collection):
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin")
    with TestClient(create_app(collection), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def leftovers(collection) -> list[str]:
    return sorted(
        str(p)
        for folder in (collection.images_dir, collection.saved_dir)
        for p in folder.rglob(".*")
        if p.name != ".lock" and p.name != ".url_secret"
    )


def test_a_full_disk_is_a_507_that_changes_nothing_and_a_retry_adds_once(
    admin_client, collection, monkeypatch
):
    csv_before = collection.metadata_csv.read_bytes()
    files_before = sorted(p for p in collection.images_dir.rglob("*") if p.is_file())

    def full(*_):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(live_log, "append_adds", full)
    photo = ("files", ("new.jpg", variant(40), "image/jpeg"))
    form = {"metadata": json.dumps({"title": "Retried"})}
    refused = admin_client.post("/collections/default/images", files=[photo], data=form)
    assert refused.status_code == 507 and "nothing was changed" in refused.json()["detail"]
    assert collection.metadata_csv.read_bytes() == csv_before
    assert sorted(p for p in collection.images_dir.rglob("*") if p.is_file()) == files_before
    assert leftovers(collection) == []  # no staged .tmp, no pending write
    monkeypatch.undo()
    added = admin_client.post("/collections/default/images", files=[photo], data=form)
    assert added.status_code == 201, added.text
    path = added.json()["images"][0]["path"]
    assert collection.metadata_csv.read_bytes() == csv_before  # the user's CSV is never rewritten
    exported = admin_client.get("/collections/default/metadata.csv").text
    rows = [line for line in exported.splitlines() if path in line]
    assert len(rows) == 1 and "Retried" in rows[0]


def test_writes_cut_short_by_a_crash_never_become_adds_or_lose_an_image(admin_client, collection):
    """What a SIGKILL leaves between a write's steps (tests/system/test_crash.py kills a real
    server): an upload written whose row was never committed, and a committed delete whose file
    was not yet moved to the trash. A restart finishes the delete; the next indexer run does not
    index the orphan upload."""
    service = admin_client.app.state.service
    target = service.get("default")
    orphan = collection.images_dir / "uploads" / "0123456789abcdef01234567.jpg"
    orphan.parent.mkdir()
    orphan.write_bytes(variant(41))
    store = target.require().store
    victim, victim_path = int(store.ids[0]), store.paths[0]
    with sqlite3.connect(collection.saved_dir / "catalog.sqlite") as conn:  # the delete's commit alone
        conn.execute("INSERT INTO live_writes (image_id, path) VALUES (?, ?)", (victim, victim_path))

    restarted = Collection(target.location, service.embedders)
    restarted.refresh()  # a restart
    assert victim not in restarted.require().store and not (collection.images_dir / victim_path).exists()
    assert any((collection.saved_dir / "trash").glob(f"{victim}-*"))
    assert admin_client.get(f"/images/uploads/{orphan.name}").status_code == 404  # never served
    report = update_index(collection, progress=False)  # what `python with_faiss.py` runs
    assert not orphan.exists() and report.embedded == 0
    after, _ = load_live(collection.saved_dir)
    assert victim_path not in after.paths and len(after) == len(store) - 1
    assert leftovers(collection) == []
