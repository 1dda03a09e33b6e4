"""Speed, duplicates: `python -m bench.speed --only duplicates`.

Near-duplicate groups (range search over the index) at 100k images with planted copies:
time, peak memory, planted pairs found.

Timings are printed, never asserted.
"""

from __future__ import annotations

import time

import numpy as np

from bench.tables import table
from search_by_image.index.whitening import DEFAULT_DIMS
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import Settings


def bench_duplicates(args) -> None:
    import resource

    from search_by_image.index.store import IndexStore
    from search_by_image.ranking.duplicates import find_groups

    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    rows = []
    for count in args.duplicate_sizes:
        planted = count // 100
        rng = np.random.default_rng(4)
        # unclustered vectors: with clusters, the whitening makes each whole cluster one "group"
        features = rng.standard_normal((count, spec.dim), dtype=np.float32)
        features[count - planted :] = features[:planted] + 0.3 * rng.standard_normal(
            (planted, spec.dim), dtype=np.float32
        )
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        paths = [f"{i}.jpg" for i in range(count)]
        store = IndexStore.create(
            spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS
        )
        started = time.perf_counter()
        groups = find_groups(store)
        seconds = time.perf_counter() - started
        group_of = {i: number for number, g in enumerate(groups) for i, _ in g.images}
        found = sum(group_of.get(i, -1) == group_of.get(count - planted + i, -2) for i in range(planted))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append([count, store.manifest.index_type, planted, found, len(groups), seconds, f"{peak:.0f}"])
    table(
        "Near-duplicate groups by range search (random 1280-d descriptors + noisy copies of 1%, "
        f"{DEFAULT_DIMS}-d whitening, default threshold)",
        ["N", "index", "planted pairs", "found", "groups", "seconds", "peak RSS MB (process)"],
        rows,
    )
