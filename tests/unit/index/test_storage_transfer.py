"""A saved collection exported into Milvus (milvus-lite here) answers as the saved one does, and
the check notices when it does not."""

import json

import numpy as np
import pytest

from search_by_image.catalog import metadata_import
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.index import storage_transfer
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.store import IndexStore
from search_by_image.index.vector_storage import StorageAddress
from tests.unit.index.test_store import SPEC, unit_rows

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install milvus-lite)")

ADDRESS = StorageAddress("milvus", "127.0.0.1", 19530)


def test_an_exported_collection_gives_the_same_results_filtered_or_not(tmp_path):
    paths = [f"img{i}.jpg" for i in range(420)]  # enough to learn a whitening: exported whitened
    store = IndexStore.create(
        SPEC, unit_rows(420, seed=5), paths, {p: (1, 2) for p in paths}, whitening_dims=32
    )
    assert store.whitening is not None
    csv = tmp_path / "data.csv"
    csv.write_text("path,category,width\n" + "".join(f"{p},{'ab'[i % 2]},{i}\n" for i, p in enumerate(paths)))
    assert metadata_import.sync(tmp_path, csv, store) == []
    metadata = MetadataView(tmp_path)
    target = MilvusStorage(ADDRESS, "exported", metadata.kinds, uri=str(tmp_path / "lite.db"))
    storage_transfer.export(store, metadata, target)
    storage_transfer.export(store, metadata, target)  # run again after an interruption: no twins
    filters = [parse_filters(f) for f in ('{"category": "a"}', '{"width": {"gte": 100}}', '{"width": 3}')]

    agreement = storage_transfer.compare(store, metadata, target, sample=30, filters=filters)
    assert agreement.ok, agreement.summary()
    assert (agreement.saved_count, agreement.engine_count, agreement.searches) == (420, 420, 30)
    assert agreement.filtered_same == 3

    storage_transfer.record(tmp_path, ADDRESS, target)
    recorded = json.loads((tmp_path / storage_transfer.STORAGE_FILE).read_text())
    assert recorded["store"] == "milvus://127.0.0.1:19530" and recorded["collection"] == "sbi_exported"

    target.delete([int(store.ids[0])])
    moved = store.searchable(np.asarray(store.features[[1]])) * -1.0  # the row answers elsewhere
    target.delete([int(store.ids[1])])
    target.add([int(store.ids[1])], moved, [paths[1]], [{"category": "a"}])
    broken = storage_transfer.compare(store, metadata, target, sample=420)
    assert not broken.ok and broken.engine_count == 419 and broken.same_top < 420
    target.close()


def test_exact_indexes_must_agree_on_every_search_approximate_ones_on_nearly_every():
    def agreement(same: int, exact: bool) -> storage_transfer.Agreement:
        return storage_transfer.Agreement(1000, 1000, 100, same, same, 10, 10, exact=exact)

    assert agreement(100, exact=True).ok and not agreement(99, exact=True).ok
    assert agreement(99, exact=False).ok and agreement(95, exact=False).ok
    assert not agreement(90, exact=False).ok
    assert not storage_transfer.Agreement(1000, 999, 100, 100, 100, exact=False).ok
    assert "95% must agree" in agreement(99, exact=False).summary()
