"""A real `uvicorn main:app` killed (SIGKILL) while adds and deletes stream in, then restarted:
every acknowledged write is there, a write in flight is all there or not at all, and the
collection serves."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from helpers import PHOTOS, free_port, jpeg_bytes, writable_copy
from PIL import Image

from config import PROJECT_DIR
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

NAMES = sorted(p.name for p in PHOTOS.iterdir())
ROUNDS = 2


def photo(number: int) -> bytes:
    """A new photo per number: a crop of a demo photo, different for each number."""
    image = Image.open(PHOTOS / NAMES[number % len(NAMES)])
    cut = 4 + number
    return jpeg_bytes(image.crop((cut, cut // 2, image.width - cut // 3, image.height - cut)), quality=80)


def start(settings) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SBI_IMAGES_DIR": str(settings.images_dir),
        "SBI_METADATA_CSV": str(settings.metadata_csv),
        "SBI_SAVED_DIR": str(settings.saved_dir),
        "SBI_RATE_LIMIT": "",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail("uvicorn did not start")
        time.sleep(0.2)


class Writer:
    """Adds and deletes one at a time until the server dies; keeps what was acknowledged and
    the write in flight when it died."""

    def __init__(self, base: str, admin: dict, first: int, deletable: list[int]):
        self.base, self.admin, self.number, self.deletable = base, admin, first, deletable
        self.added: dict[int, str] = {}
        self.deleted: set[int] = set()
        self.in_flight: tuple[str, object] | None = None

    def __call__(self) -> None:
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


def test_acknowledged_writes_survive_sigkill_and_nothing_half_done_shows(demo_collection, tmp_path):
    collection = writable_copy(demo_collection, tmp_path)
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}
    server, base = start(collection)
    live, deleted, added, number = _images(base, admin), set(), 0, 0
    try:
        for round_ in range(ROUNDS):
            writer = Writer(base, admin, number, sorted(live))
            thread = threading.Thread(target=writer)
            thread.start()
            time.sleep(1.5 + round_)  # some writes acknowledged, one in flight
            server.send_signal(signal.SIGKILL)
            server.wait()
            thread.join(timeout=60)
            number = writer.number + 1
            server, base = start(collection)
            now = _images(base, admin)
            expected = {i: p for i, p in {**live, **writer.added}.items() if i not in writer.deleted}
            kind, subject = writer.in_flight or ("none", None)
            assert writer.added or writer.deleted, "no write was acknowledged before the kill"
            if kind == "delete" and subject not in now:  # the delete in flight was committed
                expected.pop(subject, None)
            extra = set(now) - set(expected)
            assert now.items() >= expected.items()  # every acknowledged write, id and path
            assert len(extra) <= (kind == "add")  # at most the add in flight, and whole:
            for image_id in extra:  # served, searchable by its stored descriptor
                assert httpx.get(f"{base}/images/{now[image_id]}", headers=admin).status_code == 200
            for image_id in writer.deleted | (
                {subject} if kind == "delete" and subject not in now else set()
            ):
                similar = httpx.get(f"{base}/collections/default/images/{image_id}/similar", headers=admin)
                assert similar.status_code == 404
            live, deleted, added = now, deleted | writer.deleted, added + len(writer.added)
            found = httpx.post(
                f"{base}/search",
                files={"file": ("q.jpg", (PHOTOS / NAMES[0]).read_bytes(), "image/jpeg")},
                data={"k": "5"},
                timeout=60,
            )
            assert found.status_code == 200 and found.json()["results"]
    finally:
        server.kill()
        server.wait()
    assert deleted and added  # the rounds did both


def _images(base: str, admin: dict) -> dict[int, str]:
    """Every served image, id -> path: each id's "more like this" answers (or 404s) for itself,
    and the path comes from a search of all images by the stored descriptor of any one."""
    count = httpx.get(f"{base}/health", timeout=10).json()["images"]
    response = httpx.post(
        f"{base}/search",
        files={"file": ("q.jpg", (PHOTOS / NAMES[1]).read_bytes(), "image/jpeg")},
        data={"k": str(count)},
        headers=admin,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    found = {h["id"]: h["path"] for h in response.json()["results"]}
    assert len(found) == count  # k results whenever k images match: all of them
    return found
