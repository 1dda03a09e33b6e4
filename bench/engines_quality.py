"""The same quality through Milvus as through the embedded store, through the product's search.

    nice -n 10 python -m bench.engines_quality [--copies 100] [--filtered 100]

Holidays-300 is indexed like a user (`with_faiss.py`'s update_index, default settings, a metadata
CSV with a `category` column of 7 values and a `number` column), then measured through the call
POST /search makes (evaluation/product.py): mAP and P@1 with each query left out, altered copies'
rank-1 (seeded, alterations.py), and `--filtered` searches with a filter (a category, a number
range, both). Then a real Milvus 2.3.5 standalone is started on 127.0.0.1, the collection exported
into it (storage_transfer.export, as `cli.storage export`), and the same measured again: the
service now serves it from Milvus. Query expansion is off in both (it is not served from Milvus).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.engines_service import milvus
from search_by_image.catalog import metadata_import
from search_by_image.catalog.filters import Range
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.evaluation.alterations import altered_copies, pick_sources
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import ProductSearch, index_like_a_user, product_map, source_ranks
from search_by_image.index import storage_transfer
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.store import IndexStore
from search_by_image.index.vector_storage import StorageAddress
from search_by_image.serving.search import Upload, search
from search_by_image.settings import PROJECT_DIR

HOLIDAYS = PROJECT_DIR.parent / "shared" / "datasets" / "holidays_subset300"
SEED = 11


def filters(count: int) -> list[dict]:
    shapes = [
        lambda i: {"category": f"c{i % 7}"},
        lambda i: {"number": Range(gte=i * 2, lt=i * 2 + 150)},
        lambda i: {"category": [f"c{i % 7}", f"c{(i + 3) % 7}"], "number": Range(lt=200)},
    ]
    return [shapes[i % 3](i) for i in range(count)]


def measure(settings, truth: GroundTruth, copies, names: list[str], queries: list[bytes]) -> dict:
    with ProductSearch(settings) as product:
        started = time.perf_counter()
        mean_ap, p1 = product_map(product, HOLIDAYS, truth)
        ranks = source_ranks(product, copies, names)
        snapshot = product.collection.require()
        filtered = []
        for data, conditions in zip(queries, filters(len(queries))):
            found = search(snapshot, Upload(data, 10, conditions=conditions), settings.max_image_pixels)
            filtered.append([(hit.id, round(hit.score, 4)) for hit in found.hits.labelled()])
        return {
            "map": mean_ap,
            "p1": p1,
            "rank1": ranks.rank1,
            "filtered": filtered,
            "seconds": time.perf_counter() - started,
            "storage": type(product.collection).__name__,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--filtered", type=int, default=100)
    args = parser.parse_args()
    truth = GroundTruth.read(HOLIDAYS)
    with tempfile.TemporaryDirectory(prefix="sbi-engines-quality-") as work:
        root = Path(work)
        csv = root / "holidays" / "metadata.csv"
        csv.parent.mkdir(parents=True)
        csv.write_text(
            "path,category,number\n" + "".join(f"{f},c{i % 7},{i}\n" for i, f in enumerate(truth.files))
        )
        settings = index_like_a_user(
            {f: HOLIDAYS / "images" / f for f in truth.files},
            root / "holidays",
            metadata_csv=csv,
            query_expansion=False,
        )
        names = truth.files
        copies = altered_copies(
            lambda i: Image.open(HOLIDAYS / "images" / names[i]),
            pick_sources(args.copies, len(names), SEED),
            SEED,
        )
        queries = [(HOLIDAYS / "images" / names[q]).read_bytes() for q in truth.queries[: args.filtered]]
        embedded = measure(settings, truth, copies, names, queries)
        print(f"embedded: mAP {embedded['map']:.4f} rank-1 {embedded['rank1']:.3f}", flush=True)
        with milvus(root / "milvus", 19660) as address_text:
            address = StorageAddress.parse(address_text)
            assert address is not None
            store = IndexStore.load(settings.saved_dir)
            metadata_import.sync(settings.saved_dir, csv, store)
            view = MetadataView(settings.saved_dir)
            target = MilvusStorage(address, "default", view.kinds)
            storage_transfer.export(store, view, target)
            storage_transfer.record(settings.saved_dir, address, target)
            print(storage_transfer.compare(store, view, target, 100).summary(), flush=True)
            target.close()
            engine = measure(settings, truth, copies, names, queries)
        same = sum(a == b for a, b in zip(embedded["filtered"], engine["filtered"]))
        print(
            "\n| storage | served by | Holidays-300 mAP | P@1 | altered copies rank-1 "
            f"({args.copies}, seed {SEED}) | filtered searches with the same top 10 |\n"
            "|---|---|---|---|---|---|"
        )
        for label, run in (("embedded (saved folder)", embedded), ("Milvus 2.3.5 standalone", engine)):
            print(
                f"| {label} | {run['storage']} | {run['map']:.4f} | {run['p1']:.4f} | {run['rank1']:.3f} | "
                f"{same if run is engine else len(queries)}/{len(queries)} |"
            )
        print(
            f"\ndifferences: mAP {engine['map'] - embedded['map']:+.4f}, "
            f"rank-1 {engine['rank1'] - embedded['rank1']:+.3f}"
        )
        with contextlib.suppress(OSError):
            (settings.saved_dir / storage_transfer.STORAGE_FILE).unlink()


if __name__ == "__main__":
    main()
