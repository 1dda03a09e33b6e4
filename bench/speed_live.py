"""Speed, live updates: `python -m bench.speed --only live`.

A live add (embed + commit of the whole set) and delete at several collection sizes, and a
filtered search (FAISS ID selector) next to an unfiltered one.

Timings are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time

from bench.speed_faiss import clustered_vectors
from bench.tables import BIG, scratch, table
from search_by_image.images.decoding import open_rgb
from search_by_image.index.whitening import DEFAULT_DIMS
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import Settings


def bench_live(args) -> None:
    """Add and delete one image at a time through the service's collection, as the API does."""
    from search_by_image.catalog.filters import parse_filters
    from search_by_image.catalog.locations import default_location
    from search_by_image.devices import single_threaded_blas
    from search_by_image.index.disk import writer_lock
    from search_by_image.index.store import IndexStore
    from search_by_image.serving.collection import Collection
    from search_by_image.serving.embedder_pool import EmbedderPool
    from search_by_image.serving.live_writes import Upload

    single_threaded_blas()  # as the service does at startup
    photos = sorted((args.datasets_dir / "holidays_subset300" / "images").glob("*.jpg"))[:20]
    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    pool_ = EmbedderPool(Settings(device="cpu", saved_dir=scratch("bench-")))
    rows = []
    for count in args.live_sizes:
        root = scratch("bench-")
        settings = Settings(
            images_dir=root / "images",
            metadata_csv=root / "data.csv",
            saved_dir=root / "saved",
            model="efficientnet_lite0",
        )
        (root / "images").mkdir()
        features = clustered_vectors(count, spec.dim, seed=3)
        paths = [f"synthetic/{i}.jpg" for i in range(count)]
        store = IndexStore.create(
            spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS
        )
        with writer_lock(settings.saved_dir):
            store.save(settings.saved_dir)
        (root / "data.csv").write_text(
            "path,group\n" + "".join(f"{p},{i % 100}\n" for i, p in enumerate(paths))
        )
        collection = Collection(default_location(settings), pool_)
        collection.refresh()
        adds, deletes = [], []
        for photo in photos[:5]:
            data = photo.read_bytes()
            upload = Upload(data, open_rgb(data, BIG, None), "JPEG")
            started = time.perf_counter()
            (added,) = collection.add([upload])
            adds.append((time.perf_counter() - started) * 1e3)
            started = time.perf_counter()
            collection.delete(added.id)
            deletes.append((time.perf_counter() - started) * 1e3)
        image = open_rgb(photos[0].read_bytes(), BIG, None)
        snapshot = collection.require()
        plain = [snapshot.search(image, 10).search_ms for _ in range(20)]
        one_group = parse_filters('{"group": 7}')
        filtered = [snapshot.search(image, 10, snapshot.allowed(one_group)) for _ in range(20)]
        rows.append(
            [
                count,
                store.manifest.index_type,
                statistics.median(adds),
                statistics.median(deletes),
                statistics.median(plain),
                statistics.median(f.search_ms for f in filtered),
                len(filtered[0].hits),
            ]
        )
    pool_.close()
    table(
        "Live updates through the service's collection (ms, median of 5; search median of 20)",
        [
            "N",
            "index",
            "add 1 image",
            "delete 1 image",
            "search k=10",
            "search k=10, filter 1%",
            "filtered hits",
        ],
        rows,
    )
