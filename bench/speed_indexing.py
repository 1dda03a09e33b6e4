"""Speed, indexing: `python -m bench.speed --only indexing`.

End-to-end images/s of the indexer on a fresh collection (decode, resize, forward, pool,
whitening, FAISS build, save) per runtime, vs a naive loop (full-size PIL decode, batch 1, eager
fp32) and vs the forward pass alone on pre-decoded batches of the same size in one process (the
model's limit on this machine).

Timings are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image

from bench.tables import BIG, rate, scratch, table
from search_by_image.indexing.image_folder import ImageFolder
from search_by_image.indexing.indexer import update_index
from search_by_image.model import torch_runtime
from search_by_image.model.backbones import WeightsUnavailable
from search_by_image.model.embedder import Embedder, EmbedderSpec, normalized, pool
from search_by_image.settings import PROJECT_DIR, Settings


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
    dataset = ImageFolder(folder, names, embedder.preprocessing, BIG)
    batches = [
        embedder.preprocessing.batch(
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
