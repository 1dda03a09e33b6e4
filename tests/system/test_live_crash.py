"""A real `uvicorn main:app` killed (SIGKILL) while adds and deletes stream in, then restarted:
every acknowledged write is there (an add with its stored keypoints), a write in flight is all
there or not at all, and the collection serves. `SBI_CRASH_COLLECTION=DIR` runs it over a big
collection (bench/live_collections.py)."""

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import PHOTOS, jpeg_bytes, make_settings, start_server, writable_copy
from PIL import Image

from search_by_image.api.auth import KeyStore
from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.layout import KEYS_FILE

NAMES = sorted(p.name for p in PHOTOS.iterdir())
ROUNDS = 2


def photo(number: int) -> bytes:
    """A new photo per number: a crop of a demo photo, different for each number."""
    image = Image.open(PHOTOS / NAMES[number % len(NAMES)])
    cut = 4 + number // len(NAMES)
    return jpeg_bytes(image.crop((cut, cut // 2, image.width - cut // 3, image.height - cut)), quality=80)


def start(settings) -> tuple[subprocess.Popen, str]:
    # a big collection imports its CSV on a first start; nobody reads a long run's stderr
    return start_server(settings, wait_s=600, stderr=subprocess.DEVNULL)


class Writer:
    """Adds and deletes one at a time until the server dies; keeps what was acknowledged and
    the write in flight when it died."""

    def __init__(self, base: str, admin: dict, first: int, deletable: list[int]):
        self.base, self.admin, self.number, self.deletable = base, admin, first, deletable
        self.added: dict[int, str] = {}
        self.deleted: set[int] = set()
        self.in_flight: tuple[str, object] | None = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _write(self) -> None:
        rng = random.Random(self.number)
        with httpx.Client(base_url=self.base, headers=self.admin, timeout=60) as client:
            while True:
                delete = self.deletable and rng.random() < 0.4
                try:
                    if delete:
                        image_id = self.deletable.pop(rng.randrange(len(self.deletable)))
                        self.in_flight = ("delete", image_id)
                        response = client.delete(f"/collections/default/images/{image_id}")
                        assert response.status_code == 200, response.text
                        self.deleted.add(image_id)
                    else:
                        self.number += 1
                        files = [("files", (f"{self.number}.jpg", photo(self.number), "image/jpeg"))]
                        self.in_flight = ("add", self.number)
                        response = client.post("/collections/default/images", files=files)
                        assert response.status_code == 201, response.text
                        (image,) = response.json()["images"]
                        self.added[image["id"]] = image["path"]
                        self.deletable.append(image["id"])
                    self.in_flight = None
                except httpx.TransportError:  # killed: the write in flight may or may not be there
                    return


@pytest.fixture
def collection(demo_collection, tmp_path):
    """The demo collection, or with SBI_CRASH_COLLECTION=DIR a big one built by
    bench/live_collections.py (its saved files hard-linked: commits never change them)."""
    big = os.environ.get("SBI_CRASH_COLLECTION")
    if not big:
        return writable_copy(demo_collection, tmp_path)
    source = Path(big)
    (tmp_path / "images").mkdir()
    (tmp_path / "saved").mkdir()
    for file in (source / "saved").iterdir():
        if file.is_file():
            os.link(file, tmp_path / "saved" / file.name)
    shutil.copy2(source / "data.csv", tmp_path / "data.csv")
    return make_settings(tmp_path)


def test_acknowledged_writes_survive_sigkill_and_nothing_half_done_shows(collection):
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}
    server, base = start(collection)
    count, live, deleted = _count(base), _some_ids(base, admin), set()
    try:
        for round_ in range(ROUNDS):
            writer = Writer(base, admin, 100 * round_, sorted(live))
            thread = threading.Thread(target=writer)
            thread.start()
            deadline = time.monotonic() + 120
            while len(writer.added) + len(writer.deleted) < 3 + 2 * round_:  # some acknowledged,
                assert time.monotonic() < deadline and thread.is_alive(), writer.error
                time.sleep(0.02)
            time.sleep(random.Random(round_).uniform(0, 0.05))  # then one in flight
            server.send_signal(signal.SIGKILL)
            server.wait()
            thread.join(timeout=60)
            assert writer.added or writer.deleted, "no write was acknowledged before the kill"
            server, base = start(collection)
            kind, subject = writer.in_flight or ("none", None)
            keypoints = KeypointStore(collection.saved_dir)
            for image_id, path in writer.added.items():  # every acknowledged add, id and path
                if image_id not in writer.deleted and (kind, image_id) != ("delete", subject):
                    assert _similar(base, admin, image_id) == path
                    file = (collection.images_dir / path).stat()  # and its keypoints, stored before
                    assert keypoints.read([(path, (file.st_size, file.st_mtime_ns))])[0] is not None
            for image_id in writer.deleted | deleted:  # every acknowledged delete
                assert _similar(base, admin, image_id) is None
            expected = count + len(writer.added) - len(writer.deleted)
            now = _count(base)  # the write in flight: whole or absent, never half there
            if kind == "add":
                assert now in (expected, expected + 1)
            elif kind == "delete":
                gone = _similar(base, admin, subject) is None
                assert now == expected - gone
                deleted |= {subject} if gone else set()
            else:
                assert now == expected
            live = (live | set(writer.added)) - writer.deleted - deleted
            count, deleted = now, deleted | writer.deleted
            found = httpx.post(
                f"{base}/search",
                files={"file": ("q.jpg", (PHOTOS / NAMES[0]).read_bytes(), "image/jpeg")},
                data={"k": "5"},
                timeout=60,
            )
            assert found.status_code == 200 and len(found.json()["results"]) == 5
    finally:
        server.kill()
        server.wait()
    assert deleted


def _count(base: str) -> int:
    return httpx.get(f"{base}/health", timeout=10).json()["images"]


def _similar(base: str, admin: dict, image_id: int) -> str | None:
    """The path of a served image, by its "more like this" (None: 404, not served)."""
    got = httpx.get(f"{base}/collections/default/images/{image_id}/similar", headers=admin, timeout=60)
    assert got.status_code in (200, 404), got.text
    return got.json()["query"]["filename"] if got.status_code == 200 else None


def _some_ids(base: str, admin: dict) -> set[int]:
    """Ids of served images to delete (the results of one search)."""
    response = httpx.post(
        f"{base}/search",
        files={"file": ("q.jpg", (PHOTOS / NAMES[1]).read_bytes(), "image/jpeg")},
        data={"k": "20"},
        headers=admin,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {h["id"] for h in response.json()["results"]}
