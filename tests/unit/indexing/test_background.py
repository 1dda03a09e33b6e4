"""The service indexes in the background (SBI_INDEX_ON_START): it answers at once, /health says
what the run is doing and how far it has got, and each index is served as soon as it commits."""

from dataclasses import dataclass

from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, make_settings, wait_for

from main import create_app
from search_by_image.catalog import locations
from search_by_image.index.disk import writer_lock
from search_by_image.indexing import shards
from search_by_image.indexing.indexer import update_index
from search_by_image.indexing.report import Progress
from search_by_image.layout import KEYPOINTS_FILE


@dataclass
class RecordedProgress(Progress):
    """Progress that remembers every value the indexer gave it, in order."""

    def __setattr__(self, name, value):
        self.__dict__.setdefault("seen", []).append((name, value))
        super().__setattr__(name, value)


def test_the_indexer_reports_its_phases_and_each_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_SIZE", 4)
    copy_photos(tmp_path / "images")
    progress = RecordedProgress()
    update_index(make_settings(tmp_path), progress=False, status=progress)
    del progress.seen[:3]  # the dataclass's own defaults
    phases = [value for name, value in progress.seen if name == "phase"]
    assert phases == ["scanning", "embedding", "writing", "finished"]
    assert [value for name, value in progress.seen if name == "total"] == [13]
    assert [value for name, value in progress.seen if name == "done"] == [0, 4, 8, 12, 13]


def test_a_run_that_computes_missing_keypoints_reports_that_phase(tmp_path):
    """An index whose keypoint store is gone (built before it, a Ray run): the next run computes
    them, and /health can say so and how far it has got."""
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, ["dog.jpg", "chelsea.jpg", "coffee.jpg"])
    update_index(settings, progress=False)
    (settings.saved_dir / KEYPOINTS_FILE).unlink()
    progress = RecordedProgress()
    update_index(settings, progress=False, status=progress)
    del progress.seen[:3]
    phases = [value for name, value in progress.seen if name == "phase"]
    assert phases == ["scanning", "keypoints", "finished"]
    assert [value for name, value in progress.seen if name == "total"] == [3]
    assert [value for name, value in progress.seen if name == "done"][-1] == 3


def test_the_service_answers_while_a_first_index_builds_and_serves_it_when_done(tmp_path):
    copy_photos(tmp_path / "images")
    settings = make_settings(tmp_path, index_on_start=True, reload_seconds=0)
    # an API write holding the collection makes the run wait: /health is asked meanwhile
    with writer_lock(settings.saved_dir), TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        assert health["status"] == "indexing" and health["images"] == 0
        assert health["indexing"]["state"] == "running" and health["indexing"]["collection"] == "default"
        search = client.post("/search", files={"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes())})
        assert search.status_code == 503
    with TestClient(create_app(settings)) as client:  # the lock is free: this run goes through
        health = wait_for(client, lambda h: h["indexing"]["state"] != "running")
        assert health["indexing"]["state"] == "done" and health["indexing"]["detail"] is None
        assert health["status"] == "ok" and health["images"] == 13  # served without a restart
        search = client.post(
            "/search", files={"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes())}, data={"k": 1}
        )
        assert search.json()["results"][0]["path"] == "dog.jpg"


def test_a_collection_that_cannot_be_indexed_is_reported_and_the_others_served(tmp_path):
    copy_photos(tmp_path / "images", ["dog.jpg", "chelsea.jpg"])
    settings = make_settings(tmp_path, index_on_start=True, reload_seconds=0)
    locations.for_indexing(settings, "lost", images_dir=tmp_path / "gone")
    with TestClient(create_app(settings)) as client:
        health = wait_for(client, lambda h: h["indexing"]["state"] != "running")
    assert health["indexing"]["state"] == "failed"
    detail = health["indexing"]["detail"]  # /health is open: the reason, never the server's paths
    assert detail.startswith("lost: ") and "does not exist" in detail and "gone" not in detail
    assert health["status"] == "ok" and health["images"] == 2 and health["detail"] is None


def test_health_says_why_the_default_collection_could_not_be_indexed(tmp_path):
    settings = make_settings(tmp_path, index_on_start=True, reload_seconds=0)  # no images folder
    with TestClient(create_app(settings)) as client:
        health = wait_for(client, lambda h: h["indexing"]["state"] != "running")
    assert health["status"] == "no_index" and health["indexing"]["state"] == "failed"
    assert "images folder" in health["detail"] and "does not exist" in health["detail"]


def test_an_unwritable_folder_is_explained_with_its_owner_and_the_fix(tmp_path, monkeypatch):
    assert locations.unwritable(tmp_path / "not" / "made" / "yet") is None
    monkeypatch.setattr(locations.os, "access", lambda path, mode: False)
    reason = locations.unwritable(tmp_path)
    assert str(tmp_path) in reason and "--user" in reason and "chmod g+rwX" in reason
    assert f"uid {tmp_path.stat().st_uid}" in reason
