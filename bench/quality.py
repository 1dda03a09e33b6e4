"""Retrieval quality as users get it, measured through the product's own path.

    python -m bench.quality                      # the product table (below), thumbnails
    python -m bench.quality --http               # + the Holidays queries through a real uvicorn
    python -m bench.quality --camera             # + altered copies of camera-size photos
    python -m bench.quality --shrinkage 0        # plain (unshrunk) whitening, for comparison
    python -m bench.quality --whitening 384 --shrinkage 1   # the small whitening (folders saved before)
    python -m bench.quality --no-rotations       # queries searched upright only, for comparison
    python -m bench.quality --map-only           # Holidays-300 mAP at the defaults alone (minutes)
    python -m bench.quality --variants           # side protocol: descriptor variants, cross-fitted

The headline rows index holidays_subset300 the way `python with_faiss.py` does (the indexer, its
default settings, into a temporary saved folder; the photos symlinked from ../shared/datasets)
and query it through the same code as POST /search (`evaluation.product.ProductSearch`), each query
photo uploaded as its file's bytes and left out of its own results:
- Holidays-300 mAP and P@1;
- altered copies (`search_by_image/evaluation/alterations.py`): the rank of the source photo while the whole
  collection is indexed, on seed 1 and on a held-out seed 2 that no choice was made on;
- planted near-duplicates (seed 3 copies added to the collection, indexed incrementally as a user
  would): share of copies grouped with their original, share of distinct photos falsely grouped,
  at the default threshold;
- UKBench N-S (every image a query, itself included), through the product too.
`--http` repeats the Holidays queries over HTTP on 127.0.0.1 (k=100, the API's maximum) and
reports the request latency. `--variants` keeps the older table of descriptor variants, whose
whitening is cross-fitted: a side protocol, labelled as such, never the headline.
Tables and what they mean: bench/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench import wallpapers
from bench.quality_http import http_table
from bench.quality_measures import (
    COPIES,
    DEV_SEED,
    HELD_OUT_SEED,
    SIDEWAYS_SEED,
    measure,
    paired_latency,
    planted_collection,
    planted_duplicates,
    product_ns,
    rank_row,
)
from bench.quality_variants import variants_table
from search_by_image.evaluation.alterations import altered_copies, pick_sources, sideways_copies
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import (
    ProductSearch,
    identical_pairs,
    index_like_a_user,
    product_map,
    source_ranks,
)
from search_by_image.index import whitening
from search_by_image.ranking import expansion
from search_by_image.settings import PROJECT_DIR, Settings

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
#: Camera-size photos for `--camera`: Debian's wallpapers (bench/wallpapers.py) at least this long.
CAMERA_MIN_SIDE = 2000
CAMERA_COPIES_PER_PHOTO = 3


def map_only(holidays: Path, work: Path, overrides: dict) -> str:
    """Holidays-300 mAP and P@1 through the product at the defaults (verified + expansion)."""
    truth = GroundTruth.read(holidays)
    settings = index_like_a_user({f: holidays / "images" / f for f in truth.files}, work, **overrides)
    with ProductSearch(settings) as search:
        score, p1 = product_map(search, holidays, truth)
        embedder, store = search.collection.require().embedder, search.store
        return (
            f"Holidays-300 mAP {score:.4f}, P@1 {p1:.4f} ({embedder.runtime} {embedder.precision}, "
            f"whitening {store.manifest.whitening_dims}-d shrinkage {shrinkage_of(store.whitening)}, "
            f"query weight {expansion.query_weight(store.whitening)})"
        )


def shrinkage_of(learned: whitening.Whitening | None) -> float | None:
    return None if learned is None else learned.shrinkage


def product_tables(holidays: Path, ukbench: Path, work: Path, overrides: dict) -> tuple[Settings, list[str]]:
    """Index Holidays like a user, then measure it through the search path, with the results
    ranked and labelled by scores alone (verify_top 0), checked with local features, and checked
    then ranked again with the query expanded by its verified results (the default), in the same
    run; Markdown lines."""
    truth = GroundTruth.read(holidays)
    lines = []
    started = time.perf_counter()
    settings = index_like_a_user(
        {f: holidays / "images" / f for f in truth.files}, work / "holidays", **overrides
    )
    seconds = time.perf_counter() - started

    def open_photo(i: int) -> Image.Image:
        return Image.open(holidays / "images" / truth.files[i])

    with ProductSearch(settings) as search:
        manifest = search.store.manifest
        embedder = search.collection.require().embedder
        lines.append(
            f"holidays_subset300 indexed like a user in {seconds:.0f} s: {manifest.embedder.model} "
            f"{embedder.runtime} {embedder.precision}, "
            f"whitening {manifest.whitening_dims}-d (shrinkage {shrinkage_of(search.store.whitening)}), "
            f"expansion's query weight {expansion.query_weight(search.store.whitening)}, "
            f"{search.store.base.index.d}-d index\n"
        )
    copies = {
        seed: altered_copies(open_photo, pick_sources(COPIES, len(truth.files), seed), seed)
        for seed in (DEV_SEED, HELD_OUT_SEED)
    }
    copies[SIDEWAYS_SEED] = sideways_copies(
        open_photo, pick_sources(COPIES, len(truth.files), SIDEWAYS_SEED), SIDEWAYS_SEED
    )
    top = settings.verify_top
    variants = {
        "scores alone": {"verify_top": 0},
        f"verified top {top}": {"query_expansion": False},
        f"verified top {top} + expansion": {"query_expansion": True},
    }
    runs = {}
    planted = planted_collection(settings, holidays, truth, work)
    identical = identical_pairs({f: holidays / "images" / f for f in truth.files})
    for label, changes in variants.items():
        runs[label] = measure(settings.model_copy(update=changes), holidays, truth, copies)
        runs[label].found = planted_duplicates(planted, truth, changes, identical)
        print(f"  {label}: Holidays mAP {runs[label].map:.4f}", flush=True)
    ns = None
    if (ukbench / "groundtruth.csv").is_file():
        ns = product_ns(ukbench, work, overrides)
    names = list(runs)
    base = runs[names[0]]

    def row(measure: str, cell) -> str:
        return f"| {measure} | " + " | ".join(cell(runs[n]) for n in names) + " |"

    def ranks(seed: int):
        return lambda m: f"{m.ranks[seed].rank1:.3f} / {m.ranks[seed].mean_rank:.3f}"

    lines += [
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        row("Holidays-300 mAP (query left out)", lambda m: f"{m.map:.4f}"),
        row("Holidays-300 P@1", lambda m: f"{m.p1:.4f}"),
        row(f"altered copies, seed {DEV_SEED}: rank-1 / mean rank", ranks(DEV_SEED)),
        row(f"altered copies, held-out seed {HELD_OUT_SEED}: rank-1 / mean rank", ranks(HELD_OUT_SEED)),
        row(f"photos turned sideways, seed {SIDEWAYS_SEED}: rank-1 / mean rank", ranks(SIDEWAYS_SEED)),
        row(
            f"altered copies (seed {DEV_SEED}) found first and labelled copy",
            lambda m: f"{m.copies_labelled:.3f}",
        ),
        row(
            f"other shots of the query's scene in its top 10 labelled copy ({base.reshots})",
            lambda m: f"{m.reshots_labelled:.3f}",
        ),
        row(
            f"planted duplicates grouped with their original ({COPIES}, default threshold)",
            lambda m: f"{m.found.recall:.3f}",
        ),
        row(
            "distinct photos falsely grouped (all 811)",
            lambda m: f"{m.found.false_share:.3f} ({m.found.falsely_grouped})",
        ),
        row(
            "  the same, not counting photos grouped only with an identical one",
            lambda m: f"{m.found.false_share_distinct:.3f} ({m.found.falsely_grouped - m.found.identical})",
        ),
    ]
    timed = paired_latency(settings, holidays, truth, list(variants.values()))
    for label, part in (("first pass", timed[: len(timed) // 2]), ("second pass", timed[len(timed) // 2 :])):
        p50 = [statistics.median(t[i] for t in part) for i in range(len(names))]
        lines.append(
            f"| search p50 ms, k=10, in-process, {label} (x scores alone's) | "
            + " | ".join(f"{ms:.1f} ({ms / p50[0]:.2f}x)" for ms in p50)
            + " |"
        )
    if ns is not None:
        lines.append(f"| UKBench-14 N-S (of 4), default settings | {ns:.3f} |" + " |" * (len(names) - 1))
    lines += [
        "",
        f"Identical photos: {len(identical)} pairs (`evaluation.product.identical_pairs`: same bytes, or "
        "greyscale 64x48 within 1.5 levels): "
        + ", ".join("/".join(sorted(pair)) for pair in sorted(identical, key=sorted)),
        "",
        "Altered copies by edit (a copy counts under each of its edits; `combined` = 2-3 edits), "
        f"{names[-1]}:",
        "",
        "| edit | copies | rank-1 | mean rank |",
        "|---|---|---|---|",
    ]
    for seed in (DEV_SEED, HELD_OUT_SEED):
        for edit, (count, rank1, mean) in runs[names[-1]].ranks[seed].by_edit().items():
            lines.append(f"| seed {seed}: {edit} | {count} | {rank1:.3f} | {mean:.3f} |")
    return settings, lines


def camera_table(holidays_settings: Settings, holidays: Path, work: Path, overrides: dict) -> list[str]:
    """Altered copies of camera-size photos, found among them and the 811 Holidays photos (the
    wallpapers added to the indexed Holidays folder: only they are embedded)."""
    truth = GroundTruth.read(holidays)
    photos = wallpapers.photos(min_side=CAMERA_MIN_SIDE)
    names = [f"wall-{n:03d}{p.suffix.lower()}" for n, p in enumerate(photos)]
    images = {f: holidays / "images" / f for f in truth.files} | dict(zip(names, photos))
    settings = index_like_a_user(images, work / "camera", start_from=holidays_settings.saved_dir, **overrides)
    sources = [n for n in range(len(photos)) for _ in range(CAMERA_COPIES_PER_PHOTO)]
    with ProductSearch(settings) as search:
        lines = []
        for seed in (DEV_SEED, HELD_OUT_SEED):
            copies = altered_copies(lambda i: Image.open(photos[i]), sources, seed)
            ranks = source_ranks(search, copies, names)
            lines.append(rank_row(f"camera-size photos ({len(photos)}, 2560-5120 px), seed {seed}", ranks))
    header = (
        "| set | copies searched | rank-1 | mean rank | worst rank | refused (over the pixel limit: 413) |"
    )
    return [header, "|---|---|---|---|---|---|"] + lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--http", action="store_true", help="also query through a real uvicorn")
    parser.add_argument("--camera", action="store_true", help="also altered copies of camera-size photos")
    parser.add_argument("--whitening", type=int, help="the indexer's --whitening (default: its default)")
    parser.add_argument(
        "--shrinkage",
        type=float,
        help=f"whitening shrinkage (default {whitening.SHRINKAGE}; 0 = plain whitening, unshrunk)",
    )
    parser.add_argument(
        "--query-weight",
        type=float,
        help=f"query expansion: the query's weight on a whitening shrunk more than 1 (default "
        f"{expansion.QUERY_WEIGHT}; {expansion.SMALL_QUERY_WEIGHT} on 384-d shrunk by 1 and raw)",
    )
    parser.add_argument("--map-only", action="store_true", help="Holidays-300 mAP at the defaults alone")
    parser.add_argument(
        "--no-rotations",
        action="store_true",
        help="queries searched upright only (SBI_QUERY_ROTATIONS=false)",
    )
    parser.add_argument("--variants", nargs="*", help="side protocol: descriptor variants (names, or all)")
    parser.add_argument("--dataset", default="holidays_subset300", help="for --variants")
    parser.add_argument("--workers", type=int, default=2, help="for --variants")
    args = parser.parse_args(argv)
    holidays = args.datasets_dir / "holidays_subset300"
    if not (holidays / "groundtruth.csv").is_file():
        print(f"{holidays} not found: the datasets live in ../shared/datasets beside the repo")
        return 0
    if args.variants is not None:
        return variants_table(args)
    if args.shrinkage is not None:
        whitening.SHRINKAGE = args.shrinkage
    if args.query_weight is not None:
        expansion.QUERY_WEIGHT = args.query_weight
    overrides = {"onnx_dir": PROJECT_DIR / "saved" / "onnx"}  # the int8 model quantized once
    if args.whitening is not None:
        overrides["whitening"] = args.whitening
    if args.no_rotations:
        overrides["query_rotations"] = False
    with tempfile.TemporaryDirectory(prefix="sbi-quality-") as tmp:
        work = Path(tmp)
        if args.map_only:
            print(map_only(holidays, work / "holidays", overrides), flush=True)
            return 0
        settings, lines = product_tables(holidays, args.datasets_dir / "ukbench_subset14", work, overrides)
        print("\n## Through the product (in-process POST /search code)\n\n" + "\n".join(lines), flush=True)
        if args.http:
            print(
                "\n## Over HTTP (uvicorn main:app on 127.0.0.1)\n\n"
                + "\n".join(http_table(settings, holidays)),
                flush=True,
            )
        if args.camera:
            print(
                "\n## Camera-size photos\n\n" + "\n".join(camera_table(settings, holidays, work, overrides)),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
