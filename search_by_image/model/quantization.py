"""Int8 trunks for ONNX Runtime: static post-training quantization, calibrated on bundled photos.

Why: EfficientNet-Lite was designed to survive int8 (ReLU6 instead of swish, no squeeze-and-
excitation). On this project's 2-core AVX-512 VNNI CPU its int8 trunk runs about twice as fast as
the fp32 one (the forward pass and indexing alike), and Holidays mAP stays within the 0.5-point
budget, at its edge once whitened, where bf16 rounding alone moves it as much (bench/README.md:
forward-pass, indexing and quality tables, and "Figures behind the code's choices").

How: QDQ format, per-channel int8 weights, uint8 activations with MinMax ranges (moving average):
ONNX Runtime's settings for CNNs on x86 with VNNI. Without VNNI its u8s8 kernels saturate on this
model (descriptors far from fp32's on an AVX2 EPYC, where the same int8 model emulated in float
stays close: bench/README.md, "Figures behind the code's choices"), so `auto` quantizes only on
CPUs that have it, and an int8 model opened on a CPU without it runs emulated
(`OnnxTrunk(emulate_int8=True)`): right, but slower than fp32.

The calibration photos are `calibration/` (the demo collection's photos at 448 px, see
data/LICENSES.md), prepared with the index's own preprocessing and never taken from the user's
collection: the int8 model is then a function of the weights and the preprocessing alone, the same
for every run, so queries always meet the model of their index.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import tempfile
from pathlib import Path

from PIL import Image

from search_by_image.errors import SetupError
from search_by_image.images.decoding import open_rgb
from search_by_image.model import onnx_runtime
from search_by_image.model.onnx_runtime import staged
from search_by_image.model.preprocessing import Preprocessing

log = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).parent / "calibration"
#: Models whose int8 descriptors were checked against fp32 on Holidays (bench/quality.py):
#: `auto` quantizes only these; `precision=int8` asks for any model at the user's word.
VERIFIED = ("efficientnet_lite0",)


@functools.cache
def cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI: the int8 dot products ONNX Runtime's u8s8 kernels need."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def resolve(precision: str, runtime: str, model: str, device: str) -> str:
    """The spec's `quantization` for the settings: `int8` or `none`."""
    if precision == "int8":  # ONNX Runtime on the CPU, whichever runtime `auto` would pick
        if runtime == "torch" or device != "cpu" or not onnx_runtime.available():
            raise SetupError(
                "precision int8 runs on ONNX Runtime on the CPU: use runtime auto "
                "or onnx, device cpu, and install onnxruntime"
            )
        return "int8"
    onnx = onnx_runtime.resolve_runtime(runtime, model, device) == "onnx"
    if precision == "auto" and onnx and model in VERIFIED and cpu_has_vnni():
        return "int8"
    return "none"


def calibration_photos() -> list[Path]:
    return sorted(CALIBRATION_DIR.glob("*.jpg"))


@functools.cache
def _photos_digest() -> bytes:
    """The calibration photos' content, read once per process (not per embedder built)."""
    digest = hashlib.sha256()
    for photo in calibration_photos():
        digest.update(photo.read_bytes())
    return digest.digest()


def quantized_file(fp32_file: Path, preprocessing: Preprocessing) -> Path:
    """Beside the fp32 file, named for what decides the ranges: photos and their preprocessing."""
    digest = hashlib.sha256(preprocessing.model_dump_json().encode() + _photos_digest())
    return fp32_file.with_name(f"{fp32_file.stem}--int8-{digest.hexdigest()[:12]}.onnx")


def _calibration_inputs(preprocessing: Preprocessing) -> list[dict]:
    """Each photo as `Embedder.embed_prepared` would feed it, also mirrored and at 2/3 size.

    The variants widen the ranges seen beyond 13 images: on Holidays they gave whitened mAP
    0.8448 against 0.8425 for the photos alone (fp32: 0.8492; percentile ranges: 0.8448).

    The photos are resized by Pillow, as `preprocessing` does: the int8 ranges depend on the
    resize kernel. Redrawn from torch's SIMD resize's pixels (1-2 levels apart on 0.3% of values),
    they moved whitened mAP from 0.8441 to 0.8348: int8 calibration noise that cached files and
    the measured model should not be re-rolled by.
    """
    inputs = []
    for photo in calibration_photos():
        image = open_rgb(photo, 50_000_000)
        smaller = image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.Resampling.BICUBIC)
        for variant in (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), smaller):
            inputs.append({"pixels": preprocessing.batch([preprocessing(variant)])[0]})
    return inputs


class _QuantizerDetails(logging.Filter):
    """ONNX Runtime's quantizer logs every adjusted tensor scale through the root logger at INFO
    (dozens of lines on a CLI run); its warnings still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname


def quantize(fp32_file: Path, target: Path, preprocessing: Preprocessing) -> None:
    """Write the int8 model of `fp32_file` to `target`, atomically."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.inputs = iter(_calibration_inputs(preprocessing))

        def get_next(self):
            return next(self.inputs, None)

    details = _QuantizerDetails()
    logging.getLogger().addFilter(details)
    try:
        with staged(target) as temporary, tempfile.TemporaryDirectory(prefix="sbi-quantize-") as work:
            prepared = Path(work) / "prepared.onnx"
            quant_pre_process(str(fp32_file), str(prepared))
            quantize_static(
                str(prepared),
                str(temporary),
                Photos(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibMovingAverage": True},
            )
    finally:
        logging.getLogger().removeFilter(details)


def quantize_once(fp32_file: Path, target: Path, preprocessing: Preprocessing) -> None:
    """`target`, the int8 model of `fp32_file`, quantized unless it exists already."""
    if not target.is_file():
        log.info(
            "Quantizing %s to int8 (once, on %d bundled photos): %s",
            fp32_file.stem,
            len(calibration_photos()),
            target,
        )
        quantize(fp32_file, target, preprocessing)
