"""The service answers as soon as it starts and loads its indexes in the background (the default,
SBI_LOAD_IN_BACKGROUND): /health says "loading" and how far it has got, a search meanwhile gets a
503 with Retry-After, and the same search succeeds once the collection is loaded."""

import threading
import time

from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, make_settings, writable_copy

from main import create_app
from search_by_image.serving.collection import Collection


def held_loading(monkeypatch) -> threading.Event:
    """Collections wait for the returned event before their first load (a large index on a slow
    disk); later refreshes go straight through."""
    release = threading.Event()
    load = Collection._refresh

    def slow(self):
        if self.loading:
            assert release.wait(60)
        return load(self)

    monkeypatch.setattr(Collection, "_refresh", slow)
    return release


def search(client: TestClient, **form):
    return client.post("/search", files={"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes())}, data=form)


def test_health_answers_while_loading_and_searches_are_told_to_retry(demo_collection, tmp_path, monkeypatch):
    settings = writable_copy(demo_collection, tmp_path, load_in_background=True, reload_seconds=0)
    release = held_loading(monkeypatch)
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "loading" and body["images"] == 0
        assert body["loading"] == {"collection": "default", "done": 0, "total": 1}
        assert body["collections"][0]["status"] == "loading"

        refused = search(client)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert "loading" in refused.json()["detail"]
        assert client.get("/collections/default/images/0/similar").status_code == 503
        assert client.get("/images/dog.jpg").status_code == 503

        release.set()
        deadline = time.monotonic() + 60
        while (body := client.get("/health").json())["status"] != "ok":
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
        assert body["images"] == 13 and body["loading"] is None
        found = search(client)
        assert found.status_code == 200
        assert found.json()["results"][0]["path"] == "dog.jpg"


def test_a_collection_without_an_index_is_reported_once_loading_ends(tmp_path):
    copy_photos(tmp_path / "images", ["dog.jpg"])
    settings = make_settings(tmp_path, load_in_background=True, reload_seconds=0)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while (body := client.get("/health").json())["status"] == "loading":
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
        assert body["status"] == "no_index" and "with_faiss.py" in body["detail"]
        refused = search(client)
        assert refused.status_code == 503 and "Retry-After" not in refused.headers


def test_stopping_while_loading_does_not_wait_for_the_load_to_start_the_watchers(
    demo_collection, tmp_path, monkeypatch
):
    settings = writable_copy(demo_collection, tmp_path, load_in_background=True, index_on_start=True)
    release = held_loading(monkeypatch)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/health").json()["status"] == "loading"
        service = app.state.service
        threading.Timer(0.2, release.set).start()
    # stopped while loading: neither the reload watcher nor the indexer was started afterwards
    assert service.indexer is None and service._watcher is None
