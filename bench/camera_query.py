"""bench/camera.py `query`: a real uvicorn serving the 12 MP JPEG collection, POST /search p50/p95
per query set against the query's own decode + one forward pass, and the bytes of a results page
as originals and as thumbnails. Tables: bench/README.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.camera_sets import BIG, files_of, median_ms
from bench.tables import table
from search_by_image.images.decoding import open_rgb
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import PROJECT_DIR, Settings


def bench_query(sets: dict[str, Path], saved: Path, args) -> None:
    settings = Settings(onnx_dir=args.onnx_dir, model="efficientnet_lite0")
    embedder = Embedder.configured(EmbedderSpec.from_settings(settings), settings)  # 2 threads, as served
    prep = embedder.preprocessing
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "SBI_IMAGES_DIR": str(sets["12 MP JPEG"]),
        "SBI_SAVED_DIR": str(saved),
        "SBI_METADATA_CSV": str(saved / "none.csv"),
        "SBI_ONNX_DIR": str(args.onnx_dir),
        "SBI_RATE_LIMIT": "",
        "SBI_MAX_UPLOAD_BYTES": str(60 * 2**20),
        "SBI_MAX_IMAGE_PIXELS": str(BIG),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/health").json()["status"] == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.3)
            rows = []
            for label, folder in sets.items():
                files = files_of(folder, args.queries)
                datas = [p.read_bytes() for p in files]
                client.post("/search", files={"file": (files[0].name, datas[0])})  # warm-up
                latencies = []
                for path, data in zip(files, datas):
                    started = time.perf_counter()
                    response = client.post("/search", files={"file": (path.name, data)})
                    latencies.append((time.perf_counter() - started) * 1e3)
                    response.raise_for_status()
                decode = median_ms(lambda d: open_rgb(d, BIG, prep.resized_size), datas)
                images = [open_rgb(d, BIG, prep.resized_size) for d in datas]
                forward = median_ms(lambda image: embedder.embed_images([image]), images)
                p50 = statistics.median(latencies)
                p95 = float(np.percentile(latencies, 95))
                rows.append(
                    [
                        label,
                        len(files),
                        f"{np.mean([len(d) for d in datas]) / 2**20:.1f} MB",
                        p50,
                        p95,
                        decode,
                        forward,
                        f"{p50 / (decode + forward):.2f}",
                    ]
                )
            table(
                "Queries over HTTP (one client, real uvicorn, 12 MP JPEG collection)",
                [
                    "query set",
                    "queries",
                    "mean file",
                    "p50 ms",
                    "p95 ms",
                    "own decode ms",
                    "one forward ms",
                    "p50 / (decode + forward)",
                ],
                rows,
            )
            page_bytes(client, sets, saved)
    finally:
        server.terminate()
        server.wait(timeout=30)


def page_bytes(client: httpx.Client, sets: dict[str, Path], saved: Path) -> None:
    query = files_of(sets["12 MP JPEG"])[0].read_bytes()
    hits = client.post("/search", files={"file": ("q.jpg", query)}, data={"k": 10}).json()["results"]
    originals = sum(len(client.get(h["image_url"]).content) for h in hits)
    thumbnails = sum(len(client.get(h["thumbnail_url"]).content) for h in hits)
    shutil.rmtree(saved / "thumbnails", ignore_errors=True)  # as if indexed without them
    started = time.perf_counter()
    first = [client.get(h["thumbnail_url"]) for h in hits]
    on_demand = (time.perf_counter() - started) * 1e3 / len(hits)
    assert all(r.status_code == 200 for r in first)
    started = time.perf_counter()
    for h in hits:
        client.get(h["thumbnail_url"])
    cached = (time.perf_counter() - started) * 1e3 / len(hits)
    table(
        "A 10-result page of the 12 MP collection: image bytes the browser downloads",
        [
            "originals (before)",
            "thumbnails (after)",
            "ratio",
            "thumbnail made on first request",
            "thumbnail served from disk",
        ],
        [
            [
                f"{originals / 1e6:.2f} MB",
                f"{thumbnails / 1e3:.0f} KB",
                f"{originals / thumbnails:.0f}x",
                f"{on_demand:.0f} ms",
                f"{cached:.1f} ms",
            ]
        ],
    )
