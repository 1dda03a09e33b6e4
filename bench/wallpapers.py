"""Real camera-size photographs for the benches, from Debian's wallpaper packages.

`plasma-workspace-wallpapers` and `gnome-backgrounds` hold photos from 2560x1600 to 5120x2880
(JPEG, PNG, WebP), freely licensed. They are fetched with `apt-get download` and unpacked with
`dpkg -x` into a cache folder on first use (about 130 MB), never into the repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PIL import Image

PACKAGES = ("plasma-workspace-wallpapers", "gnome-backgrounds")
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CACHE = Path(os.environ.get("SBI_BENCH_CACHE", Path.home() / ".cache" / "search-by-image" / "bench"))


def fetch(cache: Path = CACHE) -> Path:
    """The unpacked packages' folder; downloads them (apt-get update once first) if absent."""
    folder = cache / "wallpapers"
    unpacked = folder / "x"
    if unpacked.is_dir() and any(unpacked.rglob("*.jpg")):
        return unpacked
    folder.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", *PACKAGES]
    if subprocess.run(download, cwd=folder, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(download, cwd=folder, check=True, capture_output=True)
    for deb in folder.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
        deb.unlink()
    return unpacked


def photos(min_side: int = 2560, cache: Path = CACHE) -> list[Path]:
    """Every photo of the packages whose longer side is at least `min_side`, by size then name
    (each theme ships one picture at several sizes: only its largest copy is kept)."""
    best: dict[str, tuple[int, Path]] = {}
    for path in sorted(fetch(cache).rglob("*")):
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        try:
            with Image.open(path) as image:
                pixels, side = image.width * image.height, max(image.size)
        except OSError:
            continue
        theme = _theme(path)
        if side >= min_side and pixels > best.get(theme, (0, path))[0]:
            best[theme] = (pixels, path)
    return sorted(path for _, path in best.values())


def _theme(path: Path) -> str:
    """Plasma keeps one picture per `wallpapers/NAME/contents/images/WxH.ext`; GNOME names files."""
    parts = path.parts
    if "contents" in parts:
        return parts[parts.index("contents") - 1]
    return path.stem.split("-")[0] if path.stem[-1:] in "ld" and "-" in path.stem else path.stem
