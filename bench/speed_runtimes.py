"""Speed, runtimes: `python -m bench.speed --only runtimes`.

The forward pass of each backbone under eager fp32, channels_last, bf16 autocast and ONNX
Runtime fp32 and int8 (exported from the same torch model); architecture timing, random weights.

Timings are printed, never asserted.
"""

from __future__ import annotations

import torch

from bench.tables import scratch, table, timed
from search_by_image.model import torch_runtime
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.settings import Settings


def onnx_runners(model: torch.nn.Module, model_name: str) -> dict[str, object]:
    """The service's ONNX Runtime sessions for `model`: fp32, and int8 calibrated on the bundled
    photos (timing only: these are random weights)."""
    from search_by_image.model.onnx_runtime import OnnxTrunk, available, export
    from search_by_image.model.quantization import quantize

    if not available():
        return {}
    folder = scratch("bench-onnx-")
    export(model, folder / "fp32.onnx")
    preprocessing = EmbedderSpec.from_settings(Settings(model=model_name)).preprocessing
    quantize(folder / "fp32.onnx", folder / "int8.onnx", preprocessing)
    return {kind: OnnxTrunk(folder / f"{kind}.onnx") for kind in ("fp32", "int8")}


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
