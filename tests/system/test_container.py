"""The container's layout, checked without a container runtime (CI may have none; the image itself
is built and run with ../shared/tools/container/, see docs/deploying.md).

The Dockerfile's and docker-compose.yml's settings are read from the files themselves, then the
app runs with them (paths moved under a temporary /app): what users add lands in the volumes and
survives a new container, and the demo's metadata never reaches photos mounted in its place.
"""

import shlex
import shutil
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, jpeg_bytes, wait_for
from PIL import Image

from config import PROJECT_DIR, Settings
from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE

APP = Path("/app")


def dockerfile_stages() -> dict[str, dict]:
    """Each stage's parent, ENV (inherited from its parent stage) and VOLUMEs, by name."""
    text = (PROJECT_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, dict] = {}
    current: dict = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        instruction, args = words[0].upper(), words[1:]
        if instruction == "FROM":
            parent = stages.get(args[0], {"env": {}, "volumes": []})
            current = {"parent": args[0], "env": dict(parent["env"]), "volumes": list(parent["volumes"])}
            stages[args[2] if len(args) > 2 else "final"] = current
        elif instruction == "ENV":
            current["env"].update(arg.split("=", 1) for arg in args)
        elif instruction == "VOLUME":
            current["volumes"] += yaml.safe_load(" ".join(args))
    return stages


def compose_service() -> dict:
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    return compose["services"]["search-by-image"]


def settings_names(env: dict[str, str]) -> set[str]:
    return {name.removeprefix("SBI_").lower() for name in env if name.startswith("SBI_")}


def test_the_image_and_compose_set_only_real_settings_and_mount_the_images_volumes():
    image = dockerfile_stages()["final"]
    service = compose_service()
    assert settings_names(image["env"]) | settings_names(service["environment"]) <= set(Settings.model_fields)
    assert sorted(mount.split(":")[1] for mount in service["volumes"]) == sorted(image["volumes"])
    # the model is pinned, not guessed at build time; its ONNX files ship outside the volumes
    assert image["env"]["SBI_MODEL"] != "auto"
    assert not any(Path(image["env"]["SBI_ONNX_DIR"]).is_relative_to(v) for v in image["volumes"])


def test_the_image_installs_no_torch():
    text = (PROJECT_DIR / "Dockerfile").read_text()
    assert "requirements.txt" in text and "requirements-torch.txt" not in text
    serving = (PROJECT_DIR / "requirements.txt").read_text().lower()
    assert not any(
        line.split(">")[0].split("=")[0].strip() in ("torch", "torchvision", "timm")
        for line in serving.splitlines()
    )


def search_top(client, photo: Path) -> dict:
    response = client.post("/search", files={"file": ("q.jpg", photo.read_bytes())}, data={"k": 1})
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def container_settings(root: Path) -> tuple[Settings, list[Path]]:
    """The image's settings with /app moved to `root` (the session's ONNX cache kept), and its
    volumes there."""
    image = dockerfile_stages()["final"]
    moved = {
        name: str(root / Path(value).relative_to(APP)) if value.startswith("/app/") else value
        for name, value in image["env"].items()
        if name.startswith("SBI_") and name != "SBI_ONNX_DIR"
    }
    values = {name.removeprefix("SBI_").lower(): value for name, value in moved.items()}
    settings = Settings(**values, workers=0, reload_seconds=0, rate_limit="")
    return settings, [root / Path(v).relative_to(APP) for v in image["volumes"]]


def files_outside(root: Path, volumes: list[Path]) -> dict[Path, int]:
    return {
        path: path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file() and not any(path.is_relative_to(v) for v in volumes)
    }


def test_what_users_add_lives_in_the_volumes_and_survives_a_new_container(tmp_path):
    settings, volumes = container_settings(tmp_path / "app")
    assert settings.metadata_csv.parent == settings.images_dir  # the CSV goes with its photos
    copy_photos(settings.images_dir, ["dog.jpg", "chelsea.jpg"])
    (tmp_path / "app" / "data" / "the_data.csv").write_text("path,title\n")  # repo layout beside
    settings.saved_dir.mkdir(parents=True)
    before = files_outside(tmp_path / "app", volumes)
    with TestClient(create_app(settings)) as client:  # the container's first start
        wait_for(client, lambda h: h["status"] == "ok")
        _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin")  # `docker exec ... keys create`
        added = client.post(
            "/collections/default/images",
            files={"files": ("kite.jpg", (PHOTOS / "kite.jpg").read_bytes(), "image/jpeg")},
            data={"metadata": '{"title": "A kite"}'},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert added.status_code == 201, added.text
    assert files_outside(tmp_path / "app", volumes) == before
    with TestClient(create_app(settings)) as client:  # a new container on the same volumes
        wait_for(client, lambda h: h["indexing"]["state"] == "done")
        found = search_top(client, PHOTOS / "kite.jpg")
        assert found["path"].startswith("uploads/") and found["metadata"] == {"title": "A kite"}
        gone = client.delete(
            f"/collections/default/images/{found['id']}", headers={"Authorization": f"Bearer {key}"}
        )
        assert gone.status_code == 200
    assert files_outside(tmp_path / "app", volumes) == before


def test_photos_mounted_over_the_demo_never_get_the_demos_metadata(tmp_path):
    settings, _ = container_settings(tmp_path / "app")
    # what the image holds: the demo photos with the demo CSV inside their folder
    copy_photos(settings.images_dir, ["coffee.jpg", "dog.jpg"])
    shutil.copy2(PROJECT_DIR / "data" / "the_data.csv", settings.metadata_csv)
    with TestClient(create_app(settings)) as client:
        wait_for(client, lambda h: h["status"] == "ok")
        assert search_top(client, PHOTOS / "coffee.jpg")["metadata"]["title"] == "Coffee cup"
    # a folder of the user's mounted at the same place hides the demo's, CSV included; its
    # coffee.jpg is another photo
    shutil.rmtree(settings.images_dir)
    settings.images_dir.mkdir()
    (settings.images_dir / "coffee.jpg").write_bytes(jpeg_bytes(Image.open(PHOTOS / "astronaut.jpg")))
    with TestClient(create_app(settings)) as client:  # the same saved volume
        wait_for(client, lambda h: h["indexing"]["state"] == "done")
        hit = search_top(client, settings.images_dir / "coffee.jpg")
    assert hit["path"] == "coffee.jpg" and hit["metadata"] == {}
