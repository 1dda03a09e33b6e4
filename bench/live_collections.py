"""Collections of 10k to 1M images in the saved format, for the live-write and scale benches.

    python -m bench.live_collections --count 1000000 --root /tmp/c1m

Synthetic descriptors (unit vectors near 1,000 centres, efficientnet-lite0's 1280 dimensions,
the default 384-d whitening) under paths `synthetic/<i>.jpg`; the index is built, tuned and
committed by the indexer's own `IndexStore.create` and atomic commit, so the service loads it like
any collection. The images folder holds no files: nothing here decodes a stored image. A
`data.csv` gives each image a `group` column (100 values: a 1% filter).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.index.whitening import DEFAULT_DIMS
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import Settings

BLOCK = 100_000


def clustered(count: int, dim: int, seed: int = 3) -> np.ndarray:
    """Unit vectors near 1,000 random centres, made in blocks (1M x 1280 float32 is 5 GB)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    out = np.empty((count, dim), np.float32)
    for start in range(0, count, BLOCK):
        n = min(BLOCK, count - start)
        block = centres[rng.integers(0, 1000, n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def build(root: Path, count: int) -> Settings:
    """A collection of `count` synthetic images under `root` (images/, saved/, data.csv);
    the settings that serve it."""
    settings = Settings(
        images_dir=root / "images",
        metadata_csv=root / "data.csv",
        saved_dir=root / "saved",
        model="efficientnet_lite0",
    )
    (root / "images").mkdir(parents=True, exist_ok=True)
    spec = EmbedderSpec.from_settings(settings)
    paths = [f"synthetic/{i}.jpg" for i in range(count)]
    store = IndexStore.create(
        spec, clustered(count, spec.dim), paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS
    )
    with writer_lock(settings.saved_dir):
        store.save(settings.saved_dir)
    with open(root / "data.csv", "w") as out:
        out.write("path,group\n")
        out.writelines(f"{p},{i % 100}\n" for i, p in enumerate(paths))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    build(args.root, args.count)
    print(f"{args.count} images in {args.root} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
