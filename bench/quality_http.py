"""bench/quality.py `--http`: the Holidays queries through a real uvicorn on 127.0.0.1.

Tables: bench/README.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from search_by_image.evaluation.measures import (
    GroundTruth,
    average_precision,
)
from search_by_image.settings import PROJECT_DIR, Settings


def http_table(settings: Settings, holidays: Path) -> list[str]:
    """The Holidays queries through a real uvicorn on 127.0.0.1: mAP (top 100) and latency."""
    truth = GroundTruth.read(holidays)
    with uvicorn(settings) as base, httpx.Client(base_url=base, timeout=60) as client:
        group_of = dict(zip(truth.files, truth.groups))
        aps, p1, latency = [], [], []
        for query in truth.queries:
            name = truth.files[query]
            data = (holidays / "images" / name).read_bytes()
            started = time.perf_counter()
            response = client.post("/search", files={"file": (name, data, "image/jpeg")}, data={"k": "100"})
            latency.append((time.perf_counter() - started) * 1e3)
            response.raise_for_status()
            order = [hit["path"] for hit in response.json()["results"]]
            order = [path for path in order if path != name]
            relevant = np.array([group_of.get(p) == truth.groups[query] for p in order])
            total = sum(g == truth.groups[query] for g in truth.groups) - 1
            aps.append(average_precision(relevant, total))
            p1.append(bool(relevant[0]))
    return [
        "| measure | value |",
        "|---|---|",
        f"| Holidays-300 mAP over HTTP (top 100, query left out) | {np.mean(aps):.4f} |",
        f"| Holidays-300 P@1 over HTTP | {np.mean(p1):.4f} |",
        (
            "| POST /search latency p50 / p90, 325x243 JPEG, one client | "
            f"{statistics.median(latency):.1f} / "
            f"{np.percentile(latency, 90):.1f} ms |"
        ),
    ]


class uvicorn:
    """`uvicorn main:app` on a free 127.0.0.1 port serving `settings`' collection."""

    def __init__(self, settings: Settings):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {
            **os.environ,
            "SBI_IMAGES_DIR": str(settings.images_dir),
            "SBI_METADATA_CSV": str(settings.metadata_csv),
            "SBI_SAVED_DIR": str(settings.saved_dir),
            "SBI_RATE_LIMIT": "",
            "SBI_ONNX_DIR": str(settings.onnx_dir or ""),
        }

    def __enter__(self) -> str:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_DIR,
            env={k: v for k, v in self.env.items() if v},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.server.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok":
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.server.kill()
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


def copies_over_http(settings: Settings, copy_sets: dict, names: list[str]) -> str:
    """Each set of bench/quality_copies.py posted to a real uvicorn (k=100): source first, and
    first labelled `copy`; a Markdown table."""
    lines = [
        "| set over HTTP (uvicorn, k=100) | copies | source first | first and labelled copy |",
        "|---|---|---|---|",
    ]
    with uvicorn(settings) as base, httpx.Client(base_url=base, timeout=120) as client:
        for label, (copies, files) in copy_sets.items():
            first, labelled = [], []
            for n, copy in enumerate(copies):
                response = client.post(
                    "/search", files={"file": (f"copy-{n}.jpg", copy.data, "image/jpeg")}, data={"k": "100"}
                )
                response.raise_for_status()
                top = response.json()["results"][0]
                first.append(top["path"] == (files or names)[copy.source])
                labelled.append(first[-1] and top["match"] == "copy")
            lines.append(f"| {label} | {len(copies)} | {np.mean(first):.3f} | {np.mean(labelled):.3f} |")
    return "\n".join(lines)
