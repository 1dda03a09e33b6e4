"""Speed on real photos, each figure next to a baseline measured in the same run.

    python -m bench.speed                 # everything, a few minutes on 2 cores
    python -m bench.speed --only indexing runtimes
    python -m bench.speed --faiss-sizes 10000 100000 1000000   # the big FAISS run

Sections:
  indexing  end-to-end images/s of the indexer on a fresh collection (decode, resize, forward,
            pool, whitening, FAISS build, save) per runtime, vs a naive loop (full-size PIL
            decode, batch 1, eager fp32) and vs the forward pass alone on pre-decoded batches of
            the same size in one process (the model's limit on this machine).
  runtimes  the forward pass of each backbone under eager fp32, channels_last, bf16 autocast and
            ONNX Runtime fp32 and int8 (exported from the same torch model); architecture timing,
            random weights.
  preprocessing  decode and resize time per image: Pillow's bicubic next to the project's
            (the same filter on torch's SIMD kernel), and how far apart their pixels are.
  http      POST /search latency on a real uvicorn on 127.0.0.1: p50/p95 for 0.5-3 MP JPEGs, one
            client and 16 concurrent (curl, a client that costs the shared cores next to nothing),
            with the server's decode/embed/search breakdown and the batched-forward limit.
  faiss     search time and recall@10 against exact search for Flat, HNSW and IVF indexes, and
            for the index the indexer picks by collection size (index_choice, nprobe tuned).
  duplicates  near-duplicate groups (range search over the index) at 100k images with planted
            copies: time, peak memory, planted pairs found.
  live      a live add (embed + commit of the whole set) and delete at several collection sizes,
            and a filtered search (FAISS ID selector) next to an unfiltered one.
Timings are printed, never asserted. Exits 0.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from search_by_image import torch_runtime
from search_by_image.backbones import WeightsUnavailable
from search_by_image.batcher import MAX_BATCH
from search_by_image.decoding import open_rgb
from search_by_image.embedder import Embedder, EmbedderSpec, normalized, pool
from search_by_image.image_folder import ImageFolder
from search_by_image.index_build import build_index
from search_by_image.index_choice import choose_index_type, recall_at_k, search_params, tune_nprobe
from search_by_image.indexer import update_index
from search_by_image.settings import PROJECT_DIR, Settings
from search_by_image.whitening import DEFAULT_DIMS

DATASETS = PROJECT_DIR.parent / "shared" / "datasets"
BIG = 50_000_000


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n### {title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{c:.1f}" if isinstance(c, float) else str(c) for c in row) + " |")
    sys.stdout.flush()


def scratch(prefix: str) -> Path:
    """A temporary folder, removed when the bench exits (exports, indexes and symlinked datasets
    of every section otherwise piled up in /tmp run after run)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


# --- indexing ------------------------------------------------------------------------------


def naive_embed(paths: list[Path], spec: EmbedderSpec, pretrained: bool = True) -> float:
    """The baseline: full-size decode, Pillow's resize, one image at a time, eager fp32."""
    model = torch_runtime.load_backbone(spec.model, pretrained=pretrained)
    prep = spec.preprocessing

    def embed(path: Path) -> None:
        pixels, hw = prep.batch([prep(Image.open(path).convert("RGB"))])
        normalized(pool(model(torch.from_numpy(pixels)).numpy(), hw, spec.pooling, spec.gem_p))

    with torch.inference_mode():
        embed(paths[0])  # warm-up: oneDNN picks its kernels on the first call
        started = time.perf_counter()
        for path in paths:
            embed(path)
    return rate(len(paths), time.perf_counter() - started)


def forward_only(embedder: Embedder, folder: Path, names: list[str], batch: int) -> float:
    dataset = ImageFolder(folder, names, embedder.preprocess, BIG)
    batches = [
        embedder.preprocess.batch(
            ImageFolder.collate([dataset[i] for i in range(s, min(s + batch, len(names)))]).prepared
        )
        for s in range(0, len(names), batch)
    ]
    embedder.embed_batch(*batches[0])
    started = time.perf_counter()
    for pixels, content_hw in batches:
        embedder.embed_batch(pixels, content_hw)
    return rate(len(names), time.perf_counter() - started)


def indexer_run(settings: Settings) -> float:
    """`python with_faiss.py` on a fresh collection: decode, embed, whiten, build, save."""
    started = time.perf_counter()
    report = update_index(settings, progress=False)
    return rate(report.embedded, time.perf_counter() - started)


@contextlib.contextmanager
def weights_or_architecture(model: str) -> Iterator[bool]:
    """Real weights where they can be had (True); else random ones for the whole run, children
    included (False). Timing only: speed does not depend on the weight values, and the issue
    allows architecture timing for ResNet50, whose weights cannot be had on this machine."""
    try:
        torch_runtime.load_backbone(model)
    except WeightsUnavailable:
        real = torch_runtime.load_backbone
        torch_runtime.load_backbone = lambda name, pretrained=True: real(name, pretrained=False)
        try:
            yield False
        finally:
            torch_runtime.load_backbone = real
        return
    yield True


def bench_indexing(args) -> None:
    folder = args.datasets_dir / "holidays_subset300" / "images"
    if not folder.is_dir():
        folder = PROJECT_DIR / "data" / "the_images"
    names = sorted(p.name for p in folder.iterdir())[: args.images]
    root = scratch("bench-indexing-")
    (root / "images").mkdir()
    for name in names:
        (root / "images" / name).symlink_to(folder / name)
    rows = []
    for model in args.models:
        base = dict(
            model=model,
            images_dir=root / "images",
            metadata_csv=root / "none.csv",
            device="cpu",
            batch_size=args.batch_size,
            onnx_dir=root / f"onnx-{model}",
        )
        with weights_or_architecture(model) as pretrained:
            spec = EmbedderSpec.from_settings(Settings(**base))
            naive = naive_embed([folder / n for n in names[: args.naive_images]], spec, pretrained)
            configs = [
                ("torch bf16", dict(runtime="torch", precision="bf16", workers=args.workers)),
                ("onnx fp32", dict(runtime="onnx", precision="fp32", workers=args.workers)),
                ("onnx int8, one process", dict(precision="int8", workers=0)),
                ("onnx int8", dict(precision="int8", workers=args.workers)),
            ]
            for label, config in configs:
                settings = Settings(**base, **config, saved_dir=root / f"saved-{len(rows)}")
                embedder = Embedder.configured(EmbedderSpec.from_settings(settings), settings)
                limit = forward_only(embedder, folder, names[:160], args.batch_size)
                ours = indexer_run(settings)
                rows.append(
                    [
                        model + ("" if pretrained else " (random weights)"),
                        label,
                        settings.workers,
                        len(names),
                        naive,
                        ours,
                        f"{ours / naive:.1f}x",
                        limit,
                        f"{ours / limit:.2f}",
                    ]
                )
    table(
        f"Indexing throughput on {folder.parent.name} ({os.cpu_count()} CPUs)",
        [
            "model",
            "runtime",
            "workers",
            "images",
            "naive img/s",
            "indexer img/s",
            "speed-up",
            "forward-only img/s",
            "fraction of forward",
        ],
        rows,
    )


# --- runtimes ------------------------------------------------------------------------------


def onnx_runners(model: torch.nn.Module, model_name: str) -> dict[str, object]:
    """The service's ONNX Runtime sessions for `model`: fp32, and int8 calibrated on the bundled
    photos (timing only: these are random weights)."""
    from search_by_image.onnx_runtime import OnnxTrunk, available, export
    from search_by_image.quantization import quantize

    if not available():
        return {}
    folder = scratch("bench-onnx-")
    export(model, folder / "fp32.onnx")
    preprocessing = EmbedderSpec.from_settings(Settings(model=model_name)).preprocessing
    quantize(folder / "fp32.onnx", folder / "int8.onnx", preprocessing)
    return {kind: OnnxTrunk(folder / f"{kind}.onnx") for kind in ("fp32", "int8")}


def timed(fn, x, repeats: int) -> float:
    fn(x)
    started = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return rate(repeats * len(x), time.perf_counter() - started)


def bench_runtimes(args) -> None:
    rows = []
    for model_name in args.models:
        for side in args.sides:
            model = torch_runtime.load_backbone(model_name, pretrained=False)
            x = torch.randn(args.batch_size, 3, side, side)
            with torch.inference_mode():
                eager = timed(model, x, args.repeats)
                last = model.to(memory_format=torch.channels_last)
                xl = x.contiguous(memory_format=torch.channels_last)
                cl = timed(last, xl, args.repeats)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    bf = timed(last, xl, args.repeats)
            runners = onnx_runners(model.to(memory_format=torch.contiguous_format), model_name)
            onnx = {kind: timed(run, x.numpy(), args.repeats) for kind, run in runners.items()}
            rows.append(
                [
                    model_name,
                    side,
                    args.batch_size,
                    eager,
                    cl,
                    bf,
                    onnx.get("fp32", float("nan")),
                    onnx.get("int8", float("nan")),
                    f"{max(cl, bf, *onnx.values()) / eager:.1f}x",
                ]
            )
    table(
        "Forward pass, images/s (architecture timing)",
        [
            "model",
            "side",
            "batch",
            "eager fp32",
            "channels_last fp32",
            "channels_last bf16",
            "ONNX Runtime fp32",
            "ONNX Runtime int8",
            "best vs eager",
        ],
        rows,
    )


# --- http ----------------------------------------------------------------------------------


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
            decoded = open_rgb(data, BIG, embedder.preprocess.resized_size)
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


# --- preprocessing -------------------------------------------------------------------------


def torch_bicubic(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """torch's SIMD port of Pillow's antialiased bicubic filter, which the project resized with
    until serving dropped torch (issue 18): the row of comparison."""
    channels_first = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    resized = torch.nn.functional.interpolate(
        channels_first, size=(height, width), mode="bicubic", antialias=True
    )
    return resized[0].permute(1, 2, 0).numpy()


def bench_preprocessing(args) -> None:
    """Per image, one thread: JPEG decode (DCT-scaled as the service does), then the project's
    resize (Pillow's bicubic) next to torch's SIMD port of the same filter, and how far apart."""
    prep = EmbedderSpec.from_settings(Settings()).preprocessing
    folder = args.datasets_dir / "holidays_subset300" / "images"
    photos = (
        {f"Holidays {p.name}": p.read_bytes() for p in sorted(folder.iterdir())[:2]}
        if folder.is_dir()
        else {}
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    for label, data in (photos | query_jpegs()).items():
        image = open_rgb(data, BIG, prep.resized_size)
        width, height = prep.resized_size(*image.size)
        pixels = np.array(image)
        ms = {
            name: 1e3 / timed(fn, [None], 20)
            for name, fn in (
                ("decode", lambda _, data=data: open_rgb(data, BIG, prep.resized_size)),
                ("pillow", lambda _, image=image: prep(image)),
                ("torch", lambda _, p=pixels, w=width, h=height: torch_bicubic(p, w, h)),
            )
        }
        gap = np.abs(torch_bicubic(pixels, width, height).astype(int) - prep(image).astype(int))
        rows.append(
            [
                label,
                f"{image.width}x{image.height} -> {width}x{height}",
                f"{ms['decode']:.2f}",
                f"{ms['pillow']:.2f}",
                f"{ms['torch']:.2f}",
                f"{ms['pillow'] / ms['torch']:.1f}x",
                int(gap.max()),
                f"{(gap > 0).mean():.2%}",
            ]
        )
    torch.set_num_threads(threads)
    table(
        "Decode and resize per image, one thread (ms)",
        [
            "image",
            "decoded -> resized",
            "decode",
            "Pillow bicubic (ours)",
            "torch SIMD port",
            "torch's speed-up",
            "max level difference",
            "values differing",
        ],
        rows,
    )


# --- faiss ---------------------------------------------------------------------------------


def clustered_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 1,000 random centres: a crude stand-in for real descriptor clusters.

    Uniform random vectors in 2048-d have no neighbourhood structure at all, which makes every
    approximate index look worse than on real descriptors.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    vectors = centres[rng.integers(0, 1000, count)] + 0.7 * rng.standard_normal(
        (count, dim), dtype=np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def one_at_a_time_ms(index, queries: np.ndarray, params=None) -> float:
    """Latency of single-query searches, as the service runs them (no batching across users)."""
    started = time.perf_counter()
    for row in range(len(queries)):
        index.search(queries[row : row + 1], 10, params=params)
    return (time.perf_counter() - started) / len(queries) * 1e3


def bench_faiss(args) -> None:
    import faiss

    dim, queries = args.faiss_dim, 200
    rows = []
    for count in args.faiss_sizes:
        print(f"faiss: building indexes over {count} vectors", flush=True)
        # queries from the same clusters as the base, held out of it: like real queries, which
        # look like the collection (queries from other centres have no true neighbours at all)
        base, query = np.split(clustered_vectors(count + queries, dim, seed=1), [count])
        exact = faiss.index_factory(dim, "Flat", faiss.METRIC_INNER_PRODUCT)
        exact.add(base)
        _, truth = exact.search(query, 10)
        flat_ms = one_at_a_time_ms(exact, query)
        rows.append(
            [count, "Flat", 0.0, flat_ms, "1.000", round(faiss.serialize_index(exact).nbytes / count)]
        )
        lists = max(16, int(4 * count**0.5))
        variants = (
            ("HNSW32", "efSearch", (64, 128)),
            (f"IVF{lists},Flat", "nprobe", (8, 32)),
            (f"IVF{lists},SQ8", "nprobe", (32,)),
        )
        for factory, knob, values in variants if args.faiss_variants == "all" else ():
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            started = time.perf_counter()
            if not index.is_trained:
                index.train(base[: min(count, 50 * lists)])
            index.add(base)
            build = time.perf_counter() - started
            per_vector = round(faiss.serialize_index(index).nbytes / count)
            for value in values:
                faiss.ParameterSpace().set_index_parameter(index, knob, value)
                _, found = index.search(query, 10)
                rows.append(
                    [
                        count,
                        f"{factory} {knob}={value}",
                        build,
                        one_at_a_time_ms(index, query),
                        f"{recall_at_k(found, truth):.3f}",
                        per_vector,
                    ]
                )
        factory = choose_index_type(count, dim)
        started = time.perf_counter()
        index = build_index(base, np.arange(count), factory)
        nprobe, _ = tune_nprobe(index, base, np.arange(count))
        build = time.perf_counter() - started
        params = search_params(index, nprobe)
        _, found = index.search(query, 10, params=params)
        rows.append(
            [
                count,
                f"**auto: {factory}**" + (f" nprobe={nprobe}" if nprobe else ""),
                build,
                one_at_a_time_ms(index, query, params),
                f"{recall_at_k(found, truth):.3f}",
                round(faiss.serialize_index(index).nbytes / count),
            ]
        )
    table(
        f"FAISS, d={dim}, {queries} queries one at a time, clustered synthetic unit vectors",
        ["N", "index", "build s", "ms/query", "recall@10", "bytes/vector"],
        rows,
    )


# --- live updates --------------------------------------------------------------------------


def bench_live(args) -> None:
    """Add and delete one image at a time through the service's collection, as the API does."""
    from search_by_image.catalog import default_location
    from search_by_image.collection import Collection
    from search_by_image.devices import single_threaded_blas
    from search_by_image.embedders import EmbedderPool
    from search_by_image.filters import parse_filters
    from search_by_image.index_files import writer_lock
    from search_by_image.index_store import IndexStore
    from search_by_image.live_writes import Upload

    single_threaded_blas()  # as the service does at startup
    photos = sorted((args.datasets_dir / "holidays_subset300" / "images").glob("*.jpg"))[:20]
    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    pool_ = EmbedderPool(Settings(device="cpu", saved_dir=scratch("bench-")))
    rows = []
    for count in args.live_sizes:
        root = scratch("bench-")
        settings = Settings(
            images_dir=root / "images",
            metadata_csv=root / "data.csv",
            saved_dir=root / "saved",
            model="efficientnet_lite0",
        )
        (root / "images").mkdir()
        features = clustered_vectors(count, spec.dim, seed=3)
        paths = [f"synthetic/{i}.jpg" for i in range(count)]
        store = IndexStore.create(
            spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS
        )
        with writer_lock(settings.saved_dir):
            store.save(settings.saved_dir)
        (root / "data.csv").write_text(
            "path,group\n" + "".join(f"{p},{i % 100}\n" for i, p in enumerate(paths))
        )
        collection = Collection(default_location(settings), pool_)
        collection.refresh()
        adds, deletes = [], []
        for photo in photos[:5]:
            data = photo.read_bytes()
            upload = Upload(data, open_rgb(data, BIG, None), "JPEG")
            started = time.perf_counter()
            (added,) = collection.add([upload])
            adds.append((time.perf_counter() - started) * 1e3)
            started = time.perf_counter()
            collection.delete(added.id)
            deletes.append((time.perf_counter() - started) * 1e3)
        image = open_rgb(photos[0].read_bytes(), BIG, None)
        snapshot = collection.require()
        plain = [snapshot.search(image, 10).search_ms for _ in range(20)]
        one_group = parse_filters('{"group": 7}')
        filtered = [snapshot.search(image, 10, snapshot.allowed(one_group)) for _ in range(20)]
        rows.append(
            [
                count,
                store.manifest.index_type,
                statistics.median(adds),
                statistics.median(deletes),
                statistics.median(plain),
                statistics.median(f.search_ms for f in filtered),
                len(filtered[0].hits),
            ]
        )
    pool_.close()
    table(
        "Live updates through the service's collection (ms, median of 5; search median of 20)",
        [
            "N",
            "index",
            "add 1 image",
            "delete 1 image",
            "search k=10",
            "search k=10, filter 1%",
            "filtered hits",
        ],
        rows,
    )


# --- duplicates ----------------------------------------------------------------------------


def bench_duplicates(args) -> None:
    import resource

    from search_by_image.duplicates import find_groups
    from search_by_image.index_store import IndexStore

    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    rows = []
    for count in args.duplicate_sizes:
        planted = count // 100
        rng = np.random.default_rng(4)
        # unclustered vectors: with clusters, the whitening makes each whole cluster one "group"
        features = rng.standard_normal((count, spec.dim), dtype=np.float32)
        features[count - planted :] = features[:planted] + 0.3 * rng.standard_normal(
            (planted, spec.dim), dtype=np.float32
        )
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        paths = [f"{i}.jpg" for i in range(count)]
        store = IndexStore.create(
            spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=DEFAULT_DIMS
        )
        started = time.perf_counter()
        groups = find_groups(store)
        seconds = time.perf_counter() - started
        group_of = {i: number for number, g in enumerate(groups) for i, _ in g.images}
        found = sum(group_of.get(i, -1) == group_of.get(count - planted + i, -2) for i in range(planted))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append([count, store.manifest.index_type, planted, found, len(groups), seconds, f"{peak:.0f}"])
    table(
        "Near-duplicate groups by range search (random 1280-d descriptors + noisy copies of 1%, "
        f"{DEFAULT_DIMS}-d whitening, default threshold)",
        ["N", "index", "planted pairs", "found", "groups", "seconds", "peak RSS MB (process)"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=["indexing", "runtimes", "preprocessing", "http", "faiss", "live", "duplicates"],
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--models", nargs="*", default=["efficientnet_lite0"])
    parser.add_argument("--images", type=int, default=811, help="images for the indexing run")
    parser.add_argument("--naive-images", type=int, default=120, help="images for the naive loop")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sides", nargs="*", type=int, default=[224, 448])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=64, help="requests per HTTP row")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--faiss-sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--faiss-dim", type=int, default=2048)
    parser.add_argument(
        "--faiss-variants",
        choices=["all", "auto"],
        default="all",
        help="auto: only Flat and the indexer's own choice (quicker at 1M)",
    )
    parser.add_argument("--live-sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--duplicate-sizes", nargs="*", type=int, default=[10_000, 100_000])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    for section in args.only:
        {
            "indexing": bench_indexing,
            "runtimes": bench_runtimes,
            "preprocessing": bench_preprocessing,
            "http": bench_http,
            "faiss": bench_faiss,
            "live": bench_live,
            "duplicates": bench_duplicates,
        }[section](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
