"""Near-duplicate groups: a planted copy is found, distinct photos are not, from the CLI, the API
and the page."""

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from config import PROJECT_DIR
from conftest import PHOTOS, copy_photos, jpeg_bytes, make_settings
from main import create_app
from search_by_image.duplicates import RAW_THRESHOLD, find_groups
from search_by_image.index_store import IndexStore
from search_by_image.indexer import update_index


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The demo photos plus two planted copies: a half-size re-encode of the cat, and the eagle
    cropped by 8% on each side."""
    root = tmp_path_factory.mktemp("duplicates")
    settings = make_settings(root)
    copy_photos(settings.images_dir)
    copies = settings.images_dir / "copies"
    copies.mkdir()
    cat = Image.open(PHOTOS / "chelsea.jpg")
    (copies / "cat-small.jpg").write_bytes(jpeg_bytes(cat.resize((cat.width // 2, cat.height // 2)), 70))
    eagle = Image.open(PHOTOS / "eagle.jpg")
    w, h = eagle.size
    (copies / "eagle-crop.jpg").write_bytes(jpeg_bytes(eagle.crop((w * 8 // 100, h * 8 // 100, w * 92 // 100, h * 92 // 100))))
    update_index(settings, progress=False)
    return settings


def test_planted_copies_are_grouped_with_their_originals_and_nothing_else(planted):
    groups = find_groups(IndexStore.load(planted.saved_dir))
    found = sorted(sorted(p for _, p in g.images) for g in groups)
    assert found == [["chelsea.jpg", "copies/cat-small.jpg"], ["copies/eagle-crop.jpg", "eagle.jpg"]]
    assert all(RAW_THRESHOLD < g.weakest <= g.best <= 1.0 for g in groups)


def test_the_most_similar_distinct_photos_are_not_duplicates(planted):
    store = IndexStore.load(planted.saved_dir)
    horses, person = (store.features[store.position[p]] for p in ("horses.jpg", "person.jpg"))
    assert float(horses @ person) > 0.5  # the closest pair of different photos in the demo
    grouped = {p for g in find_groups(store) for _, p in g.images}
    assert not grouped & {"horses.jpg", "person.jpg"}


def test_the_cli_lists_groups_as_csv_or_json(planted):
    def run(*extra):
        return subprocess.run(
            [sys.executable, "with_faiss.py", "--duplicates", "--output", str(planted.saved_dir), *extra],
            cwd=PROJECT_DIR, capture_output=True, text=True, check=True)

    rows = run().stdout.splitlines()
    assert rows[0] == "group,id,path,best,weakest" and len(rows) == 5
    groups = json.loads(run("--format", "json", "--threshold", "0.5").stdout)
    assert len(groups) > 2 and {"group", "best", "weakest", "images"} <= set(groups[0])


def test_the_api_and_the_page_show_the_groups(planted):
    with TestClient(create_app(planted)) as client:
        body = client.get("/collections/default/duplicates").json()
        assert body["threshold"] == RAW_THRESHOLD and len(body["groups"]) == 2
        image = body["groups"][0]["images"][0]
        assert client.get(image["image_url"]).status_code == 200
        assert client.get("/collections/default/duplicates?threshold=2").status_code == 422
        page = client.get("/collections/default/duplicates", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "2 groups, 4 images, among 15" in page.text
        assert "copies/cat-small.jpg" in page.text
