"""A large upload's own finer keypoints: made in its thumbnail-size keypoints' frame, only when a
check asks, and tried against a big photo's finer set where the thumbnail-size query finds no
copy there (a small detail of a smooth or repetitive big photo), kept as a copy (or aligned)."""

import io

import numpy as np
from helpers import PHOTOS, jpeg_bytes, smooth_grey
from PIL import Image

from search_by_image.catalog import thumbnails
from search_by_image.ranking import local_features, query_keypoints, verification


def detail_pair(
    query_grey: np.ndarray, made: list[int], shared: int = 10
) -> tuple[verification.Query, local_features.Keypoints]:
    """A query whose thumbnail-size keypoints match `shared` of a candidate's finer set (a hint of
    it, too few to verify) and none of its thumbnail's, and whose finer keypoints match that
    finer set one to one (the same frame); `made` counts the finer keypoints' making. The
    candidate's grey is smooth_grey(60)."""
    rng = np.random.default_rng(5)
    count = 80
    xy = rng.uniform(40, 280, (count, 2)).astype(np.float32)
    fine = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    grey = smooth_grey(60)
    finer = local_features.Keypoints(xy, fine, grey)
    candidate = local_features.Keypoints(
        xy, rng.integers(0, 256, (count, 32), dtype=np.uint8), grey, finer=lambda: finer
    )
    own = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    own[:shared] = fine[:shared]

    def larger() -> local_features.Keypoints:
        made.append(1)
        return local_features.Keypoints(xy, fine.copy(), query_grey)

    return verification.Query(local_features.Keypoints(xy, own, query_grey), finer=larger), candidate


def test_a_detail_found_only_by_the_uploads_finer_keypoints_is_a_copy(monkeypatch):
    made: list[int] = []
    query, candidate = detail_pair(smooth_grey(60), made)
    found = verification.check(query, candidate, try_mirror=False, finer=True)
    assert found.copy and found.inliers >= 60, found
    verification.check(query, candidate, try_mirror=False, finer=True)
    assert made == [1]  # made once per query, whatever the checks
    monkeypatch.setattr(verification, "FINER_QUERY", False)
    assert not verification.check(query, candidate, try_mirror=False, finer=True).verified


def test_the_uploads_finer_keypoints_are_kept_only_as_a_copy_and_tried_on_every_big_photo(monkeypatch):
    made: list[int] = []
    query, candidate = detail_pair(smooth_grey(60, seed=3), made)  # another picture, same keypoints
    found = verification.check(query, candidate, try_mirror=False, finer=True)
    assert not found.copy and found.inliers < verification.RERANK_INLIERS, found
    assert made == [1]
    made = []
    # no hint from the thumbnail-size query: the detail is found by the upload's finer set alone
    query, candidate = detail_pair(smooth_grey(60), made, shared=0)
    assert verification.check(query, candidate, try_mirror=False, finer=True).copy
    plain = local_features.Keypoints(candidate.xy, candidate.descriptors, candidate.grey)  # no finer set
    query, _ = detail_pair(smooth_grey(60), made := [], shared=0)
    assert not verification.check(query, plain, try_mirror=False, finer=True).verified
    assert made == []  # made only where a big photo's finer set is checked
    monkeypatch.setattr(verification, "FINER_QUERY_INLIERS", 8)  # only past a hint: not tried
    query, candidate = detail_pair(smooth_grey(60), [], shared=0)
    assert not verification.check(query, candidate, try_mirror=False, finer=True).verified


def test_the_uploads_finer_keypoints_are_matched_again_loosely_whatever_their_first_match(monkeypatch):
    """Each of the upload's finer keypoints lies 30 bits from its own in the big photo's set and
    35 from a look-alike there (a smooth picture's): Lowe's 0.8 keeps none, 0.9 keeps them all."""
    rng = np.random.default_rng(7)
    count = 80
    xy = rng.uniform(40, 280, (count, 2)).astype(np.float32)
    bits = np.unpackbits(rng.integers(0, 256, (count, 32), dtype=np.uint8), axis=1)
    flipped = bits.copy()
    order = np.argsort(rng.random((count, 256)), axis=1)
    rows = np.arange(count)[:, None]
    flipped[rows, order[:, :30]] ^= 1  # the upload's: 30 bits from its own
    decoy = flipped.copy()
    decoy[rows, order[:, 30:65]] ^= 1  # a look-alike 35 bits from the upload's, elsewhere
    own, upload, alike = (np.packbits(b, axis=1) for b in (bits, flipped, decoy))
    grey = smooth_grey(60)
    elsewhere = rng.uniform(40, 280, (count, 2)).astype(np.float32)
    finer = local_features.Keypoints(np.vstack([xy, elsewhere]), np.vstack([own, alike]), grey)
    candidate = local_features.Keypoints(
        xy, rng.integers(0, 256, (count, 32), dtype=np.uint8), grey, finer=lambda: finer
    )
    thumbnail_size = local_features.Keypoints(xy, rng.integers(0, 256, (count, 32), dtype=np.uint8), grey)

    def query() -> verification.Query:
        return verification.Query(thumbnail_size, finer=lambda: local_features.Keypoints(xy, upload, grey))

    assert local_features.verify(local_features.Keypoints(xy, upload, grey), finer).inliers == 0
    found = verification.check(query(), candidate, try_mirror=False, finer=True)
    assert found.copy and found.inliers >= 60, found
    monkeypatch.setattr(verification, "FINER_QUERY_LOOSE_INLIERS", verification.RERANK_INLIERS)
    assert not verification.check(query(), candidate, try_mirror=False, finer=True).verified


def test_the_finer_keypoints_are_in_the_frame_of_the_querys_own():
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    big = np.asarray(photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC))
    query = verification.Query.of_image(big, larger=lambda: big)
    finer = query.finer()
    assert finer is not None and len(finer) > 2 * len(query.keypoints)
    assert finer.grey is query.keypoints.grey  # pixels compared at the query's own frame
    found = local_features.verify(finer, query.keypoints)
    assert found.transform is not None and found.inliers >= verification.COPY_INLIERS
    assert np.allclose(found.transform[:, :2], np.eye(2), atol=0.02)  # same frame: no turn, no scale
    assert np.abs(found.transform[:, 2]).max() < 1.5
    small = np.asarray(photo.resize((500, 333)))  # not much larger than the query's frame
    assert verification.Query.of_image(small, larger=lambda: small).finer() is None


def test_an_upload_is_decoded_again_at_the_larger_side_or_not_at_all():
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    big = photo.resize((photo.width * 4, photo.height * 4), Image.Resampling.BICUBIC)
    view = query_keypoints.larger_view(jpeg_bytes(big, 90), 10**9)
    assert view is not None and query_keypoints.LARGER_SIDE <= max(view.shape[:2]) < max(big.size)
    assert query_keypoints.larger_view(b"not an image", 10**9) is None


def test_a_match_folded_onto_one_spot_is_not_compared_by_its_pixels(monkeypatch):
    """Twenty look-alikes of a smooth picture in a 3 px blob: RANSAC explains them by shrinking
    the query onto the blob. Such a match never aligns, and its big photo's view (a second
    decode of it) is not read for it; spread out, the same match is compared."""
    rng = np.random.default_rng(11)
    count = 20
    descriptors = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    spread = rng.uniform(40, 280, (count, 2)).astype(np.float32)
    blob = (150 + rng.uniform(0, 3, (count, 2))).astype(np.float32)
    grey = smooth_grey(60)
    read: list[int] = []

    def view() -> tuple[np.ndarray, tuple[float, float]]:
        read.append(1)
        return grey, (1.0, 1.0)

    query = local_features.Keypoints(spread, descriptors, grey)
    folded = local_features.Keypoints(blob, descriptors, grey, view=view)
    found = verification.compare(query, folded)
    assert found.inliers >= verification.COPY_INLIERS and found.correlation == -1.0 and read == []
    monkeypatch.setattr(verification, "MIN_SPREAD_PX", 0.0)
    verification.compare(query, folded)
    assert read == [1]
    assert verification.compare(query, local_features.Keypoints(spread, descriptors, grey)).copy


def small_copy(photo: Image.Image, side: int) -> Image.Image:
    """A crop of `photo`, turned 6 degrees, shrunk to `side` px and recompressed hard (a copy sent
    through a messaging app)."""
    width, height = photo.size
    cropped = photo.crop((width // 8, height // 10, width - width // 10, height - height // 8))
    turned = cropped.rotate(6, resample=Image.Resampling.BICUBIC)
    scale = side / max(turned.size)
    size = round(turned.width * scale), round(turned.height * scale)
    shrunk = turned.resize(size, Image.Resampling.BICUBIC)
    return Image.open(io.BytesIO(jpeg_bytes(shrunk, 35))).convert("RGB")


def test_a_small_hard_recompressed_copy_is_a_copy_through_its_enlarged_view(monkeypatch):
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    thumbnail = Image.open(io.BytesIO(thumbnails.encode(photo))).convert("RGB")
    indexed = verification.Query.of_image(np.asarray(thumbnail)).keypoints
    copy = np.asarray(small_copy(photo, 180))
    query = verification.Query.of_image(copy)
    assert max(query.keypoints.grey.shape) == query_keypoints.SMALL_SIDE  # found on its enlarged view
    found = verification.check(query, indexed)
    assert found.copy, found
    monkeypatch.setattr(query_keypoints, "SMALL_SIDE", 0)
    alone = verification.check(verification.Query.of_image(copy), indexed)
    assert not alone.verified and found.inliers >= 3 * max(alone.inliers, 1), (alone, found)
