"""Collections over HTTP (TestClient): listing, filters inside the search, live adds and deletes."""

import contextlib
import fcntl
import io
import json
import os
import shutil
from pathlib import PurePosixPath

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, dng_bytes, encoded, jpeg_bytes, make_settings
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.catalog import locations
from search_by_image.index.disk import COMMIT_ORDER
from search_by_image.index.live_store import load_live
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE, LOCK_FILE, PREVIOUS_DIR

#: 5 of the 13 demo photos; the cat's nearest neighbours are other animals, not these.
NOT_ANIMALS = ["coffee.jpg", "hubble_deep_field.jpg", "retina.jpg", "rocket.jpg", "scream.jpg"]


@pytest.fixture(scope="module")
def settings(demo_collection, tmp_path_factory):
    """A writable copy of the demo collection (index included) plus a named `pets` collection."""
    root = tmp_path_factory.mktemp("collections")
    shutil.copytree(demo_collection.images_dir, root / "images")
    shutil.copy2(demo_collection.metadata_csv, root / "data.csv")
    shutil.copytree(demo_collection.saved_dir, root / "saved")
    settings = demo_collection.model_copy(
        update={
            "images_dir": root / "images",
            "metadata_csv": root / "data.csv",
            "saved_dir": root / "saved",
            "reload_seconds": 0,
        }
    )
    copy_photos(root / "pets", ["chelsea.jpg", "dog.jpg", "horses.jpg"])
    (root / "pets.csv").write_text("file,name,age\nchelsea.jpg,Chelsea,4\ndog.jpg,Rex,11\nhorses.jpg,,7\n")
    pets = locations.for_indexing(settings, "pets", root / "pets", root / "pets.csv")
    update_index(settings, pets, progress=False)
    return settings


@pytest.fixture(scope="module")
def client(settings):
    """A client holding an admin key (writes always need one)."""
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin", "tests")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def search(client, photo: str, **form):
    data = jpeg_bytes(Image.open(PHOTOS / photo))
    return client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data=form)


def test_collections_are_listed_with_their_sizes(client):
    listed = {c["name"]: c["images"] for c in client.get("/collections").json()["collections"]}
    assert listed == {"default": 13, "pets": 3}
    assert client.get("/").json()["collections"] == ["default", "pets"]


def test_a_collection_describes_its_filterable_columns(client):
    columns = {c["name"]: c for c in client.get("/collections/pets").json()["columns"]}
    assert columns["age"]["kind"] == "number" and (columns["age"]["min"], columns["age"]["max"]) == (4, 11)
    assert columns["name"]["values"] == ["Chelsea", "Rex"]


@pytest.mark.parametrize(("name", "in_url"), [("nope", "nope"), ("..", "%2E%2E"), ("a.b", "a.b")])
def test_an_unknown_collection_is_a_404_with_a_reason(client, name, in_url):
    response = search(client, "chelsea.jpg", collection=name)
    assert response.status_code == 404
    assert "collection" in response.json()["detail"]
    assert client.get(f"/collections/{in_url}").status_code == 404


def test_a_named_collection_is_searched_on_its_own(client):
    body = search(client, "dog.jpg", collection="pets", k=10).json()
    assert body["collection"] == "pets" and [h["path"] for h in body["results"]][0] == "dog.jpg"
    assert len(body["results"]) == 3 and body["results"][0]["metadata"]["name"] == "Rex"
    image = client.get(body["results"][0]["image_url"])
    assert image.status_code == 200 and "collection=pets" in body["results"][0]["image_url"]


def test_a_filtered_search_still_returns_k_results(client):
    unfiltered = [h["path"] for h in search(client, "chelsea.jpg", k=5).json()["results"]]
    assert len(set(unfiltered) & set(NOT_ANIMALS)) < 5  # cutting the top 5 afterwards would fall short
    filters = json.dumps({"category": ["food", "space", "art", "medical"]})
    body = search(client, "chelsea.jpg", k=5, filters=filters).json()
    assert sorted(h["path"] for h in body["results"]) == NOT_ANIMALS
    assert body["matched"] == 5


def test_range_filters_on_a_number_column(client):
    body = search(client, "chelsea.jpg", collection="pets", filters='{"age": {"gte": 5}}').json()
    assert sorted(h["path"] for h in body["results"]) == ["dog.jpg", "horses.jpg"]
    assert body["matched"] == 2


@pytest.mark.parametrize(
    ("filters", "column", "words"),
    [
        ('{"colour": "red"}', "colour", "unknown column"),
        ('{"age": "old"}', "age", "holds numbers"),
        ('{"name": {"gt": 1}}', "name", "ranges need a number or date column"),
        ("not json", None, "JSON object"),
    ],
)
def test_bad_filters_are_a_422_naming_the_problem(client, filters, column, words):
    response = search(client, "chelsea.jpg", collection="pets", filters=filters)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert words in error["msg"]
    assert error["loc"][:2] == ["body", "filters"] and (column is None or error["loc"][2] == column)


def new_photo() -> bytes:
    """A photo that is not in the collection: the left half of the astronaut, mirrored."""
    image = Image.open(PHOTOS / "astronaut.jpg")
    return jpeg_bytes(image.crop((0, 0, image.width // 2, image.height)).transpose(Image.FLIP_LEFT_RIGHT))


def test_add_search_then_delete_an_image_persists_on_disk(client, settings):
    data = new_photo()
    before = load_live(settings.saved_dir)[0]  # other tests of this module add and remove images
    added = client.post(
        "/collections/default/images",
        files=[("files", ("new.jpg", data, "image/jpeg"))],
        data={"metadata": '{"title": "Half an astronaut", "category": "people"}'},
    )
    assert added.status_code == 201, added.text
    (image,) = added.json()["images"]
    assert (
        image["created"] and image["id"] >= before.manifest.next_id and image["path"].startswith("uploads/")
    )
    assert (settings.images_dir / image["path"]).is_file()

    again = client.post("/collections/default/images", files=[("files", ("same.jpg", data, "image/jpeg"))])
    assert again.json()["images"][0] == {**image, "created": False}  # same content, same image

    top = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": 1}).json()
    assert top["results"][0]["id"] == image["id"]
    assert top["results"][0]["metadata"]["title"] == "Half an astronaut"
    assert client.get(image["image_url"]).status_code == 200
    on_disk = load_live(settings.saved_dir)[0]
    assert on_disk.id_of(image["path"]) is not None and len(on_disk) == len(before) + 1

    deleted = client.delete(f"/collections/default/images/{image['id']}")
    assert deleted.status_code == 200 and deleted.json()["path"] == image["path"]
    assert not (settings.images_dir / image["path"]).exists()
    assert (settings.saved_dir / "trash").is_dir() and deleted.json()["trashed_to"]
    assert image["path"] not in client.get("/collections/default/metadata.csv").text  # row to the trash
    assert "Half an astronaut" in next((settings.saved_dir / "trash").glob("*.json")).read_text()
    after = client.post("/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": 20}).json()
    assert image["id"] not in [h["id"] for h in after["results"]]
    assert len(load_live(settings.saved_dir)[0]) == len(before)
    assert client.delete(f"/collections/default/images/{image['id']}").status_code == 404


def test_adds_with_one_metadata_row_per_file(client, settings):
    photo = Image.open(PHOTOS / "chelsea.jpg")
    files = [
        ("files", (f"{i}.jpg", jpeg_bytes(photo.rotate(90 * i, expand=True)), "image/jpeg")) for i in (1, 2)
    ]
    rows = json.dumps([{"name": "Sideways", "age": 4}, {"name": "Upside down", "age": 4}])
    before = client.get("/collections/pets").json()["images"]
    added = client.post("/collections/pets/images", files=files, data={"metadata": rows})
    assert added.status_code == 201, added.text
    ids = [i["id"] for i in added.json()["images"]]
    try:
        assert ids[0] >= 3 and ids[1] == ids[0] + 1  # new ids, in the order of the files
        info = client.get("/collections/pets").json()
        assert (
            info["images"] == before + 2
            and "Sideways" in next(c for c in info["columns"] if c["name"] == "name")["values"]
        )
        mismatch = client.post("/collections/pets/images", files=files[:1], data={"metadata": rows})
        assert mismatch.status_code == 422 and "2 metadata rows for 1 files" in mismatch.text
    finally:  # the other tests of this module see the pets as the fixture made them
        for image_id in ids:
            assert client.delete(f"/collections/pets/images/{image_id}").status_code == 200


@pytest.mark.parametrize(
    ("files", "data", "status", "words"),
    [
        (
            [
                ("files", ("a.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")),
                ("files", ("a.txt", b"hello", "text/plain")),
            ],
            {},
            415,
            "file 2 (a.txt): cannot use this upload",
        ),
        ([("files", ("a.jpg", b"", "image/jpeg"))], {}, 400, "empty"),
        ([("file", ("a.jpg", b"x", "image/jpeg"))], {}, 422, "files"),
        (
            [("files", ("a.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg"))],
            {"metadata": "[1"},
            422,
            "metadata must be",
        ),
        (
            [("files", ("a.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg"))],
            {"metadata": "[" * 5000 + "]" * 5000},
            422,
            "recursion limit exceeded",
        ),
        (
            [("files", ("a.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg"))],
            {"metadata": json.dumps({"note": "x" * 300_000})},
            422,
            "the limit is 262144",
        ),
    ],
)
def test_bad_adds_are_refused_with_a_reason(client, files, data, status, words):
    response = client.post("/collections/pets/images", files=files, data=data)
    assert response.status_code == status and words in response.text


def test_an_add_declaring_too_many_pixels_together_is_refused_before_decoding(client, settings):
    """Eight 292-byte files declaring 49 MP each (392 MP > SBI_MAX_ADD_PIXELS): 413 from the
    headers alone, nothing decoded or written."""
    buffer = io.BytesIO()
    Image.new("RGB", (7000, 7000)).save(buffer, format="WEBP", lossless=True, method=0)
    before = sorted((settings.images_dir / "uploads").glob("*"))
    response = client.post(
        "/collections/default/images", files=[("files", (f"{n}.webp", buffer.getvalue())) for n in range(8)]
    )
    assert response.status_code == 413 and "pixels together" in response.json()["detail"]
    assert sorted((settings.images_dir / "uploads").glob("*")) == before


def test_adding_to_an_unknown_collection_is_a_404(client):
    response = client.post(
        "/collections/hats/images",
        files=[("files", ("a.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg"))],
    )
    assert response.status_code == 404 and "known collections" in response.json()["detail"]


def test_an_indexer_run_on_disk_is_picked_up_without_a_restart(client, settings):
    copy_photos(settings.images_dir / "more", ["eagle.jpg"])
    update_index(settings, progress=False)
    before = client.get("/health").json()["images"]
    client.app.state.service.refresh()  # what the watcher thread does every reload_seconds
    assert client.get("/health").json()["images"] == before + 1
    top = {h["path"] for h in search(client, "eagle.jpg", k=2).json()["results"]}
    assert top == {"eagle.jpg", "more/eagle.jpg"}
    shutil.rmtree(settings.images_dir / "more")
    update_index(settings, progress=False)
    client.app.state.service.refresh()
    assert client.get("/health").json()["images"] == before


def test_an_unwritable_images_folder_is_a_507_and_changes_nothing(client, settings):
    blocker = settings.images_dir / "uploads"
    moved = blocker.with_name("uploads.bak")
    if blocker.exists():
        blocker.rename(moved)
    blocker.write_text("a file where the uploads folder should be")
    try:
        before = client.get("/collections/default").json()["images"]
        response = client.post(
            "/collections/default/images", files=[("files", ("n.jpg", new_photo(), "image/jpeg"))]
        )
        assert response.status_code == 507 and "nothing was changed" in response.json()["detail"]
        assert client.get("/collections/default").json()["images"] == before
    finally:
        blocker.unlink()
        if moved.exists():
            moved.rename(blocker)


def test_a_grayscale_collection_finds_black_and_white_copies_of_colour_photos(tmp_path):
    # fp32: on a CPU with VNNI `auto` would quantize a second int8 model for grayscale input alone
    settings = make_settings(tmp_path, grayscale=True, reload_seconds=0, precision="fp32")
    settings.images_dir.mkdir(parents=True)
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "horses.jpg"):
        Image.open(PHOTOS / name).convert("L").save(settings.images_dir / name)
    update_index(settings, progress=False)
    with TestClient(create_app(settings.model_copy(update={"grayscale": False}))) as client:
        # the service follows the index, not its own settings
        info = client.get("/collections/default").json()
        assert info["preprocessing"]["grayscale"] is True
        body = search(client, "coffee.jpg", k=1).json()
        assert body["results"][0]["path"] == "coffee.jpg" and body["results"][0]["score"] > 0.95


def test_phone_camera_and_other_formats_are_added_and_kept_by_the_next_indexer_run(client, settings):
    """Every format an add accepts is stored under a suffix the indexer scans."""
    folder = settings.images_dir.parent / "phones"
    copy_photos(folder, ["coffee.jpg", "rocket.jpg"])
    location = locations.for_indexing(settings, "phones", folder)
    update_index(settings, location, progress=False)
    client.app.state.service.refresh()
    try:
        photo = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
        files = [
            ("files", (f"cat.{fmt.lower()}", encoded(photo.rotate(4 * n), fmt, **options), "image/*"))
            for n, (fmt, options) in enumerate(
                [
                    ("HEIF", {"quality": 80, "enc_params": {"preset": "ultrafast"}}),
                    ("AVIF", {"quality": 70}),
                    ("PPM", {}),
                    ("ICO", {"sizes": [(256, 170)]}),
                    ("PNG", {}),
                ]
            )
        ]
        files.append(("files", ("IMG_0001.DNG", dng_bytes(photo.rotate(20)), "image/x-adobe-dng")))
        added = client.post("/collections/phones/images", files=files)
        assert added.status_code == 201, added.text
        images = added.json()["images"]
        suffixes = [PurePosixPath(i["path"]).suffix for i in images]
        assert suffixes == [".heic", ".avif", ".ppm", ".ico", ".png", ".dng"]
        top = client.post(
            "/search",
            data={"collection": "phones", "k": 1},
            files={"file": ("q.heic", files[0][1][1], "image/heic")},
        ).json()
        assert top["results"][0]["id"] == images[0]["id"]

        report = update_index(settings, location, progress=False)
        assert (report.removed, report.reused, report.skipped) == (0, 8, [])
        kept = load_live(location.saved_dir)[0]
        assert {i["path"]: i["id"] for i in images}.items() <= {
            p: int(i) for p, i in zip(kept.paths, kept.ids)
        }.items()
    finally:  # the other tests of this module see only their own collections
        shutil.rmtree(location.saved_dir)
        client.app.state.service.refresh()


def test_an_indexed_symlink_repointed_outside_the_collection_is_not_served(tmp_path):
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, ["chelsea.jpg", "dog.jpg"])
    link = settings.images_dir / "link.jpg"
    link.symlink_to(settings.images_dir / "chelsea.jpg")
    update_index(settings, progress=False)
    secret = tmp_path / "saved" / "secret.txt"
    secret.write_text("api keys")
    with TestClient(create_app(settings)) as client:
        assert client.get("/images/link.jpg").status_code == 200
        link.unlink()
        link.symlink_to(secret)  # re-pointed after indexing
        refused = client.get("/images/link.jpg")
        assert refused.status_code == 404 and "api keys" not in refused.text
        link.unlink()
        link.symlink_to(settings.images_dir)  # a folder inside it is not a file either
        assert client.get("/images/link.jpg").status_code == 404
        link.unlink()
        link.symlink_to("dog.jpg")  # inside the folder: served
        assert client.get("/images/link.jpg").content == (PHOTOS / "dog.jpg").read_bytes()


@pytest.mark.parametrize("writer_alive", [False, True], ids=["crashed-writer", "commit-in-flight"])
def test_a_commit_left_half_done_still_serves_the_last_complete_index(
    demo_collection, tmp_path, writer_alive
):
    """The issue's reproduction: `.previous/` holding hard links to the index files, as a commit
    killed between its steps leaves it. A crashed writer's is rolled back at startup; one whose
    writer still holds the lock is served from meanwhile, and left to that writer."""
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    settings = demo_collection.model_copy(update={"saved_dir": tmp_path / "saved", "reload_seconds": 0})
    previous = settings.saved_dir / PREVIOUS_DIR
    previous.mkdir()
    for name in COMMIT_ORDER:  # the committed set, as a commit's first step links it
        if (settings.saved_dir / name).exists():
            os.link(settings.saved_dir / name, previous / name)
    with contextlib.ExitStack() as stack:
        if writer_alive:  # another process' writer, mid-commit: it holds the lock file
            held = stack.enter_context(open(settings.saved_dir / LOCK_FILE, "w"))
            fcntl.flock(held, fcntl.LOCK_EX)
        client = stack.enter_context(TestClient(create_app(settings)))
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["images"] == 13 and health["detail"] is None
        assert search(client, "chelsea.jpg", k=1).json()["results"][0]["path"] == "chelsea.jpg"
        assert previous.exists() == writer_alive


def test_metadata_that_would_hijack_retype_or_inject_is_handled(client, settings):
    """Case 4: a `path` key would take over the image column; case 5: `age: unknown` would turn a
    number column into text; both 422 naming the column, nothing added. Case 11: a formula is
    exported quoted in the CSV and given back as sent."""
    photo = Image.open(PHOTOS / "rocket.jpg")
    files = [("files", ("r.jpg", jpeg_bytes(photo.rotate(180)), "image/jpeg"))]
    before = client.get("/collections/pets").json()["images"]
    for row, column in (({"path": "evil.jpg"}, "path"), ({"age": "unknown"}, "age")):
        refused = client.post("/collections/pets/images", files=files, data={"metadata": json.dumps(row)})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == [
            "body",
            "metadata",
            column,
        ]
    assert client.get("/collections/pets").json()["images"] == before
    formula = '=HYPERLINK("http://evil","click")'
    added = client.post(
        "/collections/pets/images", files=files, data={"metadata": json.dumps({"name": formula, "age": 3})}
    )
    assert added.status_code == 201, added.text
    (image,) = added.json()["images"]
    try:
        assert "HYPERLINK" not in (settings.images_dir.parent / "pets.csv").read_text()  # never rewritten
        assert "'=HYPERLINK" in client.get("/collections/pets/metadata.csv").text  # quoted when exported
        hit = search(client, "rocket.jpg", collection="pets", k=1).json()["results"][0]
        assert hit["metadata"] == {"name": formula, "age": 3}
        ages = {c["name"]: c for c in client.get("/collections/pets").json()["columns"]}["age"]
        assert ages["kind"] == "number"
    finally:  # the other tests of this module see the pets as the fixture made them
        assert client.delete(f"/collections/pets/images/{image['id']}").status_code == 200
