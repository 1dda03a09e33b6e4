"""Queries searched turned a quarter each way (rotations.py): the merge is exact and penalised,
and a photo stored sideways is found first, as a copy, with the real model and a real photo."""

import io

import numpy as np
from helpers import PHOTOS, jpeg_bytes
from PIL import Image

from search_by_image.evaluation.product import Answer
from search_by_image.ranking import rotations
from search_by_image.serving.service import SearchService

PHOTO = "coffee.jpg"


def test_merged_is_the_exact_top_k_of_the_best_penalised_score_per_image():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, (3, 200))
    k = 15
    tops = [[(int(i), float(row[i])) for i in np.argsort(-row)[:k]] for row in scores]
    best = np.maximum(scores[0], scores[1:].max(axis=0) - rotations.PENALTY)
    expected = np.argsort(-best)[:k]
    found = rotations.merged(tops, k)
    assert [image_id for image_id, _ in found] == expected.tolist()
    assert np.allclose([score for _, score in found], best[expected])


def test_a_turn_counts_only_by_more_than_the_penalty_and_ties_keep_the_upright_order():
    upright = [(1, 0.8), (2, 0.7), (4, 0.7)]
    turned = [(3, 0.7 + rotations.PENALTY / 2), (2, 0.75 + rotations.PENALTY)]
    found = rotations.merged([upright, turned, []], 4)
    assert [image_id for image_id, _ in found] == [1, 2, 4, 3]
    assert np.isclose(dict(found)[2], 0.75)


def test_the_views_are_the_query_upright_then_turned_a_quarter_each_way(lite0):
    image = Image.open(PHOTOS / PHOTO).convert("RGB")  # landscape
    upright, *turned = rotations.views(image, lite0.preprocessing)
    assert upright.shape[1] == lite0.preprocessing.size > upright.shape[0]
    assert [t.shape for t in turned] == [upright.transpose(1, 0, 2).shape] * 2
    for turns, view in zip((1, 3), turned):  # np.rot90 turns counter-clockwise, as ROTATE_90
        assert np.abs(np.rot90(upright, turns).astype(int) - view).mean() < 2  # resized after


def search(service: SearchService, data: bytes, k: int = 3):
    """What POST /search answers for an upload in the default collection."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    found = service.default.require().search(image, k)
    return Answer(found.labelled())


def test_a_photo_stored_sideways_finds_its_upright_copy_first_as_a_copy(demo_collection):
    sideways = jpeg_bytes(Image.open(PHOTOS / PHOTO).convert("RGB").transpose(Image.Transpose.ROTATE_90))
    found = {}
    for on in (True, False):
        service = SearchService(demo_collection.model_copy(update={"query_rotations": on}))
        try:
            service.refresh()
            found[on] = search(service, sideways, k=len(service.default.require().store))
        finally:
            service.stop()
    first = found[True].results[0]
    assert first.path == PHOTO and first.match == "copy", first
    upright_only = next(hit for hit in found[False].results if hit.path == PHOTO)
    # the turn back finds it: its score less the penalty beats the sideways query's own
    assert first.score > upright_only.score + 0.1, (first, upright_only)
