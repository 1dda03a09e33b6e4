"""Stored keypoints' variants for camera details, measured offline with the product's own
functions: each detail of bench/quality_copies.py checked (`verification.check`, the finer set
tried where the thumbnail's finds no copy, as a search does) against its source's stored
keypoints (`stored_keypoints.compute` from the collection's thumbnail and a larger view of the
photo), for several sizes of the larger view and keypoint counts; and against two other
wallpapers each, for false copies. Prints per variant: details verified / copy / aligned, false
copies (and aligned: ranked above the rest), bytes per image, indexing ms per image (the larger
decode and extraction), check ms per pair.

    python -m bench.quality_stored_keypoints --seeds 11 12
    python -m bench.quality_stored_keypoints --seeds 11 --variants 1024,2000 --others 6 --flat-levers

Run bench.quality_copies first (it indexes the collection). Tables: bench/README.md "Stored
keypoints".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import wallpapers
from bench.quality_copies import CAMERA_MIN_SIDE, HELD_OUT_SEED, details
from bench.quality_levers import (
    FINER_ALIGNED_OFF,
    FLAT_OFF,
    LARGER_QUERY_EVERYWHERE,
    LARGER_QUERY_HINTED,
    LARGER_QUERY_OFF,
    LOOSE_OFF,
    patched,
)
from search_by_image.catalog.thumbnails import THUMBNAIL_PX, Thumbnails
from search_by_image.images.decoding import open_rgb
from search_by_image.index.store import IndexStore
from search_by_image.ranking import local_features, query_keypoints, stored_keypoints, verification

#: (larger view's side, its keypoints); (0, 0): the thumbnail's keypoints alone
VARIANTS = ((0, 0), (768, 1000), (1024, 1000), (1024, 2000), (1536, 2000), (1536, 4000))
#: other wallpapers each detail is checked against (false copies)
OTHERS = 2
#: `--flat-levers`: the flat-picture checks (verification.FINER_RATIO, alignment.FLAT_EDGE_LEVELS)
#: off, each alone, both; then the upload's larger keypoints (verification.FINER_QUERY) too
FLAT_LEVERS = {
    "before flat-picture checks": (LOOSE_OFF, FLAT_OFF, LARGER_QUERY_OFF),
    "looser second match only": (FLAT_OFF, LARGER_QUERY_OFF),
    "flat motion only": (LOOSE_OFF, LARGER_QUERY_OFF),
    "both": (LARGER_QUERY_OFF,),
    "both + larger query keypoints, kept only as copies": (FINER_ALIGNED_OFF,),
    "both + larger query keypoints, kept where aligned (default)": (),
}
#: `--query-levers`: where the upload's larger keypoints are tried (verification.FINER_QUERY_INLIERS,
#: FINER_QUERY_LOOSE_INLIERS)
QUERY_LEVERS = {
    "larger query off": (LARGER_QUERY_OFF,),
    "larger query from a hint": LARGER_QUERY_HINTED,
    "larger query on every big photo": LARGER_QUERY_EVERYWHERE,
}


def query_of(data: bytes) -> verification.Query:
    """A detail decoded as POST /search decodes it (DCT scaled to at least the model's size), its
    larger view decoded again if a check asks for it."""

    def size_for(width: int, height: int) -> tuple[int, int]:
        scale = THUMBNAIL_PX / max(width, height)
        return round(width * scale), round(height * scale)

    rgb = np.asarray(open_rgb(data, 10**9, size_for))
    return verification.Query.of_image(rgb, larger=lambda: query_keypoints.larger_view(data, 10**9))


def stored(
    photo: Path, thumbnail: Path, side: int, count: int, args_view: bool = True
) -> tuple[local_features.Keypoints, int, float]:
    """A wallpaper's keypoints as the indexer stores them with this variant, their bytes, and the
    ms the larger view took (decode + extraction); pixels compared at the larger view (as a
    search does) unless `args_view` is False (at the thumbnail)."""
    with Image.open(thumbnail) as image:
        pixels = np.asarray(image.convert("RGB"))
    started = time.perf_counter()
    with patched((stored_keypoints, "LARGE_SIDE", side or 1), (stored_keypoints, "LARGE_KEYPOINTS", count)):
        large = stored_keypoints.large_view(photo, 10**9) if side else None
        found = stored_keypoints.compute(pixels, large)
    ms = (time.perf_counter() - started) * 1e3
    grey = local_features.scaled_grey(pixels)
    view = None if large is None else local_features.scaled_grey(large, side)
    compared = None if view is None or not args_view else (lambda: view)
    return stored_keypoints.keypoints(found, lambda: grey, view=compared), found.nbytes, ms


def checked(copies, queries, sets, others) -> tuple[list[tuple[float, bool, bool, bool]], str, list[float]]:
    """Each detail checked against its source as a search does ((area, verified, copy, aligned)
    each), the false copies (and aligned: ranked first) among its `others`, and the ms each
    source check took."""
    found, false, aligned, check_ms = [], 0, 0, []
    for (_, copy), asked, wrong in zip(copies, queries, others):
        started = time.perf_counter()
        result = verification.check(asked, sets[copy.source], False, finer=True)
        check_ms.append((time.perf_counter() - started) * 1e3)
        found.append((copy.area, result.verified, result.copy, result.aligned))
        for other in (verification.check(asked, sets[o], False, finer=True) for o in wrong):
            false, aligned = false + other.copy, aligned + other.aligned
    return found, f"{false} ({aligned} aligned)", check_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=wallpapers.CACHE / "copies-collection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[HELD_OUT_SEED])
    parser.add_argument("--variants", nargs="*", default=None, help="side,keypoints each (default: all)")
    parser.add_argument("--at-thumbnail", action="store_true", help="compare pixels at the thumbnail")
    parser.add_argument("--others", type=int, default=OTHERS, help="other wallpapers per detail")
    parser.add_argument("--flat-levers", action="store_true", help="each variant with the flat checks off/on")
    parser.add_argument("--query-levers", action="store_true", help="each variant, larger query's gates")
    args = parser.parse_args(argv)
    variants = [tuple(map(int, v.split(","))) for v in args.variants] if args.variants else VARIANTS
    saved = args.work / "saved"
    if not (saved / "manifest.json").is_file():
        print(f"{saved} has no collection: run python -m bench.quality_copies first")
        return 0
    files = IndexStore.load(saved).files()
    thumbnails = Thumbnails(saved)
    photos = wallpapers.photos(min_side=CAMERA_MIN_SIDE)
    names = [f"wall-{n:03d}{p.suffix.lower()}" for n, p in enumerate(photos)]
    copies = [(seed, copy) for seed in args.seeds for copy in details(photos, seed)]
    queries = [query_of(copy.data) for _, copy in copies]
    rng = np.random.default_rng(0)
    others = [
        rng.choice([n for n in range(len(photos)) if n != c.source], args.others, False) for _, c in copies
    ]
    levers = FLAT_LEVERS if args.flat_levers else QUERY_LEVERS if args.query_levers else {"": ()}
    print("| larger view | details verified / copy / aligned | 0.10-0.20 of the area | false copies | "
          "bytes / image | indexing ms / image | check ms / pair |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for side, count in variants:
        sets, sizes, index_ms = [], [], []
        for n, photo in enumerate(photos):
            thumbnail = thumbnails.file(names[n], tuple(files[names[n]]))
            keypoints, size, ms = stored(photo, thumbnail, side, count, not args.at_thumbnail)
            sets.append(keypoints)
            sizes.append(size)
            index_ms.append(ms)
        label = f"{side} px, {count}" if side else "none (thumbnail's 500 only)"
        for lever, patches in levers.items():
            with patched(*patches):
                found, false, check_ms = checked(copies, queries, sets, others)
            table = np.array(found, np.float64)
            small = table[table[:, 0] < 0.2]
            name = f"{label}, {lever}" if lever else label
            print(
                f"| {name} | {table[:, 1].mean():.3f} / {table[:, 2].mean():.3f} / {table[:, 3].mean():.3f} "
                "| "
                f"{small[:, 1].mean():.3f} / {small[:, 2].mean():.3f} | "
                f"{false} of {args.others * len(copies)} | "
                f"{np.mean(sizes) / 1024:.1f} KB | {np.median(index_ms):.0f} | {np.median(check_ms):.1f} |",
                flush=True,
            )
    print(f"({len(copies)} details of seeds {args.seeds}; {len(photos)} wallpapers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
