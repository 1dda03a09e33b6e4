"""A collection served from Milvus against the embedded default, through POST /search.

    nice -n 10 python -m bench.engines_service --saved SAVED_DIR [--requests 40] [--clients 4]

SAVED_DIR is a collection indexed by `with_faiss.py` (its files are hard-linked into a scratch
folder, never changed). A real Milvus 2.3.5 standalone is started on 127.0.0.1; the collection is
exported into it with `python -m search_by_image.cli.storage export` (timed, and its check of
counts and 100 searches printed); then real uvicorn processes answer POST /search (a 0.5 MP
JPEG, sent by curl): the embedded collection on one replica, the Milvus one on one and on two
replicas. Printed: the server's search time p50 (the engine's share: what Milvus adds over
FAISS in this process), the request p50 and searches per second with `--clients` at once.
Query rotations and local verification are off, so the search step is not hidden behind them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.speed_http import curl_requests, query_jpegs
from bench.tables import table
from search_by_image.settings import PROJECT_DIR

ENV = {
    "SBI_QUERY_ROTATIONS": "false",
    "SBI_VERIFY_TOP": "0",
    "SBI_RATE_LIMIT": "",
    "SBI_LOG_LEVEL": "WARNING",
}


def linked_copy(saved: Path, target: Path) -> Path:
    """The collection's files hard-linked into `target` (new files written there stay there)."""
    shutil.copytree(saved, target, copy_function=os.link, ignore=shutil.ignore_patterns("*.sqlite*"))
    return target


def wait_for_other_standalones(seconds: float = 900) -> None:
    """One Milvus standalone per machine (its pid file and internal ports are fixed): wait for any
    other to end first."""
    import psutil

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(
            p.info["cmdline"][-2:] == ["run", "standalone"]
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"]
        ):
            return
        time.sleep(5)


@contextlib.contextmanager
def milvus(folder: Path, port: int):
    from milvus import MilvusServer

    wait_for_other_standalones()
    server = MilvusServer()
    server.set_base_dir(str(folder))
    server.listen_port = port
    started = time.perf_counter()
    server.start()
    print(f"Milvus 2.3.5 standalone answered after {time.perf_counter() - started:.1f} s", flush=True)
    try:
        yield f"milvus://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


@contextlib.contextmanager
def uvicorn(env: dict[str, str], port: int):
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_DIR,
        env={**os.environ, **ENV, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError):
            if httpx.get(f"{base}/health", timeout=5).json()["status"] == "ok":
                break
        time.sleep(0.5)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)


def measure(bases: list[str], data: bytes, requests: int, clients: int) -> list[str]:
    """Warm each replica, then one client (p50s), then `clients` at once spread over them."""
    for base in bases:
        curl_requests(base, data, 3, 1)
    latencies, timings, _ = curl_requests(bases[0], data, max(10, requests // 4), 1)
    search_ms = statistics.median(t["search_ms"] for t in timings)
    results: list[float] = []

    def load(base: str) -> None:
        results.append(curl_requests(base, data, requests // len(bases), clients // len(bases))[2])

    threads = [threading.Thread(target=load, args=(base,)) for base in bases]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return [f"{search_ms:.2f}", f"{statistics.median(latencies):.0f}", f"{requests / wall:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saved", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=19650)
    args = parser.parse_args()
    data = query_jpegs()["coffee.jpg 0.5 MP"]
    with tempfile.TemporaryDirectory(prefix="sbi-engines-service-") as work:
        root = Path(work)
        (root / "images").mkdir()
        embedded = linked_copy(args.saved, root / "embedded")
        engine = linked_copy(args.saved, root / "engine")
        common = {"SBI_IMAGES_DIR": str(root / "images"), "SBI_METADATA_CSV": str(root / "none.csv")}
        rows = []
        with uvicorn({**common, "SBI_SAVED_DIR": str(embedded)}, 8771) as base:
            rows.append(["embedded FAISS, 1 replica", *measure([base], data, args.requests, args.clients)])
        with milvus(root / "milvus", args.port) as address:
            started = time.perf_counter()
            exported = subprocess.run(
                [sys.executable, "-m", "search_by_image.cli.storage", "export", "--to", address],
                cwd=PROJECT_DIR,
                env={**os.environ, **common, "SBI_SAVED_DIR": str(engine), "SBI_LOG_LEVEL": "WARNING"},
                capture_output=True,
                text=True,
            )
            print(
                f"export: {time.perf_counter() - started:.0f} s, exit {exported.returncode}:",
                exported.stdout,
                exported.stderr[-1500:],
            )
            env = {**common, "SBI_SAVED_DIR": str(engine)}
            with uvicorn(env, 8772) as first:
                rows.append(["Milvus, 1 replica", *measure([first], data, args.requests, args.clients)])
                with uvicorn(env, 8773) as second:
                    rows.append(
                        ["Milvus, 2 replicas", *measure([first, second], data, args.requests, args.clients)]
                    )
        table(
            f"POST /search through the service ({args.saved.name}: {args.clients} clients, "
            f"{args.requests} requests)",
            ["storage", "search p50 ms (server)", "request p50 ms (1 client)", "searches/s"],
            rows,
        )


if __name__ == "__main__":
    main()
