"""What storing each image's keypoints costs the indexer: `update_index` on a fresh collection
with the keypoint store on (the product) and off (what it did before), taking turns, on the same
folders: Holidays photos (325 px: the thumbnail's keypoints only) and 12 MP camera JPEGs (plus a
1024 px view's). Prints images/s of each, the ratio, and keypoints.sqlite's bytes per image.

    python -m bench.speed_keypoints --holidays 200 --camera 40 --rounds 2

Tables: bench/README.md "Stored keypoints".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.camera_sets import camera_sets, files_of
from bench.quality_copies import DATASETS
from bench.quality_levers import patched
from search_by_image.indexing import indexer
from search_by_image.indexing.indexer import update_index
from search_by_image.layout import KEYPOINTS_FILE
from search_by_image.ranking import verifier
from search_by_image.settings import PROJECT_DIR, Settings


def index_once(files: list[Path], root: Path, stored: bool) -> tuple[float, int]:
    """images/s of one fresh indexer run over `files` (symlinked), and the keypoint file's bytes."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    for file in files:
        (root / "images" / file.name).symlink_to(file.resolve())
    settings = Settings(
        images_dir=root / "images",
        metadata_csv=root / "none.csv",
        saved_dir=root / "saved",
        model="efficientnet_lite0",
        onnx_dir=PROJECT_DIR / "saved" / "onnx",
    )
    off = () if stored else ((verifier, "available", lambda: False), (indexer, "available", lambda: False))
    with patched(*off):
        started = time.perf_counter()
        update_index(settings, progress=False)
        seconds = time.perf_counter() - started
    store = root / "saved" / KEYPOINTS_FILE
    size = sum(f.stat().st_size for f in store.parent.glob(KEYPOINTS_FILE + "*")) if store.exists() else 0
    return len(files) / seconds, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--holidays", type=int, default=200)
    parser.add_argument("--camera", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sets = {
        "Holidays (325 px)": files_of(DATASETS / "holidays_subset300" / "images", args.holidays),
        "12 MP JPEG": files_of(camera_sets({"12 MP": args.camera, "6 MP": 0, "heic": 0})["12 MP JPEG"]),
    }
    print("| set | images | img/s, keypoints stored | img/s, before | ratio | keypoints.sqlite / image |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for name, files in sets.items():
            rates: dict[bool, list[float]] = {True: [], False: []}
            size = 0
            for _ in range(args.rounds):
                for stored in (False, True):
                    rate, written = index_once(files, Path(work) / "c", stored)
                    rates[stored].append(rate)
                    size = written or size
            on, off = statistics.median(rates[True]), statistics.median(rates[False])
            print(
                f"| {name} | {len(files)} | {on:.1f} | {off:.1f} | {on / off:.2f} | "
                f"{size / len(files) / 1024:.1f} KB |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
