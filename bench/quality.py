"""Retrieval quality as users get it, measured through the product's own path.

    python -m bench.quality                      # the product table (below), thumbnails
    python -m bench.quality --http               # + the Holidays queries through a real uvicorn
    python -m bench.quality --camera             # + altered copies of camera-size photos
    python -m bench.quality --shrinkage 0        # the whitening before issue 14, for comparison
    python -m bench.quality --variants           # side protocol: descriptor variants, cross-fitted

The headline rows index holidays_subset300 the way `python with_faiss.py` does (the indexer, its
default settings, into a temporary saved folder; the photos symlinked from ../shared/datasets)
and query it through the same code as POST /search (`evaluation.ProductSearch`), each query
photo uploaded as its file's bytes and left out of its own results:
- Holidays-300 mAP and P@1;
- altered copies (`search_by_image/alterations.py`): the rank of the source photo while the whole
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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench import wallpapers
from search_by_image import whitening
from search_by_image.alterations import altered_copies, pick_sources
from search_by_image.backbones import WeightsUnavailable, resnet50_cache_file
from search_by_image.embedder import Embedder, EmbedderSpec
from search_by_image.evaluation import (
    DuplicateFinding,
    GroundTruth,
    ProductSearch,
    average_precision,
    cross_fitted_whitening,
    duplicate_finding,
    identical_pairs,
    index_like_a_user,
    mean_average_precision,
    ns_score,
    precision_at,
    product_map,
    source_ranks,
)
from search_by_image.local_engine import embed_files
from search_by_image.settings import PROJECT_DIR, Settings

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
MULTI_SCALE = (1.0, 2**-0.5, 0.5)
#: Altered copies per seed, and the seeds: 1 is the development set, 2 held out, 3 planted.
COPIES = 300
DEV_SEED, HELD_OUT_SEED, PLANTED_SEED = 1, 2, 3
#: Camera-size photos for `--camera`: Debian's wallpapers (bench/wallpapers.py) at least this long.
CAMERA_MIN_SIDE = 2000
CAMERA_COPIES_PER_PHOTO = 3


@dataclass(frozen=True)
class Variant:
    name: str
    model: str = "efficientnet_lite0"
    resize: str = "keep_aspect"
    size: int = 448
    pooling: str = "gem"
    scales: tuple[float, ...] = (1.0,)
    whiten: int = 0  # output dimensions of PCA-whitening; 0 = none
    #: bf16: torch with bf16 autocast (same mAP as fp32); int8: the quantized ONNX Runtime trunk
    precision: str = "bf16"
    note: str = ""

    def settings(self) -> Settings:
        return Settings(
            model=self.model,
            resize=self.resize,
            image_size=self.size,
            pooling=self.pooling,
            scales=self.scales,
            precision=self.precision,
            device="cpu",
        )


VARIANTS = [
    Variant(
        "lite0-crop224-avg",
        resize="center_crop",
        size=224,
        pooling="avg",
        note="classic: 256 px, centre crop 224, average pooling",
    ),
    Variant("lite0-crop224-gem", resize="center_crop", size=224),
    Variant("lite0-aspect448-avg", pooling="avg"),
    Variant("lite0-aspect448-gem", note="whole image, longer side 448, GeM"),
    Variant("lite0-ms", scales=MULTI_SCALE, note="+ scales 1, 1/sqrt 2, 1/2"),
    Variant("lite0-ms-pw256", scales=MULTI_SCALE, whiten=256, note="+ PCA-whitening to 256-d"),
    Variant("lite0-aspect576-gem", size=576, note="longer side 576"),
    Variant("lite0-aspect448-gem-pw256", whiten=256, note="single scale + PCA-whitening"),
    Variant("lite0-aspect448-gem-pw384", whiten=384, note="whitening to 384-d"),
    Variant("lite0-aspect448-gem-int8", precision="int8", note="int8 trunk (ONNX Runtime)"),
    Variant(
        "lite0-aspect448-gem-pw384-int8",
        whiten=384,
        precision="int8",
        note="the default: int8 trunk + whitening to 384-d",
    ),
    Variant("lite1-ms", model="efficientnet_lite1", scales=MULTI_SCALE),
    Variant("lite2-aspect448-gem", model="efficientnet_lite2"),
    Variant("lite2-ms", model="efficientnet_lite2", scales=MULTI_SCALE),
    Variant("lite2-ms-pw256", model="efficientnet_lite2", scales=MULTI_SCALE, whiten=256),
    Variant("lite2-aspect576-gem", model="efficientnet_lite2", size=576),
    Variant("lite2-aspect448-gem-pw256", model="efficientnet_lite2", whiten=256),
    Variant("lite2-aspect576-gem-pw256", model="efficientnet_lite2", size=576, whiten=256),
    Variant("resnet50-aspect448-gem", model="resnet50", note="needs ResNet50 weights"),
    Variant("resnet50-ms", model="resnet50", scales=MULTI_SCALE, note="needs ResNet50 weights"),
]


def query_ms(embedder: Embedder, image: Image.Image, repeats: int = 5) -> float:
    embedder.embed_images([image])
    started = time.perf_counter()
    for _ in range(repeats):
        embedder.embed_images([image])
    return (time.perf_counter() - started) / repeats * 1e3


def evaluate(variant: Variant, dataset: Path, truth: GroundTruth, workers: int) -> dict | None:
    try:
        embedder = Embedder(
            EmbedderSpec.from_settings(variant.settings()), "cpu", precision=variant.precision
        )
    except WeightsUnavailable as exc:
        print(f"  skipped {variant.name}: {str(exc)[:120]}")
        return None
    started = time.perf_counter()
    paths, features, _ = embed_files(
        embedder, dataset / "images", truth.files, 16, workers, 50_000_000, progress=False
    )
    seconds = time.perf_counter() - started
    assert paths == truth.files
    row = {"variant": variant.name, "dim": features.shape[1], "img/s": len(paths) / seconds}
    if variant.whiten:
        row["mAP"], row["P@1"] = cross_fitted_whitening(features, truth, variant.whiten)
        row["dim"] = variant.whiten
    else:
        row["mAP"], row["P@1"] = mean_average_precision(features, truth), precision_at(features, truth, 1)
    if len(truth.queries) == len(truth.files):  # UKBench's protocol: every image is a query
        row["N-S"] = ns_score(features, truth)
    sample = Image.open(dataset / "images" / truth.files[truth.queries[0]]).convert("RGB")
    row["query ms"] = query_ms(embedder, sample)
    row["note"] = variant.note
    return row


def rank_row(label: str, ranks) -> str:
    worst = int(ranks.ranks.max()) if len(ranks.ranks) else "-"
    return (
        f"| {label} | {len(ranks.ranks)} | {ranks.rank1:.3f} | {ranks.mean_rank:.3f} | {worst} "
        f"| {ranks.refused} |"
    )


@dataclass
class Measured:
    """One configuration's figures through the product (scores alone, or verified)."""

    map: float = 0.0
    p1: float = 0.0
    ranks: dict = None
    #: altered copies (seed 1) whose source came first labelled `copy`
    copies_labelled: float = 0.0
    #: same-scene results (other shots, in the Holidays queries' top 10) labelled `copy`
    reshots_labelled: float = 0.0
    reshots: int = 0
    found: object = None


def measure(settings: Settings, holidays: Path, truth: GroundTruth, copies: dict) -> Measured:
    out = Measured()
    with ProductSearch(settings) as search:
        queries = [(holidays / "images" / truth.files[q]).read_bytes() for q in truth.queries]
        out.map, out.p1 = product_map(search, holidays, truth)
        out.ranks = {seed: source_ranks(search, c, truth.files) for seed, c in copies.items()}
        labelled = []
        for copy in copies[DEV_SEED]:
            top = search.response(copy.data, 1).results[0]
            labelled.append(top.path == truth.files[copy.source] and top.match == "copy")
        out.copies_labelled = float(np.mean(labelled))
        reshot_labels = []
        for query, data in zip(truth.queries, queries):
            for hit in search.response(data, 10).results:
                if (
                    hit.path != truth.files[query]
                    and truth.groups[truth.files.index(hit.path)] == truth.groups[query]
                ):
                    reshot_labels.append(hit.match == "copy")
        out.reshots, out.reshots_labelled = len(reshot_labels), float(np.mean(reshot_labels))
    return out


def paired_latency(settings: Settings, holidays: Path, truth: GroundTruth) -> list[tuple[float, float]]:
    """ms of the POST /search code in-process (decode, embed, search, verify; k=10) for each
    Holidays query without and with verification, the two services taking turns query by
    query so that the shared machine's load falls on both alike. Two passes: on the first the
    results' keypoints are computed from their thumbnails, on the second they are in memory."""
    queries = [(holidays / "images" / truth.files[q]).read_bytes() for q in truth.queries]
    off = ProductSearch(settings.model_copy(update={"verify_top": 0}))
    on = ProductSearch(settings)
    timed = []
    with off, on:
        for _ in range(2):
            for data in queries:
                pair = []
                for search in (off, on):
                    started = time.perf_counter()
                    search.response(data, 10)
                    pair.append((time.perf_counter() - started) * 1e3)
                timed.append((pair[0], pair[1]))
    return timed


def product_tables(holidays: Path, ukbench: Path, work: Path, overrides: dict) -> tuple[Settings, list[str]]:
    """Index Holidays like a user, then measure it through the search path, with the results
    ranked and labelled by scores alone (verify_top 0) and checked with local features (the
    default), in the same run; Markdown lines."""
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
            f"whitening {manifest.whitening_dims}-d (shrinkage {whitening.SHRINKAGE}), "
            f"{search.store.index.d}-d index\n"
        )
    copies = {
        seed: altered_copies(open_photo, pick_sources(COPIES, len(truth.files), seed), seed)
        for seed in (DEV_SEED, HELD_OUT_SEED)
    }
    top = settings.verify_top
    runs = {}
    planted = planted_collection(settings, holidays, truth, work)
    identical = identical_pairs({f: holidays / "images" / f for f in truth.files})
    for label, verify in (("scores alone", 0), (f"verified top {top}", top)):
        runs[label] = measure(settings.model_copy(update={"verify_top": verify}), holidays, truth, copies)
        runs[label].found = planted_duplicates(planted, truth, verify, identical)
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
    timed = paired_latency(settings, holidays, truth)
    for label, part in (("first pass", timed[: len(timed) // 2]), ("second pass", timed[len(timed) // 2 :])):
        off, on = (statistics.median(t[i] for t in part) for i in (0, 1))
        lines.append(
            f"| search p50 ms, k=10, in-process, {label} (ratio {on / off:.2f}x) | {off:.1f} | {on:.1f} |"
        )
    if ns is not None:
        lines.append(f"| UKBench-14 N-S (of 4), default settings | {ns:.3f} |" + " |" * (len(names) - 1))
    lines += [
        "",
        f"Identical photos: {len(identical)} pairs (`evaluation.identical_pairs`: same bytes, or "
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


def planted_collection(settings: Settings, holidays: Path, truth: GroundTruth, work: Path):
    """Copy the indexed collection, add the planted copies to its folder and run the indexer
    again (incremental: only the copies are embedded); its settings and {copy: original}."""
    copies = altered_copies(
        lambda i: Image.open(holidays / "images" / truth.files[i]),
        pick_sources(COPIES, len(truth.files), PLANTED_SEED),
        PLANTED_SEED,
    )
    planted = {f"planted-{n:03d}-{truth.files[c.source]}": c.data for n, c in enumerate(copies)}
    images = {f: holidays / "images" / f for f in truth.files} | planted
    overrides = {k: v for k, v in settings.model_dump().items() if k == "onnx_dir" or k == "whitening"}
    planted_settings = index_like_a_user(images, work / "planted", start_from=settings.saved_dir, **overrides)
    return planted_settings, {name: truth.files[c.source] for name, c in zip(planted, copies)}


def planted_duplicates(planted, truth: GroundTruth, verify_top: int, identical) -> DuplicateFinding:
    """The duplicate groups the service shows at the default threshold (Collection.duplicates,
    what GET /duplicates runs), scored against the planted copies."""
    settings, copy_of = planted
    with ProductSearch(settings.model_copy(update={"verify_top": verify_top})) as search:
        _, groups = search.collection.duplicates(None)
    return duplicate_finding(groups, copy_of, truth.files, identical)


def product_ns(ukbench: Path, work: Path, overrides: dict) -> float:
    """UKBench N-S through the product (every image a query, itself included in its top 4)."""
    truth = GroundTruth.read(ukbench)
    settings = index_like_a_user(
        {f: ukbench / "images" / f for f in truth.files}, work / "ukbench", **overrides
    )
    group_of = dict(zip(truth.files, truth.groups))
    with ProductSearch(settings) as search:
        hits = [
            sum(
                group_of[p] == group_of[name]
                for p, _ in search.results((ukbench / "images" / name).read_bytes(), 4)
            )
            for name in truth.files
        ]
    return float(np.mean(hits))


def http_table(settings: Settings, holidays: Path) -> list[str]:
    """The Holidays queries through a real uvicorn on 127.0.0.1: mAP (top 100) and latency."""
    truth = GroundTruth.read(holidays)
    with uvicorn(settings) as base, httpx.Client(base_url=base, timeout=60) as client:
        group_of = dict(zip(truth.files, truth.groups))
        aps, p1, latency = [], [], []
        for query in truth.queries:
            name = truth.files[query]
            data = (holidays / "images" / name).read_bytes()
            started = time.perf_counter()
            response = client.post("/search", files={"file": (name, data, "image/jpeg")}, data={"k": "100"})
            latency.append((time.perf_counter() - started) * 1e3)
            response.raise_for_status()
            order = [hit["path"] for hit in response.json()["results"]]
            order = [path for path in order if path != name]
            relevant = np.array([group_of.get(p) == truth.groups[query] for p in order])
            total = sum(g == truth.groups[query] for g in truth.groups) - 1
            aps.append(average_precision(relevant, total))
            p1.append(bool(relevant[0]))
    return [
        "| measure | value |",
        "|---|---|",
        f"| Holidays-300 mAP over HTTP (top 100, query left out) | {np.mean(aps):.4f} |",
        f"| Holidays-300 P@1 over HTTP | {np.mean(p1):.4f} |",
        (
            "| POST /search latency p50 / p90, 325x243 JPEG, one client | "
            f"{statistics.median(latency):.1f} / "
            f"{np.percentile(latency, 90):.1f} ms |"
        ),
    ]


class uvicorn:
    """`uvicorn main:app` on a free 127.0.0.1 port serving `settings`' collection."""

    def __init__(self, settings: Settings):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {
            **os.environ,
            "SBI_IMAGES_DIR": str(settings.images_dir),
            "SBI_METADATA_CSV": str(settings.metadata_csv),
            "SBI_SAVED_DIR": str(settings.saved_dir),
            "SBI_RATE_LIMIT": "",
            "SBI_ONNX_DIR": str(settings.onnx_dir or ""),
        }

    def __enter__(self) -> str:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_DIR,
            env={k: v for k, v in self.env.items() if v},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.server.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.server.kill()
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


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
        help=f"whitening shrinkage (default {whitening.SHRINKAGE}; 0 = the whitening before issue 14)",
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
    overrides = {"onnx_dir": PROJECT_DIR / "saved" / "onnx"}  # the int8 model quantized once
    if args.whitening is not None:
        overrides["whitening"] = args.whitening
    with tempfile.TemporaryDirectory(prefix="sbi-quality-") as tmp:
        work = Path(tmp)
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


def variants_table(args) -> int:
    """The side-protocol table of descriptor variants (cross-fitted whitening, not the product)."""
    dataset = args.datasets_dir / args.dataset
    truth = GroundTruth.read(dataset)
    chosen = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    if not resnet50_cache_file().is_file():
        print(
            f"ResNet50 weights are not in {resnet50_cache_file()}: its rows will be skipped "
            "unless they can be downloaded."
        )
    print(
        f"{args.dataset}: {len(truth.files)} images, {len(truth.queries)} queries "
        "(side protocol: whitening cross-fitted, not what the product does)\n"
    )
    rows = []
    for variant in chosen:
        row = evaluate(variant, dataset, truth, args.workers)
        if row:
            rows.append(row)
            print(f"  {row['variant']}: mAP {row['mAP']:.4f}", flush=True)
    columns = ["variant", "dim", "mAP", "P@1", "N-S", "img/s", "query ms", "note"]
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        cells = [
            f"{row[c]:.4f}"
            if c in ("mAP", "P@1")
            else f"{row[c]:.3f}"
            if c == "N-S" and row.get(c)
            else f"{row[c]:.1f}"
            if isinstance(row.get(c), float)
            else str(row.get(c, ""))
            for c in columns
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
