"""Speed, preprocessing: `python -m bench.speed --only preprocessing`.

Decode and resize time per image: Pillow's bicubic next to the project's (the same filter
on torch's SIMD kernel), and how far apart their pixels are.

Timings are printed, never asserted.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.speed_http import query_jpegs
from bench.tables import BIG, table, timed
from search_by_image.images.decoding import open_rgb
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import Settings


def torch_bicubic(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """torch's SIMD port of Pillow's antialiased bicubic filter, which the project resized with
    until serving dropped torch: the row of comparison."""
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
