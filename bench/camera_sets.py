"""The camera-size sets of bench/camera.py (12 MP and 6 MP crops of Debian's wallpapers as JPEG q90
and HEIC, and 4K-5K PNGs) and the helpers its sections share. Tables: bench/README.md.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from bench import wallpapers
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import Settings

BIG = 200_000_000


SIZES = {"12 MP": (4240, 2832), "6 MP": (3000, 2000)}


HEIC_OPTIONS = {"quality": 80, "enc_params": {"preset": "ultrafast"}}


def _crops(sources: list[Path], size: tuple[int, int], count: int, seed: int):
    """`count` different camera-size pictures: crops of the sources at random places and scales
    (covering `size`), mirrored every other time, resized to exactly `size` (each source decoded
    once for all its crops)."""
    rng = random.Random(seed)
    aspect = size[0] / size[1]
    per_source = -(-count // len(sources))
    made = 0
    for source_path in sources:
        with Image.open(source_path) as source:
            photo = source.convert("RGB")
        for _ in range(min(per_source, count - made)):
            width = min(photo.width, round(photo.height * aspect)) * rng.uniform(0.7, 1.0)
            height = width / aspect
            left = rng.uniform(0, photo.width - width)
            top = rng.uniform(0, photo.height - height)
            crop = photo.resize(size, Image.Resampling.BILINEAR, box=(left, top, left + width, top + height))
            yield crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if made % 2 else crop
            made += 1


def camera_sets(counts: dict[str, int]) -> dict[str, Path]:
    """Folder per set name ('12 MP JPEG', ...), made on first use into the cache."""
    root = wallpapers.CACHE / "camera"
    sources = wallpapers.photos()
    sets = {}
    for size_name, size in SIZES.items():
        for fmt, suffix, options in (("JPEG", ".jpg", {"quality": 90}), ("HEIF", ".heic", HEIC_OPTIONS)):
            label = f"{size_name} {'HEIC' if fmt == 'HEIF' else fmt}"
            count = counts["heic" if fmt == "HEIF" else size_name]
            folder = root / label.replace(" ", "-").lower()
            folder.mkdir(parents=True, exist_ok=True)
            if len(list(folder.glob(f"*{suffix}"))) < count:
                print(f"making {count} {label} files in {folder}", file=sys.stderr)
                for number, crop in enumerate(_crops(sources, size, count, seed=len(sets))):
                    file = folder / f"{number:04d}{suffix}"
                    if not file.exists():  # atomically, so an interrupted run leaves no half file
                        crop.save(file.with_suffix(".tmp"), format=fmt, **options)
                        os.replace(file.with_suffix(".tmp"), file)
            sets[label] = folder
    pngs = root / "4k-5k-png"
    pngs.mkdir(parents=True, exist_ok=True)
    for source in sources:
        link = pngs / f"{source.parent.parent.parent.name}.png"
        if source.suffix == ".png" and not link.exists():
            link.symlink_to(source)
    sets["4K-5K PNG"] = pngs
    return sets


def files_of(folder: Path, limit: int | None = None) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".heic", ".png"))[:limit]


def median_ms(fn, items) -> float:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def one_thread_embedder(settings: Settings) -> Embedder:
    return Embedder.configured(EmbedderSpec.from_settings(settings), settings, threads=1)
