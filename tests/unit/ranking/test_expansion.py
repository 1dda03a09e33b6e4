"""Query expansion (expansion.py) with real weights on real Holidays photos indexed like a user:
the query's verified results lend it their descriptors and the scene's other shots come up, while
the verified results, and a copy's source, keep their place."""

import dataclasses
import io

import numpy as np
import pytest
from helpers import jpeg_bytes, require_datasets
from PIL import Image

from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import ProductSearch, index_like_a_user
from search_by_image.index.whitening import SHRINKAGE, SMALL_SHRINKAGE, Whitening
from search_by_image.ranking import expansion, verification
from search_by_image.serving.snapshot import Snapshot
from search_by_image.settings import PROJECT_DIR

#: The first 400 photos of holidays_subset300 (enough to learn whitening, as the indexer does)
#: and scene 1260, whose second shot its query alone ranks past 30 (3rd with expansion).
PHOTOS, SCENE = 400, "1260"
#: Queries whose scene's other shots come up, and a photo whose scene has many verified shots.
QUERIES = ["104000.jpg", "106600.jpg", "126000.jpg"]
COPIED = "104002.jpg"


@pytest.fixture(scope="module")
def holidays(tmp_path_factory):
    dataset = require_datasets("holidays_subset300")
    truth = GroundTruth.read(dataset)
    files = truth.files[:PHOTOS] + [f for f in truth.files[PHOTOS:] if f.startswith(SCENE)]
    settings = index_like_a_user({f: dataset / "images" / f for f in files}, tmp_path_factory.mktemp("h"))
    with ProductSearch(settings) as search:
        snapshot = search.collection.require()
        assert snapshot.expand and snapshot.store.whitening is not None
        # upright queries only: the turned ones (rotations.py) already rank scene 1260's shots
        # 2nd and 3rd; what is measured here is expansion's own lift
        yield (
            dataset / "images",
            dict(zip(truth.files, truth.groups)),
            dataclasses.replace(snapshot, rotations=False),
        )


def ranked(snapshot: Snapshot, image: Image.Image, k: int = 30):
    """Paths of the top k, and those verified, as POST /search ranks them."""
    found = snapshot.search(image.convert("RGB"), k)
    paths = [snapshot.store.path_of(image_id) for image_id, _ in found.hits]
    verified = [path for path, check in zip(paths, found.checks) if check is not None and check.verified]
    return paths, verified


def came_up(before: list[str], after: list[str], name: str, group_of: dict) -> bool:
    """Whether the other shots of `name`'s scene rank higher in `after` than in `before`: each
    at least as high, and one higher or newly in."""
    scene = [
        [r for r, p in enumerate(paths) if p != name and group_of[p] == group_of[name]]
        for paths in (before, after)
    ]
    return (
        scene[1] != scene[0] and len(scene[1]) >= len(scene[0]) and all(a <= b for a, b in zip(*scene[::-1]))
    )


def test_the_scenes_other_shots_come_up_and_verified_results_keep_their_order(holidays):
    folder, group_of, snapshot = holidays
    plain = dataclasses.replace(snapshot, expand=False)
    for name in QUERIES:
        image = Image.open(folder / name)
        (before, verified_before), (after, verified_after) = ranked(plain, image), ranked(snapshot, image)
        assert came_up(before, after, name, group_of), (name, before, after)
        assert verified_after == verified_before and len(verified_after) >= 2, name
        assert after[0] == before[0] == name


def test_more_like_this_expands_too(holidays):
    _, group_of, snapshot = holidays
    image_id = snapshot.store.id_of(QUERIES[-1])
    (before, after) = (
        [snapshot.store.path_of(i) for i, _ in s.similar(image_id, 30)[1].hits]
        for s in (dataclasses.replace(snapshot, expand=False), snapshot)
    )
    assert came_up(before, after, QUERIES[-1], group_of), (before, after)
    assert QUERIES[-1] not in after


def test_an_edited_copys_source_stays_first_above_the_other_shots_of_its_scene(holidays):
    folder, group_of, snapshot = holidays
    photo = Image.open(folder / COPIED).convert("RGB")
    width, height = photo.size
    copy = Image.open(io.BytesIO(jpeg_bytes(photo.crop((width // 10, 0, width, height * 9 // 10)), 40)))
    paths, verified = ranked(snapshot, copy)
    assert paths[0] == COPIED
    assert sum(group_of[p] == group_of[COPIED] for p in verified) >= 3, verified


def test_a_query_with_no_verified_result_is_ranked_as_before(holidays):
    _, _, snapshot = holidays
    outside = Image.open(PROJECT_DIR / "data" / "the_images" / "dog.jpg")
    plain = dataclasses.replace(snapshot, expand=False)
    found, before = snapshot.search(outside.convert("RGB"), 10), plain.search(outside.convert("RGB"), 10)
    assert not any(check is not None and check.verified for check in found.checks)
    assert found.hits == before.hits


def test_the_expanded_query_leans_towards_its_heavier_members():
    query = np.array([1.0, 0.0, 0.0], np.float32)
    members = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    result = expansion.expanded(query, members, np.array([1.0, 0.25]))
    assert np.isclose(np.linalg.norm(result), 1.0)
    assert result[0] == pytest.approx(result[1]) and result[2] == pytest.approx(result[0] / 4)


def test_the_query_weighs_its_whitenings_weight_beside_its_members():
    query = np.array([1.0, 0.0], np.float32)
    result = expansion.expanded(query, np.array([[0.0, 1.0]], np.float32), np.array([1.0]), 2.0)
    assert result[0] == pytest.approx(2 * result[1])
    projection = np.eye(4, dtype=np.float32)
    default = Whitening(np.zeros(4, np.float32), projection, shrinkage=SHRINKAGE)
    small = Whitening(np.zeros(4, np.float32), projection, shrinkage=SMALL_SHRINKAGE)
    assert expansion.query_weight(default) == expansion.QUERY_WEIGHT == 1.5
    # raw descriptors and the 384-d whitening (folders saved before) expand as they always did
    assert expansion.query_weight(small) == expansion.query_weight(None) == 1.0


class Vectors:
    """A store's searchable descriptors and whitening (expansion.rerank's only use of it), unit
    rows by id, not whitened."""

    whitening = None

    def __init__(self, rows: np.ndarray):
        self.rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def searchable_vectors(self, ids):
        return self.rows[list(ids)]

    def searchable(self, query):
        return query


def test_a_verified_source_keeps_its_place_above_another_shot_the_expanded_query_favours(monkeypatch):
    # 0: the query's source, verified (19 inliers) but not a copy by its pixels; 1: another
    # shot of its scene, checked (0 inliers), whose descriptor is the source's; 2, 3: unchecked
    rows = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.05], [0.0, 0.0, 1.0], [0.2, 1.0, 0.1]])
    query = np.array([1.0, 0.0, 0.0], np.float32)
    hits = [(0, 0.40), (1, 0.46), (2, 0.30), (3, 0.10)]
    checks = [verification.Check(19), verification.Check(0), None, None]
    store = Vectors(rows)
    ranked, _ = expansion.rerank(store, query, hits, checks)
    assert [i for i, _ in ranked] == [0, 1, 3, 2]  # the unverified ones ranked again below it
    monkeypatch.setattr(expansion, "VERIFIED_PLACES", False)
    ranked, _ = expansion.rerank(store, query, hits, checks)
    assert [i for i, _ in ranked][:2] == [1, 0]


def test_a_copy_verified_late_leads_every_result_that_is_not_one():
    # 0: unverified, scored highest; 1: verified, not a copy; 2: a copy checked late (expansion
    # lifted it into the checked top), then placed last by the order before its check
    rows = np.array([[0.0, 0.0, 1.0], [1.0, 0.2, 0.0], [1.0, 0.0, 0.1]])
    query = np.array([1.0, 0.0, 0.0], np.float32)
    hits = [(0, 0.50), (1, 0.40), (2, 0.20)]
    copy = verification.Check(60, 0.99, 0.1)
    checks = [verification.Check(2), verification.Check(20), copy]
    ranked, kept = expansion.rerank(Vectors(rows), query, hits, checks)
    assert [i for i, _ in ranked][0] == 2 and kept[0] is copy
