"""The saved format's per-image tables: fingerprints in fingerprints.npy, paths and ids looked up
without per-image dicts, and folders of the older formats still loading and brought up to date."""

import json

import numpy as np
import pytest
from stores import SPEC, as_saved_format, commit, random_store, unit_rows

from search_by_image.errors import IndexCorrupt
from search_by_image.index import disk
from search_by_image.index.format_upgrade import upgrade
from search_by_image.index.path_table import IdTable, PathTable
from search_by_image.index.store import IndexStore
from search_by_image.layout import FEATURES_FILE, FINGERPRINTS_FILE, INDEX_FILE, MANIFEST_FILE


def fingerprinted_store(count: int = 12) -> IndexStore:
    paths = [f"dir{i % 3}/image {i}.jpg" for i in range(count)]
    files = {p: (1000 + i, 1_700_000_000_000_000_000 + i) for i, p in enumerate(paths)}
    return IndexStore.create(SPEC, unit_rows(count, seed=4), paths, files)


def test_fingerprints_are_saved_row_aligned_and_not_in_the_manifest(tmp_path):
    store = fingerprinted_store()
    commit(store, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["format"] == disk.FORMAT_VERSION and "files" not in manifest
    saved = np.load(tmp_path / FINGERPRINTS_FILE)
    assert saved.dtype == np.int64 and saved.shape == (12, 2) and saved[5].tolist() == [1005, saved[0, 1] + 5]
    loaded = IndexStore.load(tmp_path)
    assert isinstance(loaded.fingerprints, np.memmap)
    assert loaded.fingerprint("dir2/image 5.jpg") == (1005, 1_700_000_000_000_000_005)
    assert loaded.fingerprint("dir2/image 99.jpg") is None
    assert loaded.files() == store.files()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_folder_loads_with_its_fingerprints_and_the_next_commit_writes_the_new_format(
    tmp_path, version
):
    store = fingerprinted_store()
    commit(store, tmp_path)
    as_saved_format(tmp_path, version)
    old = IndexStore.load(tmp_path)
    assert old.files() == store.files() and old.paths == store.paths
    assert old.ids.tolist() == list(range(12)) and old.id_of("dir1/image 4.jpg") == 4
    grown = old.with_changes(
        [3], unit_rows(1, seed=9), ["new.jpg"], {"new.jpg": (7, 8)}, [old.manifest.next_id]
    )
    commit(grown, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["format"] == disk.FORMAT_VERSION and "files" not in manifest
    again = IndexStore.load(tmp_path)
    assert again.fingerprint("new.jpg") == (7, 8) and again.fingerprint("dir1/image 4.jpg") == (
        1004,
        store.fingerprints[4, 1],
    )
    assert again.id_of("dir0/image 3.jpg") is None and len(again) == 12


def test_an_older_folder_is_upgraded_in_place_without_rewriting_the_index(tmp_path):
    store = fingerprinted_store()
    commit(store, tmp_path)
    as_saved_format(tmp_path, 2)
    big = {name: (tmp_path / name).stat().st_ino for name in (INDEX_FILE, FEATURES_FILE)}
    with disk.writer_lock(tmp_path):
        assert upgrade(tmp_path)
        assert not upgrade(tmp_path)  # already current
    assert {name: (tmp_path / name).stat().st_ino for name in big} == big
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["format"] == disk.FORMAT_VERSION and "files" not in manifest
    assert manifest["generation"] == store.manifest.generation  # the same set: nobody reloads
    assert IndexStore.load(tmp_path).files() == store.files()


def test_paths_are_found_by_row_and_by_path():
    paths = ["a.jpg", "été/ü.png", "b c/d.jpg", "x" * 300]
    for table in (PathTable.of(paths), PathTable("\n".join(paths).encode())):  # no final newline
        assert (
            len(table) == 4 and list(table) == paths and table[-1] == "x" * 300 and table[1:3] == paths[1:3]
        )
        assert [table.row_of(p) for p in paths] == [0, 1, 2, 3]
        assert table.row_of("a.jp") is None and table.row_of("") is None
    assert len(PathTable(b"")) == 0 and PathTable(b"").row_of("a") is None


def test_a_path_is_found_among_rows_whose_hashes_collide(monkeypatch):
    table = PathTable.of(["one.jpg", "two.jpg", "three.jpg"])
    table._sorted_hashes[:] = 7  # every row under one hash
    monkeypatch.setattr("search_by_image.index.path_table.hash", lambda _: 7, raising=False)
    assert [table.row_of(p) for p in ("three.jpg", "one.jpg", "two.jpg", "four.jpg")] == [2, 0, 1, None]


def test_ids_are_found_in_any_order_and_duplicates_are_refused():
    table = IdTable(np.array([40, 3, 17, 9]))
    assert [table.row_of(i) for i in (3, 9, 17, 40, 5)] == [1, 3, 2, 0, None]
    assert table.rows_of(np.array([17, 41, 40, -1])).tolist() == [2, -1, 0, -1]
    assert IdTable(np.arange(5)).rows_of(np.array([4, 5])).tolist() == [4, -1]
    assert IdTable(np.empty(0, np.int64)).rows_of(np.array([1])).tolist() == [-1]
    store = random_store(4, seed=3)
    with pytest.raises(IndexCorrupt, match="duplicate"):
        IndexStore(
            store.manifest,
            store.index,
            store.features,
            store.paths,
            np.array([0, 1, 1, 2]),
            store.fingerprints,
        )
