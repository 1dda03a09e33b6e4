"""Descriptors from the real bundled weights: edited copies of a photo find the original first."""

import io

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from search_by_image.model.embedder import pool

NAMES = sorted(p.name for p in PHOTOS.iterdir())


def degrade(image: Image.Image) -> Image.Image:
    """Re-encode at JPEG quality 15, shrink to 60 % and crop 8 % off every side."""
    width, height = image.size
    small = image.resize((int(width * 0.6), int(height * 0.6)))
    dx, dy = int(small.width * 0.08), int(small.height * 0.08)
    cropped = small.crop((dx, dy, small.width - dx, small.height - dy))
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG", quality=15)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def collection(lite0):
    images = [Image.open(PHOTOS / name).convert("RGB") for name in NAMES]
    return images, lite0.embed_images(images)


def test_descriptors_are_unit_length_float32(collection, lite0):
    _, features = collection
    assert features.dtype == np.float32 and features.shape == (len(NAMES), lite0.spec.dim)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_degraded_copy_finds_its_original_first(collection, lite0, name):
    images, features = collection
    query = lite0.embed_images([degrade(images[NAMES.index(name)])])[0]
    scores = features @ query
    best, runner_up = np.sort(scores)[::-1][:2]
    assert NAMES[int(np.argmax(scores))] == name
    assert best - runner_up > 0.1, "the original should win clearly, not by a hair"


def test_batch_padding_barely_changes_a_descriptor(lite0):
    """A portrait batched with a landscape photo gets nearly the descriptor it gets alone.

    Not exactly: convolutions at the content's edge see mean-colour padding instead of their own
    zero padding (measured: 0.993 cosine; pooling over the padded cells too gave 0.991, GeM being
    dominated by the strong activations inside the content).
    """
    portrait = Image.open(PHOTOS / "person.jpg").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    landscape = Image.open(PHOTOS / "kite.jpg").convert("RGB")
    alone = lite0.embed_images([portrait])[0]
    batched = lite0.embed_images([portrait, landscape])[0]
    assert float(alone @ batched) > 0.98


def test_pooling_ignores_cells_outside_the_content():
    features = np.ones((1, 1, 4, 4), np.float32)
    features[..., 2:, :] = 100.0  # padding rows with large activations
    content = np.array([[64, 128]])  # 2 x 4 cells of content at stride 32
    assert pool(features, content, "avg", 3.0).item() == pytest.approx(1.0)
    assert pool(features, content, "gem", 3.0).item() == pytest.approx(1.0, rel=1e-4)


def test_onnx_runtime_gives_the_torch_descriptors(lite0, collection, tmp_path, monkeypatch):
    """The fp32 ONNX trunk is an export of the same model: same descriptors, to rounding. A model
    the package does not bundle is exported once into the cache, then read from it."""
    from search_by_image.model import onnx_runtime
    from search_by_image.model.embedder import Embedder

    monkeypatch.setattr(onnx_runtime, "BUNDLED_DIR", tmp_path / "bundles none")
    assert lite0.runtime == "onnx"
    images, _ = collection
    fp32 = lite0.spec.model_copy(update={"quantization": "none"})
    onnx_rows = Embedder(fp32, "cpu", runtime="onnx", cache_dir=tmp_path).embed_images(images)
    torch_rows = Embedder(fp32, "cpu", precision="fp32", runtime="torch").embed_images(images)
    assert np.min(np.sum(onnx_rows * torch_rows, axis=1)) > 0.9999
    again = Embedder(fp32, "cpu", runtime="onnx", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # exported once, then loaded from the cache
    assert np.allclose(again.embed_images(images[:2]), onnx_rows[:2], atol=1e-5)


def test_multi_scale_inputs_are_resized_like_torchs_antialiased_bilinear():
    """Multi-scale collections were indexed with torch's interpolate; the numpy path (Pillow's
    filter that torch ports) gives the same inputs, to float rounding."""
    import torch

    from search_by_image.model.embedder import rescaled

    pixels = np.random.default_rng(0).normal(size=(2, 3, 96, 128)).astype(np.float32)
    for height, width in ((68, 90), (48, 64), (136, 181)):
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(pixels),
            size=(height, width),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        assert np.abs(rescaled(pixels, height, width) - expected.numpy()).max() < 1e-3
