"""A collection's verifier (verifier.py) after query expansion: results expansion lifts into the
checked top from beyond the checked ones are checked too, a bounded few, so a copy's source it
lifts there is told a copy and ranked first rather than by its score alone."""

import dataclasses
import io

import numpy as np
import pytest
from helpers import PHOTOS, jpeg_bytes
from PIL import Image, ImageEnhance

from search_by_image.ranking import expansion, verification, verifier
from search_by_image.ranking.verifier import Verifier
from search_by_image.serving.service import SearchService

SOURCE = "kite.jpg"


def edited(image: Image.Image) -> Image.Image:
    """A copy as people share it: cropped, turned a little, brightened, recompressed."""
    width, height = image.size
    cropped = image.crop((width // 8, height // 10, width - width // 10, height - height // 8))
    brighter = ImageEnhance.Brightness(cropped.rotate(5, resample=Image.Resampling.BICUBIC)).enhance(1.2)
    return Image.open(io.BytesIO(jpeg_bytes(brighter, 50))).convert("RGB")


@pytest.fixture(scope="module")
def collection(demo_collection):
    service = SearchService(demo_collection)
    service.refresh()
    snapshot = service.default.require()
    assert snapshot.verifier is not None
    source = int(snapshot.store.ids[snapshot.store.paths.index(SOURCE)])
    others = [int(i) for i in snapshot.store.ids if i != source]
    return snapshot, source, others


def test_results_lifted_into_the_checked_top_unchecked_are_checked_a_bounded_few(collection, monkeypatch):
    snapshot, source, others = collection
    narrow = Verifier(snapshot.verifier.location, snapshot.verifier.max_image_pixels, top=4)
    asked = verification.Query.of_image(np.asarray(edited(Image.open(PHOTOS / SOURCE).convert("RGB"))))
    hits = [(others[0], 0.9), (source, 0.5), (others[1], 0.5), (others[2], 0.4), (others[3], 0.3)]
    checks = [verification.Check(3), None, None, None, None]

    late = narrow.check_late(snapshot.store, hits, checks, lambda: asked)
    assert late[0] == checks[0]  # checked before: not again
    assert late[1] is not None and late[1].copy
    assert all(c is not None for c in late[2:4]) and late[4] is None  # only the top 4

    monkeypatch.setattr(verifier, "LATE_CHECKS", 1)
    assert narrow.check_late(snapshot.store, hits, checks, lambda: asked)[2:] == [None] * 3
    checked = [verification.Check(3)] * 4 + [None]
    assert narrow.check_late(snapshot.store, hits, checked, lambda: asked) is checked  # nothing to check


def test_a_source_expansion_lifts_past_the_checked_top_is_checked_and_ranked_first(collection, monkeypatch):
    """Through the snapshot's search: the source scored under the checked top, expansion (made
    here to lift it, as it does a source whose verified neighbours resemble it) brings it in
    unchecked; the late check finds the copy and the same reorder puts it first."""
    snapshot, source, others = collection
    narrow = Verifier(snapshot.verifier.location, snapshot.verifier.max_image_pixels, top=3)
    monkeypatch.setattr(verifier, "WIDE_TOP", 0)
    searched = dataclasses.replace(snapshot, verifier=narrow, expand=True, rotations=False)
    scored = [(others[0], 0.9), (others[1], 0.85), (others[2], 0.8), (others[3], 0.7), (source, 0.6)]
    monkeypatch.setattr(searched.store, "search", lambda queries, k, allowed=None: [scored])
    real = expansion.rerank
    calls = []

    def lifting(store, query, hits, checks):
        hits, checks = real(store, query, hits, checks)
        if not calls:  # the first pass: the source lifted to 2nd, never checked
            at = [i for i, _ in hits].index(source)
            hits.insert(1, hits.pop(at))
            checks.insert(1, checks.pop(at))
        calls.append(checks)
        return hits, checks

    monkeypatch.setattr(expansion, "rerank", lifting)
    found = searched.search(edited(Image.open(PHOTOS / SOURCE).convert("RGB")), 5)
    assert calls[0][1] is None  # lifted unchecked
    assert found.hits[0][0] == source and found.checks[0] is not None and found.checks[0].copy
