"""Images to L2-normalised descriptors: backbone + pooling + runtime settings.

`EmbedderSpec` is everything that decides what a descriptor means; it is saved in the index
manifest, and the service rebuilds the embedder from it, so queries match their index.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from search_by_image.devices import resolve_device
from search_by_image.model import quantization
from search_by_image.model.backbones import BACKBONES, WeightsUnavailable, resolve_model, weights_id
from search_by_image.model.onnx_runtime import OnnxTrunk, bundled_file, cache_file, export, resolve_runtime
from search_by_image.model.preprocessing import STRIDE, Preprocessing
from search_by_image.settings import Settings

if TYPE_CHECKING:
    from search_by_image.model.torch_runtime import TorchTrunk

log = logging.getLogger(__name__)

#: GeM p=3 is the value fixed in Radenović et al. (TPAMI 2018) for off-the-shelf descriptors.
GEM_P = 3.0


class EmbedderSpec(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model: str
    weights: str
    dim: int
    preprocessing: Preprocessing
    pooling: Literal["gem", "avg"]
    gem_p: float = GEM_P
    #: input scales whose descriptors are summed (e.g. 1, 1/sqrt 2, 1/2): multi-scale pooling
    scales: tuple[float, ...] = (1.0,)
    #: int8 trunks move descriptors more than rounding does (cosine 0.986 to fp32 on Holidays),
    #: so unlike bf16 they are part of what a descriptor means; see quantization.py
    quantization: Literal["none", "int8"] = "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedderSpec:
        """The spec a new index gets from the settings (`auto` resolved here, once)."""
        name = resolve_model(settings.model)
        info = BACKBONES[name]
        device = resolve_device(settings.device)
        return cls(
            model=name,
            weights=weights_id(name),
            dim=info.dim,
            preprocessing=Preprocessing(
                resize=settings.resize,
                size=settings.image_size,
                mean=info.mean,
                std=info.std,
                grayscale=settings.grayscale,
            ),
            pooling=settings.pooling,
            scales=tuple(settings.scales),
            quantization=quantization.resolve(settings.precision, settings.runtime, name, device),
        )


def pool(features: np.ndarray, content_hw: np.ndarray, kind: str, p: float) -> np.ndarray:
    """Average or GeM-pool float32 (B, C, H, W) feature maps over each image's content cells
    (padding excluded); (B, C) out."""
    _, _, height, width = features.shape
    cells = (content_hw + STRIDE - 1) // STRIDE
    mask = (np.arange(height)[None, :, None] < cells[:, 0, None, None]) & (
        np.arange(width)[None, None, :] < cells[:, 1, None, None]
    )
    mask = mask[:, None].astype(features.dtype)
    count = mask.sum(axis=(2, 3))
    if kind == "avg":
        return (features * mask).sum(axis=(2, 3)) / count
    clamped = np.maximum(features, np.float32(1e-6))
    # x*x*x for the usual p=3: numpy's general power took as long as an int8 forward pass
    powered = clamped * clamped * clamped if p == 3 else np.power(clamped, np.float32(p))
    return np.power((powered * mask).sum(axis=(2, 3)) / count, np.float32(1.0 / p))


def normalized(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), like torch.nn.functional.normalize."""
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), np.float32(1e-12))


def rescaled(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 (B, 3, H, W) batch resized plane by plane with Pillow's antialiased bilinear
    filter (mode F): what torch's interpolate(bilinear, antialias=True) ports, for `scales`."""
    out = np.empty(pixels.shape[:2] + (height, width), np.float32)
    for row in range(pixels.shape[0]):
        for channel in range(pixels.shape[1]):
            plane = Image.fromarray(np.ascontiguousarray(pixels[row, channel]))
            out[row, channel] = np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR))
    return out


def _torch_runtime(need: str) -> ModuleType:
    """torch_runtime, imported on first need; a serving-only install says what would need it."""
    try:
        from search_by_image.model import torch_runtime
    except ImportError as exc:
        raise WeightsUnavailable(
            f"{need} needs torch, which is not installed: pip install -r requirements-torch.txt"
        ) from exc
    return torch_runtime


def _emulates_int8(spec: EmbedderSpec) -> bool:
    """Whether `spec`'s int8 model runs emulated in float here (said once, as a warning): without
    VNNI ONNX Runtime's int8 kernels saturate on this model (descriptors off by a cosine of
    0.07), so the int8 model runs dequantized, right but slow."""
    emulated = spec.quantization == "int8" and not quantization.cpu_has_vnni()
    if emulated:
        log.warning(
            "%s uses an int8 model; this CPU has no VNNI, where ONNX Runtime's "
            "int8 kernels saturate, so it runs emulated in float (the same "
            "descriptors, slower than fp32): rebuild with --precision fp32 for "
            "speed",
            spec.model,
        )
    return emulated


def _check_weights(spec: EmbedderSpec, pretrained: bool) -> None:
    available = weights_id(spec.model) if pretrained else spec.weights
    if available != spec.weights:
        raise WeightsUnavailable(
            f"the index was built with {spec.model} weights {spec.weights}, but this "
            f"machine has {available}: rebuild with `python with_faiss.py --rebuild`"
        )


def _onnx_file(spec: EmbedderSpec, pretrained: bool, cache_dir: Path | None) -> Path:
    """The model file the session runs: the cached or bundled fp32 file (exported from torch
    once where neither exists), or its int8 model, quantized once into the cache.

    Files are named for the index's weights, so where one exists neither the weights nor torch
    are needed: the bundled model serves and indexes on a plain `requirements.txt` install."""
    if cache_dir is None or not pretrained:
        cache_dir = Path(tempfile.mkdtemp(prefix="sbi-onnx-"))
    exported = cache_file(cache_dir, spec.model, spec.weights)
    if spec.quantization == "int8":
        served = quantization.quantized_file(exported, spec.preprocessing)
    else:
        served = exported
    if served.is_file():
        return served
    source = (
        exported if exported.is_file() else bundled_file(spec.model, spec.weights) if pretrained else None
    )
    if source is None:
        torch_runtime = _torch_runtime(f"{spec.model}'s ONNX file {served} is missing; exporting it")
        _check_weights(spec, pretrained)
        log.info("Exporting %s to ONNX Runtime (once): %s", spec.model, exported)
        export(torch_runtime.load_backbone(spec.model, pretrained=pretrained), exported)
        source = exported
    if spec.quantization == "int8":
        quantization.quantize_once(source, served, spec.preprocessing)
        return served
    return source


class Embedder:
    """A loaded trunk that turns preprocessed batches into unit-length float32 rows.

    The trunk is a runtime's session behind one call, float32 pixels in and feature maps out:
    `OnnxTrunk` (no torch) or `TorchTrunk` (imported only when used). Pooling and multi-scale
    happen here in numpy, the same for both.

    Not meant to be called from several threads at once: the runtime already uses every core for
    one batch. The service funnels concurrent queries through one `QueryBatcher` instead.
    """

    def __init__(
        self,
        spec: EmbedderSpec,
        device: str = "auto",
        precision: str = "auto",
        pretrained: bool = True,
        runtime: str = "torch",
        cache_dir: Path | None = None,
        threads: int | None = None,
        keep_memory: bool = True,
    ):
        """`runtime` auto/torch/onnx (see onnx_runtime); the ONNX file is kept in `cache_dir`.
        `threads`: the runtime's threads (default: every CPU; torch's are process-wide).
        `keep_memory=False`: ONNX Runtime returns each batch's memory (a server between bursts)."""
        self.spec = spec
        self.preprocessing = spec.preprocessing
        self.device, self.runtime = self.placement(spec, device, runtime)
        self.trunk: OnnxTrunk | TorchTrunk
        self.precision: str
        if self.runtime == "onnx":
            model = _onnx_file(spec, pretrained, cache_dir)
            self.trunk = OnnxTrunk(model, threads, _emulates_int8(spec), keep_memory)
            self.precision = spec.quantization if spec.quantization == "int8" else "fp32"
        else:
            torch_runtime = _torch_runtime(f"{spec.model} on the {self.runtime} runtime")
            _check_weights(spec, pretrained)
            torch_trunk = torch_runtime.TorchTrunk(spec.model, self.device, precision, pretrained, threads)
            self.trunk, self.precision = torch_trunk, torch_trunk.precision

    @staticmethod
    def placement(spec: EmbedderSpec, device: str = "auto", runtime: str = "torch") -> tuple[str, str]:
        """The (device, runtime) an embedder of `spec` runs on: an index's int8 model on the
        CPU's ONNX Runtime wherever the query runs, anything else where `device` and `runtime`
        say (`auto` resolved)."""
        device = "cpu" if spec.quantization == "int8" else resolve_device(device)
        return device, resolve_runtime("onnx" if spec.quantization == "int8" else runtime, spec.model, device)

    @classmethod
    def prepare(cls, spec: EmbedderSpec, settings: Settings) -> None:
        """Make ready what `configured` would load, for worker processes to load it: a missing
        model fails in this process, and an ONNX export or int8 quantization happens once.

        On ONNX Runtime that is the model file alone: no session, not even the onnxruntime
        import, which cost the indexer's main process a quarter of a second of its start and
        of its exit (bench/README.md, camera indexing). A torch trunk is loaded, as the check
        of its weights."""
        _, runtime = cls.placement(spec, settings.device, settings.runtime)
        if runtime == "onnx":
            _emulates_int8(spec)  # its warning, once, from this process
            _onnx_file(spec, True, settings.onnx_cache)
        else:
            cls.configured(spec, settings)

    @classmethod
    def configured(
        cls, spec: EmbedderSpec, settings: Settings, threads: int | None = None, keep_memory: bool = True
    ) -> Embedder:
        """The embedder for `spec` on the device, precision and runtime the settings ask for."""
        return cls(
            spec,
            settings.device,
            settings.precision,
            runtime=settings.runtime,
            cache_dir=settings.onnx_cache,
            threads=threads,
            keep_memory=keep_memory,
        )

    def embed_batch(self, pixels: np.ndarray, content_hw: np.ndarray) -> np.ndarray:
        """Embed a `Preprocessing.batch`, cropped first to the batch's largest content.

        A batch of landscape photos at 448 px is 448 x 352 of content; not running the model over
        the padding made the forward pass faster in proportion (bench/README.md, "Figures behind
        the code's choices").
        """
        height, width = ((content_hw.max(axis=0) + STRIDE - 1) // STRIDE * STRIDE).tolist()
        pixels = pixels[:, :, :height, :width]
        total = None
        for scale in self.spec.scales:
            scaled, scaled_hw = pixels, content_hw
            if scale != 1.0:
                scaled = rescaled(
                    pixels, max(STRIDE, round(height * scale)), max(STRIDE, round(width * scale))
                )
                scaled_hw = np.maximum(np.round(content_hw.astype(np.float32) * np.float32(scale)), 1).astype(
                    np.int64
                )
            maps = self.trunk(scaled)
            descriptor = normalized(pool(maps, scaled_hw, self.spec.pooling, self.spec.gem_p))
            total = descriptor if total is None else total + descriptor
        assert total is not None  # a spec has at least one scale
        return normalized(total).astype(np.float32)

    def embed_prepared(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Embed `preprocess` outputs (uint8 pixels, one array per image) as one batch."""
        return self.embed_batch(*self.preprocessing.batch(prepared))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.embed_prepared([self.preprocessing(image) for image in images])
