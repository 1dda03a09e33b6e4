"""Several worker processes (`uvicorn --workers 2`): a write through one is seen by every worker
within its reload tick, by applying the logged rows, without a restart."""

import time

import httpx
from helpers import PHOTOS, jpeg_bytes, running_server, writable_copy
from PIL import Image

from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

ASKS = 12


def seen_by_all(base: str, admin: dict, image_id: int, status: int, seconds: float = 30.0) -> None:
    """ASKS answers in a row, each on a new connection (so both workers answer), give `status`
    for the image's "more like this"."""
    deadline = time.monotonic() + seconds
    streak = 0
    while streak < ASKS:
        assert time.monotonic() < deadline, f"not every worker answers {status} for {image_id}"
        got = httpx.get(f"{base}/collections/default/images/{image_id}/similar", headers=admin, timeout=30)
        streak = streak + 1 if got.status_code == status else 0
        time.sleep(0.05)


def test_every_worker_serves_a_write_made_through_another(demo_collection, tmp_path):
    collection = writable_copy(demo_collection, tmp_path)
    _, key = KeyStore(collection.saved_dir / KEYS_FILE).create("admin")
    admin = {"Authorization": f"Bearer {key}"}
    photo = jpeg_bytes(Image.open(PHOTOS / "kite.jpg").crop((20, 10, 400, 300)))
    with running_server(collection, app=("main:app", "--workers", "2"), SBI_RELOAD_SECONDS="0.3") as base:
        added = httpx.post(
            f"{base}/collections/default/images",
            headers=admin,
            files=[("files", ("kite-crop.jpg", photo, "image/jpeg"))],
            timeout=120,
        )
        assert added.status_code == 201, added.text
        image_id = added.json()["images"][0]["id"]
        seen_by_all(base, admin, image_id, 200)
        other = httpx.post(
            f"{base}/collections/default/images",
            headers=admin,
            files=[("files", ("kite-other.jpg", jpeg_bytes(Image.open(PHOTOS / "kite.jpg")), "image/jpeg"))],
            timeout=120,
        )
        assert other.status_code == 201 and other.json()["images"][0]["id"] != image_id  # ids never clash
        deleted = httpx.delete(f"{base}/collections/default/images/{image_id}", headers=admin, timeout=120)
        assert deleted.status_code == 200, deleted.text
        seen_by_all(base, admin, image_id, 404)
        seen_by_all(base, admin, other.json()["images"][0]["id"], 200)
