"""GET /metrics: what an operator's Prometheus scrapes, moved by real requests."""

import io
import random
import shutil
import string
from http import HTTPMethod

from fastapi.testclient import TestClient
from helpers import PHOTOS
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.api.routes import (
    collection_images,
    collections,
    duplicates,
    health,
    images,
    metrics,
    search,
)
from search_by_image.layout import KEYS_FILE

ROUTERS = (collection_images, collections, duplicates, health, images, metrics, search)


def scrape(client: TestClient, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_latencies_batches_images_and_rejections(demo_collection):
    photo = (PHOTOS / "chelsea.jpg").read_bytes()
    with TestClient(create_app(demo_collection.model_copy(update={"rate_limit": ""}))) as client:
        before = scrape(client)
        for _ in range(3):
            assert client.post("/search", files={"file": ("q.jpg", photo, "image/jpeg")}).status_code == 200
        assert (
            client.post("/search", files={"file": ("q.txt", b"not an image", "text/plain")}).status_code
            == 415
        )
        assert client.get("/collections/nope").status_code == 404
        after = scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("http_requests_total", method="POST", handler="/search", status="200") == 3
    assert grew("http_requests_total", method="POST", handler="/search", status="415") == 1
    assert grew("http_requests_total", method="GET", handler="/collections/{name}", status="404") == 1
    assert grew("http_request_duration_seconds_count", method="POST", handler="/search") == 4
    assert grew("http_request_duration_seconds_bucket", method="POST", handler="/search", le="10.0") == 4
    assert grew("http_request_duration_highr_seconds_count") >= 5
    for stage in ("decode", "embed", "search"):
        assert grew(f"sbi_{stage}_seconds_count") == 3
        assert grew(f"sbi_{stage}_seconds_sum") > 0
    assert grew("sbi_batch_size_count") == 3 and grew("sbi_batch_size_sum") == 3
    assert grew("sbi_rejected_uploads_total", reason="not_image") == 1
    assert value(after, "sbi_rejected_uploads_total", reason="too_many_pixels") >= 0
    assert value(after, "sbi_collection_images", collection="default") == 13
    assert value(after, "sbi_batcher_queue_depth", model="efficientnet_lite0") == 0
    assert value(after, "sbi_index_reloads_total", collection="default", outcome="loaded") >= 1
    assert value(after, "process_resident_memory_bytes") > 0


def test_invented_methods_and_unknown_paths_add_no_series(demo_collection):
    rng = random.Random(7)
    prefixes = ["/", "/search/", "/collections/", "/images/", "/static/", "/x/"]

    def word() -> str:
        return "".join(rng.choices(string.ascii_uppercase + string.digits, k=10))

    def send(client: TestClient, method: str, prefix: str, slash: str) -> list[str]:
        path = prefix + word() + slash  # a trailing slash: some of these answer with a redirect
        client.request(method, path, follow_redirects=False)
        return [method, path]

    with TestClient(create_app(demo_collection.model_copy(update={"rate_limit": ""}))) as client:
        for method in ("GET", "POST", word()):  # each kind of request once
            for prefix in prefixes:
                for slash in ("", "/"):
                    send(client, method, prefix, slash)
        scrape(client)  # a scrape's own series, too
        before = scrape(client)
        sent = []
        for _ in range(200):
            method = rng.choice(["GET", "POST", word(), word().lower()])
            sent += send(client, method, rng.choice(prefixes), rng.choice(["", "/"]))
        after = scrape(client)
        text = client.get("/metrics").text
        templates = {route.path for route in client.app.routes if hasattr(route, "path")}
    templates |= {route.path for module in ROUTERS for route in module.router.routes}
    assert set(after) == set(before)  # 200 more invented requests: not one new series
    labels = [dict(labels) for name, labels in after if name.startswith("http_")]
    assert {label["method"] for label in labels if "method" in label} <= {*HTTPMethod, "other"}
    assert {label["handler"] for label in labels if "handler" in label} <= templates | {"none"}
    assert not any(f'"{invented}"' in text for invented in sent if invented not in ("GET", "POST"))
    assert value(after, "http_requests_total", method="other", handler="none", status="404") > 0


def test_uploads_over_the_pixel_limit_are_counted_by_reason(demo_collection):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300)).save(buffer, format="PNG")
    settings = demo_collection.model_copy(update={"rate_limit": "", "max_image_pixels": 100_000})
    with TestClient(create_app(settings)) as client:
        before = scrape(client)
        response = client.post("/search", files={"file": ("big.png", buffer.getvalue(), "image/png")})
        assert response.status_code == 413
        after = scrape(client)
    assert (
        value(after, "sbi_rejected_uploads_total", reason="too_many_pixels")
        - value(before, "sbi_rejected_uploads_total", reason="too_many_pixels")
    ) == 1


def test_metrics_can_require_a_key(demo_collection, tmp_path):
    saved = tmp_path / "saved"
    shutil.copytree(demo_collection.saved_dir, saved)
    settings = demo_collection.model_copy(update={"saved_dir": saved, "metrics_requires_key": True})
    _, key = KeyStore(saved / KEYS_FILE).create("search", "prometheus")
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer sbi_wrong"}).status_code == 401
        assert (
            value(
                scrape(client, Authorization=f"Bearer {key}"), "sbi_collection_images", collection="default"
            )
            == 13
        )
