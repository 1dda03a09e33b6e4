"""Speed, http: `python -m bench.speed --only http`.

POST /search latency on a real uvicorn on 127.0.0.1: p50/p95 for 0.5-3 MP JPEGs, one client
and 16 concurrent (curl, a client that costs the shared cores next to nothing), with the server's
decode/embed/search breakdown and the batched-forward limit.

Timings are printed, never asserted.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.tables import BIG, rate, scratch, table, timed
from search_by_image.images.decoding import open_rgb
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.serving.batcher import MAX_BATCH
from search_by_image.settings import PROJECT_DIR, Settings


def query_jpegs() -> dict[str, bytes]:
    """Real photos upscaled to typical phone-upload sizes (0.5, 1 and 3 MP)."""
    out = {}
    for name, megapixels in (("coffee.jpg", 0.5), ("kite.jpg", 1.0), ("giraffe.jpg", 3.0)):
        image = Image.open(PROJECT_DIR / "data" / "the_images" / name).convert("RGB")
        scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out[f"{name} {megapixels} MP"] = buffer.getvalue()
    return out


def curl_requests(base: str, data: bytes, count: int, clients: int) -> tuple[list[float], list[dict], float]:
    """`count` uploads from one curl process over `clients` connections at once: latencies (ms),
    the server's timing of each, and the wall time. curl costs the 2 shared cores next to nothing;
    16 Python client threads took about as much CPU as the server they measured."""
    with tempfile.TemporaryDirectory() as work:
        upload = Path(work) / "query.jpg"
        upload.write_bytes(data)
        config = Path(work) / "requests.cfg"
        config.write_text(
            "next\n".join(
                f'url = "{base}/search"\nform = "file=@{upload}"\noutput = "{work}/{i}.json"\n'
                'write-out = "%{time_total}\\n"\n'
                for i in range(count)
            )
        )
        parallel = (
            ["--parallel", "--parallel-immediate", "--parallel-max", str(clients)] if clients > 1 else []
        )
        started = time.perf_counter()
        out = subprocess.run(
            ["curl", "-s", "--fail", *parallel, "-K", str(config)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - started
        timings = [json.loads(Path(work, f"{i}.json").read_text())["timing"] for i in range(count)]
    return [float(t) * 1e3 for t in out.stdout.split()], timings, wall


def bench_http(args) -> None:
    import httpx

    root = scratch("bench-")
    # no rate limit: every request of the run comes from one address
    env = {
        **os.environ,
        "SBI_SAVED_DIR": str(root / "saved"),
        "SBI_LOG_LEVEL": "WARNING",
        "SBI_RATE_LIMIT": "",
    }
    subprocess.run([sys.executable, "with_faiss.py", "--quiet"], cwd=PROJECT_DIR, env=env, check=True)
    port = 8765
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_DIR,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        uploads = query_jpegs()
        settings = Settings()
        # the same runtime as the server's (auto), so the ratio is the service's own overhead
        embedder = Embedder(
            EmbedderSpec.from_settings(settings),
            "cpu",
            runtime=settings.runtime,
            cache_dir=scratch("bench-onnx-"),
        )
        rows = []
        for label, data in uploads.items():
            decoded = open_rgb(data, BIG, embedder.preprocessing.resized_size)
            forward = 1e3 / timed(lambda images: embedder.embed_images(images), [decoded], 10)
            batched = timed(lambda images: embedder.embed_images(images), [decoded] * MAX_BATCH, 3)
            for clients in (1, args.clients):
                curl_requests(base, data, 2, clients)  # warm-up
                latencies, timings, wall = curl_requests(base, data, args.requests, clients)
                latencies.sort()
                p50 = statistics.median(latencies)
                p95 = latencies[int(0.95 * (len(latencies) - 1))]
                parts = {
                    k: statistics.median(t[k] for t in timings)
                    for k in ("decode_ms", "embed_ms", "search_ms")
                }
                limit = 1e3 / forward if clients == 1 else batched
                rows.append(
                    [
                        label,
                        clients,
                        args.requests,
                        p50,
                        p95,
                        parts["decode_ms"],
                        parts["embed_ms"],
                        parts["search_ms"],
                        forward,
                        f"{p50 / forward:.2f}",
                        rate(len(latencies), wall),
                        limit,
                    ]
                )
        table(
            "POST /search on uvicorn, 127.0.0.1 (ms; curl clients)",
            [
                "upload",
                "clients",
                "requests",
                "p50",
                "p95",
                "decode",
                "embed",
                "search",
                "one forward (in-process)",
                "p50 / forward",
                "requests/s",
                "forward limit img/s",
            ],
            rows,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
