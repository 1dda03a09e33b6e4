"""Serving and indexing on ONNX Runtime never import torch once the model's ONNX file exists.

torch with its CUDA libraries was most of the service's memory and start time (issue 18): these
run the app and the indexer in a fresh interpreter and look at what it imported.
"""

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import PHOTOS, copy_photos, make_settings, running_server
from PIL import Image

from config import PROJECT_DIR
from search_by_image.auth import KEYS_FILE, KeyStore

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
    new = open(sys.argv[5], "rb").read()
    added = client.post("/collections/default/images", files={"files": ("new.png", new, "image/png")},
                        headers={"Authorization": f"Bearer {key}"})
    again = client.post("/search", files={"file": ("q.png", new, "image/png")}).json()
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


def run_python(script: str, *args, python: Path | str = sys.executable) -> dict:
    done = subprocess.run(
        [str(python), "-c", script, *map(str, args)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def collection(demo_collection, tmp_path):
    """A writable copy of the demo collection; its ONNX model is in the session's cache."""
    shutil.copytree(demo_collection.images_dir, tmp_path / "images")
    shutil.copy2(demo_collection.metadata_csv, tmp_path / "data.csv")
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    return tmp_path


def serving_only_venv() -> Path:
    """A real venv with `pip install -r requirements-serve.txt` and nothing else, as the README
    documents it; built once per version of that file (about 2 minutes) and kept in ~/.cache."""
    requirements = PROJECT_DIR / "requirements-serve.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = Path.home() / ".cache" / "search-by-image" / f"serve-venv-{digest}"
    if not (venv / "complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            timeout=1200,
            capture_output=True,
        )
        (venv / "complete").write_text(requirements.read_text())
    return venv / "bin" / "python"


def serve(collection: Path, tmp_path: Path, python: Path | str = sys.executable) -> dict:
    new = tmp_path / "new.png"
    Image.open(PHOTOS / "kite.jpg").rotate(3).save(new)
    return run_python(
        SERVE,
        collection / "images",
        collection / "data.csv",
        collection / "saved",
        PHOTOS / "chelsea.jpg",
        new,
        python=python,
    )


def test_the_service_starts_searches_and_adds_without_importing_torch(collection, tmp_path):
    result = serve(collection, tmp_path)
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


def test_a_serving_only_install_serves_searches_and_adds(collection, tmp_path):
    """requirements-serve.txt alone (no torch in the venv at all) runs `uvicorn main:app` on a
    collection whose ONNX model is in the cache: it starts, searches and accepts adds."""
    python = serving_only_venv()
    check = subprocess.run([str(python), "-c", "import torch"], capture_output=True, check=False)
    assert check.returncode != 0, "the serving-only venv must not have torch"
    settings = make_settings(collection)
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    new = io.BytesIO()
    Image.open(PHOTOS / "kite.jpg").rotate(3).save(new, format="PNG")
    with (
        running_server(settings, python=str(python)) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        found = client.post(
            "/search", files={"file": ("q.jpg", (PHOTOS / "chelsea.jpg").read_bytes(), "image/jpeg")}
        )
        assert found.status_code == 200 and found.json()["results"][0]["path"] == "chelsea.jpg"
        added = client.post(
            "/collections/default/images",
            files={"files": ("new.png", new.getvalue(), "image/png")},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert added.status_code == 201
        again = client.post("/search", files={"file": ("q.png", new.getvalue(), "image/png")}).json()
        assert again["results"][0]["path"] == added.json()["images"][0]["path"]
