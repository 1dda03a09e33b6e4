"""Live writes across mount points: the CSV and images on one file system, the saved folder on
another (the compose layout's two volumes)."""

import errno
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes
from PIL import Image

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.index import live_files
from search_by_image.layout import KEYS_FILE

SHM = Path("/dev/shm")


def test_a_move_across_file_systems_is_a_copy_then_a_rename(tmp_path, monkeypatch):
    def no_rename(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", no_rename)
    source, target = tmp_path / "a.jpg", tmp_path / "trash" / "1-a.jpg"
    source.write_bytes(b"photo")
    live_files.move(source, target)
    assert not source.exists() and target.read_bytes() == b"photo"
    assert [p.name for p in target.parent.iterdir()] == ["1-a.jpg"]


@pytest.fixture
def across_mounts(demo_collection, tmp_path):
    """The demo collection with its images and CSV on /dev/shm (tmpfs) and its index on disk."""
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) to write across")
    data = Path(tempfile.mkdtemp(dir=SHM, prefix="sbi-test-"))
    try:
        shutil.copytree(demo_collection.images_dir, data / "images")
        shutil.copy2(demo_collection.metadata_csv, data / "data.csv")
        shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
        yield demo_collection.model_copy(
            update={
                "images_dir": data / "images",
                "metadata_csv": data / "data.csv",
                "saved_dir": tmp_path / "saved",
            }
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_adds_and_deletes_work_across_mount_points(across_mounts):
    settings = across_mounts
    assert os.stat(settings.images_dir).st_dev != os.stat(settings.saved_dir).st_dev
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")
    photo = Image.open(next(PHOTOS.iterdir())).crop((10, 10, 300, 260))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        added = client.post(
            "/collections/default/images",
            files=[("files", ("new.jpg", jpeg_bytes(photo), "image/jpeg"))],
            data={"metadata": '{"title": "Across"}'},
        )
        assert added.status_code == 201, added.text
        image_id = added.json()["images"][0]["id"]
        assert "Across" in client.get("/collections/default/metadata.csv").text
        deleted = client.delete(f"/collections/default/images/{image_id}")
        assert deleted.status_code == 200, deleted.text
        assert "Across" not in client.get("/collections/default/metadata.csv").text
        assert client.get(f"/images/{added.json()['images'][0]['path']}").status_code == 404
    trash = settings.saved_dir / "trash"
    assert [p.suffix for p in sorted(trash.iterdir())] == [".jpg", ".json"]  # the file and its metadata
    Image.open(io.BytesIO(next(trash.glob("*.jpg")).read_bytes())).verify()
    assert not [p for p in settings.images_dir.rglob(".*")]
    assert not [p for p in settings.saved_dir.rglob(".*") if p.name not in (".lock", ".url_secret")]
