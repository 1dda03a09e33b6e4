"""Local verification (local_features.py, verification.py) on real Holidays photos: an edited copy
matches its photo as a copy, another shot of the same scene matches but is not a copy, another
scene does not match; and through a served collection, with live adds and deletes."""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, encoded, jpeg_bytes, require_datasets, smooth_grey, taken_at, writable_copy
from PIL import Image, ImageEnhance, ImageOps

from main import create_app
from search_by_image.catalog import thumbnails
from search_by_image.evaluation.product import Answer
from search_by_image.images import capture_time
from search_by_image.ranking import alignment, local_features, verification
from search_by_image.ranking.match_kinds import thresholds_for
from search_by_image.ranking.verifier import Verifier
from search_by_image.serving.live_writes import Upload
from search_by_image.serving.service import SearchService
from search_by_image.settings import PROJECT_DIR

#: One scene of holidays_subset300: a photo, another shot of it, and a photo of another scene.
PHOTO, OTHER_SHOT, OTHER_SCENE = "100400.jpg", "100401.jpg", "120000.jpg"
#: Two shots of a beach from one spot, moments apart: the branch in front has moved.
BURST = "105500.jpg", "105501.jpg"
#: Two shots of a Venice canal from one spot, moments apart, where nothing moved that a 448 px
#: thumbnail shows: the pixels alone call them a copy.
STILL_BURST = "122900.jpg", "122901.jpg"


@pytest.fixture(scope="module")
def photos():
    folder = require_datasets("holidays_subset300") / "images"
    names = (PHOTO, OTHER_SHOT, OTHER_SCENE, *BURST, *STILL_BURST)
    return {name: Image.open(folder / name).convert("RGB") for name in names}


def edited(image: Image.Image) -> Image.Image:
    """What people do before they share a photo: crop, straighten, brighten, recompress."""
    width, height = image.size
    cropped = image.crop((width // 8, height // 10, width - width // 10, height - height // 8))
    rotated = cropped.rotate(6, resample=Image.Resampling.BICUBIC)
    brighter = ImageEnhance.Contrast(ImageEnhance.Brightness(rotated).enhance(1.25)).enhance(0.8)
    return Image.open(io.BytesIO(jpeg_bytes(brighter.resize((width * 3 // 2, height * 3 // 2)), 40)))


def as_indexed(image: Image.Image):
    """An indexed photo's keypoints, from its thumbnail as the service computes them."""
    thumbnail = Image.open(io.BytesIO(thumbnails.encode(image))).convert("RGB")
    return verification.Query.of_image(np.asarray(thumbnail)).keypoints


def query(image: Image.Image) -> verification.Query:
    return verification.Query.of_image(np.asarray(image.convert("RGB")))


def test_an_edited_or_mirrored_copy_is_a_copy_another_shot_of_the_scene_is_not(photos):
    indexed = as_indexed(photos[PHOTO])
    copy = verification.check(query(edited(photos[PHOTO])), indexed)
    mirrored = verification.check(query(ImageOps.mirror(edited(photos[PHOTO]))), indexed)
    other_shot = verification.check(query(photos[OTHER_SHOT]), indexed)
    other_scene = verification.check(query(photos[OTHER_SCENE]), indexed)
    assert copy.copy and copy.inliers >= 50, copy
    assert mirrored.copy, mirrored
    # the same scene: its keypoints match (ranked up), but the pixels are another moment's
    assert other_shot.verified and not other_shot.copy, other_shot
    assert not other_scene.verified, other_scene


@pytest.mark.parametrize("name", ["kite.jpg", "person.jpg"])
def test_the_same_bytes_or_the_photo_saved_again_are_copies_of_its_thumbnail(name):
    """A query larger than a thumbnail (800 and 640 px: fine texture) compared with the thumbnail
    made of its own file: brought to the thumbnail's scale the same way first, its pixels do not
    move, whatever the two sizes."""
    data = (PROJECT_DIR / "data" / "the_images" / name).read_bytes()
    original = Image.open(io.BytesIO(data)).convert("RGB")
    indexed = as_indexed(original)
    larger = original.resize((original.width * 3 // 2, original.height * 3 // 2), Image.Resampling.BICUBIC)
    for copy in (data, jpeg_bytes(original, 70), jpeg_bytes(larger, 85)):
        found = verification.check(query(Image.open(io.BytesIO(copy))), indexed)
        assert found.copy and found.motion < verification.COPY_MOTION / 2, found


def test_matches_are_opencvs_nearest_neighbours(photos):
    """FAISS's binary index finds the two nearest descriptors at the distances OpenCV's
    brute-force matcher does, and the same best match wherever the ratio test keeps one."""
    ours, theirs = query(photos[PHOTO]).keypoints, as_indexed(photos[OTHER_SHOT])
    distances, nearest = local_features.nearest_two(ours.descriptors, theirs.descriptors)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(ours.descriptors, theirs.descriptors, k=2)
    assert distances.tolist() == [[p[0].distance, p[1].distance] for p in pairs]
    kept = distances[:, 0] < local_features.RATIO * distances[:, 1]
    assert kept.sum() >= 20
    assert nearest[kept, 0].tolist() == [p[0].trainIdx for p, keep in zip(pairs, kept) if keep]


def test_the_mirror_is_made_once_when_results_ask_for_it_side_by_side(photos):
    made = []

    def mirror():
        made.append(threading.get_ident())
        time.sleep(0.05)
        return as_indexed(ImageOps.mirror(photos[PHOTO]))

    asked = verification.Query(query(photos[OTHER_SCENE]).keypoints, mirror)
    with ThreadPoolExecutor(4) as pool:
        mirrors = list(pool.map(lambda _: asked.mirrored(), range(8)))
    assert len(made) == 1 and all(m is mirrors[0] for m in mirrors)


@pytest.mark.parametrize("boxed", [False, True])  # the flow on the whole frame, or on the compared box
def test_a_burst_from_one_spot_aligns_like_a_copy_but_its_pixels_still_move(photos, boxed):
    first, second = (photos[name] for name in BURST)
    burst = verification.check(query(second), as_indexed(first), boxed=boxed)
    bordered = ImageOps.expand(edited(first), border=40, fill=(0, 0, 0))
    copy = verification.check(query(bordered), as_indexed(first), boxed=boxed)
    # what the correlation alone called a copy: the same spot, aligned pixels that correlate
    assert burst.inliers >= verification.COPY_INLIERS and burst.correlation >= 0.95, burst
    # but the branch in front moved against the beach: not one similarity transform
    assert burst.motion > 2 * verification.COPY_MOTION and not burst.copy, burst
    # an edited copy with a wide border: the border is not compared, nothing moves
    assert copy.copy, copy


def test_verified_results_move_up_and_the_others_keep_their_order(monkeypatch):
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    inliers = np.array([0, 3, 60, -1, 40])
    no_copy = np.zeros(5, bool)
    assert verification.reorder(scores, inliers, no_copy).tolist() == [2, 0, 1, 4, 3]
    # with checked results that failed kept below verified ones with 3x their inliers
    monkeypatch.setattr(verification, "VERIFIED_OVER_CHECKED", 3.0)
    assert verification.reorder(scores, inliers, no_copy).tolist() == [2, 4, 0, 1, 3]


def test_a_checked_result_stays_below_a_verified_one_with_three_times_its_inliers(monkeypatch):
    monkeypatch.setattr(verification, "VERIFIED_OVER_CHECKED", 3.0)
    # a hard copy's source verified with 12 inliers (not a copy) under another shot with 3
    scores = np.array([0.40, 0.30, 0.24, 0.20])
    inliers = np.array([3, 12, 5, -1])
    assert verification.reorder(scores, inliers, np.zeros(4, bool)).tolist() == [1, 0, 2, 3]
    with pytest.MonkeyPatch.context() as patch:  # its lift alone leaves it second
        patch.setattr(verification, "VERIFIED_OVER_CHECKED", None)
        assert verification.reorder(scores, inliers, np.zeros(4, bool)).tolist() == [0, 1, 2, 3]
    # 12 is not 3x 5: that one keeps its lifted order; an unchecked result is never held down
    scores = np.array([0.40, 0.30, 0.50])
    inliers = np.array([5, 12, -1])
    assert verification.reorder(scores, inliers, np.zeros(3, bool)).tolist() == [2, 0, 1]


def test_a_verified_copy_ranks_above_every_result_that_is_not_one():
    # a copy found with 39 inliers below a different shot scored 0.02 higher with 6 inliers
    scores = np.array([0.95, 0.62, 0.60, 0.58, 0.3])
    inliers = np.array([6, 90, 39, 20, 16])
    copies = np.array([False, False, True, False, True])
    # copies first (by lifted score), then the rest (lifted score), whatever their score
    assert verification.reorder(scores, inliers, copies).tolist() == [2, 4, 1, 0, 3]


def test_among_copies_the_closest_pixels_come_first_and_verified_results_can_lead_the_rest():
    # a burst passing for a copy (correlation 0.982) scored above the photo itself (0.995)
    scores = np.array([0.52, 0.50, 0.45, 0.30])
    inliers = np.array([18, 19, 6, 16])
    copies = np.array([True, True, False, False])
    correlation = np.array([0.982, 0.995, -1, 0.85])
    assert verification.reorder(scores, inliers, copies, correlation).tolist() == [1, 0, 2, 3]
    # expansion's order: a verified result stays above an unverified one its expanded score beat
    assert verification.reorder(scores, inliers, copies, correlation, verified_first=True).tolist() == [
        1,
        0,
        3,
        2,
    ]


def test_among_copies_as_close_the_one_that_moves_least_comes_first(monkeypatch):
    # a burst passing for a copy, scored higher, correlating as well to 0.01, moving more
    scores = np.array([0.67, 0.62, 0.40])
    inliers = np.array([114, 173, 30])
    copies = np.array([True, True, False])
    correlation = np.array([0.987, 0.990, 0.95])
    motion = np.array([0.22, 0.15, 0.6])
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [1, 0, 2]
    # a copy closer by more than a step still comes first, however it moves
    closer = np.array([0.999, 0.985, 0.95])
    assert verification.reorder(scores, inliers, copies, closer, motion=motion).tolist() == [0, 1, 2]
    # the motion of results that are not copies and do not align orders nothing
    apart = np.array([0.87, 0.88, 0.5])
    assert verification.reorder(scores, inliers, np.zeros(3, bool), apart, motion=motion).tolist() == [
        0,
        1,
        2,
    ]
    monkeypatch.setattr(verification, "COPIES_BY_MOTION", False)
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [0, 1, 2]


def test_a_result_aligned_but_moving_ranks_below_the_copies_and_above_the_rest(monkeypatch):
    # a detail's source whose pixels correlate 0.974 once aligned on 34 inliers but read 1.6 px
    # of motion (not a copy), under another picture checked with 0 inliers and a higher score
    scores = np.array([0.42, 0.16, 0.36, 0.30])
    inliers = np.array([0, 34, 5, 40])
    copies = np.array([False, False, False, True])
    correlation = np.array([-1, 0.974, -1, 0.99])
    motion = np.array([np.inf, 1.6, np.inf, 0.1])
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [3, 1, 0, 2]
    # pixels that do not agree once aligned lift nothing more than the inliers do
    apart = np.array([-1, 0.5, -1, 0.99])
    assert verification.reorder(scores, inliers, copies, apart, motion=motion).tolist() == [3, 0, 2, 1]
    monkeypatch.setattr(verification, "ALIGNED_FIRST", False)
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [3, 0, 2, 1]


def test_copies_within_a_step_of_the_closest_are_as_close_even_across_a_step_of_the_grid(monkeypatch):
    # an edited copy's source (0.994, moving 0.15 px) and a burst of it (0.996, 0.20 px): rounded
    # to 0.01 they fall in two steps, 0.99 and 1.00, though 0.002 apart
    scores = np.array([0.35, 0.54, 0.25])
    inliers = np.array([30, 144, 13])
    copies = np.array([True, True, False])
    correlation = np.array([0.996, 0.994, -1])
    motion = np.array([0.197, 0.151, np.inf])
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [1, 0, 2]
    monkeypatch.setattr(verification, "COPY_ORDER_BAND", False)
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [0, 1, 2]


def test_a_small_detail_of_a_photo_is_compared_over_its_own_footprint():
    """A detail showing a sixteenth of its photo: the pixels are compared cell by cell over the
    part it covers, not over the photo's grid (where it fills too few cells to say anything)."""
    rng = np.random.default_rng(0)
    grey = cv2.resize(
        rng.integers(0, 256, (72, 96), dtype=np.uint8), (384, 288), interpolation=cv2.INTER_CUBIC
    )
    inside = np.zeros(grey.shape, bool)
    inside[100:172, 150:246] = True  # 72 x 96 px of 288 x 384
    candidate = local_features.Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), grey)
    noisy = np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8)
    same = alignment.aligned_correlation(candidate, alignment.Overlap(noisy, inside))
    other = alignment.aligned_correlation(candidate, alignment.Overlap(grey[::-1].copy(), inside))
    assert same >= 0.98 and other < 0.5, (same, other)


def search(service: SearchService, image: Image.Image, k: int = 3, data: bytes | None = None) -> Answer:
    """What POST /search answers for `image` (uploaded as `data`) in the default collection."""
    taken = None if data is None else (lambda: capture_time.read(data))
    found = service.default.require().search(image.convert("RGB"), k, taken=taken)
    return Answer(found.labelled())


def upload(image: Image.Image) -> Upload:
    data = jpeg_bytes(image)
    return Upload(data, Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")


def test_a_photo_added_live_is_found_first_as_a_copy_until_deleted(demo_collection, tmp_path, photos):
    service = SearchService(writable_copy(demo_collection, tmp_path))
    service.refresh()
    collection = service.default
    (added,) = collection.add([upload(photos[PHOTO])])

    found = search(service, edited(photos[PHOTO]))
    assert found.results[0].path == added.path
    assert found.results[0].match == "copy" and found.results[0].inliers >= 15
    assert all(hit.match != "copy" for hit in found.results[1:])

    other_shot = search(service, photos[OTHER_SHOT])
    assert other_shot.results[0].path == added.path and other_shot.results[0].match == "similar"

    collection.delete(added.id)
    after = search(service, edited(photos[PHOTO]))
    assert added.path not in [hit.path for hit in after.results]
    assert all(hit.match != "copy" for hit in after.results)


def test_results_checked_side_by_side_are_checked_as_one_by_one(demo_collection, photos):
    service = SearchService(demo_collection)
    service.refresh()
    snapshot = service.default.require()
    store, verifier = snapshot.store, snapshot.verifier
    assert verifier is not None
    image = photos[OTHER_SHOT]
    (hits,) = store.search(snapshot.batcher.embed(snapshot.embedder.preprocessing(image))[None], 10)
    asked = query(image)
    reranked, checks = verifier.rerank(store, hits, lambda: asked)
    copy_score = thresholds_for(store.whitening).copy
    one_by_one = {
        image_id: verification.check(asked, verifier.of(store, image_id), score >= copy_score)
        for image_id, score in hits
    }
    assert len(reranked) == len(hits) == 10
    assert checks == [one_by_one[image_id] for image_id, _ in reranked]


def test_when_the_first_results_hold_no_copy_the_results_down_to_wide_top_are_checked(demo_collection):
    """A copy's source that the global score put past the checked results (a detail, a hard
    recompression) is checked, found and ranked first when the first results are weak; a query
    whose first results hold its copy pays for no wider check."""
    service = SearchService(demo_collection)
    service.refresh()
    snapshot = service.default.require()
    store = snapshot.store
    narrow = Verifier(snapshot.verifier.location, snapshot.verifier.max_image_pixels, top=3)
    source = PHOTOS / "kite.jpg"
    asked = query(edited(Image.open(source).convert("RGB")))
    source_id = store.ids[store.paths.index("kite.jpg")]
    others = [int(i) for i in store.ids if i != source_id]
    weak = [(i, 0.3 - 0.01 * n) for n, i in enumerate(others[:6])] + [(int(source_id), 0.1)]
    reranked, checks = narrow.rerank(store, weak, lambda: asked)
    assert reranked[0][0] == source_id and checks[0] is not None and checks[0].copy
    assert all(c is not None for c in checks)  # all 7 (under WIDE_TOP) were checked

    found_first = [(int(source_id), 0.9)] + [(i, 0.5) for i in others[:6]]
    reranked, checks = narrow.rerank(store, found_first, lambda: asked)
    assert reranked[0][0] == source_id and checks[0].copy
    assert checks[3:] == [None] * 4


def test_duplicates_group_an_edited_copy_with_its_photo_but_not_another_shot(
    demo_collection, tmp_path, photos
):
    service = SearchService(writable_copy(demo_collection, tmp_path))
    service.refresh()
    collection = service.default
    photo, copy, other_shot = collection.add(
        [upload(photos[PHOTO]), upload(edited(photos[PHOTO])), upload(photos[OTHER_SHOT])]
    )
    _, groups = collection.duplicates(None)
    grouped = [{path for _, path in group.images} for group in groups]
    assert {photo.path, copy.path} in grouped
    assert not any(other_shot.path in group for group in grouped)
    assert all(group.kind == "copies" for group in groups)


def taken(image: Image.Image, moment: str) -> Upload:
    """A photo as a camera writes it: JPEG with the moment it was taken in its EXIF."""
    data = encoded(image.convert("RGB"), "JPEG", quality=90, exif=taken_at(moment))
    return Upload(data, Image.open(io.BytesIO(data)).convert("RGB"), "JPEG")


def test_a_burst_the_pixels_cannot_tell_apart_is_another_shot_by_its_capture_times(
    demo_collection, tmp_path, photos
):
    first, second = (photos[name] for name in STILL_BURST)
    assert verification.check(query(second), as_indexed(first)).copy  # what the pixels say
    settings = writable_copy(demo_collection, tmp_path)
    service = SearchService(settings)
    service.refresh()
    collection = service.default
    frame, next_frame, edited_copy = collection.add(
        [
            taken(first, "2023:06:02 15:04:05"),
            taken(second, "2023:06:02 15:04:06"),
            taken(edited(first), "2023:06:02 15:04:05"),  # editors keep the moment
        ]
    )
    _, groups = collection.duplicates(None)
    grouped = [{path for _, path in group.images} for group in groups]
    assert {frame.path, edited_copy.path} in grouped
    assert not any(next_frame.path in group for group in grouped)

    upload = taken(second, "2023:06:02 15:04:06")
    found = {hit.path: hit.match for hit in search(service, upload.image, data=upload.data).results}
    assert found == {next_frame.path: "copy", frame.path: "similar", edited_copy.path: "similar"}
    _, similar = service.default.require().similar(frame.id, 3)  # more like this: the indexed times
    more_like_this = Answer(similar.labelled())
    assert {hit.path: hit.match for hit in more_like_this.results} == {
        next_frame.path: "similar",
        edited_copy.path: "copy",
    } | {hit.path: hit.match for hit in more_like_this.results[2:]}
    with TestClient(create_app(settings)) as client:  # the same through POST /search
        answer = client.post("/search", files={"file": ("f.jpg", upload.data, "image/jpeg")}, data={"k": 3})
    assert {hit["path"]: hit["match"] for hit in answer.json()["results"]} == found
    # the same frame stripped of its EXIF (a messaging app): the pixels decide again
    stripped = jpeg_bytes(second)
    found = {hit.path: hit.match for hit in search(service, second, data=stripped).results}
    assert found == {next_frame.path: "copy", frame.path: "copy", edited_copy.path: "copy"}


def test_cached_keypoints_read_their_pixels_again_only_for_the_pixel_checks(photos):
    full = as_indexed(photos[PHOTO])
    reads = []

    def read():
        reads.append(1)
        return full.grey

    cached = full.without_grey(read)  # what a Verifier keeps: no 98 KB grey image per thumbnail
    with pytest.raises(ValueError):
        cached.grey  # noqa: B018 - the property refuses
    copy = query(edited(photos[PHOTO]))
    expected = verification.check(copy, full)
    assert verification.check(copy, cached) == expected and expected.copy
    assert reads  # read again for the copy's alignment checks
    reads.clear()
    assert not verification.check(query(photos[OTHER_SCENE]), cached).aligned and not reads

    def deleted():
        raise OSError("the thumbnail was deleted meanwhile")

    gone = verification.check(copy, full.without_grey(deleted))
    assert gone.inliers >= verification.COPY_INLIERS and not gone.copy


@pytest.mark.parametrize("levels", [alignment.EDGE_LEVELS, alignment.FLAT_EDGE_LEVELS])
def test_texture_is_where_the_blurred_grey_has_a_gradient_over_so_many_levels(photos, levels):
    """The residual motion's textured pixels, computed in integers, are numpy's gradient test."""
    for image in photos.values():
        grey = local_features.scaled_grey(np.asarray(image))
        dy, dx = np.gradient(cv2.GaussianBlur(grey, (0, 0), alignment.BLUR_SIGMA).astype(np.float32))
        assert (alignment._textured(grey, levels) == (np.hypot(dx, dy) > levels)).all()


def test_a_flat_pictures_motion_is_measured_on_its_gentler_gradients(monkeypatch):
    """Too few pixels change by 4 levels for the usual texture: its copy's motion is measured on
    the gentler gradients (2 levels) rather than left unknown (never a copy), and a part of it
    that moves still reads as motion."""
    grey = smooth_grey(16)
    candidate = local_features.Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), grey)
    inside = np.zeros(grey.shape, bool)
    inside[40:280, 40:280] = True
    noise = np.random.default_rng(1).normal(0, 1, grey.shape)
    copy = alignment.Overlap(np.clip(grey + noise, 0, 255).astype(np.uint8), inside)
    ys, xs = np.mgrid[0:320, 0:320].astype(np.float32)
    rippled = alignment.Overlap(cv2.remap(grey, xs + 1.5 * np.sin(ys / 25), ys, cv2.INTER_LINEAR), inside)
    assert alignment.residual_motion(candidate, copy) <= verification.COPY_MOTION
    assert alignment.residual_motion(candidate, rippled) > 2 * verification.COPY_MOTION
    monkeypatch.setattr(alignment, "FLAT_EDGE_LEVELS", alignment.EDGE_LEVELS)
    assert alignment.residual_motion(candidate, copy) == float("inf")  # what the usual texture says


def flipped(descriptors: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Each descriptor with `bits` of its 256 bits flipped, at random places."""
    out = np.unpackbits(descriptors, axis=1)
    for row in out:
        row[rng.choice(out.shape[1], bits, replace=False)] ^= 1
    return np.packbits(out, axis=1)


def look_alike_detail(
    grey: np.ndarray, query_grey: np.ndarray
) -> tuple[verification.Query, local_features.Keypoints]:
    """A query and a candidate whose finer keypoints match the query's only at a looser ratio:
    each query keypoint's true match is 34 bits away, a look-alike elsewhere 40 (34 / 40 = 0.85,
    between local_features.RATIO and verification.FINER_RATIO); the thumbnail's set matches
    nothing. The query's grey is `query_grey`, the candidate's `grey` (the same frame)."""
    rng = np.random.default_rng(2)
    count = 60
    xy = rng.uniform(40, 280, (count, 2)).astype(np.float32)
    asked = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    true, alike = flipped(asked, 34, rng), flipped(asked, 40, rng)
    finer = local_features.Keypoints(
        np.concatenate([xy, rng.uniform(40, 280, (count, 2)).astype(np.float32)]),
        np.concatenate([true, alike]),
        grey,
    )
    thumb = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    candidate = local_features.Keypoints(xy, thumb, grey, finer=lambda: finer)
    return verification.Query(local_features.Keypoints(xy, asked, query_grey)), candidate


def test_a_big_photos_finer_keypoints_are_matched_again_more_loosely_and_kept_only_as_a_copy(monkeypatch):
    grey = smooth_grey(60)
    query, candidate = look_alike_detail(grey, grey)
    found = verification.check(query, candidate, try_mirror=False, finer=True)
    assert found.copy and found.inliers >= 50, found  # its pixels agree and do not move
    # another picture with the same look-alike keypoints: the looser match verifies nothing
    other_query, other = look_alike_detail(grey, smooth_grey(60, seed=3))
    assert (
        verification.check(other_query, other, try_mirror=False, finer=True).inliers
        < verification.RERANK_INLIERS
    )
    monkeypatch.setattr(verification, "FINER_RATIO", None)  # matched once, at the usual ratio
    assert not verification.check(query, candidate, try_mirror=False, finer=True).verified


def test_a_looser_finer_match_whose_pixels_agree_but_move_is_kept_as_aligned(monkeypatch):
    grey = smooth_grey(60)
    # the same picture with a gentle ripple: its pixels still correlate once aligned, but move
    ys, xs = np.mgrid[0:320, 0:320].astype(np.float32)
    ripple = cv2.remap(grey, xs + 2.5 * np.sin(ys / 20), ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    query, candidate = look_alike_detail(grey, ripple)
    found = verification.check(query, candidate, try_mirror=False, finer=True)
    assert found.aligned and not found.copy and found.inliers >= 50, found
    monkeypatch.setattr(verification, "FINER_ALIGNED", False)  # kept only as a copy
    assert not verification.check(query, candidate, try_mirror=False, finer=True).verified


def test_results_aligned_but_moving_go_by_their_motion_least_first(monkeypatch):
    # a small copy's source read at 0.30 px (not a copy), a burst beside it aligned at 0.55 px
    # with more inliers, and a result checked with few
    scores = np.array([0.50, 0.48, 0.55])
    inliers = np.array([109, 87, 5])
    copies = np.zeros(3, bool)
    correlation = np.array([0.986, 0.995, -1])
    motion = np.array([0.55, 0.30, np.inf])
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [1, 0, 2]
    monkeypatch.setattr(verification, "ALIGNED_BY_MOTION", False)
    assert verification.reorder(scores, inliers, copies, correlation, motion=motion).tolist() == [0, 1, 2]
