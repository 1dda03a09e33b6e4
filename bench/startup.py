"""Launch -> searchable and idle memory of a real `uvicorn main:app` on saved collections of the
older format (fingerprints in manifest.json) and of the current one (fingerprints.npy), through HTTP.

    nice -n 10 python -m bench.startup /work/scratch/live/c10k /work/scratch/live/c1m \\
        --work /work/scratch/hstart/startup --baseline 5fa5533

Each collection (a folder with images/, data.csv and saved/, as bench/live_collections.py or
bench/scale_service.py build them) is copied under `--work`: its big files hard-linked (only read
here), the small ones copied, so the original is never changed. Served first by `--baseline REV`
(a git worktree) as it is, then by this tree after `format_upgrade.upgrade` brought the copy to
the current format in place; `--also-old` adds a row of this tree serving the older format (the
migration's read path). Each row is a fresh server (bench/scale_service.py `measure`, no writes):
launch = process start to the first answered POST /search; idle RSS 3 s later, anonymous part
(what is not the memory-mapped index, features and tables) in brackets. Timings are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench.served import memory, served
from search_by_image.catalog.metadata_import import sync
from search_by_image.index.disk import writer_lock
from search_by_image.index.format_upgrade import upgrade
from search_by_image.index.store import IndexStore
from search_by_image.layout import CATALOG_FILE
from search_by_image.settings import PROJECT_DIR

LINKED = ("faiss_index.faiss", "features.npy", "ids.npy", "whitening.npz")


def working_copy(source: Path, target: Path) -> Path:
    """`source` copied to `target` (the big saved files hard-linked), anew each run."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "saved").mkdir(parents=True)
    (target / "images").mkdir()
    if (source / "data.csv").is_file():
        shutil.copy2(source / "data.csv", target / "data.csv")
    for entry in (source / "saved").iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            link = entry.name in LINKED
            (os.link if link else shutil.copy2)(entry, target / "saved" / entry.name)
    if not (target / "saved" / CATALOG_FILE).is_file():  # the indexer's import, not a server's
        sync(target / "saved", target / "data.csv", IndexStore.load(target / "saved"))
    return target


def measure(root: Path, code: Path = PROJECT_DIR) -> dict[str, float]:
    """One fresh server of the code in `code` on the collection in `root`: launch -> first
    answered POST /search, idle memory 3 s later, the search stage of 10 more searches."""
    with served(root, code) as up:
        time.sleep(3)
        idle = memory(up.pid)
        searched = statistics.median(up.search()["timing"]["search_ms"] for _ in range(10))
    return {
        "launch_s": up.launch_s,
        "idle_rss_mb": idle["VmRSS"],
        "idle_anon_mb": idle["RssAnon"],
        "search_ms": searched,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("collections", type=Path, nargs="+")
    parser.add_argument("--work", type=Path, required=True, help="where the working copies go")
    parser.add_argument("--baseline", metavar="REV", help="also serve the older format with this revision")
    parser.add_argument("--also-old", action="store_true", help="this tree on the older format too")
    args = parser.parse_args(argv)
    baseline = None
    if args.baseline:
        baseline = args.work / "baseline-code"
        if not baseline.is_dir():
            subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], check=True)
    rows = []
    try:
        for source in args.collections:
            copy = working_copy(source, args.work / source.name)
            runs = [(f"{source.name}, {args.baseline} (older format)", baseline)] if baseline else []
            runs += [(f"{source.name}, this tree on the older format", PROJECT_DIR)] if args.also_old else []
            for label, code in runs:
                rows.append((label, measure(copy, code)))
                print(json.dumps({"run": label, **rows[-1][1]}), flush=True)
            with writer_lock(copy / "saved"):
                upgrade(copy / "saved")
            label = f"{source.name}, this tree (format 3)"
            rows.append((label, measure(copy)))
            print(json.dumps({"run": label, **rows[-1][1]}), flush=True)
    finally:
        if baseline is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], check=False)
    print("\n| collection, code | launch -> searchable s | idle RSS MB (anon) | search stage ms |")
    print("|---|---|---|---|")
    for label, r in rows:
        memory = f"{r['idle_rss_mb']:.0f} ({r['idle_anon_mb']:.0f})"
        print(f"| {label} | {r['launch_s']:.1f} | {memory} | {r['search_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
