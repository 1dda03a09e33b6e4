"""Local features of images of any shape: a speck or a strip has no keypoints, never an error, as
a query or stored in a collection (verification, duplicates and more like this read it)."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, writable_copy
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE
from search_by_image.ranking import local_features

ODD_SHAPES = [(1, 1), (1, 4000), (2, 2000), (4000, 2), (62, 900)]


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("width", "height"), ODD_SHAPES)
def test_a_speck_or_a_strip_has_no_keypoints(width, height):
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    assert len(local_features.extract(rgb)) == 0
    assert len(local_features.extract(local_features.mirrored(rgb))) == 0


def test_odd_shapes_are_searched_and_a_stored_strip_poisons_nothing(demo_collection, tmp_path):
    settings = writable_copy(demo_collection, tmp_path)
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        for width, height in ODD_SHAPES:
            found = client.post("/search", files={"file": ("q.png", png(width, height), "image/png")})
            assert found.status_code == 200, (width, height, found.text)
        added = client.post(
            "/collections/default/images", files=[("files", ("strip.png", png(2, 2000), "image/png"))]
        )
        assert added.status_code == 201, added.text
        image = added.json()["images"][0]
        for url in (
            image["thumbnail_url"],
            f"/collections/default/images/{image['id']}/similar",
            "/collections/default/duplicates",
        ):
            assert client.get(url).status_code == 200, url
        photo = next(PHOTOS.iterdir()).read_bytes()
        after = client.post("/search", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"k": "50"})
        assert after.status_code == 200 and image["id"] in {h["id"] for h in after.json()["results"]}


def test_one_pair_matched_at_two_ratios_is_searched_once(monkeypatch):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (200, 2)).astype(np.float32)
    ours = local_features.Keypoints(xy, rng.integers(0, 256, (200, 32), dtype=np.uint8), np.zeros((8, 8)))
    theirs = local_features.Keypoints(xy, ours.descriptors.copy(), np.zeros((8, 8)))
    searched = []
    search = local_features.nearest_two
    monkeypatch.setattr(local_features, "nearest_two", lambda *pair: searched.append(1) or search(*pair))
    first = local_features.verify(ours, theirs)
    assert first.inliers == 200 and local_features.verify(ours, theirs, 0.9).inliers == 200
    assert len(searched) == 1  # the second ratio reused the first's neighbours
    changed = local_features.Keypoints(xy, ours.descriptors.copy(), ours.pixels)  # same values, new array
    assert local_features.verify(changed, theirs).inliers == 200 and len(searched) == 2
