"""Searches per second through one and two service replicas over a collection in Milvus, against
the embedded default, with real photos uploaded to POST /search.

    nice -n 10 python -m bench.engines_replicas /tmp/hm-scale/100000 /tmp/hm-scale/1000000 \
        [--duration 30] [--clients 4] [--work /tmp/sbi-replicas]

Each argument is a collection root as bench/scale_service.py builds it (`saved/`, `data.csv`,
`images/`). Its files are hard-linked into `--work` (the metadata database copied), never
changed. Per collection: a real `uvicorn main:app` serves the saved folder (the embedded
default); a real Milvus 2.3.5 standalone (the `milvus` package) receives the collection through
`python -m search_by_image.cli.storage export` (timed, its check printed), then Milvus is asked
to seal and index what it holds (timed: searches until then scan unindexed rows); then one and
two `uvicorn` processes on two ports serve it from Milvus. A client on 127.0.0.1 (curl, one
process per connection, `--clients` at once, requests spread round robin over the replicas)
uploads Holidays photos for `--duration` seconds per row. Printed per row: searches/s, the
request's p50/p90, and the server's own `timing` (embed, search stage) p50/p90: the search
stage is where the engine's added latency shows. Rotations and local verification are off.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.engines_service import milvus, uvicorn
from bench.tables import table
from search_by_image.settings import PROJECT_DIR

HOLIDAYS = Path("/work/shared/datasets/holidays_subset300/images")
SERVED = {"SBI_INDEX_ON_START": "false", "SBI_WATCH": "false", "SBI_MODEL": "efficientnet_lite0"}
BATCH = 4  # requests per curl process (one connection, sequential)


@dataclass
class Run:
    """What one row's load produced."""

    latencies: list[float] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)
    failures: int = 0
    wall: float = 0.0

    def row(self) -> list[str]:
        embed = [t["embed_ms"] for t in self.timings]
        search = [t["search_ms"] for t in self.timings]
        return [
            f"{len(self.latencies) / self.wall:.2f}",
            *percentiles(self.latencies, "{:.0f}"),
            *percentiles(embed, "{:.0f}"),
            *percentiles(search, "{:.1f}"),
            percentiles([ms - t["total_ms"] for ms, t in zip(self.latencies, self.timings)], "{:.0f}")[0],
            f"{len(self.latencies)} ({self.failures} failed)",
            f"{os.getloadavg()[0]:.1f}",
        ]


def percentiles(values: list[float], form: str) -> list[str]:
    if len(values) < 2:
        return ["-", "-"]
    cuts = statistics.quantiles(values, n=10)
    return [form.format(statistics.median(values)), form.format(cuts[8])]


def linked_copy(root: Path, target: Path) -> Path:
    """`root` hard-linked into `target` (files the product writes are replaced, never rewritten
    in place, so the originals stay as they are); the metadata database is copied."""
    shutil.copytree(
        root,
        target,
        copy_function=os.link,
        ignore=shutil.ignore_patterns("*.sqlite*", "thumbnails", "trash", ".lock", "storage.json"),
    )
    for database in (root / "saved").glob("catalog.sqlite*"):
        shutil.copy2(database, target / "saved" / database.name)
    return target


def env_of(root: Path) -> dict[str, str]:
    return {
        **SERVED,
        "SBI_SAVED_DIR": str(root / "saved"),
        "SBI_IMAGES_DIR": str(root / "images"),
        "SBI_METADATA_CSV": str(root / "data.csv"),
    }


def load(bases: list[str], photos: list[Path], clients: int, duration: float) -> Run:
    """`clients` connections at once for `duration` s, request i to bases[i % len(bases)]."""
    run, lock = Run(), threading.Lock()
    counter, queries = itertools.count(), itertools.cycle(photos)
    deadline = time.monotonic() + duration

    def client(work: Path) -> None:
        while time.monotonic() < deadline:
            with lock:
                batch = [(bases[next(counter) % len(bases)], next(queries)) for _ in range(BATCH)]
            done = curl(batch, work)
            with lock:
                for latency, timing in done:
                    if timing is None:
                        run.failures += 1
                    else:
                        run.latencies.append(latency)
                        run.timings.append(timing)

    with tempfile.TemporaryDirectory(prefix="sbi-replicas-") as work:
        threads = [threading.Thread(target=client, args=(Path(work, str(i)),)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        run.wall = time.perf_counter() - started
    return run


def curl(batch: list[tuple[str, Path]], work: Path) -> list[tuple[float, dict | None]]:
    """One curl process, one connection per base, the batch's uploads in order: (ms, timing)."""
    work.mkdir(exist_ok=True)
    config = "next\n".join(
        f'url = "{base}/search"\nform = "file=@{photo}"\noutput = "{work}/{i}.json"\n'
        'write-out = "%{time_total} %{http_code}\\n"\n'
        for i, (base, photo) in enumerate(batch)
    )
    (work / "requests.cfg").write_text(config)
    out = subprocess.run(["curl", "-s", "-K", str(work / "requests.cfg")], capture_output=True, text=True)
    done: list[tuple[float, dict | None]] = []
    for i, line in enumerate(out.stdout.split("\n")[: len(batch)]):
        seconds, _, code = line.partition(" ")
        timing = None
        if code == "200":
            timing = json.loads((work / f"{i}.json").read_text())["timing"]
        done.append((float(seconds or 0) * 1e3, timing))
    return done


def warm(bases: list[str], photos: list[Path]) -> None:
    for base in bases:
        with tempfile.TemporaryDirectory() as work:
            curl([(base, photo) for photo in photos[:3]], Path(work))


def engine_rss_mb() -> float:
    """Resident memory of the Milvus standalone process(es) on this machine."""
    import psutil

    return sum(
        p.info["memory_info"].rss
        for p in psutil.process_iter(["cmdline", "memory_info"])
        if p.info["cmdline"] and p.info["cmdline"][-2:] == ["run", "standalone"]
    ) / (1 << 20)


def export(root: Path, address: str) -> tuple[float, str]:
    """The product's export into Milvus: seconds, and its check's summary (with the exit code)."""
    started = time.perf_counter()
    with open(root / "export.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "search_by_image.cli.storage", "export", "--to", address],
            cwd=PROJECT_DIR,
            env={**os.environ, **env_of(root), "SBI_LOG_LEVEL": "INFO"},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    return time.perf_counter() - started, f"exit {done.returncode}: {done.stdout.strip()}"


def seal_and_index(address: str, collection: str, limit_s: float) -> tuple[float, str]:
    """Flush the collection (its growing segments sealed) and wait for Milvus's index on every
    row: seconds, and what describe_index said last."""
    import pymilvus

    client = pymilvus.MilvusClient(uri=address.replace("milvus://", "http://"), timeout=600)
    started = time.perf_counter()
    client.flush(collection, timeout=600)
    state: dict = {}
    while time.perf_counter() - started < limit_s:
        state = client.describe_index(collection, "vector")
        if state.get("pending_index_rows", 1) == 0 and state.get("indexed_rows") == state.get("total_rows"):
            break
        time.sleep(5)
    elapsed = time.perf_counter() - started
    client.close()
    keys = ("index_type", "indexed_rows", "total_rows", "pending_index_rows", "state")
    return elapsed, ", ".join(f"{k} {state.get(k)}" for k in keys)


def measure(bases: list[str], photos: list[Path], args) -> list[str]:
    warm(bases, photos)
    return load(bases, photos, args.clients, args.duration).row()


def bench_collection(source: Path, address: str, photos: list[Path], args) -> list[list[str]]:
    name = source.name
    embedded = linked_copy(source, args.work / f"{name}-embedded")
    engine = linked_copy(source, args.work / f"{name}-milvus")
    rows = []
    port = args.http_port
    print(f"{name}: the embedded store alone: {embedded_alone(embedded / 'saved')}", flush=True)
    with uvicorn(env_of(embedded), port) as one, uvicorn(env_of(embedded), port + 1) as two:
        rows.append([name, "embedded FAISS", "1", *measure([one], photos, args)])
        rows.append([name, "embedded FAISS", "2 (same folder)", *measure([one, two], photos, args)])
    seconds, check = export(engine, address)
    print(f"{name}: export {seconds:.0f} s, {check}", flush=True)
    seconds, state = seal_and_index(address, "sbi_default", args.index_limit)
    print(f"{name}: flush + index {seconds:.0f} s ({state}); Milvus RSS {engine_rss_mb():.0f} MB", flush=True)
    for consistency in args.consistency:
        print(f"{name}: the engine alone, {consistency}: {engine_alone(address, consistency)}", flush=True)
        env = {**env_of(engine), "SBI_MILVUS_CONSISTENCY": consistency}
        storage = f"Milvus 2.3.5, {consistency}"
        with uvicorn(env, port + 2) as one:
            rows.append([name, storage, "1", *measure([one], photos, args)])
            with uvicorn(env, port + 3) as two:
                rows.append([name, storage, "2", *measure([one, two], photos, args)])
    print(f"{name}: Milvus RSS after the searches {engine_rss_mb():.0f} MB", flush=True)
    return rows


def one_at_a_time(search, queries) -> list[float]:
    """ms of each query searched alone (k = 10), after two searches that warm the store up."""
    search(queries[:2], 10)
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None], 10)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def embedded_alone(saved: Path, count: int = 40) -> str:
    """The saved store searched in this process as the service does (random unit queries of the
    model's width, whitened by the store, k = 10, one at a time): p50 and p90 ms."""
    import numpy as np

    from search_by_image.devices import single_threaded_blas
    from search_by_image.index.live_store import load_live

    single_threaded_blas()  # as the service does
    store = load_live(saved)[0].base
    queries = np.random.default_rng(0).standard_normal((count, store.manifest.embedder.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    times = one_at_a_time(store.search, queries)
    return f"search p50 {statistics.median(times):.1f} ms, p90 {statistics.quantiles(times, n=10)[8]:.1f} ms"


def engine_alone(address: str, consistency: str, count: int = 40) -> str:
    """The product's MilvusStorage searched directly (random unit queries, k = 10): p50 ms from
    one thread, and searches/s from one and from four threads at once."""
    import numpy as np

    from search_by_image.index.milvus_store import MilvusStorage
    from search_by_image.index.vector_storage import StorageAddress

    storage = MilvusStorage(StorageAddress.parse(address), "default", consistency=consistency)
    dim = len(next(iter(storage.vectors([0]).values())))
    queries = np.random.default_rng(0).standard_normal((count, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    times = one_at_a_time(storage.search, queries)
    started = time.perf_counter()
    threads = [
        threading.Thread(target=lambda part=part: [storage.search(q[None], 10) for q in part])
        for part in np.array_split(queries, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    four = count / (time.perf_counter() - started)
    storage.close()
    return (
        f"search p50 {statistics.median(times):.1f} ms, p90 {statistics.quantiles(times, n=10)[8]:.1f} ms; "
        f"{1e3 / statistics.mean(times):.1f} searches/s from 1 thread, {four:.1f} from 4"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("collections", type=Path, nargs="+", help="roots with saved/, data.csv, images/")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per row")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--queries", type=int, default=64, help="Holidays photos uploaded in turn")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sbi-replicas")
    parser.add_argument("--milvus-port", type=int, default=19600)
    parser.add_argument("--http-port", type=int, default=18600)
    parser.add_argument("--consistency", nargs="+", default=["Strong", "Bounded"])
    parser.add_argument("--index-limit", type=float, default=1800.0, help="seconds to wait for the index")
    args = parser.parse_args()
    photos = sorted(HOLIDAYS.glob("*.jpg"))[: args.queries]
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows: list[list[str]] = []
    try:
        for source in args.collections:
            with milvus(args.work / f"milvus-{source.name}", args.milvus_port) as address:
                print(f"Milvus RSS at start {engine_rss_mb():.0f} MB", flush=True)
                rows += bench_collection(source, address, photos, args)
    finally:
        table(
            f"POST /search, {args.clients} clients for {args.duration:.0f} s per row, "
            f"{len(photos)} Holidays photos uploaded in turn",
            [
                "images",
                "storage",
                "replicas",
                "searches/s",
                "request p50 ms",
                "p90",
                "embed p50 ms",
                "p90",
                "search stage p50 ms",
                "p90",
                "rest p50 ms",
                "searches",
                "load avg",
            ],
            rows,
        )


if __name__ == "__main__":
    main()
