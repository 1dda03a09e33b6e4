"""A large upload's own finer keypoints: made in its thumbnail-size keypoints' frame, only when a
check asks, and tried against a big photo's finer set where the thumbnail-size query finds no
copy there (a small detail of a smooth or repetitive big photo), kept only as a copy."""

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


def test_the_uploads_finer_keypoints_are_kept_only_as_a_copy_and_made_only_on_a_hint():
    made: list[int] = []
    query, candidate = detail_pair(smooth_grey(60, seed=3), made)  # another picture, same keypoints
    found = verification.check(query, candidate, try_mirror=False, finer=True)
    assert not found.copy and found.inliers < verification.RERANK_INLIERS, found
    assert made == [1]
    made = []
    query, candidate = detail_pair(smooth_grey(60), made, shared=verification.FINER_QUERY_INLIERS - 4)
    assert not verification.check(query, candidate, try_mirror=False, finer=True).verified  # no hint
    plain = local_features.Keypoints(candidate.xy, candidate.descriptors, candidate.grey)  # no finer set
    assert not verification.check(query, plain, try_mirror=False, finer=True).verified
    assert made == []


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
