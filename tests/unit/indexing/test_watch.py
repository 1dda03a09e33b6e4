"""Watch mode: photos dropped into (or removed from) a watched folder become searchable (or go)
without anyone running the indexer, from the command line and inside the service."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, writable_copy
from PIL import Image

from config import PROJECT_DIR
from main import create_app
from search_by_image.catalog.locations import Location
from search_by_image.errors import IndexCorrupt, IndexMissing
from search_by_image.index.store import IndexStore
from search_by_image.indexing.watch import changed_collections, relevant
from search_by_image.model.embedder import Embedder

DEADLINE_S = 90


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection, index included."""
    return writable_copy(demo_collection, tmp_path, rate_limit="", watch_quiet_ms=300)


def drop_photo(folder: Path) -> Path:
    """A photo the collection has never seen (a turned copy of a demo photo), written the way a
    copy is: a hidden temporary name first, then renamed into place."""
    target = folder / "dropped" / "turned-kite.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(".turned-kite.jpg.part")
    Image.open(PHOTOS / "kite.jpg").transpose(Image.Transpose.ROTATE_90).save(
        staging, format="JPEG", quality=90
    )
    os.replace(staging, target)
    return target


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"watch mode did not {what} within {DEADLINE_S} s")


def indexed_paths(saved: Path) -> set[str]:
    """What the saved index holds; nothing while a commit is half done (read again later, as the
    service does: it waits for the commit)."""
    try:
        return set(IndexStore.load(saved).paths)
    except (IndexMissing, IndexCorrupt):
        return set()


def test_only_visible_image_files_and_folders_count():
    assert relevant("/p/IMG_1.JPG") and relevant("/p/holiday")  # a file, a folder moved in
    assert not relevant("/p/.IMG_1.jpg.part") and not relevant("/p/notes.txt")
    folders = {
        Path("/a"): Location(name="a", images_dir=Path("/a"), metadata_csv=None, saved_dir=Path("/s/a")),
        Path("/b"): Location(name="b", images_dir=Path("/b"), metadata_csv=None, saved_dir=Path("/s/b")),
    }
    assert [loc.name for loc in changed_collections(["/b/x.jpg", "/a/y/z.png"], folders)] == ["a", "b"]
    assert changed_collections(["/a/.thumbnails/x.jpg", "/c/x.jpg"], folders) == []


def test_the_indexer_follows_its_folder_with_watch(collection):
    settings = collection
    command = [
        sys.executable,
        "with_faiss.py",
        "--watch",
        "--quiet",
        "--images",
        str(settings.images_dir),
        "--csv",
        str(settings.metadata_csv),
        "--output",
        str(settings.saved_dir),
        "--model",
        "efficientnet_lite0",
        "--workers",
        "0",
    ]
    watcher = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "SBI_WATCH_QUIET_MS": "300"},
        text=True,
    )
    try:
        log = []
        wait_for(
            lambda: (line := watcher.stderr.readline()) and (log.append(line) or "Watching" in line),
            "start watching",
        )
        dropped = drop_photo(settings.images_dir)
        wait_for(lambda: "dropped/turned-kite.jpg" in indexed_paths(settings.saved_dir), "index a new photo")
        store = wait_for(
            lambda: (
                "dropped/turned-kite.jpg" in indexed_paths(settings.saved_dir)
                and IndexStore.load(settings.saved_dir)
            ),
            "commit",
        )
        embedder = Embedder.configured(store.manifest.embedder, settings)
        query = embedder.embed_images([Image.open(dropped).convert("RGB")])
        (hits,) = store.search(query, 1)
        assert store.paths[store.row_of(hits[0][0])] == "dropped/turned-kite.jpg"

        (settings.images_dir / "dog.jpg").unlink()
        wait_for(
            lambda: (paths := indexed_paths(settings.saved_dir)) and "dog.jpg" not in paths,
            "drop a deleted photo",
        )
        assert watcher.poll() is None, watcher.stderr.read()
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)


def test_the_service_in_watch_mode_serves_photos_dropped_into_the_folder(collection):
    settings = collection.model_copy(update={"watch": True})
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/health").json()["indexing"]["state"] == "done", "finish its first run")
        dropped = drop_photo(settings.images_dir)

        def top_hit() -> bool:
            response = client.post("/search", files={"file": ("q.jpg", dropped.read_bytes(), "image/jpeg")})
            return (
                response.status_code == 200
                and response.json()["results"][0]["path"] == "dropped/turned-kite.jpg"
            )

        wait_for(top_hit, "serve a photo dropped into the folder")
        (settings.images_dir / "dog.jpg").unlink()
        wait_for(lambda: client.get("/health").json()["images"] == 13, "drop a deleted photo")
