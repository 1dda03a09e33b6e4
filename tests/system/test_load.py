"""Under load on a real uvicorn: searches mixed with bad uploads from 32 clients at once, and an
indexer killed with SIGKILL at any point. Figures are printed (`-s`), never asserted as timings."""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from helpers import LIVE_UPLOAD_LIMIT, PHOTOS, copy_photos, jpeg_bytes, make_settings
from PIL import Image

from config import PROJECT_DIR
from search_by_image.index.store import IndexStore
from search_by_image.indexing.indexer import update_index

CLIENTS = 32
ROUNDS = 4  # requests per client, per round


def requests_to_send() -> list[tuple[str, bytes, str, int]]:
    """(label, body, field, expected status): real photos at several sizes, and every bad kind."""
    good = []
    for name in sorted(p.name for p in PHOTOS.iterdir())[:8]:
        image = Image.open(PHOTOS / name)
        good.append(
            (
                f"photo {name}",
                jpeg_bytes(image.resize((image.width * 3 // 4, image.height * 3 // 4))),
                "file",
                200,
            )
        )
    cut = (PHOTOS / "eagle.jpg").read_bytes()
    bad = [
        ("not an image", b"just text" * 100, "file", 415),
        ("empty", b"", "file", 400),
        ("truncated", cut[: len(cut) // 3], "file", 422),
        ("too large", os.urandom(LIVE_UPLOAD_LIMIT + 50_000), "file", 413),
        ("wrong field", (PHOTOS / "dog.jpg").read_bytes(), "image", 422),
    ]
    mix = good + bad  # 8 good, 5 bad
    return [mix[i % len(mix)] for i in range(CLIENTS * ROUNDS)]


def server_pid(base: str) -> int:
    port = urlsplit(base).port
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return connection.pid
    raise AssertionError(f"no process listens on port {port}")


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of the process' resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_32_clients_mixing_searches_and_bad_uploads(live_server):
    pid = server_pid(live_server)
    plan = requests_to_send()
    done = threading.Event()
    health_ms: list[float] = []

    def probe() -> None:
        with httpx.Client(base_url=live_server, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/health").json()["status"] == "ok"
                health_ms.append((time.perf_counter() - started) * 1e3)
                time.sleep(0.1)

    def send(item) -> tuple[str, int, int, float]:
        label, body, field, expected = item
        started = time.perf_counter()
        try:
            response = httpx.post(
                f"{live_server}/search",
                files={field: ("u.jpg", body, "image/jpeg")},
                data={"k": "5"},
                timeout=120,
            )
            status = response.status_code
        except httpx.RemoteProtocolError:  # the 413 may close the connection while we still send
            status = 413
        return label, expected, status, (time.perf_counter() - started) * 1e3

    rss_before = psutil.Process(pid).memory_info().rss / 2**20
    with ThreadPoolExecutor(1) as watcher:
        watching = watcher.submit(probe)
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(send, plan))
            first_peak = peak_rss_mb(pid)
            results += list(pool.map(send, plan))  # the same load again: memory must not keep growing
        wall = time.perf_counter() - started
        done.set()
        watching.result()

    statuses = [status for _, _, status, _ in results]
    wrong = [(label, expected, status) for label, expected, status, _ in results if status != expected]
    latencies = sorted(ms for _, expected, _, ms in results if expected == 200)
    peak = peak_rss_mb(pid)
    print(
        f"\nload: {len(results)} requests from {CLIENTS} clients in {wall:.1f} s "
        f"({len(results) / wall:.1f} req/s); statuses {dict(sorted(Counter(statuses).items()))}; "
        f"search p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.0f} ms; "
        f"/health {len(health_ms)} probes, max {max(health_ms):.0f} ms; "
        f"server RSS {rss_before:.0f} MB before, peak {first_peak:.0f} MB after one round, "
        f"{peak:.0f} MB after two"
    )
    assert len(results) == 2 * CLIENTS * ROUNDS  # none lost
    assert not [s for s in statuses if s >= 500]
    assert not wrong, wrong[:5]
    assert health_ms  # /health answered throughout (each probe within its 10 s timeout)
    assert peak < first_peak * 1.25 + 100  # bounded: a second round of the same load adds little


#: Runs `with_faiss.py` (argv after the moment) in a process that SIGKILLs itself right after a
#: given step of the indexer's run: "first shard" (the first shard file is in place), NAME (the
#: commit has renamed its staged `.NAME.tmp` over NAME) or ".previous" (the commit removed the old
#: set: it is complete). Shards of 8 images, so 26 images make 4 shards.
KILLED_AT = """
import os, shutil, signal, sys
from pathlib import Path

import search_by_image.indexing.shards

search_by_image.indexing.shards.SHARD_SIZE = 8
moment, argv = sys.argv[1], sys.argv[2:]
real_replace, real_rmtree = os.replace, shutil.rmtree
renamed = set()


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    renamed.add(Path(src).name)
    if moment == "first shard" and Path(dst).suffix == ".npz" and Path(dst).parent.parent.name == ".shards":
        die()
    if Path(src).name == f".{moment}.tmp":
        die()


def rmtree(path, *args, **kwargs):
    real_rmtree(path, *args, **kwargs)
    if moment == ".previous" and Path(path).name == ".previous" and ".manifest.json.tmp" in renamed:
        die()


os.replace, shutil.rmtree = replace, rmtree
import with_faiss

sys.exit(with_faiss.main(argv))
"""


def test_an_indexer_killed_at_each_step_leaves_a_servable_index_and_the_next_run_finishes(tmp_path):
    """SIGKILL right after the first shard file, in the middle of the commit (first file renamed),
    after its last rename and after it completed: each time the index on disk loads, whole and
    consistent, old until the commit completed and new after; the next run resumes from the
    shards already written and the last one finishes."""
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, ["chelsea.jpg", "dog.jpg"])
    update_index(settings, progress=False)
    for copy in range(2):  # 26 more images to embed
        for name in sorted(p.name for p in PHOTOS.iterdir()):
            shutil.copy2(PHOTOS / name, settings.images_dir / f"{copy}-{name}")
    env = {
        **os.environ,
        "SBI_IMAGES_DIR": str(settings.images_dir),
        "SBI_METADATA_CSV": str(settings.metadata_csv),
        "SBI_SAVED_DIR": str(settings.saved_dir),
    }
    argv = ["--model", "efficientnet_lite0", "--workers", "0", "--batch-size", "4", "--quiet"]
    saved = settings.saved_dir

    def killed_at(moment: str) -> tuple[IndexStore, str]:
        run = subprocess.run(
            [sys.executable, "-c", KILLED_AT, moment, *argv],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == -signal.SIGKILL, run.stderr
        store = IndexStore.load(saved)
        assert len(store.paths) == len(store.features) == store.index.ntotal == len(store.ids)
        return store, run.stderr

    old = ["chelsea.jpg", "dog.jpg"]
    store, log = killed_at("first shard")
    assert sorted(store.paths) == old and "Resuming" not in log
    assert len(list(saved.glob(".shards/*/*.npz"))) == 1

    store, log = killed_at("features.npy")  # the commit's first rename
    assert sorted(store.paths) == old and (saved / ".previous").is_dir()
    assert "Resuming: 1 of 4 shards (8 images)" in log

    store, log = killed_at("manifest.json")  # its last rename: the old set is still the one served
    assert sorted(store.paths) == old and "Resuming: 4 of 4 shards (26 images)" in log

    store, log = killed_at(".previous")  # the commit completed
    assert len(store) == 28 and not (saved / ".previous").exists()
    assert "Resuming: 4 of 4 shards (26 images)" in log

    finished = subprocess.run(
        [sys.executable, "with_faiss.py", *argv], cwd=PROJECT_DIR, env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert len(IndexStore.load(saved)) == 28 and not (saved / ".previous").exists()
    assert not list(saved.glob(".*.tmp"))
