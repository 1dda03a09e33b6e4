"""Keypoints stored once (indexer, live adds) and read by verification instead of extracted from
thumbnails: the same checks, a fallback where none is stored, a finer set for big photos."""

import io

import numpy as np
from helpers import PHOTOS, jpeg_bytes, writable_copy
from PIL import Image, ImageEnhance

from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.catalog.locations import default_location
from search_by_image.index.live_store import load_live
from search_by_image.indexing.indexer import update_index
from search_by_image.ranking import local_features, stored_keypoints, verification, verifier
from search_by_image.ranking.indexed_keypoints import IndexedKeypoints
from search_by_image.ranking.verifier import Verifier
from search_by_image.serving.live_writes import Upload
from search_by_image.serving.service import SearchService


def edited(image: Image.Image) -> Image.Image:
    """Cropped, turned a little, brightened and recompressed."""
    width, height = image.size
    cropped = image.crop((width // 8, height // 10, width - width // 10, height - height // 8))
    brighter = ImageEnhance.Brightness(cropped.rotate(5, resample=Image.Resampling.BICUBIC)).enhance(1.2)
    return Image.open(io.BytesIO(jpeg_bytes(brighter, 50))).convert("RGB")


def checks(verifier: Verifier, store, image: Image.Image) -> dict[int, verification.Check]:
    """The query's check against every image of the collection, as a search's rerank makes it."""
    asked = verification.Query.of_image(np.asarray(image))
    return {int(i): verification.check(asked, verifier.of(store, int(i)), finer=True) for i in store.ids}


def test_the_indexer_stores_each_images_keypoints_and_checks_read_them_with_the_same_results(
    demo_collection, monkeypatch
):
    location = default_location(demo_collection)
    store, _ = load_live(location.saved_dir)
    assert KeypointStore(location.saved_dir).missing({p: store.fingerprint_of(p) for p in store.paths}) == []
    ids = [int(i) for i in store.ids]
    for name in ("kite.jpg", "dog.jpg"):
        photo = edited(Image.open(PHOTOS / name).convert("RGB"))
        with monkeypatch.context() as patch:  # no stored row: extracted from the thumbnails
            patch.setattr(IndexedKeypoints, "stored", lambda self, images: [None] * len(images))
            extracted = checks(Verifier(location, 10**8, 10), store, photo)
        with monkeypatch.context() as patch:
            patch.setattr(IndexedKeypoints, "extracted", _never)
            verifier = Verifier(location, 10**8, 10)
            stored = checks(verifier, store, photo)
            assert sorted(verifier.stored(store, ids)) == sorted(ids)
        assert same(stored, extracted)
        assert stored[ids[store.paths.index(name)]].copy


def same(a: dict[int, verification.Check], b: dict[int, verification.Check]) -> bool:
    """The same inliers and labels; the aligned measures within what positions stored to
    1/128 px move them (the transform's fit)."""
    return a.keys() == b.keys() and all(
        (a[i].inliers, a[i].verified, a[i].aligned, a[i].copy)
        == (b[i].inliers, b[i].verified, b[i].aligned, b[i].copy)
        and abs(a[i].correlation - b[i].correlation) < 0.005
        and (a[i].motion == b[i].motion or abs(a[i].motion - b[i].motion) < 0.02)
        for i in a
    )


def _never(*args, **kwargs):
    raise AssertionError("keypoints extracted from a thumbnail while stored ones exist")


def test_an_older_collection_searches_as_before_and_the_next_run_stores_its_keypoints(
    demo_collection, tmp_path
):
    settings = writable_copy(demo_collection, tmp_path)
    location = default_location(settings)
    (location.saved_dir / "keypoints.sqlite").unlink()
    service = SearchService(settings)
    service.refresh()
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    found = service.default.require().search(edited(photo), 3).labelled()
    assert found[0].path == "kite.jpg" and found[0].match == "copy"
    update_index(settings, progress=False)
    store, _ = load_live(location.saved_dir)
    assert KeypointStore(location.saved_dir).missing({p: store.fingerprint_of(p) for p in store.paths}) == []


def test_a_damaged_keypoint_file_is_searched_past_and_made_again_by_the_next_run(demo_collection, tmp_path):
    settings = writable_copy(demo_collection, tmp_path)
    saved = default_location(settings).saved_dir
    for leftover in saved.glob("keypoints.sqlite-*"):
        leftover.unlink()
    (saved / "keypoints.sqlite").write_bytes(b"not a database" * 100)
    service = SearchService(settings)
    service.refresh()
    found = service.default.require().search(edited(Image.open(PHOTOS / "kite.jpg").convert("RGB")), 3)
    assert found.labelled()[0].path == "kite.jpg" and found.labelled()[0].match == "copy"
    update_index(settings, progress=False)  # the next run makes the file again
    store, _ = load_live(saved)
    assert KeypointStore(saved).missing({p: store.fingerprint_of(p) for p in store.paths}) == []


def test_an_image_added_live_has_its_keypoints_stored_and_a_delete_removes_them(demo_collection, tmp_path):
    service = SearchService(writable_copy(demo_collection, tmp_path))
    service.refresh()
    collection = service.default
    image = edited(Image.open(PHOTOS / "coffee.jpg").convert("RGB"))
    data = jpeg_bytes(image)
    (added,) = collection.add([Upload(data, Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")])
    store = collection.require().store
    keypoints = KeypointStore(collection.location.saved_dir)
    assert keypoints.read([(added.path, store.fingerprint_of(added.path))])[0] is not None
    collection.writes.delete(added.id)
    assert keypoints.missing({added.path: store.fingerprint_of(added.path)}) == [added.path]


def big_photo_and_detail() -> tuple[Image.Image, Image.Image]:
    """A 2400 px photo and a ninth of it, turned 8 degrees, at a phone's size."""
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    big = photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC)
    width, height = big.size
    box = (width // 2, height // 3, width // 2 + width // 3, height // 3 + height // 3)
    return big, big.rotate(8, resample=Image.Resampling.BICUBIC).crop(box).resize((900, 600))


def test_a_detail_of_a_big_photo_is_verified_by_its_finer_keypoints():
    """Few of the thumbnail's keypoints fall in a small detail, many of the 1024 px view's do, in
    the thumbnail's frame (the pixels compared are the thumbnail's)."""
    big, detail = big_photo_and_detail()
    asked = verification.Query.of_image(np.asarray(detail))
    thumbnail = big.copy()
    thumbnail.thumbnail((448, 448), Image.Resampling.BICUBIC)
    pixels = stored_keypoints.thumbnail_pixels(thumbnail)
    stored = stored_keypoints.compute(pixels, np.asarray(big))
    assert stored.large is not None and len(stored.large.xy) > 2 * len(stored.thumb.xy)
    assert stored.frame == local_features.scaled_grey(pixels).shape[::-1]
    view = local_features.scaled_grey(np.asarray(big), stored_keypoints.LARGE_SIDE)
    keypoints = stored_keypoints.keypoints(
        stored, lambda: local_features.scaled_grey(pixels), view=lambda: view
    )
    coarse = verification.check(asked, keypoints, finer=False)
    fine = verification.check(asked, keypoints, finer=True)
    assert fine.inliers > max(2 * coarse.inliers, verification.RERANK_INLIERS)
    assert fine.copy  # its pixels compared at the larger view: they agree, and nothing moves
    at_thumbnail = stored_keypoints.keypoints(stored, lambda: local_features.scaled_grey(pixels))
    assert not verification.check(asked, at_thumbnail, finer=True).copy  # too small there to tell


def test_a_big_photo_added_live_is_found_from_a_detail_by_its_stored_finer_keypoints(
    demo_collection, tmp_path, monkeypatch
):
    service = SearchService(writable_copy(demo_collection, tmp_path))
    service.refresh()
    collection = service.default
    big, detail = big_photo_and_detail()
    data = jpeg_bytes(big, 90)
    (added,) = collection.add([Upload(data, Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")])
    store = collection.require().store
    keypoints = collection.require().verifier.of(store, added.id)
    assert keypoints.finer is not None and len(keypoints.finer()) > 2 * len(keypoints)
    found = collection.require().search(detail, 3).labelled()
    monkeypatch.setattr(verifier, "FINER", False)
    coarse = collection.require().search(detail, 3).labelled()
    assert found[0].path == added.path and found[0].inliers > max(2 * (coarse[0].inliers or 0), 12)


def test_a_big_photos_larger_view_is_decoded_once_per_check():
    """Each match of a check against the finer set (0.8, 0.9, the upload's own finer keypoints)
    may compare pixels at the larger view: it is read once for them all, and again for another
    check (nothing held between checks)."""
    big, _ = big_photo_and_detail()
    thumbnail = big.copy()
    thumbnail.thumbnail((448, 448), Image.Resampling.BICUBIC)
    pixels = stored_keypoints.thumbnail_pixels(thumbnail)
    stored = stored_keypoints.compute(pixels, np.asarray(big))
    view = local_features.scaled_grey(np.asarray(big), stored_keypoints.LARGE_SIDE)
    reads: list[int] = []
    keypoints = stored_keypoints.keypoints(
        stored, lambda: local_features.scaled_grey(pixels), view=lambda: reads.append(1) or view
    )
    finer = keypoints.finer()
    assert finer is not None and finer.view is not None
    assert finer.view()[0] is finer.view()[0] is view
    assert reads == [1]
    keypoints.finer().view()
    assert reads == [1, 1]
