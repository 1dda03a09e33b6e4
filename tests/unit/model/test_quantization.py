"""The int8 trunk: calibrated once on the bundled photos, close to fp32, chosen only where verified."""

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from config import Settings
from search_by_image.model import quantization
from search_by_image.model.embedder import Embedder, EmbedderSpec

NAMES = sorted(p.name for p in PHOTOS.iterdir())


def test_int8_trunk_stays_close_to_fp32_and_is_quantized_once(lite0, tmp_path):
    """int8 rounds activations, so descriptors move more than with bf16 but keep their meaning
    (Holidays: mean cosine 0.986, the same mAP; bench/README); the ranges come from the bundled
    photos, so a second embedder reuses the cached int8 file. On a CPU without VNNI, whose
    integer kernels saturate (cosine 0.930), the int8 model runs emulated in float."""
    images = [Image.open(PHOTOS / name).convert("RGB") for name in NAMES]
    int8 = lite0.spec.model_copy(update={"quantization": "int8"})
    first = Embedder(int8, "cpu", runtime="auto", cache_dir=tmp_path)
    assert (first.runtime, first.precision) == ("onnx", "int8")
    assert first.trunk.emulated_int8 == (not quantization.cpu_has_vnni())
    quantized = sorted(tmp_path.glob("*--int8-*.onnx"))
    assert len(quantized) == 1
    stamp = quantized[0].stat().st_mtime_ns
    int8_rows = Embedder(int8, "cpu", runtime="auto", cache_dir=tmp_path).embed_images(images)
    assert quantized[0].stat().st_mtime_ns == stamp
    fp32 = lite0.spec.model_copy(update={"quantization": "none"})
    fp32_rows = Embedder(fp32, "cpu", runtime="onnx", cache_dir=tmp_path).embed_images(images)
    cosines = np.sum(int8_rows * fp32_rows, axis=1)
    assert cosines.mean() > 0.97 and cosines.min() > 0.9
    assert np.array_equal(np.argmax(int8_rows @ fp32_rows.T, axis=1), np.arange(len(images)))


def test_auto_precision_quantizes_only_verified_models_on_cpus_with_vnni(monkeypatch):
    cpu = "cpu"
    monkeypatch.setattr(quantization, "cpu_has_vnni", lambda: True)
    assert (
        EmbedderSpec.from_settings(Settings(model="efficientnet_lite0", device="cpu")).quantization == "int8"
    )
    assert quantization.resolve("auto", "auto", "efficientnet_lite2", cpu) == "none"  # unchecked
    assert quantization.resolve("auto", "torch", "efficientnet_lite0", cpu) == "none"
    assert quantization.resolve("fp32", "auto", "efficientnet_lite0", cpu) == "none"
    assert quantization.resolve("int8", "auto", "efficientnet_lite2", cpu) == "int8"
    assert quantization.resolve("int8", "auto", "resnet50", cpu) == "int8"  # auto would say torch
    with pytest.raises(RuntimeError, match="precision int8 runs on ONNX Runtime"):
        quantization.resolve("int8", "torch", "efficientnet_lite0", cpu)
    monkeypatch.setattr(quantization, "cpu_has_vnni", lambda: False)
    assert quantization.resolve("auto", "auto", "efficientnet_lite0", cpu) == "none"


def test_the_int8_file_is_named_for_the_preprocessing_it_was_calibrated_with(lite0, tmp_path):
    """Ranges calibrated on colour photos would be wrong for a grayscale collection: each
    preprocessing gets its own int8 file, and the same one always finds the same file."""
    fp32 = tmp_path / "model.onnx"
    colour = lite0.spec.preprocessing
    grey = colour.model_copy(update={"grayscale": True})
    assert quantization.quantized_file(fp32, colour) == quantization.quantized_file(fp32, colour)
    assert quantization.quantized_file(fp32, colour) != quantization.quantized_file(fp32, grey)
    assert len(quantization.calibration_photos()) == 13


def test_calibration_pixels_come_from_pillows_resize(lite0):
    """int8 ranges are a draw of calibration noise (whitened Holidays mAP moved by a point when
    the calibration pixels moved by a level); another resize kernel must not redraw them."""
    prep = lite0.spec.preprocessing
    first = quantization._calibration_inputs(prep)[0]["pixels"]
    image = Image.open(quantization.calibration_photos()[0]).convert("RGB")
    pillow = np.asarray(image.resize(prep.resized_size(*image.size), Image.Resampling.BICUBIC))
    assert np.array_equal(first, prep.batch([pillow])[0])
