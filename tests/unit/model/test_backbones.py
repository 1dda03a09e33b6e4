"""Where weights come from: the bundled Lite weights are real; ResNet50 follows the torch cache."""

import logging

import torch
from helpers import PHOTOS
from PIL import Image
from torchvision.models import ResNet50_Weights

from search_by_image.model import backbones
from search_by_image.model.backbones import resnet50_cache_file, resolve_model
from search_by_image.model.preprocessing import Preprocessing
from search_by_image.model.torch_runtime import load_backbone

CATEGORIES = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def top5(model, name: str) -> list[str]:
    prep = Preprocessing(resize="center_crop", size=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    pixels, _ = prep.batch([prep(Image.open(PHOTOS / name).convert("RGB"))])
    pixels = torch.from_numpy(pixels)
    with torch.inference_mode():
        return [CATEGORIES[i] for i in model.classify(pixels).topk(5).indices[0]]


def test_bundled_lite0_weights_classify_real_photos():
    model = load_backbone("efficientnet_lite0")
    assert top5(model, "coffee.jpg")[0] == "espresso"
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(top5(model, "chelsea.jpg")[:2])
    assert {"bald eagle", "kite"} & set(top5(model, "eagle.jpg")[:2])


def test_resnet50_architecture_gives_2048_channel_maps():
    maps = load_backbone("resnet50", pretrained=False)(torch.zeros(1, 3, 64, 96))
    assert maps.shape == (1, 2048, 2, 3)


def test_auto_uses_resnet50_when_its_checkpoint_is_in_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoint = resnet50_cache_file()
    assert checkpoint.is_relative_to(tmp_path)
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"placeholder: only the lookup is tested here")
    assert resolve_model("auto") == "resnet50"


def test_auto_falls_back_to_the_bundled_model_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline():
        raise backbones.WeightsUnavailable("no network")

    monkeypatch.setattr(backbones, "resnet50_state_dict", offline)
    with caplog.at_level(logging.INFO, logger="search_by_image.model.backbones"):
        assert resolve_model("auto") == "efficientnet_lite0"
    assert len(caplog.records) == 1 and "efficientnet_lite0" in caplog.records[0].getMessage()


def test_an_explicit_choice_is_kept():
    assert resolve_model("efficientnet_lite0") == "efficientnet_lite0"
