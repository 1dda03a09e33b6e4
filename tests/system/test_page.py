"""The upload page in headless Chromium (Debian's binary, driven by Playwright)."""

import base64
import shutil
import time

import pytest
from helpers import ARTIFACTS, PHOTOS, copy_photos, running_server
from PIL import Image

from search_by_image.api.auth import KeyStore
from search_by_image.catalog import locations
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYS_FILE

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def wait_for_thumbnails(page, shown: int = 4, timeout_s: float = 15) -> None:
    """Poll from Python: `wait_for_function` evaluates strings, which the page's CSP forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(
        f"() => [...document.querySelectorAll('#grid img')].slice(0, {shown})"
        ".every(img => img.complete && img.naturalWidth > 0)"
    ):
        assert time.monotonic() < deadline, "result thumbnails did not load"
        time.sleep(0.1)


@pytest.mark.parametrize(("label", "viewport"), [("desktop", (1280, 900)), ("phone", (390, 844))])
def test_upload_shows_a_grid_of_results(browser, live_server, label, viewport):
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_server}/search")
    page.set_input_files("#file", str(PHOTOS / "horses.jpg"))
    expect(page.locator("#preview")).to_be_visible()  # waits for the blob: image to load
    page.click("#submit")
    page.wait_for_selector("#grid li.hit img")
    wait_for_thumbnails(page)
    hits = page.locator("#grid li.hit")
    assert hits.count() == 10
    assert hits.first.locator(".path").inner_text() == "horses.jpg"
    assert "#1" in hits.first.locator(".rank").inner_text()
    assert "Horses in a field" in hits.first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"search-{label}.png"), full_page=True)
    assert not [m for m in console if "Content Security Policy" in m]  # the page lives with its CSP
    page.close()


def test_errors_are_shown_on_the_page(browser, live_server, tmp_path):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("just some text")
    page = browser.new_page()
    page.goto(f"{live_server}/search")
    page.set_input_files("#file", str(not_image))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "not a recognised image" in page.locator("#error").inner_text()
    page.close()


def test_page_works_without_javascript(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server}/search")
    page.set_input_files("#file", str(PHOTOS / "scream.jpg"))
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    assert page.locator("#grid li.hit .path").first.inner_text() == "scream.jpg"
    context.close()


@pytest.fixture(scope="module")
def two_collections(demo_collection, tmp_path_factory):
    """The demo collection plus a named `pets` collection with a number column, served."""
    root = tmp_path_factory.mktemp("page")
    shutil.copytree(demo_collection.saved_dir, root / "saved")
    settings = demo_collection.model_copy(update={"saved_dir": root / "saved"})
    copy_photos(root / "pets", ["chelsea.jpg", "dog.jpg", "horses.jpg"])
    (root / "pets.csv").write_text(
        "file,name,age\nchelsea.jpg,Chelsea,4\ndog.jpg,Rex,11\nhorses.jpg,Star,7\n"
    )
    update_index(
        settings, locations.for_indexing(settings, "pets", root / "pets", root / "pets.csv"), progress=False
    )
    with running_server(settings) as base:
        yield base


def test_filter_controls_come_from_the_metadata_and_restrict_the_results(browser, two_collections):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{two_collections}/search")
    category = page.locator('#filter-grid select[data-column="category"]')
    expect(category).to_be_visible()
    category.select_option("animals")
    page.set_input_files("#file", str(PHOTOS / "coffee.jpg"))
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    hits = page.locator("#grid li.hit")
    assert hits.count() == 5  # all five animal photos of the demo, none of them near a coffee cup
    assert all("animals" in hits.nth(i).inner_text() for i in range(hits.count()))
    assert "5 images match the filters" in page.locator("#summary").inner_text()
    page.screenshot(path=str(ARTIFACTS / "search-filtered.png"), full_page=True)

    page.select_option("#collection", "pets")
    expect(page.locator('#filter-grid input[data-column="age"][data-op="gte"]')).to_be_visible()
    expect(page.locator('#filter-grid [data-column="category"]')).to_have_count(0)
    page.fill('#filter-grid input[data-column="age"][data-op="gte"]', "5")
    page.click("#submit")
    expect(page.locator("#grid li.hit")).to_have_count(2)
    paths = sorted(page.locator("#grid li.hit .path").all_inner_texts())
    assert paths == ["dog.jpg", "horses.jpg"]
    page.close()


def test_the_collection_choice_works_without_javascript(browser, two_collections):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{two_collections}/search")
    page.select_option("#collection", "pets")
    page.set_input_files("#file", str(PHOTOS / "dog.jpg"))
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    assert page.locator("#grid li.hit").count() == 3
    assert page.locator("#collection").input_value() == "pets"
    context.close()


def test_a_key_entered_on_the_page_is_used_for_searches_and_images(browser, demo_collection, tmp_path):
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    settings = demo_collection.model_copy(update={"saved_dir": tmp_path / "saved"})
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("search", "page test")
    with running_server(settings, SBI_SEARCH_REQUIRES_KEY="true") as base:
        page = browser.new_page()
        page.goto(f"{base}/search")
        expect(page.locator("#key-form")).to_be_visible()
        page.set_input_files("#file", str(PHOTOS / "giraffe.jpg"))
        page.click("#submit")
        expect(page.locator("#error")).to_contain_text("API key")
        page.fill("#api-key", key)
        page.click("#key-save")
        expect(page.locator("#key-status")).to_contain_text("saved")
        page.click("#submit")
        page.wait_for_selector("#grid li.hit")
        assert page.locator("#grid li.hit .path").first.inner_text() == "giraffe.jpg"
        wait_for_thumbnails(page)  # signed image URLs load without a header
        assert key not in page.content()  # the key is not written into the page
        page.close()


def test_a_box_drawn_on_the_photo_searches_that_region(browser, live_server, tmp_path):
    cat = Image.open(PHOTOS / "chelsea.jpg").resize((400, 300))
    rocket = Image.open(PHOTOS / "rocket.jpg").resize((400, 300))
    both = Image.new("RGB", (800, 300))
    both.paste(cat, (0, 0))
    both.paste(rocket, (400, 0))
    both.save(tmp_path / "both.jpg", quality=90)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server}/search")
    page.set_input_files("#file", str(tmp_path / "both.jpg"))
    preview = page.locator("#preview")
    expect(preview).to_be_visible()
    area = preview.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.52, area["y"] + area["height"] * 0.02)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.75, area["y"] + area["height"] * 0.5, steps=5)
    page.mouse.move(area["x"] + area["width"] * 0.98, area["y"] + area["height"] * 0.98, steps=5)
    page.mouse.up()
    expect(page.locator("#region")).to_be_visible()
    assert page.locator("#box").input_value().startswith("0.52")
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    assert page.locator("#grid li.hit .path").first.inner_text() == "rocket.jpg"
    page.screenshot(path=str(ARTIFACTS / "search-region.png"), full_page=True)
    page.click("#region-clear")
    assert page.locator("#box").input_value() == ""
    page.close()


def test_more_like_this_and_more_results_from_a_result(browser, live_server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server}/search")
    page.set_input_files("#file", str(PHOTOS / "horses.jpg"))
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    page.locator("#grid li.hit a.similar").first.click()  # horses.jpg itself: more like it
    expect(page.locator("#summary")).to_contain_text("more like horses.jpg")
    hits = page.locator("#grid li.hit .path")
    assert hits.count() == 10 and "horses.jpg" not in hits.all_inner_texts()
    wait_for_thumbnails(page)
    assert "/thumbnails/" in page.locator("#grid img").first.get_attribute("src")
    page.click("#more")  # the next page, appended: the 12 other images of the demo collection
    expect(page.locator("#grid li.hit")).to_have_count(12)
    expect(page.locator("#more-box")).to_be_hidden()
    assert "#12" in page.locator("#grid li.hit .rank").last.inner_text()
    page.close()


def test_an_unsupported_format_is_named_before_anything_is_sent(browser, live_server, tmp_path):
    psd = tmp_path / "layers.psd"
    psd.write_bytes(b"8BPS\x00\x01" + b"\x00" * 64)
    page = browser.new_page()
    page.goto(f"{live_server}/search")
    assert ".heic" in page.locator("#file").get_attribute("accept")
    expect(page.locator("#dropzone-text")).to_contain_text("HEIC")
    page.set_input_files("#file", str(psd))
    expect(page.locator("#error")).to_contain_text("“.psd” files are not supported")
    assert "HEIC" in page.locator("#error").inner_text()
    page.close()


def test_a_pasted_image_is_searched_at_once(browser, live_server):
    """Ctrl+V of an image (a screenshot, "Copy image"): a paste event whose clipboard holds a file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_server}/search")
    expect(page.locator("#paste-hint")).to_be_visible()
    page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const clipboard = new DataTransfer();
            clipboard.items.add(new File([bytes], "image.jpg", { type: "image/jpeg" }));
            const paste = new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true });
            document.body.dispatchEvent(paste);
        }""",
        base64.b64encode((PHOTOS / "giraffe.jpg").read_bytes()).decode(),
    )
    expect(page.locator("#preview")).to_be_visible()
    page.wait_for_selector("#grid li.hit")
    assert page.locator("#grid li.hit .path").first.inner_text() == "giraffe.jpg"
    assert page.locator("#file").evaluate("input => input.files[0].name") == "image.jpg"
    assert not [m for m in console if "Content Security Policy" in m]
    page.close()


def test_a_photo_from_the_camera_input_is_searched(browser, live_server):
    page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page.goto(f"{live_server}/search")
    assert page.locator("#camera").get_attribute("capture") == "environment"
    expect(page.locator("#camera-button")).to_be_visible()  # a touch screen: the camera is offered
    page.set_input_files("#camera", str(PHOTOS / "kite.jpg"))
    expect(page.locator("#preview")).to_be_visible()
    page.click("#submit")
    page.wait_for_selector("#grid li.hit")
    assert page.locator("#grid li.hit .path").first.inner_text() == "kite.jpg"
    page.close()


def test_the_url_box_searches_by_address_where_url_search_is_on(browser, live_server, demo_collection):
    page = browser.new_page()
    page.goto(f"{live_server}/search")
    expect(page.locator("#url")).to_have_count(0)  # off by default: no box
    page.close()
    # the server fetches from itself: its /images/ on 127.0.0.1, allowed here as a private server's
    with running_server(
        demo_collection, SBI_URL_SEARCH="true", SBI_URL_SEARCH_ALLOW='["127.0.0.1/32"]'
    ) as base:
        page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        page.goto(f"{base}/search")
        page.fill("#url", f"{base}/images/eagle.jpg")
        page.click("#submit")
        page.wait_for_selector("#grid li.hit")
        assert page.locator("#grid li.hit .path").first.inner_text() == "eagle.jpg"
        page.screenshot(path=str(ARTIFACTS / "search-url-phone.png"))
        page.fill("#url", "http://10.0.0.5/eagle.jpg")
        page.click("#submit")
        expect(page.locator("#error")).to_contain_text("a private address 10.0.0.5")
        page.close()
