"""Regional descriptors, measured offline beside the product: would a few regions per indexed
image (R-MAC style: GeM over windows of the same feature map the indexer computes), searched
with the whole-image descriptors, put a detail's source first by its score?

    python -m bench.quality_regions --seeds 11        # after bench.quality_copies built --work

Not the product's path (the index holds one descriptor per image): the collection of
bench/quality_copies.py is read from its saved folder, each image decoded as the indexer does and
run once through the model; its regions pooled from that feature map, whitened with the
collection's whitening. Queries are embedded upright by the product's embedder. An image scores
max(whole-image score, best region's score - penalty). Reported: source first by score alone
(no verification), Holidays-300 mAP by score alone, bytes per image. Tables: bench/README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench import wallpapers
from bench.quality_copies import DATASETS, HELD_OUT_SEED, collection, sets
from search_by_image.evaluation.measures import average_precision
from search_by_image.evaluation.product import ProductSearch
from search_by_image.images.decoding import open_rgb
from search_by_image.model.embedder import normalized, pool
from search_by_image.model.preprocessing import STRIDE

#: Windows as (fraction of each side, positions along each side): R-MAC's levels, roughly the
#: sizes of a detail (a quarter and a ninth of the area).
LEVELS = ((1 / 2, 3), (1 / 3, 4))


def windows(cells_h: int, cells_w: int, levels=LEVELS) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) in feature-map cells of each region."""
    out = []
    for fraction, positions in levels:
        h, w = max(1, round(cells_h * fraction)), max(1, round(cells_w * fraction))
        for top in np.linspace(0, cells_h - h, positions).round().astype(int):
            for left in np.linspace(0, cells_w - w, positions).round().astype(int):
                out.append((int(top), int(left), h, w))
    return out


def regions_of(search: ProductSearch, files: list[Path], levels=LEVELS) -> np.ndarray:
    """(images, regions, dims) whitened regional descriptors."""
    snapshot = search.collection.require()
    embedder, store = snapshot.embedder, snapshot.store
    prep = embedder.preprocessing
    out = []
    for n, file in enumerate(files):
        image = open_rgb(file, 10**9, prep.resized_size)
        pixels, content = prep.batch([prep(image)])
        maps = embedder.trunk(pixels)
        cells = -(-content[0] // STRIDE)
        rows = []
        for top, left, h, w in windows(int(cells[0]), int(cells[1]), levels):
            part = np.ascontiguousarray(maps[:, :, top : top + h, left : left + w])
            rows.append(pool(part, np.array([[h * STRIDE, w * STRIDE]]), "gem", embedder.spec.gem_p)[0])
        out.append(store.searchable(normalized(np.array(rows, np.float32))))
        if n % 100 == 0:
            print(f"  regions: {n}/{len(files)}", flush=True)
    return np.stack(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--work", type=Path, default=wallpapers.CACHE / "copies-collection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[HELD_OUT_SEED])
    parser.add_argument("--copies", type=int, default=100)
    args = parser.parse_args(argv)
    holidays = args.datasets_dir / "holidays_subset300"
    settings, truth, photos, names = collection(holidays, args.work)
    copy_sets = sets(holidays, truth, photos, args.seeds, args.copies)
    with ProductSearch(settings) as search:
        store = search.store
        paths = list(store.paths)
        files = [settings.images_dir / p for p in paths]
        cache = args.work / "regions.npy"
        regions = np.load(cache) if cache.is_file() else regions_of(search, files)
        np.save(cache, regions)
        whole = store.searchable(np.asarray(store.features))
        embedder = search.collection.require().embedder

        def embed(data: bytes) -> np.ndarray:
            image = open_rgb(data, 10**9, embedder.preprocessing.resized_size)
            return store.searchable(embedder.embed_images([image]))[0]

        layouts = {
            "whole image only": [],
            "+ 9 regions (1/4 area)": list(range(9)),
            "+ 25 regions": list(range(25)),
        }
        penalties = (0.0, 0.05, 0.1)
        queries = {label: [embed(c.data) for c in copies] for label, (copies, _) in copy_sets.items()}
        holiday_rows = [paths.index(f) for f in truth.files]
        hq = [whole[paths.index(truth.files[q])] for q in truth.queries]
        print(
            "\n| first stage, scores alone | "
            + " | ".join(copy_sets)
            + " | Holidays mAP | bytes/image (fp32) |"
        )
        print("|---|" + "---|" * (len(copy_sets) + 2))
        for label, used in layouts.items():
            for penalty in penalties if used else (0.0,):
                cells = []
                for set_label, (copies, files_) in copy_sets.items():
                    first = []
                    for copy, q in zip(copies, queries[set_label]):
                        scores = whole @ q
                        if used:
                            scores = np.maximum(scores, (regions[:, used] @ q).max(axis=1) - penalty)
                        source = paths.index((files_ or names)[copy.source])
                        first.append(int(np.argmax(scores)) == source)
                    cells.append(f"{np.mean(first):.3f}")
                aps = []
                for query, q in zip(truth.queries, hq):
                    scores = whole[holiday_rows] @ q
                    if used:
                        scores = np.maximum(
                            scores, (regions[holiday_rows][:, used] @ q).max(axis=1) - penalty
                        )
                    order = [i for i in np.argsort(-scores) if i != query]
                    relevant = np.array([truth.groups[i] == truth.groups[query] for i in order])
                    aps.append(average_precision(relevant, int(relevant.sum())))
                size = (1 + len(used)) * whole.shape[1] * 4
                name = label if not used else f"{label}, penalty {penalty}"
                print(f"| {name} | " + " | ".join(cells) + f" | {np.mean(aps):.4f} | {size} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
