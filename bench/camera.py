"""Camera-size photos: decode, indexing and query speed per size and format, and thumbnails.

    python -m bench.camera                       # sets (cached), then every section
    python -m bench.camera --only decode indexing query
    flock /tmp/sbi-bench.lock python -m bench.camera --only indexing

The photos are Debian's wallpapers (bench/wallpapers.py): 37 pictures of 2560x1600 to 5120x2880.
The sets are crops of them (different places, mirrored), resized to the camera sizes and encoded as
a camera or phone would: 12 MP (4240x2832) and 6 MP (3000x2000) JPEG q90 and HEIC (x265 through
pillow-heif, quality 80), plus the wallpapers' own 4K and 5K PNGs. They are made once into
~/.cache/search-by-image/bench/camera (SBI_BENCH_CACHE), never into the repository.

Sections (each figure beside its baseline, measured in the same run):
  decode    per set: milliseconds of the product's decode (`open_rgb` at the model's target, the
            reduced-size decoding each format has) next to a full-size decode, the resize to the
            model input, the forward pass per image (the product's precision: int8 ONNX where the
            CPU has VNNI, else fp32; batches of SBI_BATCH_SIZE as indexed, one thread), and
            the thumbnail (resize + JPEG encode + write). `limit img/s` = what 2 cores allow for
            decode + resize + forward: 2 x 1000 / (their sum in ms).
  indexing  `python with_faiss.py` end to end on a fresh output folder (start-up counts), images/s
            against that limit; with thumbnails (the default) and with SBI_THUMBNAILS=false.
  query     a real uvicorn serving the 12 MP JPEG collection: POST /search p50/p95 per query set
            (one client), against the query's own decode + one forward pass (batch 1, 2 threads)
            measured in this process; bytes of a 10-result page as originals and as thumbnails;
            a thumbnail made on first request (the alternative to making them while indexing).
Timings are printed, never asserted. Exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import wallpapers
from bench.camera_query import bench_query
from bench.camera_sets import BIG, camera_sets, files_of, median_ms, one_thread_embedder
from bench.tables import scratch, table
from search_by_image.catalog.thumbnails import Thumbnails, covering, thumbnail_source
from search_by_image.images.decoding import open_rgb
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import PROJECT_DIR, Settings

# --- decode ----------------------------------------------------------------------------------


def decode_costs(sets: dict[str, Path], args) -> dict[str, dict[str, float]]:
    settings = Settings(onnx_dir=args.onnx_dir, model="efficientnet_lite0")
    embedder = one_thread_embedder(settings)
    prep = embedder.preprocessing
    target = covering(prep.resized_size)
    thumbs = Thumbnails(scratch("sbi-camera-thumbs-"))
    costs, rows = {}, []
    whole = prep.keeps_whole_image  # the indexer's thumbnails come from the model's input
    for label, folder in sets.items():
        files = files_of(folder, args.decode_files)
        full = median_ms(lambda p: open_rgb(p, BIG), files[:4])
        decoded = [open_rgb(p, BIG, target) for p in files]
        decode = median_ms(lambda p: open_rgb(p, BIG, target), files)
        resize = median_ms(prep, decoded)
        prepared = [prep(image) for image in decoded]
        size = settings.batch_size  # the indexer's
        batches = [prepared[i : i + size] for i in range(0, len(prepared), size)]
        embedder.embed_prepared(batches[0])
        started = time.perf_counter()
        for batch in batches:
            embedder.embed_prepared(batch)
        forward = (time.perf_counter() - started) * 1e3 / len(prepared)
        # what the indexer writes: the model's input when it is the whole image (thumbnail_source)
        thumb = median_ms(
            lambda item: thumbs.write(item[0].name, (1, 1), thumbnail_source(item[1], item[2], whole)),
            list(zip(files, decoded, prepared)),
        )
        limit = 2 * 1000 / (decode + resize + forward)
        costs[label] = {"decode": decode, "resize": resize, "forward": forward, "limit": limit}
        rows.append(
            [
                label,
                len(files),
                full,
                decode,
                resize,
                forward,
                thumb,
                f"{100 * decode / (decode + resize + forward):.0f}%",
                limit,
            ]
        )
    table(
        "Camera-size decode, one core (ms per image, medians)",
        [
            "set",
            "files",
            "full-size decode",
            "product decode",
            "resize",
            f"forward ({embedder.runtime} {embedder.precision}, 1 thread, batch {settings.batch_size})",
            "thumbnail",
            "decode share",
            "limit img/s (2 cores)",
        ],
        rows,
    )
    return costs


# --- indexing --------------------------------------------------------------------------------


def index_folder(folder: Path, output: Path, onnx_dir: Path, thumbnails: bool) -> tuple[float, str]:
    """`python with_faiss.py` as a user runs it, on a fresh output folder: (seconds, summary)."""
    shutil.rmtree(output, ignore_errors=True)
    env = {**os.environ, "SBI_ONNX_DIR": str(onnx_dir), "SBI_THUMBNAILS": str(thumbnails).lower()}
    command = [
        sys.executable,
        "with_faiss.py",
        "--images",
        str(folder),
        "--output",
        str(output),
        "--csv",
        str(output / "none.csv"),
        "--model",
        "efficientnet_lite0",
        "--quiet",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    summary = next(
        (line for line in (done.stderr + done.stdout).splitlines() if "images indexed" in line), ""
    )
    return seconds, summary


def bench_indexing(
    sets: dict[str, Path], costs: dict[str, dict[str, float]], args
) -> tuple[Path, dict[str, float]]:
    """The indexing table; the 12 MP JPEG collection it kept (thumbnails on) and each set's
    thumbnails-on rate over its limit."""
    work = scratch("sbi-camera-index-")
    ratios = {}
    rows = []
    kept = work / "12mp-jpeg"
    for label in args.index_sets:
        folder = sets[label]
        count = len(files_of(folder))
        rates = {}
        for thumbnails in (False, True):
            output = kept if (label == "12 MP JPEG" and thumbnails) else work / "run"
            seconds, _ = index_folder(folder, output, args.onnx_dir, thumbnails)
            rates[thumbnails] = count / seconds
        limit = costs[label]["limit"] if label in costs else float("nan")
        ratios[label] = rates[True] / limit
        rows.append(
            [
                label,
                count,
                rates[False],
                rates[True],
                f"{rates[True] / rates[False]:.2f}",
                limit,
                f"{rates[True] / limit:.2f}",
            ]
        )
    table(
        "Indexing end to end (`python with_faiss.py`, fresh output, start-up included)",
        [
            "set",
            "files",
            "img/s, thumbnails off",
            "img/s, thumbnails on",
            "on / off",
            "limit img/s (decode table)",
            "on / limit",
        ],
        rows,
    )
    return kept, ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=["decode", "indexing", "query"])
    parser.add_argument("--files", type=int, default=300, help="12 MP JPEG files")
    parser.add_argument("--files-6mp", type=int, default=60, help="6 MP JPEG files")
    parser.add_argument("--heic-files", type=int, default=12, help="HEIC files per size")
    parser.add_argument(
        "--decode-files",
        type=int,
        default=64,
        help="files per set in the decode table (16 left the limit's forward pass to two batches: "
        "limits 50-75 img/s within minutes; 64: 55-71, bench/README.md, camera-size photos)",
    )
    parser.add_argument("--queries", type=int, default=20, help="queries per set")
    parser.add_argument("--index-sets", nargs="*", default=["12 MP JPEG", "6 MP JPEG", "12 MP HEIC"])
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="decode table and indexing runs, one after the other, this many times (this VM's speed "
        "drifts within minutes: bench/README.md, camera-size photos); a table of the ratios and their median",
    )
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        default=wallpapers.CACHE / "onnx",
        help="exported ONNX models, shared by the runs (the export is not timed)",
    )
    args = parser.parse_args(argv)
    sets = camera_sets({"12 MP": args.files, "6 MP": args.files_6mp, "heic": args.heic_files})
    Embedder.configured(
        EmbedderSpec.from_settings(Settings(onnx_dir=args.onnx_dir, model="efficientnet_lite0")),
        Settings(onnx_dir=args.onnx_dir, model="efficientnet_lite0"),
    )  # export + int8 once, before timing
    costs = decode_costs(sets, args) if "decode" in args.only or "indexing" in args.only else {}
    saved, ratios = bench_indexing(sets, costs, args) if "indexing" in args.only else (None, {})
    runs = [ratios]
    indexed = {label: sets[label] for label in args.index_sets}
    for _ in range(args.repeat - 1 if "indexing" in args.only else 0):
        runs.append(bench_indexing(sets, decode_costs(indexed, args), args)[1])
    if len(runs) > 1:
        rows = []
        for label in args.index_sets:
            each = [run[label] for run in runs]
            rows.append([label, ", ".join(f"{r:.2f}" for r in each), f"{statistics.median(each):.2f}"])
        table(
            f"Indexing over its limit, {len(runs)} runs (each against the decode table of its own run)",
            ["set", "on / limit, each run", "median"],
            rows,
        )
    if "query" in args.only:
        if saved is None:
            saved = scratch("sbi-camera-index-") / "12mp-jpeg"
            index_folder(sets["12 MP JPEG"], saved, args.onnx_dir, thumbnails=True)
        bench_query(sets, saved, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
