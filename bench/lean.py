"""What serving costs: start time, memory and an indexer run on an unchanged folder, for this tree
and a baseline commit measured in the same run (serving without torch).

    flock /tmp/sbi-bench.lock python -m bench.lean --baseline 40b8637 \
        [--serve-python <a venv of requirements.txt alone>/bin/python]

Each tree indexes its own copy of the demo collection with its own `with_faiss.py`, then:
`python -c 'import main'`; `uvicorn main:app` from launch to the first 200 on /health (since the
service loads its indexes in the background, that answer may say "loading") and to the first
/health that says "ok" (searchable), idle RSS
after it and after a few searches, and whether torch is mapped; the load test's 32 clients (the
request mix of tests/system/test_load.py, twice) and 16 clients sending 12 MP photos, each on a fresh
server, with the server's peak RSS (VmHWM); the indexer on the unchanged folder. `--serve-python`
adds a row for this tree in a venv made from requirements.txt alone (no torch). Tables: bench/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from search_by_image.settings import PROJECT_DIR

sys.path.insert(0, str(PROJECT_DIR / "tests"))
from helpers import free_port  # noqa: E402
from test_load import requests_to_send  # noqa: E402

PHOTOS = PROJECT_DIR / "data" / "the_images"
LOAD_UPLOAD_LIMIT = 400_000  # the live server's limit in the load test (its "too large" case)


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


class Tree:
    """A checkout with its own copy of the demo collection, run with `python`."""

    def __init__(self, label: str, root: Path, python: str, work: Path):
        self.label, self.root, self.python = label, root, python
        self.images, self.csv, self.saved = work / "images", work / "data.csv", work / "saved"
        if not self.images.exists():
            shutil.copytree(PHOTOS, self.images)
            shutil.copy2(PROJECT_DIR / "data" / "the_data.csv", self.csv)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "SBI_IMAGES_DIR": str(self.images),
            "SBI_METADATA_CSV": str(self.csv),
            "SBI_SAVED_DIR": str(self.saved),
            "SBI_LOG_LEVEL": "WARNING",
            "SBI_RATE_LIMIT": "",
            "SBI_RELOAD_SECONDS": "0",
            **extra,
        }

    def timed(self, *command: str) -> float:
        started = time.perf_counter()
        subprocess.run(
            [self.python, *command],
            cwd=self.root,
            env=self.env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - started

    def index(self) -> float:
        return self.timed("with_faiss.py", "--quiet")

    def serve(self, **extra: str) -> tuple[subprocess.Popen, str, float, float]:
        """A running server, once searchable: (process, URL, seconds to the first 200 on /health,
        seconds to the first /health saying "ok")."""
        port = free_port()
        started = time.perf_counter()
        server = subprocess.Popen(
            [
                self.python,
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
            cwd=self.root,
            env=self.env(**extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        first = None
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=5)
                if health.status_code == 200:
                    first = first or time.perf_counter() - started
                    if health.json()["status"] != "loading":
                        return server, base, first, time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"{self.label}: uvicorn exited with {server.returncode}")
            time.sleep(0.01)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def search(base: str, data: bytes) -> None:
    httpx.post(
        f"{base}/search", files={"file": ("q.jpg", data, "image/jpeg")}, timeout=120
    ).raise_for_status()


def twelve_megapixels() -> bytes:
    """A real photo upscaled to 4000 x 3000, JPEG quality 90 (a phone camera's upload)."""
    image = Image.open(PHOTOS / "giraffe.jpg").convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def load_peak(tree: Tree) -> float:
    """The load test's mix (searches and every kind of bad upload) from 32 clients, twice."""
    server, base, *_ = tree.serve(SBI_MAX_UPLOAD_BYTES=str(LOAD_UPLOAD_LIMIT))

    def send(item) -> None:
        _, body, field, _ = item
        # The 413 may close the connection while the client still sends.
        with contextlib.suppress(httpx.RemoteProtocolError):
            httpx.post(
                f"{base}/search", files={field: ("u.jpg", body, "image/jpeg")}, data={"k": "5"}, timeout=120
            )

    try:
        with ThreadPoolExecutor(32) as pool:
            for _ in range(2):
                list(pool.map(send, requests_to_send()))
        return status_mb(server.pid, "VmHWM")
    finally:
        stop(server)


def large_upload_peak(tree: Tree, data: bytes, seconds: float) -> tuple[float, int]:
    """16 clients sending 12 MP photos for `seconds`: peak RSS and searches answered."""
    server, base, *_ = tree.serve()
    deadline = time.monotonic() + seconds

    def client(_) -> int:
        count = 0
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.monotonic() < deadline:
                http.post("/search", files={"file": ("big.jpg", data, "image/jpeg")}).raise_for_status()
                count += 1
        return count

    try:
        with ThreadPoolExecutor(16) as pool:
            answered = sum(pool.map(client, range(16)))
        return status_mb(server.pid, "VmHWM"), answered
    finally:
        stop(server)


def measure(tree: Tree, repeats: int, big: bytes, seconds: float) -> dict:
    tree.index()
    unchanged = statistics.median(tree.index() for _ in range(repeats))
    imports = tree.timed("-c", "import main")
    launches, ready, idle, searched, torch = [], [], [], [], False
    query = (PHOTOS / "chelsea.jpg").read_bytes()
    for _ in range(repeats):
        server, base, launch, searchable = tree.serve()
        try:
            launches.append(launch)
            ready.append(searchable)
            time.sleep(2)
            idle.append(status_mb(server.pid, "VmRSS"))
            for _ in range(5):
                search(base, query)
            time.sleep(1)
            searched.append(status_mb(server.pid, "VmRSS"))
            torch = torch or torch_mapped(server.pid)
        finally:
            stop(server)
    peak_load = load_peak(tree)
    peak_big, answered = large_upload_peak(tree, big, seconds)
    return {
        "launch": statistics.median(launches),
        "ready": statistics.median(ready),
        "import": imports,
        "idle": statistics.median(idle),
        "searched": statistics.median(searched),
        "torch": "yes" if torch else "no",
        "load": peak_load,
        "big": peak_big,
        "answered": answered,
        "unchanged": unchanged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", default="40b8637", help="commit to compare with (default: a tree that imported torch)"
    )
    parser.add_argument("--serve-python", help="python of a venv made from requirements.txt only (no torch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 12 MP load")
    parser.add_argument("--skip-baseline", action="store_true", help="this tree's rows only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-lean-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    baseline = work / "baseline"
    subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "worktree", "add", "-q", "--detach", str(baseline), args.baseline],
        check=True,
    )
    atexit.register(
        subprocess.run,
        ["git", "-C", str(PROJECT_DIR), "worktree", "remove", "--force", str(baseline)],
        check=False,
    )
    trees = [
        Tree(f"baseline {args.baseline}", baseline, sys.executable, work / "a"),
        Tree("this tree", PROJECT_DIR, sys.executable, work / "b"),
    ]
    if args.serve_python:
        # the same collection as "this tree", its ONNX model exported there by the full install
        trees.append(Tree("this tree, serving-only venv", PROJECT_DIR, args.serve_python, work / "b"))
    if args.skip_baseline:
        trees = trees[1:]
    big = twelve_megapixels()
    print(
        "| tree | import main | launch to /health 200 | launch to searchable | idle RSS "
        "| RSS after 5 searches | torch mapped "
        f"| peak RSS, 32-client load test | peak RSS, 16 clients x 12 MP, {args.seconds:.0f} s "
        f"| indexer, unchanged folder |\n|" + "---|" * 10,
        flush=True,
    )
    for tree in trees:  # each row as soon as it is measured
        r = measure(tree, args.repeats, big, args.seconds)
        print(
            f"| {tree.label} | {r['import']:.2f} | {r['launch']:.2f} | {r['ready']:.2f} "
            f"| {r['idle']:.0f} | {r['searched']:.0f} "
            f"| {r['torch']} | {r['load']:.0f} | {r['big']:.0f} ({r['answered']} searches) "
            f"| {r['unchanged']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
