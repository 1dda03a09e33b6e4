"""A collection's duplicates pass runs on a thread of its own: a request that would wait longer
than PASS_WAIT_S is told how far it has got (202, the page reloading itself), and the groups come
once it is done."""

import threading
import time

import pytest
from fastapi.testclient import TestClient
from helpers import planted_collection

from main import create_app
from search_by_image.errors import DuplicatesPending
from search_by_image.ranking import verifier
from search_by_image.serving import duplicate_groups


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_collection(tmp_path_factory.mktemp("pass-in-background"))


@pytest.fixture
def slow_checks(monkeypatch):
    """Each pair's check held until the test lets the pass go on."""
    go = threading.Event()
    real = verifier.Verifier.is_copy

    def held(self, store, a, b, try_mirror=True):
        go.wait(30)
        return real(self, store, a, b, try_mirror)

    monkeypatch.setattr(verifier.Verifier, "is_copy", held)
    monkeypatch.setattr(duplicate_groups, "PASS_WAIT_S", 0.2)
    return go


def test_a_long_pass_answers_its_progress_then_the_groups(planted, slow_checks):
    with TestClient(create_app(planted)) as client:
        url = "/collections/default/duplicates"
        pending = client.get(url)
        assert pending.status_code == 202 and pending.headers["Retry-After"]
        assert "Finding duplicates" in pending.json()["detail"]
        page = client.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 202
        assert 'http-equiv="refresh"' in page.text and "<progress" in page.text
        slow_checks.set()
        deadline = time.monotonic() + 60
        while (answer := client.get(url)).status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["total"] == 2


def test_the_pending_answer_says_how_far_the_pass_has_got(planted, slow_checks):
    with TestClient(create_app(planted)) as client:
        collection = client.app.state.service.get("default")
        with pytest.raises(DuplicatesPending) as pending:
            collection.duplicates(None)
        assert pending.value.status == 202
        assert pending.value.phase in ("neighbours", "pairs") and pending.value.total > 0
        slow_checks.set()
        _, groups = collection.duplicates(None, wait_s=None)  # the same pass, waited for
        assert len(groups) == 2
        started = time.monotonic()
        assert len(collection.duplicates(None)[1]) == 2 and time.monotonic() - started < 1


def test_a_pass_checked_in_worker_processes_finds_the_same_groups(planted, monkeypatch):
    import multiprocessing

    from search_by_image.ranking import pair_checks

    def groups(workers: int) -> list:
        settings = planted.model_copy(update={"duplicates_workers": workers})
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 120  # workers start in a second or two, slower when loaded
            while (answer := client.get("/collections/default/duplicates")).status_code == 202:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert answer.status_code == 200
            return sorted(sorted(i["path"] for i in g["images"]) for g in answer.json()["groups"])

    on_threads = groups(1)
    monkeypatch.setattr(pair_checks, "MIN_PAIRS", 0)  # the demo's few pairs to the workers too
    started = []
    real = pair_checks.ProcessChecks.started
    monkeypatch.setattr(pair_checks.ProcessChecks, "started", lambda *a: started.append(1) or real(*a))
    assert groups(2) == on_threads and len(on_threads) == 2
    assert started  # the pass went to the workers
    assert not multiprocessing.active_children()  # and they are gone with it
