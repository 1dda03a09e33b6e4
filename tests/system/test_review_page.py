"""The duplicates page in headless Chromium: review a planted collection as a user would, and
find the decisions still there after a re-index by `with_faiss.py`."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers import ARTIFACTS, PHOTOS, copy_photos, make_settings, plant_copies, running_server

from config import PROJECT_DIR
from search_by_image.api.auth import KeyStore
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

#: where the screenshots go: tests/artifacts unless SBI_SCREENSHOTS names another folder
SHOTS = Path(os.environ.get("SBI_SCREENSHOTS", ARTIFACTS))


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"review-{name}.png"), full_page=True)


def group_of(page, path: str):
    return page.locator("article.dup-group", has=page.locator(f'p.path[title="{path}"]'))


def generation(saved: Path) -> str:
    return json.loads((saved / "manifest.json").read_text())["generation"]


def reloads(base: str) -> float:
    """Indexes the service has loaded from disk (its metrics)."""
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith('sbi_index_reloads_total{collection="default",outcome="loaded"}'):
            return float(line.split()[-1])
    return 0.0


def test_review_keep_one_undo_and_not_duplicates_survive_a_re_index(browser, tmp_path):
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir)
    plant_copies(settings.images_dir)
    update_index(settings, progress=False)
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin", "review page")
    copy = settings.images_dir / "copies" / "cat-small.jpg"
    with running_server(settings) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/collections/default/duplicates")
        expect(page.locator("article.dup-group")).to_have_count(2)
        cat = group_of(page, "copies/cat-small.jpg")
        expect(cat.locator("li.suggested p.path").first).to_have_text("chelsea.jpg")  # the most pixels
        expect(page.locator("#keeper-rule")).to_contain_text("most pixels")
        page.fill("#api-key", key)
        page.click("#key-save")
        shoot(page, "1-groups")

        cat.locator("button.keep-one").click()  # the suggestion: keep chelsea.jpg
        expect(page.locator("#review-status")).to_contain_text("moved to the trash")
        expect(page.locator("article.dup-group")).to_have_count(1)
        assert not copy.exists()
        shoot(page, "2-kept-one")

        page.locator("#decisions button.undo").first.click()
        expect(page.locator("#review-status")).to_contain_text("are back")
        expect(page.locator("article.dup-group")).to_have_count(2)
        assert copy.is_file()
        shoot(page, "3-undone")

        group_of(page, "copies/eagle-crop.jpg").locator("button.keep-all").click()
        expect(page.locator("#review-status")).to_contain_text("not duplicates")
        expect(page.locator("article.dup-group")).to_have_count(1)
        shoot(page, "4-not-duplicates")

        before, loads = generation(settings.saved_dir), reloads(base)
        subprocess.run(
            [sys.executable, "with_faiss.py", "--rebuild", "--quiet", "--images", str(settings.images_dir),
             "--output", str(settings.saved_dir), "--csv", str(settings.metadata_csv),
             "--model", "efficientnet_lite0"],
            cwd=PROJECT_DIR, check=True, timeout=300,
        )  # fmt: skip
        assert generation(settings.saved_dir) != before
        deadline = time.monotonic() + 30
        while reloads(base) == loads:  # the service swaps in what the indexer wrote
            assert time.monotonic() < deadline, "the service did not reload the new index"
            time.sleep(0.3)
        page.reload()
        expect(page.locator("article.dup-group")).to_have_count(1)
        expect(group_of(page, "copies/cat-small.jpg")).to_have_count(1)  # restored, indexed again
        expect(group_of(page, "eagle.jpg")).to_have_count(0)  # still not duplicates
        expect(page.locator("#decisions")).to_contain_text("Not duplicates: copies/eagle-crop.jpg, eagle.jpg")
        shoot(page, "5-after-re-index")

        page.goto(f"{base}/search")  # one result per photo by default: the cat's copy folded
        expect(page.locator("#collapse")).to_be_checked()
        page.set_input_files("#file", str(PHOTOS / "chelsea.jpg"))
        page.click("#submit")
        first = page.locator("#grid li.hit").first
        expect(first.locator(".path")).to_have_text("chelsea.jpg")
        expect(first.locator("a.copies-link")).to_have_text("+1 copy")
        expect(page.locator("#grid .path", has_text="cat-small.jpg")).to_have_count(0)
        shoot(page, "6-search-one-result-per-photo")
        page.close()
