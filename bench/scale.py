"""A million images through the builder and the service's search path.

    python -m bench.scale                      # 1M synthetic 2048-d descriptors, several minutes
    python -m bench.scale --count 200000       # quicker

Synthetic descriptors (unit vectors near 1,000 centres, like bench/speed.py's FAISS section)
stand in for a 1M-image collection of a 2048-d model (ResNet50); the real Holidays descriptors go
through the same path as a second row. For each: build time (PCA-whitening, the index the
indexer picks by size, nprobe tuning, the atomic commit), size on disk, then in a fresh process,
as the service does: load (memory-mapped) and answer 200 single queries, with RSS, p50/p95 and
recall@10 against exact search. Prints a table; exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.index.whitening import DEFAULT_DIMS
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.model.preprocessing import Preprocessing
from search_by_image.settings import PROJECT_DIR

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
QUERIES = 200

#: What the service does with a saved folder, run in a fresh process so its RSS is the service's.
SERVE = r"""
import json, sys, time
import numpy as np, psutil
from search_by_image.index.choice import exact_top_k, recall_at_k
from search_by_image.index.store import IndexStore
from search_by_image.devices import single_threaded_blas
single_threaded_blas()  # as the service does at startup
folder, queries = sys.argv[1], np.load(sys.argv[2])
started = time.perf_counter()
store = IndexStore.load(__import__("pathlib").Path(folder))
load_s = time.perf_counter() - started
rss_loaded = psutil.Process().memory_info().rss
times, found = [], []
for query in queries:
    started = time.perf_counter()
    hits = store.search(query[None], 10)[0]
    times.append((time.perf_counter() - started) * 1e3)
    found.append([i for i, _ in hits])
rss = psutil.Process().memory_info().rss
searched = store.searchable(np.asarray(store.features))
truth = store.ids[exact_top_k(searched, store.searchable(queries), 10)]
times.sort()
print(json.dumps({"load_s": load_s, "rss_loaded_mb": rss_loaded / 2**20, "rss_mb": rss / 2**20,
                  "p50": times[len(times) // 2], "p95": times[int(0.95 * (len(times) - 1))],
                  "recall": recall_at_k(np.array(found), truth)}))
"""


def clustered(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    out = np.empty((count, dim), np.float32)
    for start in range(0, count, 100_000):  # in blocks: a 1M x 2048 float32 array is 8 GB already
        n = min(100_000, count - start)
        block = centres[rng.integers(0, 1000, n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def real_descriptors(images: Path, root: Path) -> np.ndarray:
    """The default Lite0 descriptors of the Holidays photos (the first 200 become the queries)."""
    from search_by_image.indexing.local_engine import embed_files
    from search_by_image.model.embedder import Embedder
    from search_by_image.settings import Settings

    settings = Settings(model="efficientnet_lite0")
    embedder = Embedder(EmbedderSpec.from_settings(settings), "cpu", runtime="auto", cache_dir=root / "onnx")
    names = sorted(p.name for p in images.iterdir())
    _, features, _ = embed_files(embedder, images, names, 16, 2, 50_000_000, progress=False)
    return features


def spec_for(dim: int) -> EmbedderSpec:
    return EmbedderSpec(
        model=f"synthetic-{dim}d",
        weights="none",
        dim=dim,
        pooling="gem",
        preprocessing=Preprocessing(resize="keep_aspect", size=448, mean=(0.5,) * 3, std=(0.5,) * 3),
    )


def run(label: str, features: np.ndarray, queries: np.ndarray, root: Path, whitening: int) -> list:
    paths = [f"{i:07d}.jpg" for i in range(len(features))]
    started = time.perf_counter()
    store = IndexStore.create(
        spec_for(features.shape[1]), features, paths, {p: (0, 0) for p in paths}, whitening_dims=whitening
    )
    folder = root / label
    with writer_lock(folder):
        store.save(folder)
    build = time.perf_counter() - started
    disk = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
    index_mb = (folder / "faiss_index.faiss").stat().st_size / 2**20
    np.save(root / "queries.npy", queries)
    del store
    out = subprocess.run(
        [sys.executable, "-c", SERVE, str(folder), str(root / "queries.npy")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    served = json.loads(out.stdout.strip().splitlines()[-1])
    manifest = IndexStore.load(folder).manifest
    return [
        label,
        len(features),
        f"{manifest.index_type} nprobe={manifest.nprobe}",
        f"{build:.0f}",
        f"{disk:.0f} ({index_mb:.0f})",
        f"{served['load_s']:.1f}",
        f"{served['rss_loaded_mb']:.0f}",
        f"{served['rss_mb']:.0f}",
        f"{served['p50']:.2f}",
        f"{served['p95']:.2f}",
        f"{served['recall']:.3f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--whitening", type=int, default=DEFAULT_DIMS, help="PCA-whitening dimensions")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sbi-scale-") as tmp:
        root = Path(tmp)
        print(f"generating {args.count} x {args.dim} descriptors", flush=True)
        everything = clustered(args.count + QUERIES, args.dim, seed=1)
        base, queries = everything[: args.count], everything[args.count :].copy()
        del everything
        rows.append(run("synthetic", base, queries, root, args.whitening))
        del base
        images = DATASETS / "holidays_subset300" / "images"
        if images.is_dir():
            features = real_descriptors(images, root)
            rows.append(run("holidays", features[QUERIES:], features[:QUERIES], root, args.whitening))
    header = [
        "collection",
        "N",
        "index",
        "build s",
        "disk MB (index)",
        "load s",
        "RSS after load MB",
        "RSS after 200 searches MB",
        "p50 ms",
        "p95 ms",
        "recall@10",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
