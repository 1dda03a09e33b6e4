"""How a decoded RGB image becomes the model's input tensor.

The spec is stored in the index manifest, so queries are always prepared exactly like the images
they are compared with.
"""

from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

#: torchvision's classification presets resize to size/0.875 before a center crop (256 -> 224).
CROP_RATIO = 0.875
#: Both backbones reduce the input 32 times; keeping sides multiples of it wastes no padding.
STRIDE = 32


class Preprocessing(BaseModel):
    model_config = ConfigDict(frozen=True)

    resize: Literal["keep_aspect", "center_crop"]
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: compare shapes and textures only: colour is dropped (ITU-R 601 luma, copied to 3 channels),
    #: for collections mixing colour and black-and-white copies of the same pictures
    grayscale: bool = False

    @property
    def keeps_whole_image(self) -> bool:
        """Its output is the whole image in colour, only resized (a thumbnail can be made of it)."""
        return self.resize == "keep_aspect" and not self.grayscale

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """Size the decoded image is resized to before cropping or padding."""
        if self.resize == "keep_aspect":
            scale = self.size / max(width, height)
        else:
            scale = round(self.size / CROP_RATIO) / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """What the model sees of `image`, as uint8 height x width x 3 (resized, cropped).

        Resized by Pillow's antialiased bicubic filter itself: the pixels every index was built
        to match (torch's SIMD port of it differed by a level or two on a fraction of a percent of
        values and was several times faster, but it made serving import torch; bench/README.md,
        decode and resize table). Kept as 8-bit
        pixels until `batch`: a quarter of the bytes of the float input, which is what decode
        processes send to the indexer and what waits in the query batcher's queue.
        """
        resized = image.resize(self.resized_size(*image.size), Image.Resampling.BICUBIC)
        if self.resize == "center_crop":
            left, top = (resized.width - self.size) // 2, (resized.height - self.size) // 2
            resized = resized.crop((left, top, left + self.size, top + self.size))
        if self.grayscale:
            resized = resized.convert("L").convert("RGB")
        return np.asarray(resized)

    def batch(self, prepared: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 (B, 3, H, W) input and each image's content (height, width), int64.

        H and W are the largest content rounded up to the stride (at most `size`); the rest is
        padded bottom/right with zeros (the mean colour after normalisation), and the pooling step
        averages over the content cells only, so padding does not dilute a descriptor.
        """
        content_hw = np.array([array.shape[:2] for array in prepared], dtype=np.int64).reshape(-1, 2)
        rounded = -(-content_hw.max(axis=0) // STRIDE) * STRIDE
        height, width = np.minimum(rounded, self.size).tolist()
        # (x / 255 - mean) / std as (x - 255 mean) / (255 std), in place on each image's view
        shift = (np.array(self.mean, np.float32) * np.float32(255)).reshape(3, 1, 1)
        scale = (np.array(self.std, np.float32) * np.float32(255)).reshape(3, 1, 1)
        out = np.zeros((len(prepared), 3, height, width), np.float32)
        for row, array in enumerate(prepared):
            content = out[row, :, : array.shape[0], : array.shape[1]]
            content[...] = array.transpose(2, 0, 1)
            content -= shift
            content /= scale
        return out, content_hw
