"""Mosaics of real photos composed fast, for duplicates benches at 100k images: each mosaic's
thumbnail made of real pixels, its stored keypoints composed from its sources' and its
descriptor SYNTHETIC, all written through the product's own storage code.

A mosaic is 2 x 2 quadrants, each a crop of a source photo (`Crop`: the whole photo squeezed
square, as bench/speed_duplicates_pass.py's mosaics are, or a random square crop). What is
written for each, as `with_faiss.py` would:

- the image file: the mosaic as a 448 px JPEG (catalog/thumbnails.encode), its grid thumbnail
  the same file (a hard link under the thumbnail's own name: an original at thumbnail size);
  the duplicates checks read these real pixels;
- its stored keypoints (catalog/keypoint_store.py): each quadrant's share of its source's ORB
  keypoints, extracted once per source at the view size closest to the quadrant's scale (a
  192 x 192 px quarter of the 384 px frame) and mapped into place, about the density the
  indexer's extraction gives (KEYPOINTS in the frame); not extracted from the mosaic itself;
- its descriptor, SYNTHETIC: the normalised mean of its quadrants' descriptors plus Gaussian
  noise of norm `noise`, a quadrant's being its source's real descriptor (efficientnet-lite0,
  indexed by the product) plus noise of norm `crop_noise` for a crop (none for a whole photo).

The index, features, manifest, catalog and the run's bookkeeping are the indexer's own
(`indexer.update_index` with `ComposedEngine` in place of the model).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.catalog.keypoint_store import KeypointStore, PointSet, StoredKeypoints
from search_by_image.catalog.thumbnails import THUMBNAIL_PX, Thumbnails, encode
from search_by_image.ranking import local_features

#: The stored keypoints' frame (the thumbnail's grey at local_features.SIDE) and a quadrant in it.
FRAME = local_features.SIDE
QUARTER = FRAME // 2
#: Keypoints a quadrant keeps at most: its share of the indexer's KEYPOINTS.
PER_QUARTER = local_features.KEYPOINTS // 4
#: Keypoint views of a source: longest sides, as far as its decode allows.
VIEW_SIDES = (192, 384, 768, 1536)
#: Rows written to the keypoint store per transaction.
BATCH = 256


@dataclass(frozen=True)
class Source:
    """A source photo: its decoded pixels, its real descriptor (unit), and its keypoints at
    several view sizes: (view width / decoded width, xy in the view, descriptors)."""

    name: str
    image: Image.Image
    feature: np.ndarray
    views: list[tuple[float, np.ndarray, np.ndarray]]


def decoded(path: Path, side: int) -> Image.Image:
    """A photo decoded as RGB with its longest side at most `side` (JPEG DCT-scaled first)."""
    with Image.open(path) as image:
        image.draft("RGB", (side, side))
        rgb = image.convert("RGB")
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return rgb


def source(name: str, image: Image.Image, feature: np.ndarray) -> Source:
    """A source with its keypoints extracted at each view size up to its own, twice as many per
    pixel as a quadrant keeps (`quadrant_points`)."""
    pixels = np.asarray(image)
    views = []
    for side in VIEW_SIDES:
        if side > max(image.size) * 1.01:
            break
        scale = side / max(image.size)
        count = round(2 * PER_QUARTER * image.width * image.height * scale**2 / QUARTER**2)
        found = local_features.extract(pixels, side, max(count, 16))
        # a fixed order standing in for ORB's response: crops that overlap keep the same points
        order = np.random.default_rng(len(views)).permutation(len(found.xy))
        views.append((found.grey.shape[1] / image.width, found.xy[order], found.descriptors[order]))
    return Source(name, image, feature / np.linalg.norm(feature), views)


@dataclass(frozen=True)
class Crop:
    """A quadrant: source index and box (left, top, right, bottom) in its decoded pixels."""

    source: int
    box: tuple[float, float, float, float]


def random_crop(rng: np.random.Generator, number: int, size: tuple[int, int], smallest: float) -> Crop:
    """A square crop of `smallest` to all of the photo's shorter side, anywhere in it."""
    width, height = size
    side = min(width, height) * rng.uniform(smallest, 1.0)
    left, top = rng.uniform(0, width - side), rng.uniform(0, height - side)
    return Crop(number, (left, top, left + side, top + side))


def quadrant_points(
    crop: Crop, sources: list[Source], corner: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The source's keypoints inside the crop (the first PER_QUARTER in the view's order), from
    the view whose scale is closest to the quadrant's, mapped into the quadrant at `corner` of the
    frame (pixel centres onto centres)."""
    photo = sources[crop.source]
    left, top, right, bottom = crop.box
    wanted = QUARTER / np.sqrt((right - left) * (bottom - top))  # frame px per decoded px
    scale, xy, descriptors = min(photo.views, key=lambda v: abs(np.log(v[0] / wanted)))
    box = np.array([left, top, right, bottom], np.float32) * scale
    centre = xy + 0.5
    inside = (
        (centre[:, 0] >= box[0])
        & (centre[:, 0] < box[2])
        & (centre[:, 1] >= box[1])
        & (centre[:, 1] < box[3])
    )
    kept = np.flatnonzero(inside)[:PER_QUARTER]
    stretch = np.array([QUARTER / (box[2] - box[0]), QUARTER / (box[3] - box[1])], np.float32)
    mapped = (centre[kept] - box[:2]) * stretch + np.array(corner, np.float32) - 0.5
    return mapped.astype(np.float32), descriptors[kept]


def compose(crops: list[Crop], sources: list[Source]) -> tuple[bytes, StoredKeypoints]:
    """A mosaic's JPEG (THUMBNAIL_PX square) and its composed keypoints (at most KEYPOINTS)."""
    half = THUMBNAIL_PX // 2
    canvas = Image.new("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
    points, descriptors = [], []
    for n, crop in enumerate(crops):
        column, row = n % 2, n // 2
        quadrant = sources[crop.source].image.resize((half, half), Image.Resampling.BICUBIC, box=crop.box)
        canvas.paste(quadrant, (column * half, row * half))
        xy, found = quadrant_points(crop, sources, (column * QUARTER, row * QUARTER))
        points.append(xy), descriptors.append(found)
    xy, found = np.concatenate(points), np.concatenate(descriptors)
    return encode(canvas), StoredKeypoints((FRAME, FRAME), PointSet(np.ascontiguousarray(xy), found))


def descriptor(
    crops: list[Crop], sources: list[Source], noise: float, crop_noise: float, seed: int
) -> np.ndarray:
    """The SYNTHETIC descriptor of a mosaic (module docstring); the same for the same seed."""
    rng = np.random.default_rng(seed)
    dim = len(sources[0].feature)
    parts = []
    for crop in crops:
        part = sources[crop.source].feature.astype(np.float64)
        if crop_noise and not _whole(crop, sources):
            part = part + crop_noise * rng.standard_normal(dim) / np.sqrt(dim)
        parts.append(part / np.linalg.norm(part))
    mean = np.mean(parts, axis=0)
    mixed = mean / np.linalg.norm(mean) + noise * rng.standard_normal(dim) / np.sqrt(dim)
    return (mixed / np.linalg.norm(mixed)).astype(np.float32)


def _whole(crop: Crop, sources: list[Source]) -> bool:
    width, height = sources[crop.source].image.size
    return crop.box == (0.0, 0.0, float(width), float(height))


def write_mosaics(
    folder: Path, saved: Path, recipes: dict[str, list[Crop]], sources: list[Source], workers: int = 1
) -> int:
    """Each mosaic not written yet (no file, or no keypoints row for it): its file in `folder`,
    its thumbnail (a hard link) and its keypoints row in `saved`, by `workers` processes (forked:
    the sources shared); how many were written."""
    import multiprocessing

    store = KeypointStore(saved).create()
    present = {}
    for name in recipes:
        with contextlib.suppress(FileNotFoundError):
            stat = (folder / name).stat()
            present[name] = (stat.st_size, stat.st_mtime_ns)
    unwritten = set(store.missing(present)) | (set(recipes) - set(present))
    store.close()
    todo = [name for name in recipes if name in unwritten]
    parts = [(folder, saved, {n: recipes[n] for n in todo[w::workers]}, sources) for w in range(workers)]
    if workers == 1:
        return _write(*parts[0])
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return sum(pool.starmap(_write, parts))


def _write(folder: Path, saved: Path, recipes: dict[str, list[Crop]], sources: list[Source]) -> int:
    thumbnails, store = Thumbnails(saved), KeypointStore(saved).create()
    rows, written = [], 0
    for name, crops in recipes.items():
        file = folder / name
        data, keypoints = compose(crops, sources)
        staged = file.with_name(f".{name}.tmp")
        staged.write_bytes(data)
        os.replace(staged, file)
        stat = file.stat()
        fingerprint = (stat.st_size, stat.st_mtime_ns)
        thumbnail = thumbnails.file(name, fingerprint)
        thumbnail.parent.mkdir(parents=True, exist_ok=True)
        thumbnail.unlink(missing_ok=True)
        os.link(file, thumbnail)
        rows.append((name, fingerprint, keypoints))
        written += 1
        if len(rows) >= BATCH:
            store.put(rows)
            rows = []
            if written % (BATCH * 40) == 0:
                print(f"  {written} of {len(recipes)} mosaics written (process {os.getpid()})", flush=True)
    store.put(rows)
    store.close()
    return written


@dataclass(frozen=True)
class ComposedEngine:
    """The indexer's engine for composed mosaics: each pending path's SYNTHETIC descriptor
    (`descriptor`) written as the shard's rows; a path with no recipe is refused (skipped)."""

    recipes: dict[str, list[Crop]]
    sources: list[Source]
    noise: float
    crop_noise: float
    name: str = "composed (synthetic descriptors)"

    def embed_shards(self, settings, spec, location, pending, files, progress) -> None:
        from search_by_image.indexing.shards import ShardResult

        order = {name: n for n, name in enumerate(self.recipes)}
        for number, paths in pending.items():
            known = [p for p in paths if p in self.recipes]
            rows = [
                descriptor(self.recipes[p], self.sources, self.noise, self.crop_noise, order[p])
                for p in known
            ]
            features = np.stack(rows) if rows else np.empty((0, spec.dim), np.float32)
            skipped = [(p, "not a composed mosaic") for p in paths if p not in self.recipes]
            files.write(ShardResult(number, known, features, skipped))
