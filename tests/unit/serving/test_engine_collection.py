"""A collection served from Milvus through the app: milvus-lite here (Milvus's engine and protocol
in this one process; the real server with two replicas is tests/system/test_milvus_replicas.py)."""

import contextlib
import functools
import json
import shutil
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes, plant_copies, writable_copy
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.catalog import metadata_import
from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.index import storage_transfer
from search_by_image.index.live_store import load_live
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.vector_storage import StorageAddress
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE
from search_by_image.ranking import expansion
from search_by_image.serving import engine_collection, engine_writes

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install milvus-lite)")

ADDRESS = StorageAddress("milvus", "127.0.0.1", 19530)
HTML = {"Accept": "text/html"}


@pytest.fixture
def served(demo_collection, tmp_path, monkeypatch):
    settings = writable_copy(demo_collection, tmp_path, query_rotations=False, verify_top=0)
    with engine_client(settings, tmp_path, monkeypatch) as client:
        yield client, MetadataView(settings.saved_dir)


@contextlib.contextmanager
def engine_client(settings, tmp_path, monkeypatch) -> Iterator[TestClient]:
    """The collection of `settings` exported into milvus-lite and served from it, as an admin."""
    lite = str(tmp_path / "lite.db")
    store, _ = load_live(settings.saved_dir)
    metadata_import.sync(settings.saved_dir, settings.metadata_csv, store.base)
    view = MetadataView(settings.saved_dir)
    target = MilvusStorage(ADDRESS, "default", view.kinds, uri=lite)
    storage_transfer.export(store.base, view, target)
    storage_transfer.record(settings.saved_dir, ADDRESS, target)
    target.close()
    monkeypatch.setattr(engine_collection, "MilvusStorage", functools.partial(MilvusStorage, uri=lite))
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def search(client, data: bytes, **form):
    response = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data=form)
    assert response.status_code == 200, response.text
    return response.json()


def test_searches_filters_writes_and_health_go_to_the_engine(served):
    client, view = served
    health = client.get("/health").json()["collections"][0]
    assert (health["storage"], health["engine_answers"], health["images"]) == (str(ADDRESS), True, 13)

    coffee = jpeg_bytes(Image.open(PHOTOS / "coffee.jpg").resize((300, 200)), quality=50)
    found = search(client, coffee, k="3")
    assert found["results"][0]["path"] == "coffee.jpg" and len(found["results"]) == 3
    assert found["results"][0]["metadata"]  # the row from the engine's meta field

    column, kind = next(iter(view.kinds.items()))
    value = found["results"][1]["metadata"][column]
    wanted = {column: value} if kind == "text" else {column: {"gte": value, "lte": value}}
    filtered = search(client, coffee, k="13", filters=json.dumps(wanted))
    assert filtered["results"] and all(hit["metadata"][column] == value for hit in filtered["results"])
    assert filtered["matched"] == len(filtered["results"])

    page = search(client, coffee, k="2", offset="1")
    assert [hit["id"] for hit in page["results"]] == [hit["id"] for hit in found["results"][1:3]]

    mirrored = jpeg_bytes(Image.open(PHOTOS / "dog.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    added = client.post("/collections/default/images", files=[("files", ("m.jpg", mirrored, "image/jpeg"))])
    assert added.status_code == 201, added.text
    new_id = added.json()["images"][0]["id"]
    assert search(client, mirrored, k="1")["results"][0]["id"] == new_id
    again = client.post("/collections/default/images", files=[("files", ("m.jpg", mirrored, "image/jpeg"))])
    assert again.json()["images"][0] == {**added.json()["images"][0], "created": False}

    similar = client.get(f"/collections/default/images/{new_id}/similar", params={"k": 3}).json()
    assert new_id not in [hit["id"] for hit in similar["results"]] and len(similar["results"]) == 3

    assert client.delete(f"/collections/default/images/{new_id}").status_code == 200
    assert new_id not in [hit["id"] for hit in search(client, mirrored, k="5")["results"]]
    assert client.get(f"/collections/default/images/{new_id}/similar").status_code == 404


def test_an_engine_that_does_not_answer_is_a_503_naming_it(served, monkeypatch):
    client, _ = served
    collection = client.app.state.service.default
    collection.storage.close()
    collection.storage.uri = "http://127.0.0.1:9"  # nothing listens there
    collection.storage.timeout = 1.0
    response = client.post(
        "/search", files={"file": ("q.jpg", jpeg_bytes(Image.open(PHOTOS / "dog.jpg")), "image/jpeg")}
    )
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert "Milvus at 127.0.0.1:19530" in response.json()["detail"]
    assert response.headers["X-Unavailable-Engine"] == "Milvus at 127.0.0.1:19530"
    collection._health = None
    assert client.get("/health").json()["collections"][0]["engine_answers"] is False


def duplicate_groups(client) -> dict[str, str]:
    """The listed groups: their sorted paths -> fingerprint."""
    response = client.get("/collections/default/duplicates")
    assert response.status_code == 200, response.text
    return {
        ",".join(sorted(i["path"] for i in g["images"])): g["fingerprint"] for g in response.json()["groups"]
    }


def test_duplicates_come_from_the_engine_and_follow_its_writes(demo_collection, tmp_path, monkeypatch):
    settings = writable_copy(demo_collection, tmp_path, query_rotations=False)  # verification on
    plant_copies(settings.images_dir)
    csv = settings.metadata_csv.read_text().replace("scikit-image,CC0,451", "scikit-image,,451")
    settings.metadata_csv.write_text(csv + "copies/cat-small.jpg,,,,CC0 (the copy's),225,150\n")
    update_index(settings, progress=False)
    cat = jpeg_bytes(Image.open(PHOTOS / "chelsea.jpg").crop((40, 20, 400, 280)))
    with TestClient(create_app(settings)) as embedded:
        expected = duplicate_groups(embedded)
        ranked = [hit["id"] for hit in search(embedded, cat, k="15")["results"]]
    assert set(expected) == {"chelsea.jpg,copies/cat-small.jpg", "copies/eagle-crop.jpg,eagle.jpg"}
    expanded = mock.Mock(wraps=expansion.rerank)
    monkeypatch.setattr(expansion, "rerank", expanded)
    keypoints = KeypointStore(settings.saved_dir)
    with engine_client(settings, tmp_path, monkeypatch) as client:
        # verified, expanded by its verified results (the stored vectors from the engine), the same
        assert [hit["id"] for hit in search(client, cat, k="15")["results"]] == ranked
        assert expanded.call_count == 1
        assert duplicate_groups(client) == expected
        assert "copies/eagle-crop.jpg" in client.get("/collections/default/duplicates", headers=HTML).text

        dog = Image.open(PHOTOS / "dog.jpg")
        small = jpeg_bytes(dog.resize((dog.width // 2, dog.height // 2)), 70)
        added = client.post("/collections/default/images", files=[("files", ("d.jpg", small, "image/jpeg"))])
        path, new_id = added.json()["images"][0]["path"], added.json()["images"][0]["id"]
        fingerprint = (len(small), (settings.images_dir / path).stat().st_mtime_ns)
        assert keypoints.read([(path, fingerprint)])[0] is not None  # stored as it was added
        assert duplicate_groups(client) == {**expected, f"dog.jpg,{path}": mock.ANY}
        assert client.delete(f"/collections/default/images/{new_id}").status_code == 200
        assert duplicate_groups(client) == expected
        assert keypoints.missing({path: fingerprint}) == [path]  # and forgotten with it

        # another replica's write: in the engine, and marked in the shared saved folder
        storage = client.app.state.service.default.storage
        dog_id = storage.id_of_path("dog.jpg")
        shutil.copy2(settings.images_dir / "dog.jpg", settings.images_dir / "twin.jpg")
        storage.add([7_777_777], np.stack([storage.vectors([dog_id])[dog_id]]), ["twin.jpg"], [{}])
        assert duplicate_groups(client) == expected  # no mark yet: the last listing stands
        engine_writes.mark_writes(settings.saved_dir)
        assert duplicate_groups(client) == {**expected, "dog.jpg,twin.jpg": mock.ANY}
        storage.delete([7_777_777])
        engine_writes.mark_writes(settings.saved_dir)

        cat = expected["chelsea.jpg,copies/cat-small.jpg"]
        kept = client.post("/collections/default/duplicates/keep-one", json={"group": cat})
        assert kept.status_code == 200, kept.text
        assert set(duplicate_groups(client)) == {"copies/eagle-crop.jpg,eagle.jpg"}
        assert licence_of_the_cat(client) == "CC0 (the copy's)"  # merged into the keeper
        undone = client.post(f"/collections/default/duplicates/decisions/{kept.json()['id']}/undo")
        assert undone.status_code == 200, undone.text
        assert duplicate_groups(client) == expected
        assert licence_of_the_cat(client) is None


def licence_of_the_cat(client) -> str | None:
    found = search(client, (PHOTOS / "chelsea.jpg").read_bytes(), k="1")["results"][0]
    assert found["path"] == "chelsea.jpg"
    return found["metadata"].get("license")
