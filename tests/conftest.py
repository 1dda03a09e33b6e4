"""Shared fixtures: real bundled weights, real photos (the demo collection), small indexes.
The helpers tests import live in helpers.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LIVE_UPLOAD_LIMIT, copy_photos, make_settings, running_server

from config import PROJECT_DIR, Settings
from search_by_image.indexing.indexer import update_index
from search_by_image.model.embedder import Embedder, EmbedderSpec


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Iterator[Path]:
    """One ONNX cache for every collection and server of the session (SBI_ONNX_DIR), so the
    export and the int8 quantization run once, not once per test collection."""
    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SBI_ONNX_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def loaded_before_answering() -> Iterator[None]:
    """Services started by tests (TestClient, and uvicorn through the environment) load their
    indexes before answering, so a test can search at once; tests/unit/serving/test_service.py covers the
    default, loading in the background (SBI_LOAD_IN_BACKGROUND)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SBI_LOAD_IN_BACKGROUND", "false")
        yield


@pytest.fixture(scope="session")
def lite0(onnx_cache) -> Embedder:
    """The bundled EfficientNet-Lite0 with its real ImageNet weights, default preprocessing and
    the default runtime and precision (int8 on ONNX Runtime on a CPU with VNNI, else fp32)."""
    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    return Embedder(spec, "cpu", runtime="auto", cache_dir=onnx_cache)


@pytest.fixture(scope="session")
def demo_collection(tmp_path_factory) -> Settings:
    """The bundled demo photos and their CSV, indexed once for the whole session."""
    root = tmp_path_factory.mktemp("demo")
    copy_photos(root / "images")
    shutil.copy2(PROJECT_DIR / "data" / "the_data.csv", root / "data.csv")
    settings = make_settings(root)
    update_index(settings, progress=False)
    return settings


@pytest.fixture(scope="session")
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def live_server(demo_collection) -> Iterator[str]:
    """The demo collection behind a real uvicorn, with a small upload limit."""
    with running_server(demo_collection, SBI_MAX_UPLOAD_BYTES=str(LIVE_UPLOAD_LIMIT)) as base:
        yield base
