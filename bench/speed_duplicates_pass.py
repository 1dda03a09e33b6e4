"""Speed, the duplicates page on real photos: `python -m bench.speed_duplicates_pass`.

A collection of real photos indexed as `with_faiss.py` does: the Holidays subset (811 photos),
altered copies of them (crop, turn, colour, rescale, recompression, caption, border, mirror:
evaluation/alterations.py; 300 per seed) and 2 x 2 mosaics of four Holidays photos each (distinct
new photos with real content, to reach a few thousand). Then, through the API in-process
(TestClient): GET /collections/default/duplicates (the first call: the whole pass), one photo
added with POST /collections/default/images, and the page again (the pass carried over the add),
then that photo deleted and the page again.
Printed: seconds, pairs checked, pairs left unchecked as implied (pair_checks.py), keypoint
extractions, the process' CPU seconds per image and where they go (each stage's CPU time on the
threads that ran it), and the load average.
`--mosaics` scales the collection (10k: --mosaics 8589); the photo added is a new mosaic each
collection size (4 photos drawn by the size), so a rerun adds a photo that is not there yet.
`--check-workers` is the `duplicates_workers` setting (0: a process per core; 1: threads of
the server's own process). The CPU counted is the process' and its shut-down children's (the
workers'); the stages' CPU is the server process' own (with workers, their checks' stages are
not broken down: the pairs are counted as they are handed to them).

`--saved` and `--images`: a collection already indexed by `with_faiss.py` (no build).
Timings are printed, never asserted. The collection is kept in --work and reused when rerun.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from bench.tables import table

HOLIDAYS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "holidays_subset300"


def mosaic(paths: list[Path], side: int = 512) -> bytes:
    """Four photos in a 2 x 2 grid, `side` px each, as a JPEG."""
    canvas = Image.new("RGB", (2 * side, 2 * side))
    for n, path in enumerate(paths):
        with Image.open(path) as photo:
            canvas.paste(photo.convert("RGB").resize((side, side)), ((n % 2) * side, (n // 2) * side))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def collection_images(
    holidays: Path, seeds: int, mosaics: int, written: Path | None = None
) -> dict[str, Path | bytes]:
    """The collection's images: name -> file or bytes; those already in `written` (a rerun) are
    left out, their mosaics not made again (the same draws either way)."""
    from search_by_image.evaluation.alterations import altered_copies, pick_sources

    files = sorted((holidays / "images").iterdir())
    images: dict[str, Path | bytes] = {f.name: f for f in files}
    for seed in range(1, seeds + 1):
        copies = altered_copies(lambda i: Image.open(files[i]), pick_sources(300, len(files), seed), seed)
        images |= {f"copy-s{seed}-{n:03d}.jpg": c.data for n, c in enumerate(copies)}
    rng = np.random.default_rng(5)
    for n in range(mosaics):
        drawn, name = rng.choice(len(files), 4, replace=False), f"mosaic-{n:05d}.jpg"
        if written is None or not (written / name).exists():
            images[name] = mosaic([files[i] for i in drawn])
    kept = {n for n, d in images.items() if isinstance(d, bytes) and written and (written / n).exists()}
    return {n: d for n, d in images.items() if n not in kept}


class Timed:
    """Wraps module functions to add up their calls and seconds (CPU time of the calling thread)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wrap(self, module, name: str) -> None:
        real = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                with self._lock:
                    self.calls[name] += 1
                    self.seconds[name] += time.thread_time() - started

        setattr(module, name, timed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sbi-duplicates-pass"))
    parser.add_argument("--seeds", type=int, default=2, help="altered copies: 300 per seed")
    parser.add_argument("--mosaics", type=int, default=1000)
    parser.add_argument("--check-workers", type=int, default=1, help="1: threads; 0: a process per core")
    parser.add_argument("--saved", type=Path, help="a collection already indexed by with_faiss.py: no build")
    parser.add_argument("--images", type=Path, help="with --saved: the folder it indexed")
    args = parser.parse_args(argv)

    from search_by_image.evaluation.product import index_like_a_user

    if (args.saved is None) != (args.images is None):
        parser.error("--saved and --images go together")
    if args.saved is not None:
        from search_by_image.settings import Settings

        settings = Settings(
            images_dir=args.images,
            metadata_csv=args.saved / "no-metadata.csv",
            saved_dir=args.saved,
            model="efficientnet_lite0",
        )
        return measure(
            settings, f"GET /duplicates on {args.images} (indexed by with_faiss.py)", args.check_workers
        )
    started = time.perf_counter()
    # rerun: the files written before kept (their mtimes too)
    images = collection_images(HOLIDAYS, args.seeds, args.mosaics, args.work / "images")
    settings = index_like_a_user(images, args.work)
    print(f"indexed in {time.perf_counter() - started:.0f} s", flush=True)
    measure(
        settings,
        "GET /duplicates on real photos (Holidays + altered copies + mosaics), local verification on",
        args.check_workers,
    )


def measure(settings, title: str, check_workers: int = 1) -> None:
    """The duplicates page through the API in-process on the collection `settings` serve: the
    first call (the whole pass), then after one new mosaic added, then after it is deleted;
    prints the table. `check_workers`: 1 checks on threads, 0 a process per core."""
    from fastapi.testclient import TestClient

    from main import create_app
    from search_by_image.api.auth import KeyStore
    from search_by_image.layout import KEYS_FILE
    from search_by_image.ranking import alignment, duplicate_pass, duplicates, local_features, verifier
    from search_by_image.serving import collection

    if "duplicates_workers" in type(settings).model_fields:
        settings = settings.model_copy(update={"duplicates_workers": check_workers})
    timed = Timed()
    timed.wrap(verifier.Verifier, "is_copy")
    try:  # checks handed to worker processes, counted as they are handed out
        from search_by_image.ranking.check_processes import Workers

        timed.wrap(Workers, "submit")
    except ImportError:  # a version that checks on threads only
        pass
    timed.wrap(local_features, "extract")
    timed.wrap(local_features, "verify")
    for name in ("overlap", "aligned_correlation", "residual_motion"):
        timed.wrap(alignment, name)
    try:  # thumbnails decoded, and keypoints read from the store where they are stored
        from search_by_image.ranking import indexed_keypoints as readers

        timed.wrap(readers.IndexedKeypoints, "stored")
    except ImportError:  # a version that stores no keypoints
        readers = verifier
    for name in ("_rgb", "_luma"):  # thumbnails decoded (as RGB, or as a JPEG's luma)
        if hasattr(readers, name):
            timed.wrap(readers, name)
    timed.wrap(duplicates.Neighbours, "of")
    timed.wrap(duplicate_pass, "_with_added")
    timed.wrap(duplicate_pass if hasattr(duplicate_pass, "find_groups") else collection, "find_groups")
    implied: list[int] = []  # pairs a pass left unchecked (pair_checks.py), where the code has them
    if hasattr(duplicate_pass, "verified_copies"):
        checks = duplicate_pass.verified_copies

        def counted(*args, **kwargs):
            found = checks(*args, **kwargs)
            implied.append(len(getattr(found, "implied", ())))
            return found

        duplicate_pass.verified_copies = counted
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin", "bench")
    headers = {"Authorization": f"Bearer {key}"}
    rows = []
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        size = client.get("/health").json()
        url = "/collections/default/duplicates"
        collections = client.app.state.service.collections
        while "default" not in collections or collections["default"].loading:  # still loading
            time.sleep(0.2)
        print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
        images = len(client.app.state.service.default.require().store)

        def page(call: str, count: int, per: int) -> float:
            """The page asked until answered, its row added (CPU per `per` images); seconds."""
            started, cpu = time.perf_counter(), cpu_time()
            groups = answered(client, url)["total"]
            seconds = time.perf_counter() - started
            rows.append([call, count, seconds, groups, *counts(timed, cpu_time() - cpu, per, implied)])
            timed.calls.clear(), timed.seconds.clear(), implied.clear()
            return seconds

        first = page("first call", images, images)
        print(f"first call: {first:.1f} s ({size})", flush=True)
        files = sorted((HOLIDAYS / "images").iterdir())
        drawn = np.random.default_rng(images).choice(len(files), 4, replace=False)
        added = client.post(
            "/collections/default/images",
            files=[("files", (f"new-{images}.jpg", mosaic([files[i] for i in drawn]), "image/jpeg"))],
            headers=headers,
        )
        assert added.status_code == 201, added.text
        page("after one add", images + 1, 1)
        deleted = client.delete(
            f"/collections/default/images/{added.json()['images'][0]['id']}", headers=headers
        )
        assert deleted.status_code == 200, deleted.text
        page("after one delete", images, 1)
    table(
        title,
        [
            "call",
            "images",
            "seconds",
            "groups",
            "pairs checked",
            "pairs left implied",
            "extractions",
            "CPU ms per image (for the write after an add or delete)",
            "CPU s: neighbours / extract / match / overlap / correlation / motion / read, stored / groups",
        ],
        rows,
    )
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


def cpu_time() -> float:
    """CPU seconds of this process and of its children that have ended (the check workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def answered(client, url: str) -> dict:
    """GET `url` until the duplicates pass is done (202 with its progress meanwhile, printed
    every minute: how far a long pass got should it be cut off)."""
    started = shown = time.perf_counter()
    while (answer := client.get(url)).status_code == 202:
        if time.perf_counter() - shown >= 60:
            shown = time.perf_counter()
            print(f"  {shown - started:.0f} s: {answer.json().get('detail')}", flush=True)
        time.sleep(0.5)
    answer.raise_for_status()
    return answer.json()


def counts(timed: Timed, cpu: float, per: int, implied: list[int]) -> list:
    seconds = timed.seconds
    align = (seconds[n] for n in ("overlap", "aligned_correlation", "residual_motion"))
    return [
        timed.calls["is_copy"] + timed.calls["submit"],
        sum(implied),
        timed.calls["extract"],
        f"{1000 * cpu / per:.1f}",
        " / ".join(
            f"{s:.1f}"
            for s in (
                seconds["of"] + seconds["_with_added"],
                seconds["extract"],
                seconds["verify"],
                *align,
                seconds["_rgb"] + seconds["_luma"] + seconds["stored"],
                seconds["find_groups"],
            )
        ),
    ]


if __name__ == "__main__":
    main()
