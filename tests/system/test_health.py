"""GET /health: open to anyone, even where keys are required, so it names no server path."""

import time

from fastapi.testclient import TestClient
from helpers import jpeg_bytes, make_settings
from PIL import Image

from main import create_app


def test_health_names_no_server_path(tmp_path):
    settings = make_settings(tmp_path, index_on_start=True, search_requires_key=True)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while (health := client.get("/health").json())["indexing"]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        text = client.get("/health").text
    assert "does not exist" in health["detail"] and "no index" in health["collections"][0]["detail"]
    assert str(tmp_path) not in text and "/images" not in text and "/saved" not in text


def test_search_without_an_index_gives_its_reason_but_no_server_path(tmp_path):
    settings = make_settings(tmp_path, index_on_start=False)
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/search", files={"file": ("q.jpg", jpeg_bytes(Image.new("RGB", (64, 48), "teal")), "image/jpeg")}
        )
    assert answer.status_code == 503
    assert "no usable index" in answer.json()["detail"]
    assert str(tmp_path) not in answer.text and "/saved" not in answer.text
