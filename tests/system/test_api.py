"""The HTTP API through FastAPI's TestClient: real index, real photos, every kind of bad input."""

import io
import shutil
import struct
import tempfile
import threading
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes, make_settings
from PIL import Image

from main import create_app
from search_by_image.layout import MANIFEST_FILE
from search_by_image.ranking import verification

UPLOAD_LIMIT = 400_000


@pytest.fixture(scope="module")
def client(demo_collection):
    settings = demo_collection.model_copy(update={"max_upload_bytes": UPLOAD_LIMIT})
    with TestClient(create_app(settings)) as client:
        yield client


def assert_in_the_documented_order(results: list[dict]) -> None:
    """Verified copies first, by their scores with the verification lift (docs/api.md "A search's
    answer"; scores shown to 4 decimals: ties within rounding). The rest are ordered by the query
    expanded with the verified results (expansion.py), a score no response shows."""
    copies = [hit["match"] == "copy" and hit["inliers"] is not None for hit in results]
    assert copies == sorted(copies, reverse=True), results
    hits = [hit for hit, copy in zip(results, copies) if copy]
    keys = verification.lifted(np.array([h["score"] for h in hits]), np.array([h["inliers"] for h in hits]))
    assert all(a >= b - 1e-3 for a, b in zip(keys, keys[1:])), results


def search(client, data: bytes, name: str = "query.jpg", **form):
    return client.post("/search", files={"file": (name, data, "image/jpeg")}, data=form)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width x height` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def assert_search_still_works(client):
    response = search(client, (PHOTOS / "chelsea.jpg").read_bytes(), k=1)
    assert response.status_code == 200
    assert response.json()["results"][0]["path"] == "chelsea.jpg"


def test_root_describes_the_service(client):
    body = client.get("/").json()
    assert body["name"] == "search-by-image" and body["images"] == 13
    assert body["model"] == "efficientnet_lite0" and "POST /search" in body["endpoints"]


def test_health(client):
    body = client.get("/health").json()
    assert body["collections"][0].pop("runtime") in ("onnx int8", "onnx fp32")  # int8 needs VNNI
    assert body == {
        "status": "ok",
        "images": 13,
        "model": "efficientnet_lite0",
        "device": "cpu",
        "detail": None,
        "loading": None,
        "indexing": None,
        "collections": [
            {
                "name": "default",
                "status": "ok",
                "images": 13,
                "model": "efficientnet_lite0",
                "index_type": "IDMap2,Flat",
                "search_device": "cpu",
                "detail": None,
                "storage": "saved folder",
                "engine_answers": None,
            }
        ],
    }


def test_search_finds_a_photo_first_with_scores_metadata_and_timing(client):
    photo = Image.open(PHOTOS / "coffee.jpg")
    response = search(client, jpeg_bytes(photo.resize((300, 200)), quality=40), k=5)
    assert response.status_code == 200
    body = response.json()
    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3, 4, 5]
    top = body["results"][0]
    assert top["path"] == "coffee.jpg" and top["score"] > 0.8
    assert top["match"] in ("copy", "similar")  # a half-size copy at JPEG quality 40
    same = search(client, (PHOTOS / "coffee.jpg").read_bytes(), k=5).json()["results"]
    assert same[0]["match"] == "copy" and same[-1]["match"] != "copy"  # one coffee photo in the demo
    assert top["metadata"]["title"] == "Coffee cup"
    assert_in_the_documented_order(body["results"])
    assert body["query"] == {"filename": "query.jpg", "width": 300, "height": 200, "box": None, "id": None}
    assert body["timing"]["total_ms"] > 0
    image = client.get(top["image_url"])
    assert image.status_code == 200 and image.content == (PHOTOS / "coffee.jpg").read_bytes()


def test_default_k_is_ten_and_k_is_capped_by_the_collection(client):
    assert len(search(client, (PHOTOS / "dog.jpg").read_bytes()).json()["results"]) == 10
    assert len(search(client, (PHOTOS / "dog.jpg").read_bytes(), k=100).json()["results"]) == 13


def test_offset_pages_through_the_results(client):
    data = (PHOTOS / "dog.jpg").read_bytes()
    everything = search(client, data, k=13).json()["results"]
    page = search(client, data, k=5, offset=5).json()
    assert page["offset"] == 5 and [h["rank"] for h in page["results"]] == [6, 7, 8, 9, 10]
    assert [h["id"] for h in page["results"]] == [h["id"] for h in everything[5:10]]
    assert [h["id"] for h in search(client, data, k=5, offset=10).json()["results"]] == [
        h["id"] for h in everything[10:]
    ]
    assert search(client, data, offset=-1).status_code == 422


def image_id(client, path: str) -> int:
    hit = search(client, (PHOTOS / path).read_bytes(), k=1).json()["results"][0]
    assert hit["path"] == path
    return hit["id"]


def test_more_like_this_searches_from_the_stored_descriptor(client):
    cat = image_id(client, "chelsea.jpg")
    by_upload = search(client, (PHOTOS / "chelsea.jpg").read_bytes(), k=6).json()["results"]
    response = client.get(f"/collections/default/images/{cat}/similar", params={"k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == {"filename": "chelsea.jpg", "width": None, "height": None, "box": None, "id": cat}
    # itself left out; the rest as an upload of the same file finds them (up to near-ties)
    assert [h["id"] for h in body["results"]][:4] == [h["id"] for h in by_upload[1:5]]
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4, 5]
    assert body["timing"]["decode_ms"] == body["timing"]["embed_ms"] == 0  # no decode, no forward pass
    second = client.get(f"/collections/default/images/{cat}/similar", params={"k": 2, "offset": 2}).json()
    assert [h["id"] for h in second["results"]] == [h["id"] for h in body["results"][2:4]]
    assert [h["rank"] for h in second["results"]] == [3, 4]


def test_more_like_this_takes_filters_and_explains_bad_requests(client):
    cat = image_id(client, "chelsea.jpg")
    url = f"/collections/default/images/{cat}/similar"
    animals = client.get(url, params={"filters": '{"category": "animals"}', "k": 100}).json()
    assert animals["results"] and all(h["metadata"]["category"] == "animals" for h in animals["results"])
    assert cat not in [h["id"] for h in animals["results"]]
    assert animals["matched"] == len(animals["results"])
    assert client.get(url, params={"filters": '{"nope": 1}'}).status_code == 422
    missing = client.get("/collections/default/images/9999/similar")
    assert missing.status_code == 404 and "no image with id 9999" in missing.json()["detail"]
    assert client.get("/collections/nope/images/1/similar").status_code == 404


def test_the_results_page_offers_more_like_this_on_every_result(client):
    cat = image_id(client, "chelsea.jpg")
    page = client.get(
        f"/collections/default/images/{cat}/similar", params={"k": 4}, headers={"Accept": "text/html"}
    )
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.text.count('class="similar"') == 4 and "more like chelsea.jpg" in page.text
    assert f"/images/{cat}/similar?k=4&amp;offset=4" in page.text  # the next page, without JavaScript


def test_png_upload_with_alpha_works(client):
    buffer = io.BytesIO()
    Image.open(PHOTOS / "rocket.jpg").convert("RGBA").save(buffer, format="PNG")
    response = client.post("/search", files={"file": ("r.png", buffer.getvalue(), "image/png")})
    assert response.json()["results"][0]["path"] == "rocket.jpg"


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"", 400, "empty"),
        (b"%PDF-1.4 this is a document", 415, "PDF files are not supported"),
        ((PHOTOS / "kite.jpg").read_bytes()[:20000], 422, "truncated or corrupt"),
        (png_claiming(100_000, 100_000), 413, "pixels"),
        (b"\xff\xd8" + b"\x00" * (UPLOAD_LIMIT + 10), 413, "limit"),
    ],
    ids=["empty", "not-image", "truncated-jpeg", "decompression-bomb", "too-large"],
)
def test_bad_uploads_get_a_4xx_with_a_reason(client, data, status, reason):
    response = search(client, data)
    assert response.status_code == status
    assert reason in response.json()["detail"]
    assert_search_still_works(client)


def test_an_upload_over_a_megabyte_is_parsed_in_memory(demo_collection, monkeypatch):
    """Starlette writes a part past 1 MB to a temporary file, one thread-pool hop per chunk; the
    service parses uploads up to its limit in memory (read into memory to be decoded anyway)."""

    def rollover(self):
        raise AssertionError("the upload was written to a temporary file")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", rollover)
    settings = demo_collection.model_copy(update={"max_upload_bytes": 4 * 2**20})
    data = (PHOTOS / "rocket.jpg").read_bytes() + b"\0" * (3 * 2**20)  # after the JPEG's end: ignored
    with TestClient(create_app(settings)) as big_uploads:
        response = search(big_uploads, data)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["path"] == "rocket.jpg"


def test_oversized_chunked_upload_is_refused_while_streaming(client):
    boundary = "sbi-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(100):  # 100 x 64 KiB = 6.4 MB, far past the limit
            yield b"\x00" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/search", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert_search_still_works(client)


@pytest.mark.parametrize(
    ("files", "form", "field"),
    [
        ({"image": ("q.jpg", b"x", "image/jpeg")}, {}, "file"),
        ({"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")}, {"k": "0"}, "k"),
        ({"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")}, {"k": "101"}, "k"),
        ({"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")}, {"k": "ten"}, "k"),
    ],
    ids=["wrong-field-name", "k-zero", "k-too-big", "k-not-a-number"],
)
def test_invalid_form_is_a_422_naming_the_field(client, files, form, field):
    response = client.post("/search", files=files, data=form)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field
    assert_search_still_works(client)


@pytest.mark.parametrize(
    "path",
    [
        "../config.py",
        "..%2Fconfig.py",
        "%2E%2E/%2E%2E/etc/passwd",
        "/etc/passwd",
        "not-indexed.jpg",
        "..%5Cconfig.py",
    ],
)
def test_only_indexed_images_are_served(client, path):
    assert client.get(f"/images/{path}").status_code == 404


def test_the_page_and_its_assets(client):
    page = client.get("/search")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'enctype="multipart/form-data"' in page.text and 'name="file"' in page.text
    assert "13 images" in page.text
    for asset in ("/static/style.css", "/static/search.js", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200


def test_plain_form_post_renders_the_results_page(client):
    response = client.post(
        "/search",
        files={"file": ("q.jpg", (PHOTOS / "eagle.jpg").read_bytes(), "image/jpeg")},
        data={"k": "5"},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert response.text.count('class="hit"') == 5
    assert 'href="/images/eagle.jpg"' in response.text and 'src="/thumbnails/eagle.jpg?v=' in response.text
    assert "data:image/jpeg;base64," in response.text


def test_plain_form_post_errors_render_on_the_page(client):
    response = client.post(
        "/search", files={"file": ("q.jpg", b"", "image/jpeg")}, headers={"Accept": "text/html"}
    )
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"] and "empty" in response.text


def test_openapi_documents_the_typed_response(client):
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/search"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SearchResponse"
    )
    assert {"400", "413", "415", "422", "503"} <= set(post["responses"])


def search_within(app, seconds: float = 60):
    """A search from a client of its own, on a thread: a request left waiting fails the test
    instead of hanging it (a `with` client's exit would wait for it)."""
    answer = []
    thread = threading.Thread(
        target=lambda: answer.append(search(TestClient(app), (PHOTOS / "dog.jpg").read_bytes())), daemon=True
    )
    thread.start()
    thread.join(seconds)
    assert answer, f"a search waited more than {seconds} s"
    return answer[0]


def test_a_second_lifespan_on_the_app_leaves_it_searching_and_a_stopped_one_refuses(demo_collection):
    """A client entered and left while the server runs (what schemathesis' ASGI transport does)
    shares the running service; it used to start a second one in its place and stop it on leaving,
    and every later search waited forever on the stopped service's batcher."""
    app = create_app(demo_collection)
    with TestClient(app):
        with TestClient(app):
            assert search_within(app).status_code == 200
        assert search_within(app).status_code == 200
    response = search_within(app)  # no lifespan left: the service is stopped
    assert response.status_code == 503, response.text


def test_without_an_index_the_service_starts_and_explains(tmp_path):
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        assert health["status"] == "no_index" and "with_faiss.py" in health["detail"]
        response = search(client, (PHOTOS / "dog.jpg").read_bytes())
        assert response.status_code == 503 and "with_faiss.py" in response.json()["detail"]
        assert "not built yet" in client.get("/search").text


def test_an_index_whose_weights_are_missing_here_is_reported_not_fatal(tmp_path, demo_collection):
    """E.g. built with ResNet50 on a machine with internet, served on an air-gapped one."""
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    manifest = tmp_path / "saved" / MANIFEST_FILE
    manifest.write_text(manifest.read_text().replace("efficientnet-lite0-57934424.pth", "other.pth"))
    settings = demo_collection.model_copy(update={"saved_dir": tmp_path / "saved"})
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        assert health["status"] == "no_index" and "--rebuild" in health["detail"]
        assert search(client, (PHOTOS / "dog.jpg").read_bytes()).status_code == 503
