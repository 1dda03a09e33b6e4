"""Speed on real photos, each figure next to a baseline measured in the same run.

    python -m bench.speed                 # everything, a few minutes on 2 cores
    python -m bench.speed --only indexing runtimes
    python -m bench.speed --faiss-sizes 10000 100000 1000000   # the big FAISS run

Sections:
  indexing  end-to-end images/s of the indexer on a fresh collection (decode, resize, forward,
            pool, whitening, FAISS build, save) per runtime, vs a naive loop (full-size PIL
            decode, batch 1, eager fp32) and vs the forward pass alone on pre-decoded batches of
            the same size in one process (the model's limit on this machine).
  runtimes  the forward pass of each backbone under eager fp32, channels_last, bf16 autocast and
            ONNX Runtime fp32 and int8 (exported from the same torch model); architecture timing,
            random weights.
  preprocessing  decode and resize time per image: Pillow's bicubic next to the project's
            (the same filter on torch's SIMD kernel), and how far apart their pixels are.
  http      POST /search latency on a real uvicorn on 127.0.0.1: p50/p95 for 0.5-3 MP JPEGs, one
            client and 16 concurrent (curl, a client that costs the shared cores next to nothing),
            with the server's decode/embed/search breakdown and the batched-forward limit.
  faiss     search time and recall@10 against exact search for Flat, HNSW and IVF indexes, and
            for the index the indexer picks by collection size (index/choice.py, nprobe tuned).
  duplicates  near-duplicate groups (range search over the index) at 100k images with planted
            copies: time, peak memory, planted pairs found.
  live      a live add (embed + commit of the whole set) and delete at several collection sizes,
            and a filtered search (FAISS ID selector) next to an unfiltered one.
Timings are printed, never asserted. Exits 0.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from bench import (
    speed_duplicates,
    speed_faiss,
    speed_http,
    speed_indexing,
    speed_live,
    speed_preprocessing,
    speed_runtimes,
)
from search_by_image.settings import PROJECT_DIR

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=["indexing", "runtimes", "preprocessing", "http", "faiss", "live", "duplicates"],
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--models", nargs="*", default=["efficientnet_lite0"])
    parser.add_argument("--images", type=int, default=811, help="images for the indexing run")
    parser.add_argument("--naive-images", type=int, default=120, help="images for the naive loop")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sides", nargs="*", type=int, default=[224, 448])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=64, help="requests per HTTP row")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--faiss-sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--faiss-dim", type=int, default=2048)
    parser.add_argument(
        "--faiss-variants",
        choices=["all", "auto"],
        default="all",
        help="auto: only Flat and the indexer's own choice (quicker at 1M)",
    )
    parser.add_argument("--live-sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--duplicate-sizes", nargs="*", type=int, default=[10_000, 100_000])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    for section in args.only:
        {
            "indexing": speed_indexing.bench_indexing,
            "runtimes": speed_runtimes.bench_runtimes,
            "preprocessing": speed_preprocessing.bench_preprocessing,
            "http": speed_http.bench_http,
            "faiss": speed_faiss.bench_faiss,
            "live": speed_live.bench_live,
            "duplicates": speed_duplicates.bench_duplicates,
        }[section](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
