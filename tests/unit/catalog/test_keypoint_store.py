"""The keypoint store: rows by path, read back only for the very file they were computed from."""

import numpy as np

from search_by_image.catalog.keypoint_store import (
    POSITION_SCALE,
    READ_CHUNK,
    KeypointStore,
    PointSet,
    StoredKeypoints,
)
from search_by_image.layout import KEYPOINTS_FILE


def points(count: int, seed: int) -> PointSet:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 384, (count, 2)).astype(np.float32)
    return PointSet(xy, rng.integers(0, 256, (count, 32), dtype=np.uint8))


def keypoints(seed: int, large: bool = False) -> StoredKeypoints:
    return StoredKeypoints((384, 256), points(500, seed), points(2000, seed + 1) if large else None)


def test_keypoints_read_back_as_stored_for_their_file_only(tmp_path):
    store = KeypointStore(tmp_path)
    assert store.read([("a.jpg", (1, 2))]) == [None]
    assert not (tmp_path / KEYPOINTS_FILE).exists()  # a read creates nothing
    written = keypoints(0, large=True)
    store.put([("a.jpg", (10, 20), written), ("b.jpg", (5, 6), keypoints(3))])
    found, stale, missing = store.read([("a.jpg", (10, 20)), ("b.jpg", (5, 7)), ("c.jpg", (1, 1))])
    assert stale is None and missing is None  # b.jpg changed since: not its keypoints any more
    assert found.frame == (384, 256)
    assert np.array_equal(found.thumb.descriptors, written.thumb.descriptors)
    assert np.abs(found.thumb.xy - written.thumb.xy).max() <= 0.5 / POSITION_SCALE
    assert np.array_equal(found.large.descriptors, written.large.descriptors)
    assert np.abs(found.large.xy - written.large.xy).max() <= 0.5 / POSITION_SCALE
    assert found.nbytes == 36 * 2500 + 8


def test_rows_are_replaced_removed_and_pruned_and_many_read_at_once(tmp_path):
    store = KeypointStore(tmp_path)
    images = [(f"{n}.jpg", (n, n)) for n in range(READ_CHUNK + 50)]
    store.put((path, fingerprint, keypoints(n)) for n, (path, fingerprint) in enumerate(images))
    assert all(k is not None for k in store.read(images))
    store.put([("0.jpg", (7, 7), keypoints(99))])  # the file changed: its new keypoints
    assert store.read([("0.jpg", (0, 0))]) == [None]
    assert store.missing({"0.jpg": (7, 7), "1.jpg": (1, 1), "new.jpg": (1, 1)}) == ["new.jpg"]
    store.forget(["1.jpg"])
    assert store.read([("1.jpg", (1, 1))]) == [None]
    assert store.prune(["2.jpg", "3.jpg"]) == len(images) - 3  # 1.jpg was gone already
    assert [k is not None for k in KeypointStore(tmp_path).read(images[:4])] == [False, False, True, True]


def test_the_larger_views_set_is_read_only_when_asked(tmp_path):
    store = KeypointStore(tmp_path)
    store.put([("big.jpg", (1, 1), keypoints(0, large=True)), ("small.jpg", (2, 2), keypoints(5))])
    big, small = store.read([("big.jpg", (1, 1)), ("small.jpg", (2, 2))], large=False)
    assert big.large is None and big.has_large and not small.has_large
    assert store.read_large("big.jpg", (1, 1)).descriptors.shape == (2000, 32)
    assert store.read_large("big.jpg", (1, 9)) is None and store.read_large("small.jpg", (2, 2)) is None


def test_writers_opening_a_new_store_at_once_all_write(tmp_path):
    """The indexer's worker processes open the new file side by side. When two connections
    switch it to WAL at the same moment SQLite refuses one at once (no busy wait): none fails."""
    import threading

    def put_all(folders: list, number: int, barrier: threading.Barrier, errors: list) -> None:
        for saved_dir in folders:
            barrier.wait()
            try:
                KeypointStore(saved_dir).put([(f"{number}.jpg", (1, 1), keypoints(number))])
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(exc)

    folders, barrier, errors = [tmp_path / str(n) for n in range(60)], threading.Barrier(6), []
    threads = [threading.Thread(target=put_all, args=(folders, n, barrier, errors)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = [(f"{n}.jpg", (1, 1)) for n in range(6)]
    assert all(None not in KeypointStore(saved).read(rows, large=False) for saved in folders)
