"""Two service replicas (two `uvicorn main:app` processes, two ports) over one collection stored
in a real Milvus 2.3 standalone server (the `milvus` package starts it on 127.0.0.1): a write
through either is seen by both, and killing the engine mid-write loses no acknowledged write.

Skipped where the `milvus` server package is absent (pip install -r requirements-dev.txt).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import PHOTOS, eventually, free_port, jpeg_bytes, running_server, writable_copy
from PIL import Image

from config import PROJECT_DIR
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

pytest.importorskip("milvus", reason="the Milvus standalone server package is absent (pip install milvus)")
pytest.importorskip("pymilvus", reason="pymilvus is absent (pip install pymilvus)")

NAMES = sorted(p.name for p in PHOTOS.iterdir())
ENV = {"SBI_QUERY_ROTATIONS": "false", "SBI_VERIFY_TOP": "0", "SBI_RELOAD_SECONDS": "0"}


class Engine:
    """A Milvus standalone server in `folder` on `port`, started, killed and started again."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.server = folder, port, None

    def start(self) -> None:
        from milvus import MilvusServer

        self.server = MilvusServer()
        # the port again after a kill: its probe binds without SO_REUSEADDR, which the killed
        # server's connections in TIME_WAIT refuse, and it would move to the next port
        self.server.config.try_bind_port = _bind_reusing
        self.server.set_base_dir(str(self.folder))
        self.server.listen_port = self.port
        self.server.start()  # waits until it answers (about 10 s here)
        assert self.server.listen_port == self.port

    def kill(self) -> None:
        """SIGKILL, as a crash: no flush, no goodbye."""
        os.kill(self.server.server_proc.pid, signal.SIGKILL)
        self.server.server_proc.wait(timeout=30)
        self.server.server_proc = None

    def stop(self) -> None:
        if self.server is not None and self.server.server_proc is not None:
            self.server.stop()


def _bind_reusing(port: int) -> socket.socket | None:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
        probe.listen()
        return probe
    except OSError:
        probe.close()
        return None


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "milvus", free_port())
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def photo(number: int) -> bytes:
    """A new photo per number: a crop of one of the demo photos."""
    image = Image.open(PHOTOS / NAMES[number % len(NAMES)])
    margin = 0.04 + 0.02 * (number // len(NAMES))
    return jpeg_bytes(image.crop((int(image.width * margin), 0, image.width, image.height)), quality=85)


def top_ids(base: str, data: bytes) -> list[int]:
    response = httpx.post(f"{base}/search", files={"file": ("q.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


#: Seconds a write through one replica may take to show on the other: Milvus's graceful time (5 s,
#: the default consistency `Bounded`, docs/milvus.md), with room for a loaded machine.
FRESH_WITHIN_S = 10


def groups(base: str) -> list[set[str]]:
    response = httpx.get(f"{base}/collections/default/duplicates", timeout=120)
    assert response.status_code == 200, response.text
    return [{image["path"] for image in group["images"]} for group in response.json()["groups"]]


@contextlib.contextmanager
def replicas(settings) -> Iterator[tuple[str, str]]:
    with running_server(settings, **ENV) as first, running_server(settings, **ENV) as second:
        yield first, second


def test_two_replicas_share_writes_and_survive_the_engine_dying_mid_write(demo_collection, tmp_path, engine):
    settings = writable_copy(demo_collection, tmp_path / "shared")
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "search_by_image.cli.storage",
            "export",
            "--to",
            f"milvus://127.0.0.1:{engine.port}",
        ],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "SBI_IMAGES_DIR": str(settings.images_dir),
            "SBI_METADATA_CSV": str(settings.metadata_csv),
            "SBI_SAVED_DIR": str(settings.saved_dir),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-2000:] + exported.stdout
    assert "same top 10" in exported.stdout
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}

    with replicas(settings) as (first, second):
        health = httpx.get(f"{first}/health", timeout=30).json()["collections"][0]
        assert health["storage"] == f"milvus://127.0.0.1:{engine.port}" and health["engine_answers"]
        assert health["images"] == len(NAMES)

        new = photo(100)
        added = httpx.post(
            f"{first}/collections/default/images",
            files=[("files", ("new.jpg", new, "image/jpeg"))],
            headers=admin,
            timeout=120,
        )
        assert added.status_code == 201, added.text
        new_id = added.json()["images"][0]["id"]
        # added through one, found through the other
        assert eventually(lambda: top_ids(second, new)[0] == new_id, FRESH_WITHIN_S)

        gone = httpx.delete(f"{second}/collections/default/images/{new_id}", headers=admin, timeout=60)
        assert gone.status_code == 200, gone.text
        assert eventually(lambda: new_id not in top_ids(first, new) + top_ids(second, new), FRESH_WITHIN_S)

        before = groups(second)  # the duplicates pass of the engine's neighbours, on one replica
        twin = jpeg_bytes(Image.open(PHOTOS / NAMES[0]), quality=70)
        added = httpx.post(
            f"{first}/collections/default/images",
            files=[("files", ("twin.jpg", twin, "image/jpeg"))],
            headers=admin,
            timeout=120,
        ).json()["images"][0]
        grouped = {NAMES[0], added["path"]}
        assert eventually(lambda: any(grouped <= group for group in groups(second)), FRESH_WITHIN_S)
        assert (
            httpx.delete(f"{first}/collections/default/images/{added['id']}", headers=admin).status_code
            == 200
        )
        assert eventually(lambda: groups(second) == before, FRESH_WITHIN_S)

        acknowledged, statuses = _write_while_the_engine_dies(first, admin, engine)
        assert 503 in statuses and 500 not in statuses, statuses
        for base in (first, second):
            _wait_until_it_answers(base)
            for image_id in acknowledged:
                response = httpx.get(f"{base}/collections/default/images/{image_id}/similar", timeout=60)
                assert response.status_code == 200, (image_id, response.text)


def _write_while_the_engine_dies(base: str, admin: dict, engine: Engine) -> tuple[list[int], list[int]]:
    """Adds through `base` one after another while the engine is SIGKILLed after the third and
    started again; the ids the service acknowledged (201) and every status seen."""
    acknowledged: list[int] = []
    statuses: list[int] = []
    stop = threading.Event()

    def write() -> None:
        number = 200
        with httpx.Client(base_url=base, headers=admin, timeout=60) as client:
            while not stop.is_set():
                response = client.post(
                    "/collections/default/images",
                    files=[("files", (f"{number}.jpg", photo(number), "image/jpeg"))],
                )
                statuses.append(response.status_code)
                if response.status_code == 201:
                    acknowledged.append(response.json()["images"][0]["id"])
                else:
                    assert response.status_code == 503 and "Milvus" in response.json()["detail"]
                    assert int(response.headers["Retry-After"]) > 0
                    time.sleep(0.2)
                number += 1

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 3 and time.monotonic() < deadline and writer.is_alive():
        time.sleep(0.05)
    engine.kill()
    while 503 not in statuses and time.monotonic() < deadline and writer.is_alive():
        time.sleep(0.05)
    engine.start()
    time.sleep(2)
    stop.set()
    writer.join(timeout=120)
    assert not writer.is_alive() and len(acknowledged) >= 3
    return acknowledged, statuses


def _wait_until_it_answers(base: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{base}/health", timeout=30).json()["collections"][0]
        if health["engine_answers"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"{base} never saw the engine again: {health}")
