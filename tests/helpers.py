"""Helpers the tests import: the demo photos, settings for a test collection, encoders for test
images, and a real uvicorn on 127.0.0.1. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from config import PROJECT_DIR, Settings

PHOTOS = PROJECT_DIR / "data" / "the_images"
DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
ARTIFACTS = PROJECT_DIR / "tests" / "artifacts"
LIVE_UPLOAD_LIMIT = 400_000


def make_settings(root: Path, **overrides) -> Settings:
    """Settings for a collection under `root` (images/, data.csv, saved/), on the bundled model."""
    values = dict(
        images_dir=root / "images",
        metadata_csv=root / "data.csv",
        saved_dir=root / "saved",
        model="efficientnet_lite0",
        workers=0,
    )
    return Settings(**{**values, **overrides})


def copy_photos(target: Path, names: list[str] | None = None) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    chosen = names or sorted(p.name for p in PHOTOS.iterdir())
    for name in chosen:
        shutil.copy2(PHOTOS / name, target / name)
    return chosen


def plant_copies(images_dir: Path) -> None:
    """Two copies of demo photos in `images_dir/copies/`, as a library gathers them: the cat at
    half size recompressed (cat-small.jpg), the eagle cropped by 8% on each side (eagle-crop.jpg)."""
    copies = images_dir / "copies"
    copies.mkdir(parents=True, exist_ok=True)
    cat = Image.open(PHOTOS / "chelsea.jpg")
    (copies / "cat-small.jpg").write_bytes(jpeg_bytes(cat.resize((cat.width // 2, cat.height // 2)), 70))
    eagle = Image.open(PHOTOS / "eagle.jpg")
    w, h = eagle.size
    (copies / "eagle-crop.jpg").write_bytes(
        jpeg_bytes(eagle.crop((w * 8 // 100, h * 8 // 100, w * 92 // 100, h * 92 // 100)))
    )


def write_cat_copies(images_dir: Path, mirror: bool = False) -> None:
    """Copies of the demo's cat beside it: at half size recompressed (cat-small.jpg), cropped by
    5% top and left (cat-crop.jpg) and, with `mirror`, mirrored (cat-mirror.jpg)."""
    cat = Image.open(PHOTOS / "chelsea.jpg")
    w, h = cat.size
    (images_dir / "cat-small.jpg").write_bytes(jpeg_bytes(cat.resize((w // 2, h // 2)), 70))
    (images_dir / "cat-crop.jpg").write_bytes(jpeg_bytes(cat.crop((w // 20, h // 20, w, h))))
    if mirror:
        (images_dir / "cat-mirror.jpg").write_bytes(jpeg_bytes(ImageOps.mirror(cat)))


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def taken_at(moment: str, fraction: str | None = None) -> bytes:
    """EXIF saying when a photo was taken, as a camera writes it (DateTimeOriginal, and
    SubSecTimeOriginal if `fraction`), for `encoded(..., exif=...)` in any format Pillow writes
    EXIF into (as bytes: TIFF and AVIF ignore an `Image.Exif`)."""
    exif = Image.Exif()
    shot = exif.get_ifd(ExifTags.IFD.Exif)
    shot[ExifTags.Base.DateTimeOriginal] = moment
    if fraction is not None:
        shot[ExifTags.Base.SubsecTimeOriginal] = fraction
    return exif.tobytes()


def encoded(image: Image.Image, format: str, **options) -> bytes:
    """`image` in `format` as Pillow (and its HEIF/AVIF plugins) writes it."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


#: XYZ (D65) to linear sRGB: as a DNG's ColorMatrix1, the sensor's colours are sRGB's primaries.
_XYZ_TO_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)


def dng_bytes(
    photo: Image.Image, orientation: int = 1, active_area: tuple[int, int, int, int] | None = None
) -> bytes:
    """A camera raw file (DNG, 12-bit RGGB Bayer mosaic, no preview) made from a real photo with
    PiDNG: what LibRaw must demosaic, as it would a sensor's data. `active_area` (top, left,
    bottom, right): the part of the sensor the file says is the image."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    rgb = np.asarray(photo.convert("RGB"), dtype=np.float64)
    height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = ((rgb[:height, :width] / 255.0) ** 2.2 * 4095).astype(np.uint16)
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    tags = DNGTags()
    for tag, value in [
        (Tag.ImageWidth, width),
        (Tag.ImageLength, height),
        (Tag.TileWidth, width),
        (Tag.TileLength, height),
        (Tag.Orientation, orientation),
        (Tag.SamplesPerPixel, 1),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.BitsPerSample, 16),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 0),
        (Tag.WhiteLevel, 4095),
        (Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in _XYZ_TO_SRGB]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65),
        (Tag.AsShotNeutral, [[1, 1]] * 3),
        (Tag.Make, "search-by-image tests"),
        (Tag.Model, "PiDNG"),
        (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2),
    ]:
        tags.set(tag, value)
    if active_area is not None:
        tags.set(Tag.ActiveArea, list(active_area))
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    return bytes(writer.convert(mosaic))


def require_datasets(name: str) -> Path:
    path = DATASETS / name
    if not (path / "groundtruth.csv").is_file():
        pytest.skip(f"{path} is absent: the evaluation datasets live in ../shared beside the repo")
    return path


def writable_copy(settings: Settings, root: Path, **overrides) -> Settings:
    """A copy of `settings`' collection (images, CSV, saved index) under `root`, for tests that
    write to it; `overrides` change other settings."""
    shutil.copytree(settings.images_dir, root / "images")
    shutil.copy2(settings.metadata_csv, root / "data.csv")
    shutil.copytree(settings.saved_dir, root / "saved")
    return settings.model_copy(
        update={
            "images_dir": root / "images",
            "metadata_csv": root / "data.csv",
            "saved_dir": root / "saved",
            **overrides,
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    settings: Settings,
    python: str = sys.executable,
    app: tuple[str, ...] = ("main:app",),
    cwd: Path = PROJECT_DIR,
    wait_s: float = 120,
    stderr: int = subprocess.PIPE,
    **env: str,
) -> tuple[subprocess.Popen, str]:
    """A real `uvicorn main:app` on 127.0.0.1 serving `settings`' collections, started and
    waited for (`/health` ok within `wait_s`): the process and its URL. `python`: the
    interpreter of the venv to run it from; `app` and `cwd`: uvicorn's app arguments and where it
    runs (an installed package runs outside the checkout); `stderr`: DEVNULL for a server that
    runs long (a pipe nobody reads fills up).

    No rate limit unless `env` sets SBI_RATE_LIMIT: these tests send many requests from one address.
    """
    port = free_port()
    environment = {
        **os.environ,
        "SBI_IMAGES_DIR": str(settings.images_dir),
        "SBI_METADATA_CSV": str(settings.metadata_csv),
        "SBI_SAVED_DIR": str(settings.saved_dir),
        "SBI_RATE_LIMIT": "",
        **env,
    }
    server = subprocess.Popen(
        [python, "-m", "uvicorn", *app, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            said = server.stderr.read().decode()[-2000:] if server.stderr else ""
            pytest.fail(f"uvicorn did not start: {said}")
        time.sleep(0.3)


@contextlib.contextmanager
def running_server(settings: Settings, **options) -> Iterator[str]:
    """`start_server`'s server for the `with` block (its options); yields its URL."""
    server, base = start_server(settings, **options)
    try:
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(client, predicate, seconds: float = 60.0) -> dict:
    """/health once `predicate` holds for it (AssertionError after `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if predicate(health):
            return health
        time.sleep(0.1)
    raise AssertionError(f"/health never got there: {health}")


def eventually(holds: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether `holds()` becomes true within `seconds` (asked every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def smooth_grey(amplitude: float, seed: int = 0) -> np.ndarray:
    """A smooth 320 x 320 grey picture (an abstract wallpaper's detail): gentle gradients only."""
    import cv2

    field = cv2.resize(
        np.random.default_rng(seed).normal(0, 1, (12, 12)).astype(np.float32),
        (320, 320),
        interpolation=cv2.INTER_CUBIC,
    )
    return np.clip(128 + amplitude * field / field.std(), 0, 255).astype(np.uint8)


def planted_collection(root: Path) -> Settings:
    """The demo photos plus `plant_copies`' two copies, indexed, under `root`."""
    from search_by_image.indexing.indexer import update_index

    settings = make_settings(root)
    copy_photos(settings.images_dir)
    plant_copies(settings.images_dir)
    update_index(settings, progress=False)
    return settings
