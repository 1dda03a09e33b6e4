"""A collection moved into Milvus and back by the command lines: `with_faiss.py --store` indexes
and exports it, replicas add and delete in the engine, `cli.storage import` brings those writes
back into the saved folder (ids kept) and the collection is served embedded again. milvus-lite
stands for the server here (tests/system/test_milvus_replicas.py runs the real one)."""

import functools
import time

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes, writable_copy
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.cli import index, storage
from search_by_image.index import storage_transfer
from search_by_image.index.live_store import load_live
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.layout import KEYS_FILE
from search_by_image.serving import engine_collection

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install milvus-lite)")

STORE = "milvus://127.0.0.1:19530"


def search_ids(client, data: bytes, k: int = 3) -> list[int]:
    response = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": k})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_with_faiss_store_exports_and_import_brings_the_engine_writes_back(
    demo_collection, tmp_path, monkeypatch, capsys
):
    settings = writable_copy(demo_collection, tmp_path, query_rotations=False, verify_top=0)
    lite = functools.partial(MilvusStorage, uri=str(tmp_path / "lite.db"))
    monkeypatch.setattr(storage, "MilvusStorage", lite)
    monkeypatch.setattr(engine_collection, "MilvusStorage", lite)
    for name, value in (("IMAGES_DIR", settings.images_dir), ("SAVED_DIR", settings.saved_dir)):
        monkeypatch.setenv(f"SBI_{name}", str(value))
    monkeypatch.setenv("SBI_METADATA_CSV", str(settings.metadata_csv))
    flags = ["--quiet", "--workers", "0", "--store", STORE]
    assert index.main(flags) == 0
    assert "counts: saved 13, engine 13" in capsys.readouterr().out
    assert (settings.saved_dir / storage_transfer.STORAGE_FILE).is_file()

    dog = Image.open(PHOTOS / "dog.jpg")
    small = jpeg_bytes(dog.resize((dog.width // 2, dog.height // 2)), 70)
    coffee = jpeg_bytes(Image.open(PHOTOS / "coffee.jpg"))
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings), headers=admin) as client:  # served from the engine
        assert client.app.state.service.default.__class__.__name__ == "EngineCollection"
        added = client.post("/collections/default/images", files=[("files", ("d.jpg", small, "image/jpeg"))])
        assert added.status_code == 201, added.text
        new = added.json()["images"][0]
        deleted = search_ids(client, coffee, 1)[0]
        assert client.delete(f"/collections/default/images/{deleted}").status_code == 200

    assert storage.main(["import", "--from", STORE], settings) == 0
    assert "counts: saved 13, engine 13" in capsys.readouterr().out
    assert not (settings.saved_dir / storage_transfer.STORAGE_FILE).exists()
    saved, _ = load_live(settings.saved_dir)
    assert saved.id_of(new["path"]) == new["id"] and deleted not in saved

    with TestClient(create_app(settings)) as client:  # the embedded default again
        assert client.app.state.service.default.__class__.__name__ == "Collection"
        assert search_ids(client, small, 1) == [new["id"]]
        assert deleted not in search_ids(client, coffee, 13)


def test_an_engine_that_does_not_answer_is_said_at_once(demo_collection, tmp_path, capsys):
    settings = writable_copy(demo_collection, tmp_path)
    started = time.monotonic()
    assert storage.main(["export", "--to", "milvus://127.0.0.1:9"], settings) == storage.DIFFERENT
    assert "Milvus at 127.0.0.1:9 unavailable" in capsys.readouterr().err
    assert time.monotonic() - started < storage.PROBE_TIMEOUT_S + 5
    assert not (settings.saved_dir / storage_transfer.STORAGE_FILE).exists()
