"""Verification of camera details against more than a thumbnail, measured offline: each detail of
bench/quality_copies.py checked against its source's keypoints from the 448 px thumbnail (what
the product does) and from the photo at a larger side with more keypoints (what keypoints
computed at indexing time and stored would give).

    python -m bench.quality_details_check --seeds 11 --side 1024 --keypoints 2000

The query is decoded as POST /search decodes it (JPEG DCT scaling to at least the model's size) and
brought to the thumbnail's scale (verification.Query.of_image). At the larger side the residual
motion threshold is scaled by side / local_features.SIDE (it is in pixels). Tables:
bench/README.md "Copies as they reach people".
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench import wallpapers
from bench.quality_copies import CAMERA_MIN_SIDE, HELD_OUT_SEED, details
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.ranking import local_features, verification


def keypoints_at(photo: Path, side: int, count: int) -> local_features.Keypoints:
    with Image.open(photo) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail((side, side), Image.Resampling.BICUBIC)
    saved = local_features.SIDE, local_features.KEYPOINTS
    local_features.SIDE, local_features.KEYPOINTS = side, count
    try:
        return local_features.extract(np.asarray(rgb))
    finally:
        local_features.SIDE, local_features.KEYPOINTS = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=wallpapers.CACHE / "copies-collection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[HELD_OUT_SEED])
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--keypoints", type=int, default=2000)
    args = parser.parse_args(argv)
    saved = args.work / "saved"
    if not (saved / "manifest.json").is_file():
        print(f"{saved} has no collection: run python -m bench.quality_copies first")
        return 0
    files = json.loads((saved / "manifest.json").read_text())["files"]
    thumbnails = Thumbnails(saved)
    photos = wallpapers.photos(min_side=CAMERA_MIN_SIDE)
    names = [f"wall-{n:03d}{p.suffix.lower()}" for n, p in enumerate(photos)]
    motion = verification.COPY_MOTION * args.side / local_features.SIDE
    print(
        "| detail area | details | thumbnail: verified / copy "
        f"| {args.side} px, {args.keypoints} keypoints: verified / copy |"
    )
    print("|---|---|---|---|")
    for seed in args.seeds:
        rows = []
        large: dict[int, local_features.Keypoints] = {}
        for copy in details(photos, seed):
            query = Image.open(io.BytesIO(copy.data))
            query.draft("RGB", (query.width // 2, query.height // 2))
            asked = verification.Query.of_image(np.asarray(query.convert("RGB")))
            with Image.open(
                thumbnails.file(names[copy.source], tuple(files[names[copy.source]]))
            ) as thumbnail:
                small = verification.check(
                    asked, local_features.extract(np.asarray(thumbnail.convert("RGB"))), False
                )
            if copy.source not in large:
                large[copy.source] = keypoints_at(photos[copy.source], args.side, args.keypoints)
            big = verification.check(asked, large[copy.source], False)
            big_copy = big.aligned and big.motion <= motion
            rows.append((copy.area, small.verified, small.copy, big.verified, big_copy))
        table = np.array(rows, np.float64)
        for low, high in ((0.1, 0.2), (0.2, 1 / 3 + 0.01), (0.0, 1.0)):
            part = table[(table[:, 0] >= low) & (table[:, 0] < high)]
            share = part[:, 1:].mean(axis=0)
            label = "all" if high == 1.0 else f"{low:.2f}-{min(high, 1 / 3):.2f}"
            print(
                f"| seed {seed}, {label} | {len(part)} | {share[0]:.3f} / {share[1]:.3f} | "
                f"{share[2]:.3f} / {share[3]:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
