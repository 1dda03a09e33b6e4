"""Images to L2-normalised descriptors: backbone + pooling + runtime settings.

`EmbedderSpec` is everything that decides what a descriptor means; it is saved in the index
manifest, and the service rebuilds the embedder from it, so queries match their index.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict

from search_by_image.backbones import (
    BACKBONES,
    WeightsUnavailable,
    load_backbone,
    resolve_model,
    weights_id,
)
from search_by_image import quantization
from search_by_image.onnx_runtime import OnnxTrunk, cache_file, export, resolve_runtime
from search_by_image.preprocessing import STRIDE, Preprocessing

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
    def from_settings(cls, settings) -> EmbedderSpec:
        """The spec a new index gets from the settings (`auto` resolved here, once)."""
        name = resolve_model(settings.model)
        info = BACKBONES[name]
        device = resolve_device(settings.device)
        return cls(
            model=name,
            weights=weights_id(name),
            dim=info.dim,
            preprocessing=Preprocessing(
                resize=settings.resize, size=settings.image_size, mean=info.mean, std=info.std,
                grayscale=settings.grayscale,
            ),
            pooling=settings.pooling,
            scales=tuple(settings.scales),
            quantization=quantization.resolve(settings.precision, settings.runtime, name, device),
        )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available here")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    `auto` picks bf16 where the hardware runs it natively (AVX-512 BF16/AMX CPUs, Ampere+ GPUs):
    on holidays_subset300 it gave the same mAP as fp32 (0.7969 vs 0.7973) at twice the speed.
    Precision is a runtime choice, not part of the spec: bf16 only rounds the same descriptor.
    """
    if precision == "auto":
        if device.type == "cuda":
            supported = torch.cuda.is_bf16_supported()
        else:
            supported = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        precision = "bf16" if supported else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


def pool(features: torch.Tensor, content_hw: torch.Tensor, kind: str, p: float) -> torch.Tensor:
    """Average or GeM-pool feature maps over each image's content cells (padding excluded)."""
    _, _, height, width = features.shape
    rows = torch.arange(height, device=features.device)
    cols = torch.arange(width, device=features.device)
    cells = (content_hw.to(features.device) + STRIDE - 1) // STRIDE
    mask = (rows[None, :, None] < cells[:, 0, None, None]) & (cols[None, None, :] < cells[:, 1, None, None])
    mask = mask[:, None].to(features.dtype)
    count = mask.sum(dim=(2, 3))
    if kind == "avg":
        return (features * mask).sum(dim=(2, 3)) / count
    powered = features.clamp(min=1e-6).pow(p) * mask
    return (powered.sum(dim=(2, 3)) / count).pow(1.0 / p)


class Embedder:
    """A loaded backbone that turns preprocessed batches into unit-length float32 rows.

    Not meant to be called from several threads at once: torch already uses every core for one
    batch. The service funnels concurrent queries through one `QueryBatcher` instead.
    """

    def __init__(
        self,
        spec: EmbedderSpec,
        device: str = "auto",
        precision: str = "auto",
        pretrained: bool = True,
        runtime: str = "torch",
        cache_dir: Path | None = None,
    ):
        """`runtime` auto/torch/onnx (see onnx_runtime); the ONNX file is kept in `cache_dir`."""
        available = weights_id(spec.model) if pretrained else spec.weights
        if available != spec.weights:
            raise WeightsUnavailable(
                f"the index was built with {spec.model} weights {spec.weights}, but this machine has "
                f"{available}: rebuild with `python with_faiss.py --rebuild`"
            )
        self.spec = spec
        self.device = resolve_device(device)
        if spec.quantization == "int8":  # the index's int8 model, wherever the query runs
            self.device, runtime = torch.device("cpu"), "onnx"
            if not quantization.cpu_has_vnni():
                log.warning("%s was indexed with an int8 model; this CPU has no VNNI, where ONNX "
                            "Runtime's int8 kernels can saturate: rebuild with --precision fp32 if "
                            "results look off", spec.model)
        self.runtime = resolve_runtime(runtime, spec.model, self.device)
        self.preprocess = spec.preprocessing
        if self.runtime == "onnx":
            self.autocast_dtype = None
            self.backbone = self._onnx_trunk(pretrained, cache_dir)
            return
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.backbone = load_backbone(spec.model, pretrained=pretrained).to(self.device)
        self.backbone = self.backbone.to(memory_format=torch.channels_last)

    @classmethod
    def configured(cls, spec: EmbedderSpec, settings) -> Embedder:
        """The embedder for `spec` on the device, precision and runtime the settings ask for."""
        return cls(spec, settings.device, settings.precision, runtime=settings.runtime,
                   cache_dir=settings.onnx_cache)

    def _onnx_trunk(self, pretrained: bool, cache_dir: Path | None) -> OnnxTrunk:
        if cache_dir is None or not pretrained:
            cache_dir = Path(tempfile.mkdtemp(prefix="sbi-onnx-"))
        path = cache_file(cache_dir, self.spec.model, self.spec.weights)
        if not path.is_file():
            log.info("Exporting %s to ONNX Runtime (once): %s", self.spec.model, path)
            export(load_backbone(self.spec.model, pretrained=pretrained), path)
        if self.spec.quantization == "int8":
            path = quantization.quantized_trunk_file(path, self.spec.preprocessing)
        return OnnxTrunk(path)

    @property
    def precision(self) -> str:
        if self.spec.quantization == "int8":
            return "int8"
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    @torch.inference_mode()
    def embed_batch(self, pixels: torch.Tensor, content_hw: torch.Tensor) -> np.ndarray:
        """Embed a `Preprocessing.batch`, cropped first to the batch's largest content.

        A batch of landscape photos at 448 px is 448 x 352 of content; not running the model over
        the padding made the forward pass 1.4x faster on this repo's 2-core CPU.
        """
        height, width = ((content_hw.max(dim=0).values + STRIDE - 1) // STRIDE * STRIDE).tolist()
        pixels = pixels[:, :, :height, :width].to(self.device)
        total = None
        for scale in self.spec.scales:
            scaled, scaled_hw = pixels, content_hw
            if scale != 1.0:
                size = (max(STRIDE, round(height * scale)), max(STRIDE, round(width * scale)))
                scaled = torch.nn.functional.interpolate(
                    pixels, size=size, mode="bilinear", antialias=True, align_corners=False
                )
                scaled_hw = (content_hw.float() * scale).round().clamp(min=1).long()
            descriptor = torch.nn.functional.normalize(self._pooled(scaled, scaled_hw), dim=1)
            total = descriptor if total is None else total + descriptor
        return torch.nn.functional.normalize(total, dim=1).cpu().numpy().astype(np.float32)

    def _pooled(self, pixels: torch.Tensor, content_hw: torch.Tensor) -> torch.Tensor:
        if self.runtime == "onnx":
            return pool(self.backbone(pixels), content_hw, self.spec.pooling, self.spec.gem_p)
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            maps = self.backbone(pixels)
        return pool(maps.float(), content_hw, self.spec.pooling, self.spec.gem_p)

    def embed_prepared(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Embed `preprocess` outputs (uint8 pixels, one array per image) as one batch."""
        return self.embed_batch(*self.preprocess.batch(prepared))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.embed_prepared([self.preprocess(image) for image in images])
