"""Shards: a killed run resumes from its finished shards, and the Ray engine builds the same index
as the local one."""

import numpy as np
import pytest
from helpers import PHOTOS, copy_photos, make_settings

from search_by_image.index.store import IndexStore
from search_by_image.indexing import shards
from search_by_image.indexing.engines import RayEngine
from search_by_image.indexing.indexer import update_index
from search_by_image.indexing.shards import ShardFiles, ShardResult
from search_by_image.layout import SHARDS_DIR

NINE = sorted(p.name for p in PHOTOS.iterdir())[:9]


def test_a_shard_survives_the_trip_through_bytes():
    result = ShardResult(
        3,
        ["a.jpg", "b/c.jpg"],
        np.arange(6, dtype=np.float32).reshape(2, 3),
        [("bad.jpg", "not a recognised image format")],
    )
    again = ShardResult.from_bytes(result.to_bytes())
    assert (again.number, again.paths, again.skipped) == (3, result.paths, result.skipped)
    assert np.array_equal(again.features, result.features)


def test_an_interrupted_run_resumes_from_its_finished_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_SIZE", 3)
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, NINE)
    real_write, written = ShardFiles.write, []

    def crash_after_two(self, result):
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        written.append(result.number)
        real_write(self, result)

    monkeypatch.setattr(ShardFiles, "write", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        update_index(settings, progress=False)
    monkeypatch.setattr(ShardFiles, "write", real_write)
    assert written == [0, 1] and not (settings.saved_dir / "manifest.json").exists()

    report = update_index(settings, progress=False)
    assert report.resumed == 6 and report.total == 9
    assert not (settings.saved_dir / SHARDS_DIR).exists()  # cleaned up after the commit
    resumed = IndexStore.load(settings.saved_dir)
    fresh_settings = make_settings(tmp_path / "fresh")
    copy_photos(fresh_settings.images_dir, NINE)
    update_index(fresh_settings, progress=False)
    fresh = IndexStore.load(fresh_settings.saved_dir)
    assert resumed.paths == fresh.paths and resumed.ids.tolist() == fresh.ids.tolist()
    assert np.allclose(resumed.features, fresh.features, atol=1e-5)


def test_other_options_or_files_start_the_shards_afresh(tmp_path):
    settings = make_settings(tmp_path)
    stale = settings.saved_dir / SHARDS_DIR / "0123456789abcdef"
    stale.mkdir(parents=True)
    (stale / "00000.npz").write_bytes(b"from another run")
    copy_photos(settings.images_dir, NINE[:2])
    assert update_index(settings, progress=False).resumed == 0
    assert len(IndexStore.load(settings.saved_dir)) == 2


def test_the_ray_engine_builds_the_same_index_as_the_local_one(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr(shards, "SHARD_SIZE", 3)
    local, distributed = make_settings(tmp_path / "local"), make_settings(tmp_path / "ray")
    for settings in (local, distributed):
        copy_photos(settings.images_dir, NINE)
    update_index(local, progress=False)
    report = update_index(distributed, progress=False, engine=RayEngine(workers=2))
    assert report.embedded == 9
    a, b = IndexStore.load(local.saved_dir), IndexStore.load(distributed.saved_dir)
    assert a.paths == b.paths and a.ids.tolist() == b.ids.tolist()
    assert np.allclose(a.features, b.features, atol=1e-4)
    # the local Ray's workers write the grid thumbnails while indexing, like the local engine
    made = [sorted(p.name for p in (s.saved_dir / "thumbnails").rglob("*.jpg")) for s in (local, distributed)]
    assert len(made[0]) == 9 and made[1] == made[0]
