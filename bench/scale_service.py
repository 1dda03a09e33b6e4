"""Collections of 10k, 100k and 1M images served by a real `uvicorn main:app`: writes, start-up,
memory and filtered search, through HTTP.

    nice -n 10 python -m bench.scale_service --sizes 10000 100000
    nice -n 10 python -m bench.scale_service --sizes 1000000 --root /tmp/sbi-1m --keep

Each collection is built in the saved format by the indexer's own commit path (`IndexStore.create`,
the atomic commit under the writer lock, the metadata CSV imported into the collection's
database by `metadata_import.sync`) from SYNTHETIC descriptors: unit vectors near 1,000 centres,
efficientnet-lite0's 1280 dimensions, the default whitening. No image files are stored (nothing
here reads one back). The CSV gives every image a `group` (100 values: `{"group": "g7"}` is a
1%-selective filter), a number and a date.

Then, for each size, a fresh server process: launch -> first answered POST /search, idle RSS
(anonymous memory apart: the memory-mapped index and features count as file pages), the search
stage (`timing.search_ms`) of unfiltered and 1%-filtered searches, and `--writes` live writes
(half adds of a small JPEG with metadata, half deletes of them) with their HTTP p50 and the
server's own `timing` where it reports one, and memory after them. Prints one table; timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.served import PHOTO, jpeg, memory, served
from search_by_image.api.auth import KeyStore
from search_by_image.catalog.metadata_import import sync
from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.index.whitening import DEFAULT_DIMS
from search_by_image.layout import KEYS_FILE
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import PROJECT_DIR, Settings

BLOCK = 100_000


def build(root: Path, count: int) -> float:
    """A collection of `count` synthetic images under `root`; its build time in seconds."""
    started = time.perf_counter()
    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    source = root / "descriptors.npy"  # memory-mapped: 1M x 1280 float32 is 5 GB
    features = np.lib.format.open_memmap(source, "w+", np.float32, (count, spec.dim))
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((1000, spec.dim), dtype=np.float32)
    for start in range(0, count, BLOCK):
        n = min(BLOCK, count - start)
        block = centres[rng.integers(0, 1000, n)] + 0.7 * rng.standard_normal((n, spec.dim), dtype=np.float32)
        features[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    paths = [f"synthetic/{i:07d}.jpg" for i in range(count)]
    store = IndexStore.create(spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS)
    saved = root / "saved"
    with writer_lock(saved):
        store.save(saved)
    del features
    with open(root / "data.csv", "w") as out:
        out.write("path,group,size,taken\n")
        for i, path in enumerate(paths):
            out.write(
                f"{path},g{i % 100},{(i * 7919) % 5000},20{10 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d}\n"
            )
    sync(saved, root / "data.csv", store)
    del store
    source.unlink()
    (root / "images").mkdir(exist_ok=True)
    return time.perf_counter() - started


def uploads(count: int) -> list[bytes]:
    """Small distinct JPEGs (320 x 240 crops of one photo at different offsets)."""
    photo = Image.open(PHOTO).convert("RGB")
    return [jpeg(photo.crop((i % 40, i // 40, 320 + i % 40, 240 + i // 40))) for i in range(count)]


def measure(root: Path, writes: int, code: Path = PROJECT_DIR) -> dict[str, float | str]:
    """One server process of the code in `code` on the collection in `root`."""
    saved = root / "saved"
    (saved / KEYS_FILE).unlink(missing_ok=True)
    _, key = KeyStore(saved / KEYS_FILE).create("admin")
    out: dict[str, float | str] = {}
    with served(root, code) as up:
        out["launch_s"] = up.launch_s
        time.sleep(3)
        idle = memory(up.pid)
        out["idle_rss_mb"], out["idle_anon_mb"] = idle["VmRSS"], idle["RssAnon"]
        plain = [up.search()["timing"]["search_ms"] for _ in range(20)]
        filtered = [up.search('{"group": "g7"}') for _ in range(20)]
        out["search_ms"] = statistics.median(plain)
        out["filtered_ms"] = statistics.median(f["timing"]["search_ms"] for f in filtered)
        out["filtered_matched"] = filtered[0]["matched"]
        if writes:
            out.update(live_writes(up.client, key, uploads(max(1, writes // 2)), up.pid))
    return out


def live_writes(client, key: str, photos: list[bytes], pid: int) -> dict[str, float | str]:
    """Adds of `photos` (with metadata), then deletes of them, one request each."""
    headers = {"Authorization": f"Bearer {key}"}
    before = memory(pid)["RssAnon"]
    adds, deletes, add_timing, ids = [], [], [], []
    for number, data in enumerate(photos):
        started = time.perf_counter()
        answer = client.post(
            "/collections/default/images",
            headers=headers,
            files=[("files", (f"{number}.jpg", data, "image/jpeg"))],
            data={"metadata": json.dumps({"group": "g7", "size": number})},
        )
        adds.append((time.perf_counter() - started) * 1e3)
        answer.raise_for_status()
        ids.append(answer.json()["images"][0]["id"])
        add_timing.append(answer.json().get("timing"))
    for image_id in ids:
        started = time.perf_counter()
        client.delete(f"/collections/default/images/{image_id}", headers=headers).raise_for_status()
        deletes.append((time.perf_counter() - started) * 1e3)
    after = memory(pid)["RssAnon"]
    split = [t for t in add_timing if t]
    return {
        "add_ms": statistics.median(adds),
        "delete_ms": statistics.median(deletes),
        "add_split": json.dumps({k: round(statistics.median(t[k] for t in split), 1) for k in split[0]})
        if split
        else "-",
        "writes": len(adds) + len(deletes),
        "anon_before_writes_mb": before,
        "anon_after_writes_mb": after,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--writes", type=int, default=100, help="live writes per size: half adds, half deletes"
    )
    parser.add_argument(
        "--root", type=Path, help="where the collections go (kept with --keep; reused if built)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the collections for another run")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also serve each collection with this git revision (a worktree; no writes: they rewrite "
        "the whole collection there), on the same machine in the same run",
    )
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="sbi-scale-"))
    rows = []
    baseline = None
    if args.baseline:
        baseline = root / "baseline-code"
        if not baseline.is_dir():
            subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], check=True)
    try:
        for count in args.sizes:
            folder = root / str(count)
            if (folder / "saved" / "manifest.json").is_file():
                built = "reused"
            else:
                folder.mkdir(parents=True, exist_ok=True)
                built = f"{build(folder, count):.0f}"
                print(f"built {count} images in {built} s", flush=True)
            if baseline is not None:
                before = measure(folder, 0, baseline)
                print(json.dumps({"images": count, "baseline": args.baseline, **before}), flush=True)
                rows.append([f"{count:,} ({args.baseline})", built, before])
            result = measure(folder, args.writes)
            print(json.dumps({"images": count, **result}), flush=True)
            rows.append([f"{count:,}", built, result])
    finally:
        if baseline is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], check=False)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    header = "images | build s | add p50 ms | delete p50 ms | add split (server) | launch -> searchable s"
    header += (
        " | idle RSS MB (anon) | search ms | 1% filter search ms (matched) | anon MB before -> after writes"
    )
    print(f"\n| {header} |\n|" + "---|" * len(header.split("|")))
    for label, built, r in rows:
        wrote = "writes" in r
        cells = [
            label,
            built,
            f"{r['add_ms']:.0f}" if wrote else "-",
            f"{r['delete_ms']:.0f}" if wrote else "-",
            r["add_split"] if wrote else "-",
            f"{r['launch_s']:.1f}",
            f"{r['idle_rss_mb']:.0f} ({r['idle_anon_mb']:.0f})",
            f"{r['search_ms']:.2f}",
            f"{r['filtered_ms']:.2f} ({r['filtered_matched']})",
            f"{r['anon_before_writes_mb']:.0f} -> {r['anon_after_writes_mb']:.0f} ({r['writes']} writes)"
            if wrote
            else "-",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
