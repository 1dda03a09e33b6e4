"""PCA-whitening: learned on the collection when it is big enough, stored and applied with it."""

import numpy as np
import pytest

from config import Settings
from search_by_image.index import whitening as whitening_module
from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.index.whitening import (
    SHRINKAGE,
    SMALL_DIMS,
    SMALL_SHRINKAGE,
    Whitening,
    learn_if_enough,
)
from search_by_image.layout import WHITENING_FILE
from search_by_image.model.embedder import EmbedderSpec

SPEC = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))


def descriptors(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors with one shared 'bursty' direction, as real CNN descriptors have."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, SPEC.dim)).astype(np.float32)
    vectors[:, 0] += 30.0
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_whitened_vectors_are_unit_length_decorrelated_and_of_the_asked_size():
    features = descriptors(600)
    white = Whitening.learn(features, dims=64)(features)
    assert white.shape == (600, 64)
    assert np.allclose(np.linalg.norm(white, axis=1), 1.0, atol=1e-5)
    covariance = np.cov(white, rowvar=False)
    off_diagonal = covariance - np.diag(np.diag(covariance))
    assert np.abs(off_diagonal).max() < 0.2 * np.diag(covariance).mean()


def test_small_collections_or_zero_dims_are_not_whitened():
    assert learn_if_enough(descriptors(100), dims=256) is None
    assert learn_if_enough(descriptors(600), dims=0) is None
    assert learn_if_enough(descriptors(600), dims=256).dims == 256


def test_fewer_images_than_dimensions_fall_back_to_the_small_whitening():
    """A 512 x 512 covariance needs more than 511 images: 400-511 get 384-d shrunk by 1, the
    whitening whose scores the small thresholds (match_kinds) were measured on."""
    default = learn_if_enough(descriptors(600), dims=512)
    assert (default.dims, default.shrinkage, default.small) == (512, SHRINKAGE, False)
    fallback = learn_if_enough(descriptors(450), dims=512)
    assert (fallback.dims, fallback.shrinkage, fallback.small) == (SMALL_DIMS, SMALL_SHRINKAGE, True)


def test_a_folder_saved_before_the_shrinkage_was_recorded_loads_and_searches_as_before(tmp_path, monkeypatch):
    """Folders indexed with the 384-d whitening shrunk by 1 saved only its mean and projection:
    they load as that whitening (named and expanded as before) and find the same rows, same scores."""
    features = descriptors(500)
    paths = [f"{i}.jpg" for i in range(500)]
    monkeypatch.setattr(whitening_module, "SHRINKAGE", SMALL_SHRINKAGE)
    store = IndexStore.create(SPEC, features, paths, {p: (1, 1) for p in paths}, whitening_dims=384)
    with writer_lock(tmp_path):
        store.save(tmp_path)
    with open(tmp_path / WHITENING_FILE, "wb") as handle:  # as such folders hold it
        np.savez(handle, mean=store.whitening.mean, projection=store.whitening.projection)
    monkeypatch.undo()
    loaded = IndexStore.load(tmp_path)
    assert loaded.manifest.whitening_dims == 384 and loaded.index.d == 384
    assert loaded.whitening.shrinkage == SMALL_SHRINKAGE and loaded.whitening.small
    np.testing.assert_array_equal(loaded.whitening.projection, store.whitening.projection)
    queries = features[[3, 42, 400]] + 0.01
    assert loaded.search(queries, k=5) == store.search(queries, k=5)


def test_the_shrinkage_is_saved_with_the_whitening(tmp_path):
    learned = Whitening.learn(descriptors(600), dims=64)
    learned.save(tmp_path / WHITENING_FILE)
    assert Whitening.load(tmp_path / WHITENING_FILE).shrinkage == learned.shrinkage == SHRINKAGE


def test_store_learns_saves_loads_and_searches_in_whitened_space(tmp_path):
    features = descriptors(500)
    paths = [f"{i}.jpg" for i in range(500)]
    store = IndexStore.create(SPEC, features, paths, {p: (1, 1) for p in paths}, whitening_dims=128)
    assert store.manifest.whitening_dims == 128 and store.index.d == 128
    with writer_lock(tmp_path):
        store.save(tmp_path)
    loaded = IndexStore.load(tmp_path)
    assert np.asarray(loaded.features).shape == (500, SPEC.dim)  # raw descriptors on disk
    (row, score), *_ = loaded.search(features[[42]], k=3)[0]
    assert row == 42 and score == pytest.approx(1.0, abs=1e-4)

    small = IndexStore.create(
        SPEC, features[:10], paths[:10], {p: (1, 1) for p in paths[:10]}, whitening_dims=128
    )
    with writer_lock(tmp_path):
        small.save(tmp_path)
    assert not (tmp_path / WHITENING_FILE).exists()
    assert IndexStore.load(tmp_path).whitening is None


def test_weak_axes_are_shrunk_not_blown_up():
    """Learned on the collection it serves, plain whitening divides its last, noisy axes by tiny
    spreads (Holidays through the product: mAP 0.80 raw -> 0.79 whitened); shrinkage bounds the
    gain of every axis by 1 / sqrt(SHRINKAGE x mean eigenvalue), even at as many axes as images."""
    features = descriptors(420)
    whitening = Whitening.learn(features, dims=384)
    assert whitening.dims == 384
    eigen = np.linalg.svd(features - features.mean(axis=0), compute_uv=False) ** 2 / len(features)
    gains = np.linalg.norm(whitening.projection, axis=0)
    assert gains.max() <= 1.0001 / np.sqrt(SHRINKAGE * eigen.mean())
    assert gains[0] < gains[-1]  # strong axes are still damped more than weak ones
