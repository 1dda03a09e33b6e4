"""Speed, live updates: adds and deletes through HTTP on a running `uvicorn main:app`.

    python -m bench.speed --only live                   # collections of --live-sizes, built here
    python -m bench.speed_live --collections DIR...     # collections built by bench.live_collections

For each collection (a copy: the saved files hard-linked, never changed in place): the server is
started, then one small JPEG (a Holidays photo, a different one each time) is added and deleted
again, `--writes` times; p50 of the client's wall time and of the server's own `timing` split
(decode, embed, write: files, the SQLite transaction, the new snapshot). The server's RSS is read
before the writes and after 100 more (50 adds, 50 deletes). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import httpx
import psutil

from bench.served import served
from bench.tables import scratch, table
from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE
from search_by_image.settings import PROJECT_DIR

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
MEMORY_WRITES = 100


def copy_collection(source: Path, target: Path) -> None:
    """`source` (images/, saved/, data.csv) copied for writing: saved files hard-linked (commits
    replace files, never change them), the CSV copied, the images folder new."""
    (target / "images").mkdir(parents=True)
    (target / "saved").mkdir()
    for file in (source / "saved").iterdir():
        if file.is_file():
            os.link(file, target / "saved" / file.name)
    if (source / "data.csv").is_file():
        shutil.copy2(source / "data.csv", target / "data.csv")


def _timing(response: httpx.Response, wall: float) -> dict[str, float]:
    """The server's timing split (none from a version that did not report one) and the wall time."""
    timing = response.json().get("timing") or {"decode_ms": 0.0, "embed_ms": 0.0, "write_ms": wall}
    return {**timing, "wall_ms": wall}


def measure(root: Path, photos: list[Path], writes: int, memory_writes: int) -> dict[str, float]:
    """Adds and deletes through HTTP on a served copy of the collection in `root`."""
    work = scratch("bench-live-")
    copy_collection(root, work)
    _, key = KeyStore(work / "saved" / KEYS_FILE).create("admin")
    adds: list[dict] = []
    deletes: list[dict] = []
    with served(work, headers={"Authorization": f"Bearer {key}"}) as up:
        client = up.client

        def add_and_delete(photo: Path) -> None:
            started = time.perf_counter()
            added = client.post(
                "/collections/default/images",
                files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))],
            )
            wall = (time.perf_counter() - started) * 1e3
            assert added.status_code == 201, added.text
            adds.append(_timing(added, wall))
            started = time.perf_counter()
            deleted = client.delete(f"/collections/default/images/{added.json()['images'][0]['id']}")
            wall = (time.perf_counter() - started) * 1e3
            assert deleted.status_code == 200, deleted.text
            deletes.append(_timing(deleted, wall))

        add_and_delete(photos[-1])  # warm-up: the model's first forward pass, the database
        adds.clear(), deletes.clear()
        rss_before = psutil.Process(up.pid).memory_info().rss
        for photo in photos[:writes]:
            add_and_delete(photo)
        for photo in photos[writes : writes + memory_writes // 2]:
            add_and_delete(photo)
        rss_after = psutil.Process(up.pid).memory_info().rss
    first = adds[:writes]
    return {
        "add": statistics.median(a["wall_ms"] for a in first),
        "add_write": statistics.median(a["write_ms"] for a in first),
        "add_model": statistics.median(a["decode_ms"] + a["embed_ms"] for a in first),
        "delete": statistics.median(d["wall_ms"] for d in deletes[:writes]),
        "delete_write": statistics.median(d["write_ms"] for d in deletes[:writes]),
        "rss_before": rss_before / 2**20,
        "rss_after": rss_after / 2**20,
        "memory_writes": 2 * (len(adds) - writes),
    }


def run(roots: list[Path], writes: int, memory_writes: int = MEMORY_WRITES) -> None:
    photos = sorted((DATASETS / "holidays_subset300" / "images").glob("*.jpg"))
    rows = []
    for root in roots:
        count = len((root / "saved" / "images_paths.txt").read_text().splitlines())
        got = measure(root, photos, writes, memory_writes)
        rows.append(
            [
                count,
                got["add"],
                got["add_model"],
                got["add_write"],
                got["delete"],
                got["delete_write"],
                f"{got['rss_before']:.0f} -> {got['rss_after']:.0f} ({got['memory_writes']} writes)",
            ]
        )
    table(
        f"Live add and delete through HTTP, one small JPEG (ms, p50 of {writes}; server's timing split)",
        [
            "images",
            "add (client)",
            "add: decode+embed",
            "add: write",
            "delete (client)",
            "delete: write",
            "RSS MB",
        ],
        rows,
    )


def bench_live(args) -> None:
    """`bench.speed --only live`: collections of `--live-sizes` built here (bench.live_collections)."""
    from bench.live_collections import build

    roots = []
    for count in args.live_sizes:
        root = scratch("bench-live-src-")
        build(root, count)
        roots.append(root)
    run(roots, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", type=Path, nargs="+", required=True)
    parser.add_argument("--writes", type=int, default=20, help="adds and deletes timed")
    parser.add_argument("--memory-writes", type=int, default=MEMORY_WRITES, help="writes between RSS reads")
    args = parser.parse_args()
    run(args.collections, args.writes, args.memory_writes)


if __name__ == "__main__":
    main()
