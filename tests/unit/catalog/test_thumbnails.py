"""Grid thumbnails: made in the indexer's decode pass and by adds, served small and cacheable,
made on first request where missing, gone with their image."""

import io
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes, writable_copy
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.catalog.thumbnails import THUMBNAIL_PX, Thumbnails, covering, thumbnail_source
from search_by_image.index.store import IndexStore
from search_by_image.layout import KEYS_FILE


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection, index and thumbnails included."""
    return writable_copy(demo_collection, tmp_path, reload_seconds=0)


def test_the_indexer_makes_one_thumbnail_per_image_in_its_decode_pass(demo_collection):
    store = IndexStore.load(demo_collection.saved_dir)
    thumbs = Thumbnails(demo_collection.saved_dir)
    for path in store.paths:
        small = Image.open(thumbs.file(path, store.fingerprint(path)))
        original = Image.open(PHOTOS / path)
        assert small.format == "JPEG" and max(small.size) == min(THUMBNAIL_PX, max(original.size))
        ratio = original.width / original.height
        assert abs(small.width / small.height - ratio) < 0.02


def test_thumbnails_are_small_cacheable_and_revalidated(collection):
    with TestClient(create_app(collection)) as client:
        data = (PHOTOS / "coffee.jpg").read_bytes()
        hits = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": 13}).json()[
            "results"
        ]
        assert all(h["thumbnail_url"].startswith(f"/thumbnails/{h['path']}?v=") for h in hits)
        got = client.get(hits[0]["thumbnail_url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert (
            "immutable" in got.headers["cache-control"] and "max-age=31536000" in got.headers["cache-control"]
        )
        assert len(got.content) < len(data) / 2  # a 600 x 400 photo: a 12 MP one's is 1/30
        again = client.get(hits[0]["thumbnail_url"], headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304 and not again.content
        original = client.get(hits[0]["image_url"])
        assert "max-age=3600" in original.headers["cache-control"] and original.headers["etag"]
        assert client.get("/thumbnails/not-indexed.jpg").status_code == 404
        assert client.get("/thumbnails/../saved/manifest.json").status_code == 404


def test_a_missing_thumbnail_is_made_on_its_first_request(collection):
    """(Searching with local verification, the default, makes the top results' thumbnails
    itself: here it is off, so the request is the first use.)"""
    shutil.rmtree(collection.saved_dir / "thumbnails")
    with TestClient(create_app(collection.model_copy(update={"verify_top": 0}))) as client:
        url = client.post(
            "/search",
            files={"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")},
            data={"k": 1},
        ).json()["results"][0]["thumbnail_url"]
        first = client.get(url)
        assert first.status_code == 200 and max(Image.open(io.BytesIO(first.content)).size) == THUMBNAIL_PX
        assert len(list((collection.saved_dir / "thumbnails").glob("*/*.jpg"))) == 1


def test_an_added_image_gets_its_thumbnail_and_a_delete_removes_it(collection):
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin", "tests")
    with TestClient(create_app(collection), headers={"Authorization": f"Bearer {key}"}) as client:
        photo = Image.open(PHOTOS / "astronaut.jpg")
        data = jpeg_bytes(photo.crop((0, 0, photo.width // 2, photo.height)))
        (added,) = client.post(
            "/collections/default/images", files=[("files", ("new.jpg", data, "image/jpeg"))]
        ).json()["images"]
        before = set((collection.saved_dir / "thumbnails").glob("*/*.jpg"))
        assert len(before) == 14
        assert client.get(added["thumbnail_url"]).status_code == 200
        assert client.delete(f"/collections/default/images/{added['id']}").status_code == 200
        assert len(set((collection.saved_dir / "thumbnails").glob("*/*.jpg"))) == 13


def test_the_indexer_prunes_thumbnails_of_removed_or_changed_images(collection):
    from search_by_image.indexing.indexer import update_index

    (collection.images_dir / "dog.jpg").unlink()
    Image.open(PHOTOS / "coffee.jpg").rotate(90).save(collection.images_dir / "coffee.jpg")
    update_index(collection, progress=False)
    store = IndexStore.load(collection.saved_dir)
    thumbs = Thumbnails(collection.saved_dir)
    kept = set((collection.saved_dir / "thumbnails").glob("*/*.jpg"))
    assert kept == {thumbs.file(p, tuple(f)) for p, f in store.files().items()}


def test_one_decode_covers_the_model_and_the_thumbnail():
    model = lambda w, h: (224, 168)  # noqa: E731 - a smaller model input than a thumbnail
    assert covering(model)(4000, 3000) == (448, 336)
    assert covering(lambda w, h: (448, 336))(4000, 3000) == (448, 336)
    assert covering(None)(200, 100) == (200, 100)  # small images are not enlarged


def test_the_indexer_encodes_the_models_input_only_when_it_is_the_whole_photo_shrunk():
    decoded = Image.new("RGB", (530, 354), "red")
    model_input = np.full((299, 448, 3), 200, np.uint8)
    assert thumbnail_source(decoded, model_input, whole=True).size == (448, 299)
    assert thumbnail_source(decoded, model_input, whole=False) is decoded  # a crop, or grey
    small = Image.new("RGB", (325, 243))
    enlarged = np.zeros((335, 448, 3), np.uint8)
    assert thumbnail_source(small, enlarged, whole=True) is small  # never enlarged
