"""Duplicate review through the API: the suggested keeper, keep one (trash, merge, undo), keep
all (remembered across restarts and re-indexes), the bulk action's preview, and the refusals."""

import functools
import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, jpeg_bytes, make_settings, plant_copies, writable_copy
from PIL import Image

import with_faiss
from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.index.disk import writer_lock
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE
from search_by_image.ranking import verifier
from search_by_image.ranking.duplicates import Neighbours, find_groups
from search_by_image.ranking.pair_checks import verified_copies
from search_by_image.serving import live_writes

CSV = """image,title,album,camera
chelsea.jpg,Chelsea the cat,,
copies/cat-small.jpg,,pets,phone
eagle.jpg,An eagle,birds,
copies/eagle-crop.jpg,Eagle crop,birds,dslr
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The demo photos, two planted copies (the cat at half size, the eagle cropped) and a CSV
    where the copies carry values the originals lack."""
    root = tmp_path_factory.mktemp("review")
    settings = make_settings(root)
    copy_photos(settings.images_dir)
    plant_copies(settings.images_dir)
    settings.metadata_csv.write_text(CSV)
    update_index(settings, progress=False)
    return settings


@pytest.fixture
def collection(planted, tmp_path):
    return writable_copy(planted, tmp_path)


@pytest.fixture
def admin(collection):
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin", "tests")
    return {"Authorization": f"Bearer {key}"}


URL = "/collections/default/duplicates"


def groups_of(client, **params) -> dict[str, dict]:
    """The listed groups by their sorted paths."""
    body = client.get(URL, params=params).json()
    return {",".join(sorted(i["path"] for i in g["images"])): g for g in body["groups"]}


def metadata_of(client, path: str) -> dict:
    """An image's metadata as search results give it."""
    photo = (PHOTOS / "chelsea.jpg").read_bytes()
    results = client.post("/search", files={"file": ("q.jpg", photo)}, data={"k": 20}).json()["results"]
    return next(r["metadata"] for r in results if r["path"] == path)


CAT, EAGLE = "chelsea.jpg,copies/cat-small.jpg", "copies/eagle-crop.jpg,eagle.jpg"


def test_each_group_suggests_the_largest_image_and_says_why(collection):
    with TestClient(create_app(collection)) as client:
        body = client.get(URL).json()
        groups = groups_of(client)
    assert "most pixels" in body["rule"] and set(groups) == {CAT, EAGLE}
    for group in groups.values():
        suggested = next(i for i in group["images"] if i["id"] == group["suggested"])
        assert suggested["path"] in ("chelsea.jpg", "eagle.jpg")  # the originals: more pixels
        assert all(
            suggested["width"] * suggested["height"] >= i["width"] * i["height"] for i in group["images"]
        )
        assert len(group["fingerprint"]) == 16 and all(i["bytes"] > 0 for i in group["images"])


def test_keep_one_trashes_the_rest_merges_metadata_and_undo_puts_everything_back(collection, admin):
    with TestClient(create_app(collection)) as client:
        cat = groups_of(client)[CAT]
        copy = next(i for i in cat["images"] if i["path"] == "copies/cat-small.jpg")
        assert client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}).status_code == 401
        answer = client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}, headers=admin)
        assert answer.status_code == 200, answer.text
        decision = answer.json()
        assert decision["keeper"] == "chelsea.jpg" and [t["path"] for t in decision["trashed"]] == [
            copy["path"]
        ]
        assert decision["merged"] == {"album": "pets", "camera": "phone"}  # the keeper lacked them
        assert decision["bytes_freed"] == copy["bytes"]
        assert not (collection.images_dir / "copies/cat-small.jpg").exists()
        assert set(groups_of(client)) == {EAGLE}
        kept = client.get(f"/collections/default/images/{cat['suggested']}/similar?k=20").json()
        assert "copies/cat-small.jpg" not in {r["path"] for r in kept["results"]}
        # the keeper now carries the copy's values, its own title untouched
        assert metadata_of(client, "chelsea.jpg") == {
            "title": "Chelsea the cat",
            "album": "pets",
            "camera": "phone",
        }

        undone = client.post(f"{URL}/decisions/{decision['id']}/undo", headers=admin)
        assert undone.status_code == 200, undone.text
        assert undone.json()["state"] == "undone" and undone.json()["trashed"][0]["restored_id"] == copy["id"]
        assert (collection.images_dir / "copies/cat-small.jpg").is_file()
        assert set(groups_of(client)) == {CAT, EAGLE}
        back = client.get(f"/collections/default/images/{cat['suggested']}/similar?k=20").json()
        restored = next(r for r in back["results"] if r["path"] == "copies/cat-small.jpg")
        assert restored["id"] == copy["id"] and restored["metadata"]["album"] == "pets"
        assert client.get(restored["image_url"]).status_code == 200
        assert metadata_of(client, "chelsea.jpg") == {
            "title": "Chelsea the cat",
            "album": None,
            "camera": None,
        }
        again = client.post(f"{URL}/decisions/{decision['id']}/undo", headers=admin)
        assert again.status_code == 409


def test_keep_one_with_a_chosen_keeper(collection, admin):
    with TestClient(create_app(collection)) as client:
        eagle = groups_of(client)[EAGLE]
        crop = next(i["id"] for i in eagle["images"] if i["path"] == "copies/eagle-crop.jpg")
        decision = client.post(
            f"{URL}/keep-one", json={"group": eagle["fingerprint"], "keep": crop}, headers=admin
        ).json()
        assert decision["keeper"] == "copies/eagle-crop.jpg" and decision["merged"] == {}
        assert not (collection.images_dir / "eagle.jpg").exists()


def test_not_duplicates_is_remembered_across_restarts_and_re_indexes_until_undone(collection, admin, capsys):
    with TestClient(create_app(collection)) as client:
        eagle = groups_of(client)[EAGLE]
        decision = client.post(f"{URL}/keep-all", json={"group": eagle["fingerprint"]}, headers=admin).json()
        assert decision["kind"] == "keep_all" and decision["images"] == EAGLE.split(",")
        assert set(groups_of(client)) == {CAT}
    shutil.rmtree(collection.saved_dir / "thumbnails")
    update_index(collection, rebuild=True, progress=False)
    with TestClient(create_app(collection)) as client:
        assert set(groups_of(client)) == {CAT}  # a new process, the index written again
        assert with_faiss.main(["--duplicates", "--output", str(collection.saved_dir)]) == 0
        assert "eagle" not in capsys.readouterr().out  # the command line honours it too
        listed = client.get(f"{URL}/decisions").json()["decisions"]
        assert [d["id"] for d in listed] == [decision["id"]]
        assert client.post(f"{URL}/decisions/{decision['id']}/undo", headers=admin).status_code == 200
        assert set(groups_of(client)) == {CAT, EAGLE}


def test_apply_the_suggestion_everywhere_previews_then_acts(collection, admin):
    with TestClient(create_app(collection)) as client:
        preview = client.post(f"{URL}/apply-suggestions", json={}, headers=admin).json()
        assert preview["applied"] is False and preview["groups"] == 2 and preview["images_to_trash"] == 2
        sizes = sum(
            (collection.images_dir / p).stat().st_size
            for p in ("copies/cat-small.jpg", "copies/eagle-crop.jpg")
        )
        assert preview["bytes_freed"] == sizes
        assert (collection.images_dir / "copies/cat-small.jpg").exists()  # the preview did nothing
        stale = client.post(f"{URL}/apply-suggestions", json={"confirm": "0" * 16}, headers=admin)
        assert stale.status_code == 409
        done = client.post(
            f"{URL}/apply-suggestions", json={"confirm": preview["token"]}, headers=admin
        ).json()
        assert done["applied"] is True and len(done["decisions"]) == 2
        assert groups_of(client) == {}
        assert not any((collection.images_dir / "copies").iterdir())


def test_groups_and_actions_are_scoped_by_filters(collection, admin):
    with TestClient(create_app(collection)) as client:
        birds = groups_of(client, filters='{"album": "birds"}')
        assert set(birds) == {EAGLE}
        preview = client.post(
            f"{URL}/apply-suggestions", json={"filters": {"album": "birds"}}, headers=admin
        ).json()
        assert preview["groups"] == 1 and preview["plan"][0]["group"] == birds[EAGLE]["fingerprint"]
        assert client.get(URL, params={"filters": '{"nope": 1}'}).status_code == 422


def test_stale_and_unknown_groups_are_refused_and_nothing_changes(collection, admin):
    with TestClient(create_app(collection)) as client:
        cat = groups_of(client)[CAT]
        copy = next(i["id"] for i in cat["images"] if i["path"] == "copies/cat-small.jpg")
        unknown = client.post(
            f"{URL}/keep-one", json={"group": cat["fingerprint"], "keep": 99999}, headers=admin
        )
        assert unknown.status_code == 404 and "not in duplicate group" in unknown.json()["detail"]
        assert client.post(f"{URL}/decisions/12345/undo", headers=admin).status_code == 404
        # a live delete of a member since the page was shown: the group is stale
        assert client.delete(f"/collections/default/images/{copy}", headers=admin).status_code == 200
        stale = client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}, headers=admin)
        assert stale.status_code == 409 and "reload" in stale.json()["detail"]
        assert (
            client.post(f"{URL}/keep-all", json={"group": cat["fingerprint"]}, headers=admin).status_code
            == 409
        )
        assert (collection.images_dir / "chelsea.jpg").exists()
        assert client.get(f"{URL}/decisions").json()["decisions"] == []
        bad = client.post(f"{URL}/keep-one", json={"keep": 1}, headers=admin)
        assert bad.status_code == 422


def test_a_decision_racing_an_indexer_run_is_answered_busy_and_changes_nothing(
    collection, admin, monkeypatch
):
    monkeypatch.setattr(live_writes, "WRITE_LOCK_WAIT_S", 0.2)
    with TestClient(create_app(collection)) as client:
        cat = groups_of(client)[CAT]
        with writer_lock(collection.saved_dir):  # what `with_faiss.py` holds while it runs
            busy = client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}, headers=admin)
        assert busy.status_code == 503 and "Retry-After" in busy.headers
        assert (collection.images_dir / "copies/cat-small.jpg").is_file()
        assert client.get(f"{URL}/decisions").json()["decisions"] == []
        assert (
            client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}, headers=admin).status_code
            == 200
        )


def test_collapse_copies_gives_one_result_per_photo_and_links_to_its_copies(collection):
    photo = (PHOTOS / "chelsea.jpg").read_bytes()
    with TestClient(create_app(collection)) as client:
        plain = client.post("/search", files={"file": ("cat.jpg", photo)}, data={"k": 5}).json()["results"]
        assert [r["path"] for r in plain[:2]] == ["chelsea.jpg", "copies/cat-small.jpg"]
        client.get(URL)  # the groups computed (a collapsed search also starts that by itself)
        folded = client.post(
            "/search", files={"file": ("cat.jpg", photo)}, data={"k": 5, "collapse": "copies"}
        ).json()["results"]
        assert [r["path"] for r in folded].count("copies/cat-small.jpg") == 0
        assert folded[0]["path"] == "chelsea.jpg" and folded[0]["copies"] == 1 and len(folded) == 5
        others = client.get(folded[0]["copies_url"]).json()["results"]
        assert others[0]["path"] == "copies/cat-small.jpg"
        assert [r["rank"] for r in folded] == [1, 2, 3, 4, 5] and folded[1]["copies"] == 0
        second = client.post(
            "/search", files={"file": ("cat.jpg", photo)}, data={"k": 2, "offset": 1, "collapse": "copies"}
        ).json()["results"]
        assert [r["path"] for r in second] == [r["path"] for r in folded[1:3]]
        wrong = client.post("/search", files={"file": ("cat.jpg", photo)}, data={"collapse": "all"})
        assert wrong.status_code == 422


def test_the_cli_collapses_copies_too(planted, capsys):
    where = [
        "--output",
        str(planted.saved_dir),
        "--images",
        str(planted.images_dir),
        "--csv",
        str(planted.metadata_csv),
    ]
    query = str(PHOTOS / "chelsea.jpg")
    for flags, expected in (([], 2), (["--collapse"], 1)):
        capsys.readouterr()
        assert (
            with_faiss.main(["search", "--quiet", *where, "--format", "json", "-k", "5", *flags, query]) == 0
        )
        (row,) = json.loads(capsys.readouterr().out)
        cats = [r["path"] for r in row["results"] if r["path"] in ("chelsea.jpg", "copies/cat-small.jpg")]
        assert len(cats) == expected and len(row["results"]) == 5


def count_neighbour_passes(monkeypatch) -> list[int]:
    """One entry per whole neighbour pass (`Neighbours.of`) from now on."""
    computed: list[int] = []
    real = Neighbours.of
    monkeypatch.setattr(
        Neighbours, "of", classmethod(lambda cls, store, *a, **k: computed.append(1) or real(store, *a, **k))
    )
    return computed


def test_groups_after_a_keep_one_and_its_undo_search_only_what_changed(collection, admin, monkeypatch):
    """Trashing searches nothing again, and an undo (an add) searches only the image it brings
    back: a pass over the collection per decision would make reviewing a large one crawl."""
    computed = count_neighbour_passes(monkeypatch)
    with TestClient(create_app(collection)) as client:
        cat = groups_of(client)[CAT]
        decision = client.post(f"{URL}/keep-one", json={"group": cat["fingerprint"]}, headers=admin).json()
        assert set(groups_of(client)) == {EAGLE} and len(computed) == 1
        client.post(f"{URL}/decisions/{decision['id']}/undo", headers=admin)
        assert set(groups_of(client)) == {CAT, EAGLE} and len(computed) == 1


def test_groups_after_an_add_are_those_of_a_whole_pass_and_search_only_the_added(
    collection, admin, monkeypatch
):
    """An added copy joins its original's group, an added distinct photo none, the groups equal
    those a whole pass over the new collection finds, and no whole pass ran for the adds."""
    computed = count_neighbour_passes(monkeypatch)
    dog = Image.open(PHOTOS / "dog.jpg")
    w, h = dog.size
    copy = jpeg_bytes(dog.crop((w // 10, h // 10, w * 9 // 10, h * 9 // 10)), 80)
    with TestClient(create_app(collection)) as client:
        assert set(groups_of(client)) == {CAT, EAGLE} and len(computed) == 1
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
        paths = []
        for name, photo in (("dog-crop.jpg", copy), ("noise.jpg", jpeg_bytes(noise))):
            added = client.post(
                "/collections/default/images", files=[("files", (name, photo, "image/jpeg"))], headers=admin
            )
            assert added.status_code == 201, added.text
            paths.append(added.json()["images"][0]["path"])
        incremental = groups_of(client)
        assert len(computed) == 1
        collection_served = client.app.state.service.get("default")
        store = collection_served.snapshot.store
        checker = verifier.Verifier(collection_served.location, 10**8, 10)
        neighbours = Neighbours.of(store)
        copies = verified_copies(store, neighbours, functools.partial(checker.is_copy, store))
        whole = find_groups(store, None, neighbours, copies.copies, None, copies.implied)
    assert {",".join(sorted(p for _, p in g.images)) for g in whole} == set(incremental)
    crop, noise_path = paths
    assert ",".join(sorted(["dog.jpg", crop])) in incremental
    assert not any(noise_path in key for key in incremental)
