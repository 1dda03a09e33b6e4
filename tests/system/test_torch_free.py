"""Serving and indexing on ONNX Runtime never import torch once the model's ONNX file exists.

torch with its CUDA libraries would be most of the service's memory and start time: these
run the app and the indexer in a fresh interpreter and look at what it imported.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from helpers import PHOTOS, copy_photos, make_settings, running_server
from PIL import Image

from config import PROJECT_DIR
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

SERVE = """
import json, sys
from fastapi.testclient import TestClient
from config import Settings
from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

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
from search_by_image.indexing.indexer import update_index

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


def installed_venv() -> Path:
    """A real venv with `pip install .` of this checkout and nothing else: the product as a user
    installs it (pyproject's dependencies, which test_requirements keeps equal to
    requirements.txt; no torch). Its dependencies are installed once per pyproject.toml and kept
    in ~/.cache (about 2 minutes); the package itself is installed again on every run (seconds),
    from a copy of the checkout, so the wheel's package data is what is tested."""
    pyproject = PROJECT_DIR / "pyproject.toml"
    digest = hashlib.sha256(pyproject.read_bytes()).hexdigest()[:12]
    venv = Path.home() / ".cache" / "search-by-image" / f"installed-venv-{digest}"
    python = venv / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="sbi-checkout-") as copy:
        source = Path(copy) / "project"
        shutil.copytree(
            PROJECT_DIR,
            source,
            ignore=shutil.ignore_patterns(".venv", ".git", "saved", "build", "*.egg-info", "__pycache__"),
        )
        if not (venv / "complete").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
            pip = [str(python), "-m", "pip", "install", "-q", "--no-compile", str(source)]
        else:
            pip = [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-compile",
                "--no-deps",
                "--force-reinstall",
                str(source),
            ]
        subprocess.run(pip, check=True, timeout=1200, capture_output=True)
        (venv / "complete").write_text(pyproject.read_text())
    return python


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


def test_pip_install_indexes_and_serves_the_demo_without_torch(tmp_path):
    """`pip install .` alone, run outside the checkout with an empty ONNX cache: the bundled model
    indexes the demo (sbi-index), `uvicorn --factory` serves it with its page and static files,
    verification is on (OpenCV installed), and a live add is found."""
    python = installed_venv()
    check = subprocess.run([str(python), "-c", "import torch"], capture_output=True, check=False)
    assert check.returncode != 0, "pip install . must not bring torch"
    copy_photos(tmp_path / "images")
    shutil.copy2(PROJECT_DIR / "data" / "the_data.csv", tmp_path / "data.csv")
    # int8 on any CPU (emulated without VNNI): quantizing the bundled model needs no torch either
    environment = {
        **os.environ,
        "SBI_ONNX_DIR": str(tmp_path / "onnx"),
        "SBI_MODEL": "auto",
        "SBI_PRECISION": "int8",
    }
    indexed = subprocess.run(
        [str(python.parent / "sbi-index"), "--images", str(tmp_path / "images"), "--quiet"]
        + ["--csv", str(tmp_path / "data.csv"), "--output", str(tmp_path / "saved")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert indexed.returncode == 0, indexed.stderr[-3000:]
    settings = make_settings(tmp_path)
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    new = io.BytesIO()
    Image.open(PHOTOS / "kite.jpg").rotate(3).save(new, format="PNG")
    with (
        running_server(
            settings,
            python=str(python),
            app=("--factory", "search_by_image.api.app:create_app"),
            cwd=tmp_path,
            SBI_ONNX_DIR=str(tmp_path / "onnx"),
        ) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        found = client.post(
            "/search", files={"file": ("q.jpg", (PHOTOS / "dog.jpg").read_bytes(), "image/jpeg")}
        ).json()
        top = found["results"][0]
        assert (top["path"], top["match"], found["model"]) == ("dog.jpg", "copy", "efficientnet_lite0")
        assert top["inliers"] is not None, "verification must be on: OpenCV is a dependency"
        page = client.get("/search")
        assert page.status_code == 200 and "<form" in page.text
        assert client.get("/static/style.css").status_code == 200
        added = client.post(
            "/collections/default/images",
            files={"files": ("new.png", new.getvalue(), "image/png")},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert added.status_code == 201
        again = client.post("/search", files={"file": ("q.png", new.getvalue(), "image/png")}).json()
        assert again["results"][0]["path"] == added.json()["images"][0]["path"]
    # the bundled fp32 model is read where it is installed; only its int8 model is written
    written = [path.name for path in (tmp_path / "onnx").glob("*.onnx")]
    assert len(written) == 1 and "--int8-" in written[0], written
