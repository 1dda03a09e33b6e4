"""The last indexer run's unreadable files, visible through the API and on the page."""

from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, make_settings

from main import create_app
from search_by_image.indexing.indexer import update_index


def test_unreadable_files_are_listed_with_their_reason_until_they_are_fixed(tmp_path):
    settings = make_settings(tmp_path, reload_seconds=0)
    copy_photos(settings.images_dir, ["coffee.jpg", "rocket.jpg"])
    (settings.images_dir / "broken.jpg").write_bytes((PHOTOS / "dog.jpg").read_bytes()[:3000])
    (settings.images_dir / "notes.heic").write_bytes(b"%PDF-1.4 not a photo at all")
    update_index(settings, progress=False)
    with TestClient(create_app(settings)) as client:
        listed = client.get("/collections/default").json()["unreadable"]
        assert listed["checked"] is not None
        reasons = {f["path"]: f["reason"] for f in listed["files"]}
        assert set(reasons) == {"broken.jpg", "notes.heic"}
        assert "truncated or corrupt" in reasons["broken.jpg"]
        assert "PDF files are not supported" in reasons["notes.heic"]
        page = client.get("/search").text
        assert "2 files in “default” could not be read by the last indexer run" in page
        assert "<code>notes.heic</code>: PDF files are not supported" in page

        (settings.images_dir / "broken.jpg").unlink()
        (settings.images_dir / "notes.heic").unlink()
        update_index(settings, progress=False)
        assert client.get("/collections/default").json()["unreadable"]["files"] == []
        assert 'id="unreadable"' not in client.get("/search").text
