"""Serving and indexing on ONNX Runtime never import torch once the model's ONNX file exists.

torch with its CUDA libraries was most of the service's memory and start time (issue 18): these
run the app and the indexer in a fresh interpreter and look at what it imported.
"""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import PHOTOS, copy_photos

from config import PROJECT_DIR

SERVE = """
import json, sys
from fastapi.testclient import TestClient
from config import Settings
from main import create_app
from search_by_image.auth import KEYS_FILE, KeyStore

settings = Settings(images_dir=sys.argv[1], metadata_csv=sys.argv[2], saved_dir=sys.argv[3],
                    rate_limit="")
_, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
photo = open(sys.argv[4], "rb").read()
with TestClient(create_app(settings)) as client:
    health = client.get("/health").json()
    found = client.post("/search", files={"file": ("q.jpg", photo, "image/jpeg")}).json()
    added = client.post("/collections/default/images", files={"files": ("new.png", open(sys.argv[5], "rb").read(), "image/png")},
                        headers={"Authorization": f"Bearer {key}"})
    again = client.post("/search", files={"file": ("q.png", open(sys.argv[5], "rb").read(), "image/png")}).json()
print(json.dumps({"torch": "torch" in sys.modules, "health": health, "top": found["results"][0]["path"],
                  "added": added.status_code, "found_added": again["results"][0]["path"]}))
"""

INDEX = """
import json, sys
from config import Settings
from search_by_image.indexer import update_index

settings = Settings(images_dir=sys.argv[1], metadata_csv=sys.argv[2], saved_dir=sys.argv[3], workers=2)
report = update_index(settings, progress=False)
print(json.dumps({"torch": "torch" in sys.modules, "embedded": report.embedded, "total": report.total}))
"""


def run_python(script: str, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection; its ONNX model is in the session's cache."""
    shutil.copytree(demo_collection.images_dir, tmp_path / "images")
    shutil.copy2(demo_collection.metadata_csv, tmp_path / "data.csv")
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    return tmp_path


def test_the_service_starts_searches_and_adds_without_importing_torch(collection, tmp_path):
    from PIL import Image

    new = tmp_path / "new.png"
    Image.open(PHOTOS / "kite.jpg").rotate(3).save(new)
    result = run_python(SERVE, collection / "images", collection / "data.csv", collection / "saved",
                        PHOTOS / "chelsea.jpg", new)
    assert result["health"]["status"] == "ok"
    assert result["top"] == "chelsea.jpg"
    assert result["added"] == 201 and result["found_added"].startswith("uploads/")
    assert result["torch"] is False


def test_the_indexer_on_onnx_runtime_does_not_import_torch(collection):
    """Worker processes included (they fork from the indexer), new photos and an unchanged run."""
    copy_photos(collection / "images" / "more", ["kite.jpg", "dog.jpg"])
    args = (collection / "images", collection / "data.csv", collection / "saved")
    first = run_python(INDEX, *args)
    assert (first["embedded"], first["torch"]) == (2, False)
    second = run_python(INDEX, *args)
    assert (second["embedded"], second["torch"]) == (0, False)
