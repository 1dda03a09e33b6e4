"""Copies made the way photos reach people, searched through the product: every copy combining a
crop, a small turn with black corners, colour, a messaging app's rescale and hard JPEG
(`evaluation/alterations_combined.py`), and details of camera-size photos
(`evaluation/alterations_details.py`), against Holidays-300 plus Debian's wallpapers.

    python -m bench.quality_copies                        # held-out seed 12, the product's defaults
    python -m bench.quality_copies --seeds 11 --levers all   # the tuning seed, every lever
    python -m bench.quality_copies --http                 # + the copies over HTTP (uvicorn)

The collection is indexed the way `python with_faiss.py` does (`evaluation.product.index_like_a_user`:
the 811 Holidays photos and the wallpapers symlinked into a folder, the indexer's defaults), into
`--work` (kept between runs: a second run embeds nothing). Each copy is uploaded as its bytes through
POST /search's code (`ProductSearch`, every image asked for) and its source's rank recorded. Seed 11
is where levers were tuned, seed 12 held out. Details are made once per seed into the bench cache.
Each lever's query cost is paired with the defaults' in the same run (`paired_ms`). Tables:
bench/README.md "Copies as they reach people".
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image

from bench import wallpapers
from bench.quality_levers import LEVERS
from search_by_image.devices import single_threaded_blas
from search_by_image.evaluation.alterations import AlteredCopy, pick_sources
from search_by_image.evaluation.alterations_combined import combined_copies
from search_by_image.evaluation.alterations_details import DetailCopy, detail_copies
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import (
    ProductSearch,
    SourceRanks,
    index_like_a_user,
    product_map,
    source_ranks,
)
from search_by_image.settings import PROJECT_DIR, Settings

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
TUNING_SEED, HELD_OUT_SEED = 11, 12
COPIES = 300
DETAILS_PER_PHOTO = 3
CAMERA_MIN_SIDE = 2000
#: Queries of each set timed per lever (paired with the defaults, query by query).
TIMED = 60


def collection(holidays: Path, work: Path) -> tuple[Settings, GroundTruth, list[Path], list[str]]:
    truth = GroundTruth.read(holidays)
    photos = wallpapers.photos(min_side=CAMERA_MIN_SIDE)
    names = [f"wall-{n:03d}{p.suffix.lower()}" for n, p in enumerate(photos)]
    images = {f: holidays / "images" / f for f in truth.files} | dict(zip(names, photos))
    started = time.perf_counter()
    settings = index_like_a_user(images, work, onnx_dir=PROJECT_DIR / "saved" / "onnx")
    print(f"collection: {len(images)} images indexed (or found) in {time.perf_counter() - started:.0f} s")
    return settings, truth, photos, names


def details(photos: list[Path], seed: int) -> list[DetailCopy]:
    """DETAILS_PER_PHOTO details of each wallpaper, made once per seed into the bench cache."""
    folder = wallpapers.CACHE / "details" / f"seed-{seed}"
    sources = [n for n in range(len(photos)) for _ in range(DETAILS_PER_PHOTO)]
    made = folder / "made.npy"
    if made.is_file():
        rows = np.load(made)
        return [
            DetailCopy(int(s), ("detail",), (folder / f"{n:04d}.jpg").read_bytes(), float(a), float(g))
            for n, (s, a, g) in enumerate(rows)
        ]
    folder.mkdir(parents=True, exist_ok=True)
    copies = detail_copies(lambda i: Image.open(photos[i]), sources, seed)
    for n, copy in enumerate(copies):
        (folder / f"{n:04d}.jpg").write_bytes(copy.data)
    np.save(made, np.array([(c.source, c.area, c.angle) for c in copies]))
    return copies


def sets(holidays: Path, truth: GroundTruth, photos: list[Path], seeds: list[int], copies: int):
    out: dict[str, tuple[list[AlteredCopy], list[str]]] = {}
    for seed in seeds:
        if copies:  # `--copies 0`: the details alone
            sources = pick_sources(copies, len(truth.files), seed)
            opened = combined_copies(
                lambda i: Image.open(holidays / "images" / truth.files[i]), sources, seed
            )
            out[f"combined s{seed}"] = opened, truth.files
        out[f"details s{seed}"] = details(photos, seed), []
    return out


def paired_ms(searches: dict[str, tuple[ProductSearch, Callable]], queries: list[bytes]) -> dict[str, float]:
    """p50 ms of each variant's search (k=10), taking turns query by query."""
    single_threaded_blas()
    timed: dict[str, list[float]] = {name: [] for name in searches}
    for data in queries:
        for name, (search, patch) in searches.items():
            with patch():
                started = time.perf_counter()
                search.response(data, 10)
                timed[name].append((time.perf_counter() - started) * 1e3)
    return {name: statistics.median(ms) for name, ms in timed.items()}


def describe(ranks: SourceRanks) -> str:
    return f"{ranks.rank1:.3f} / {ranks.mean_rank:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--work", type=Path, default=wallpapers.CACHE / "copies-collection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[HELD_OUT_SEED])
    parser.add_argument("--levers", nargs="*", default=[], help=f"of {sorted(LEVERS)}, or all")
    parser.add_argument("--misses", action="store_true", help="print each copy not found first")
    parser.add_argument("--http", action="store_true", help="also the copies over HTTP (uvicorn)")
    parser.add_argument("--copies", type=int, default=COPIES, help="combined copies a seed (0: none)")
    parser.add_argument("--default-only", action="store_true", help="the defaults alone, no today row")
    parser.add_argument("--timed", type=int, default=TIMED, help="queries of each set timed")
    parser.add_argument("--holidays", action="store_true", help="also Holidays-300 mAP per variant")
    args = parser.parse_args(argv)
    holidays = args.datasets_dir / "holidays_subset300"
    if not (holidays / "groundtruth.csv").is_file():
        print(f"{holidays} not found: the datasets live in ../shared/datasets beside the repo")
        return 0
    settings, truth, photos, names = collection(holidays, args.work)
    copy_sets = sets(holidays, truth, photos, args.seeds, args.copies)
    levers = [n for n in LEVERS if n not in ("today", "default")] if args.levers == ["all"] else args.levers
    variants = (["default"] if args.default_only else ["today", "default"]) + levers
    rows = []
    with ExitStack() as stack:
        searches = {}
        for name in variants:
            changes, patch = LEVERS[name]
            searches[name] = stack.enter_context(ProductSearch(settings.model_copy(update=changes))), patch
        for name, (search, patch) in searches.items():
            cells = []
            with patch():
                for label, (copies, files) in copy_sets.items():
                    ranks = source_ranks(search, copies, files or names)
                    cells.append(describe(ranks))
                    if args.misses:
                        for copy, rank in zip(copies, ranks.ranks):
                            if rank > 1:
                                source = (files or names)[copy.source]
                                extra = (
                                    f" area {copy.area:.2f} angle {copy.angle:+.1f}" if files == [] else ""
                                )
                                print(f"  {name} {label}: {source} rank {rank} {copy.edits}{extra}")
                if args.holidays:
                    mean_ap = (
                        product_map(search, holidays, truth)[0] if name in ("today", "default") else None
                    )
                    cells.append("" if mean_ap is None else f"{mean_ap:.4f}")
            rows.append((name, cells))
            print(f"  {name}: " + ", ".join(cells), flush=True)
        queries = [c.data for copies, _ in copy_sets.values() for c in copies[: args.timed]]
        ms = paired_ms(searches, queries)
    print(
        "\n| variant | " + " | ".join(f"{s}: first / mean rank" for s in copy_sets) + " | p50 ms (x today) |"
    )
    print("|---|" + "---|" * (len(copy_sets) + 1))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells) + f" | {ms[name]:.1f} ({ms[name] / ms[variants[0]]:.2f}x) |")
    if args.http:
        from bench.quality_http import copies_over_http

        print("\n" + copies_over_http(settings, copy_sets, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
