"""Side protocol of bench/quality.py (`--variants`): descriptor variants with cross-fitted whitening.

Not what the product does (the whitening is learned on the other half of the groups), so these
rows are labelled as such and never the headline. Tables: bench/README.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from search_by_image.evaluation.measures import (
    GroundTruth,
    cross_fitted_whitening,
    mean_average_precision,
    ns_score,
    precision_at,
)
from search_by_image.indexing.local_engine import embed_files
from search_by_image.model.backbones import WeightsUnavailable, resnet50_cache_file
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import Settings

MULTI_SCALE = (1.0, 2**-0.5, 0.5)


@dataclass(frozen=True)
class Variant:
    name: str
    model: str = "efficientnet_lite0"
    resize: str = "keep_aspect"
    size: int = 448
    pooling: str = "gem"
    scales: tuple[float, ...] = (1.0,)
    whiten: int = 0  # output dimensions of PCA-whitening; 0 = none
    #: bf16: torch with bf16 autocast (same mAP as fp32); int8: the quantized ONNX Runtime trunk
    precision: str = "bf16"
    note: str = ""

    def settings(self) -> Settings:
        return Settings(
            model=self.model,
            resize=self.resize,
            image_size=self.size,
            pooling=self.pooling,
            scales=self.scales,
            precision=self.precision,
            device="cpu",
        )


VARIANTS = [
    Variant(
        "lite0-crop224-avg",
        resize="center_crop",
        size=224,
        pooling="avg",
        note="classic: 256 px, centre crop 224, average pooling",
    ),
    Variant("lite0-crop224-gem", resize="center_crop", size=224),
    Variant("lite0-aspect448-avg", pooling="avg"),
    Variant("lite0-aspect448-gem", note="whole image, longer side 448, GeM"),
    Variant("lite0-ms", scales=MULTI_SCALE, note="+ scales 1, 1/sqrt 2, 1/2"),
    Variant("lite0-ms-pw256", scales=MULTI_SCALE, whiten=256, note="+ PCA-whitening to 256-d"),
    Variant("lite0-aspect576-gem", size=576, note="longer side 576"),
    Variant("lite0-aspect448-gem-pw256", whiten=256, note="single scale + PCA-whitening"),
    Variant("lite0-aspect448-gem-pw384", whiten=384, note="whitening to 384-d"),
    Variant("lite0-aspect448-gem-int8", precision="int8", note="int8 trunk (ONNX Runtime)"),
    Variant(
        "lite0-aspect448-gem-pw384-int8",
        whiten=384,
        precision="int8",
        note="the default: int8 trunk + whitening to 384-d",
    ),
    Variant("lite1-ms", model="efficientnet_lite1", scales=MULTI_SCALE),
    Variant("lite2-aspect448-gem", model="efficientnet_lite2"),
    Variant("lite2-ms", model="efficientnet_lite2", scales=MULTI_SCALE),
    Variant("lite2-ms-pw256", model="efficientnet_lite2", scales=MULTI_SCALE, whiten=256),
    Variant("lite2-aspect576-gem", model="efficientnet_lite2", size=576),
    Variant("lite2-aspect448-gem-pw256", model="efficientnet_lite2", whiten=256),
    Variant("lite2-aspect576-gem-pw256", model="efficientnet_lite2", size=576, whiten=256),
    Variant("resnet50-aspect448-gem", model="resnet50", note="needs ResNet50 weights"),
    Variant("resnet50-ms", model="resnet50", scales=MULTI_SCALE, note="needs ResNet50 weights"),
]


def query_ms(embedder: Embedder, image: Image.Image, repeats: int = 5) -> float:
    embedder.embed_images([image])
    started = time.perf_counter()
    for _ in range(repeats):
        embedder.embed_images([image])
    return (time.perf_counter() - started) / repeats * 1e3


def evaluate(variant: Variant, dataset: Path, truth: GroundTruth, workers: int) -> dict | None:
    try:
        embedder = Embedder(
            EmbedderSpec.from_settings(variant.settings()), "cpu", precision=variant.precision
        )
    except WeightsUnavailable as exc:
        print(f"  skipped {variant.name}: {str(exc)[:120]}")
        return None
    started = time.perf_counter()
    paths, features, _ = embed_files(
        embedder, dataset / "images", truth.files, 16, workers, 50_000_000, progress=False
    )
    seconds = time.perf_counter() - started
    assert paths == truth.files
    row = {"variant": variant.name, "dim": features.shape[1], "img/s": len(paths) / seconds}
    if variant.whiten:
        row["mAP"], row["P@1"] = cross_fitted_whitening(features, truth, variant.whiten)
        row["dim"] = variant.whiten
    else:
        row["mAP"], row["P@1"] = mean_average_precision(features, truth), precision_at(features, truth, 1)
    if len(truth.queries) == len(truth.files):  # UKBench's protocol: every image is a query
        row["N-S"] = ns_score(features, truth)
    sample = Image.open(dataset / "images" / truth.files[truth.queries[0]]).convert("RGB")
    row["query ms"] = query_ms(embedder, sample)
    row["note"] = variant.note
    return row


def variants_table(args) -> int:
    """The side-protocol table of descriptor variants (cross-fitted whitening, not the product)."""
    dataset = args.datasets_dir / args.dataset
    truth = GroundTruth.read(dataset)
    chosen = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    if not resnet50_cache_file().is_file():
        print(
            f"ResNet50 weights are not in {resnet50_cache_file()}: its rows will be skipped "
            "unless they can be downloaded."
        )
    print(
        f"{args.dataset}: {len(truth.files)} images, {len(truth.queries)} queries "
        "(side protocol: whitening cross-fitted, not what the product does)\n"
    )
    rows = []
    for variant in chosen:
        row = evaluate(variant, dataset, truth, args.workers)
        if row:
            rows.append(row)
            print(f"  {row['variant']}: mAP {row['mAP']:.4f}", flush=True)
    columns = ["variant", "dim", "mAP", "P@1", "N-S", "img/s", "query ms", "note"]
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        cells = [
            f"{row[c]:.4f}"
            if c in ("mAP", "P@1")
            else f"{row[c]:.3f}"
            if c == "N-S" and row.get(c)
            else f"{row[c]:.1f}"
            if isinstance(row.get(c), float)
            else str(row.get(c, ""))
            for c in columns
        ]
        print("| " + " | ".join(cells) + " |")
    return 0
