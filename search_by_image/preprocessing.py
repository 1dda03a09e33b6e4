"""How a decoded RGB image becomes the model's input tensor.

The spec is stored in the index manifest, so queries are always prepared exactly like the images
they are compared with.
"""

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
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

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """Size the decoded image is resized to before cropping or padding."""
        if self.resize == "keep_aspect":
            scale = self.size / max(width, height)
        else:
            scale = round(self.size / CROP_RATIO) / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def pillow_resized(self, image: Image.Image) -> Image.Image:
        """`image` at `resized_size` by Pillow's own bicubic filter: the reference `resize_bicubic`
        is checked against, and what int8 calibration resizes with (see quantization.py)."""
        return image.resize(self.resized_size(*image.size), Image.Resampling.BICUBIC)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """What the model sees of `image`, as uint8 height x width x 3 (resized, cropped).

        Kept as 8-bit pixels until `batch`: a quarter of the bytes of the float input, which is
        what decode processes send to the indexer and what waits in the query batcher's queue.
        """
        width, height = self.resized_size(*image.size)
        pixels = resize_bicubic(np.array(image, dtype=np.uint8), width, height)
        if self.resize == "center_crop":
            left, top = (width - self.size) // 2, (height - self.size) // 2
            pixels = pixels[top : top + self.size, left : left + self.size]
        if self.grayscale:
            pixels = np.array(Image.fromarray(np.ascontiguousarray(pixels)).convert("L").convert("RGB"))
        return pixels

    def batch(self, prepared: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, 3, H, W) input and each image's content (height, width).

        H and W are the largest content rounded up to the stride (at most `size`); the rest is
        padded bottom/right with zeros (the mean colour after normalisation), and the pooling step
        averages over the content cells only, so padding does not dilute a descriptor.
        """
        content_hw = torch.tensor([array.shape[:2] for array in prepared], dtype=torch.long).view(-1, 2)
        rounded = -(-content_hw.max(dim=0).values // STRIDE) * STRIDE
        height, width = rounded.clamp(max=self.size).tolist()
        # (x / 255 - mean) / std as (x - 255 mean) / (255 std), in place on each image's view:
        # 0.3 instead of 0.8 ms per 448 px image, equal to 6e-8
        shift = torch.tensor(self.mean).view(3, 1, 1) * 255.0
        scale = torch.tensor(self.std).view(3, 1, 1) * 255.0
        out = torch.zeros(len(prepared), 3, height, width)
        for row, array in enumerate(prepared):
            content = out[row, :, : array.shape[0], : array.shape[1]]
            content.copy_(torch.from_numpy(array).permute(2, 0, 1))
            content.sub_(shift).div_(scale)
        return out, content_hw


def resize_bicubic(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pillow's antialiased bicubic resize of uint8 height x width x 3 pixels, on torch's SIMD kernel.

    torch's uint8 antialias path is a port of Pillow's filter: on the Holidays thumbnails and the
    0.5-3 MP bench uploads, at most 0.5% of values differ, by 1-2 levels of 255, so indexes built
    with `Image.resize(BICUBIC)` keep matching their queries. It is 4-6x faster on one thread here
    (0.44 instead of 1.9 ms for a 325 px thumbnail up to 448 px, 1.2 instead of 7.3 ms for 866 px
    down to 448 px; `bench/speed.py --only preprocessing`). The result is a height x width x 3
    view of channel-first memory, which `Preprocessing.batch` copies without a transpose.
    """
    channels_first = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    resized = F.interpolate(channels_first, size=(height, width), mode="bicubic", antialias=True)
    return resized[0].permute(1, 2, 0).numpy()
