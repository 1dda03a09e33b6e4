"""Near-duplicate groups: a planted copy is found, distinct photos are not, from the CLI, the API
and the page."""

import functools
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import planted_collection

import with_faiss
from main import create_app
from search_by_image.catalog import locations
from search_by_image.index.live_store import LiveStore
from search_by_image.index.store import IndexStore
from search_by_image.ranking import verifier
from search_by_image.ranking.duplicates import Neighbours, find_groups
from search_by_image.ranking.match_kinds import RAW
from search_by_image.ranking.pair_checks import verified_copies
from search_by_image.serving.service import SearchService


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The demo photos plus two planted copies: a half-size re-encode of the cat, and the eagle
    cropped by 8% on each side."""
    return planted_collection(tmp_path_factory.mktemp("duplicates"))


def test_planted_copies_are_grouped_with_their_originals_and_nothing_else(planted):
    groups = find_groups(IndexStore.load(planted.saved_dir))
    found = sorted(sorted(p for _, p in g.images) for g in groups)
    assert found == [["chelsea.jpg", "copies/cat-small.jpg"], ["copies/eagle-crop.jpg", "eagle.jpg"]]
    assert all(RAW.copy < g.weakest <= g.best <= 1.0 for g in groups)
    assert {g.kind for g in groups} == {"copies"}


def test_groups_joined_by_weaker_links_say_they_are_similar_not_copies(planted):
    """Below the copy threshold (the default one), a group is reported as similar shots."""
    groups = find_groups(IndexStore.load(planted.saved_dir), threshold=0.5)
    kinds = {g.kind for g in groups}
    assert kinds == {"copies", "similar"}
    assert all((g.kind == "copies") == (g.weakest >= RAW.copy) for g in groups)


def test_the_most_similar_distinct_photos_are_not_duplicates(planted):
    store = IndexStore.load(planted.saved_dir)
    horses, person = (store.features[store.row_of_path(p)] for p in ("horses.jpg", "person.jpg"))
    assert float(horses @ person) > 0.5  # the closest pair of different photos in the demo
    grouped = {p for g in find_groups(store) for _, p in g.images}
    assert not grouped & {"horses.jpg", "person.jpg"}


def test_the_cli_lists_groups_as_csv_or_json(planted, capsys):
    def run(*extra):  # `python with_faiss.py --duplicates ...`, in this process
        assert with_faiss.main(["--duplicates", "--output", str(planted.saved_dir), *extra]) == 0
        return capsys.readouterr().out

    rows = run().splitlines()
    assert rows[0] == "group,kind,id,path,best,weakest" and len(rows) == 5
    groups = json.loads(run("--format", "json", "--threshold", "0.5"))
    assert len(groups) > 2 and {"group", "kind", "best", "weakest", "images"} <= set(groups[0])


def test_the_api_and_the_page_show_the_groups(planted):
    with TestClient(create_app(planted)) as client:
        body = client.get("/collections/default/duplicates").json()
        assert body["threshold"] == RAW.copy and len(body["groups"]) == 2
        image = body["groups"][0]["images"][0]
        assert client.get(image["image_url"]).status_code == 200
        assert client.get("/collections/default/duplicates?threshold=2").status_code == 422
        page = client.get("/collections/default/duplicates", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "2 groups, 4 images, among 15" in page.text
        assert "copies/cat-small.jpg" in page.text and "copies</strong>" in page.text
        assert {g["kind"] for g in body["groups"]} == {"copies"}


def test_groups_come_from_a_neighbour_list_computed_once_per_generation(planted, monkeypatch):
    """Any threshold is answered from the stored neighbour list: no scan of the collection per
    request (a range search at 0.0001 took 13-23 s on 4,000 images); pages of groups; counted by
    the rate limiter like a search."""
    computed = []
    real = Neighbours.of
    monkeypatch.setattr(
        Neighbours, "of", classmethod(lambda cls, store, *a, **k: computed.append(1) or real(store, *a, **k))
    )
    settings = planted.model_copy(update={"rate_limit": "12/minute"})
    with TestClient(create_app(settings)) as client:
        answers = [
            client.get(f"/collections/default/duplicates?threshold={t}").json()
            for t in (0.0001, 0.3, 0.5, 0.85, 0.0001)
        ]
        assert len(computed) == 1
        lowest = answers[0]
        assert lowest["total"] == 1 and lowest["images_in_groups"] == 15  # everything links up
        assert answers[3]["total"] == 2 and answers[4] == lowest
        page = client.get("/collections/default/duplicates?offset=1&limit=1").json()
        assert page["total"] == 2 and page["offset"] == 1 and len(page["groups"]) == 1
        assert page["groups"][0]["images"] == answers[3]["groups"][1]["images"]
        html = client.get("/collections/default/duplicates?limit=1", headers={"Accept": "text/html"})
        assert "Next groups" in html.text and "groups 1–1 shown" in html.text
        statuses = [client.get("/collections/default/duplicates").status_code for _ in range(8)]
        assert statuses[-1] == 429  # 12 per minute, like searches


def test_the_page_s_links_never_come_from_the_host_header(planted):
    with TestClient(create_app(planted)) as client:
        html = client.get(
            "/collections/default/duplicates?limit=1&offset=1",
            headers={"Accept": "text/html", "Host": "evil.example", "X-Forwarded-Host": "evil.example"},
        ).text
    assert "evil.example" not in html
    links = html.replace("&amp;", "&")
    assert '<a href="?offset=0&limit=1" rel="prev">' in links


def test_neighbour_links_give_the_same_groups_as_every_pair(planted):
    """With fewer images than NEIGHBOURS every pair is stored: the groups equal those of an
    exhaustive comparison, at any threshold."""
    store = IndexStore.load(planted.saved_dir)
    vectors = store.searchable(np.asarray(store.features))
    similarity = vectors @ vectors.T
    for threshold in (0.3, 0.5, 0.85):
        pairs = {
            (int(store.ids[a]), int(store.ids[b]))
            for a, b in zip(*np.nonzero(similarity > threshold))
            if a < b
        }
        linked = {(a, b) for a, b, _ in Neighbours.of(store).links(threshold)}
        assert {tuple(sorted(p)) for p in linked} == {tuple(sorted(p)) for p in pairs}


def test_links_add_each_images_nearest_whatever_their_score():
    neighbours = Neighbours(
        "g",
        ids=np.array([1, 2, 3]),
        found=np.array([[2, 3], [1, 3], [1, -1]]),
        scores=np.array([[0.2, 0.1], [0.2, 0.05], [0.1, -np.inf]], np.float32),
    )
    assert sorted(neighbours.links(0.15)) == [(1, 2, pytest.approx(0.2))]
    nearest = sorted((a, b) for a, b, _ in neighbours.links(0.15, nearest=1))
    assert nearest == [(1, 2), (1, 3)]


def test_pairs_checked_side_by_side_are_the_pairs_checked_one_by_one(planted):
    service = SearchService(planted)
    service.refresh()
    snapshot = service.default.require()
    assert snapshot.verifier is not None
    neighbours = Neighbours.of(snapshot.store)
    is_copy = functools.partial(snapshot.verifier.is_copy, snapshot.store)
    one_by_one = verified_copies(snapshot.store, neighbours, is_copy, threads=1)
    assert verified_copies(snapshot.store, neighbours, is_copy, threads=4).copies == one_by_one.copies
    assert len(one_by_one.copies) == 2  # the two planted copies


def test_a_pass_reads_each_images_keypoints_once_and_checks_every_pair(planted):
    """Held for the pass, an image's keypoints (stored at indexing, or extracted) serve all its
    pairs (a cache of one would read them again for nearly every pair), and the pairs found are
    the same; read ahead in batches (`prefetch`), the same pairs again."""
    store = LiveStore(IndexStore.load(planted.saved_dir))
    location = locations.find(planted, locations.DEFAULT)
    neighbours = Neighbours.of(store)
    reads: list[int] = []

    def pass_with(holding: bool, prefetch: bool = False) -> tuple[dict, int]:
        reads.clear()
        checker = verifier.Verifier(location, 10**8, 10, capacity=1)
        stored, extracted = checker.images.stored, checker.images.extracted
        checker.images.stored = lambda images: reads.extend([1] * len(images)) or stored(images)  # type: ignore[method-assign]
        checker.images.extracted = lambda *args: reads.append(1) or extracted(*args)  # type: ignore[method-assign]
        ahead = functools.partial(checker.preload, store) if prefetch else None
        with checker.holding(len(store) if holding else 0):
            is_copy = functools.partial(checker.is_copy, store)
            found = verified_copies(store, neighbours, is_copy, threads=1, prefetch=ahead).copies
        assert len(checker._cached) <= 1  # back to its size after the pass
        return found, len(reads)

    (held, once), (unheld, again) = pass_with(True), pass_with(False)
    assert held == unheld and len(held) == 2
    assert once >= len(store) and again > once  # each image once, plus mirror images tried
    ahead, _ = pass_with(True, prefetch=True)
    assert ahead == held
