"""How a decoded RGB image becomes the model's input tensor.

The spec is stored in the index manifest, so queries are always prepared exactly like the images
they are compared with.
"""

from typing import Literal

import numpy as np
import torch
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

    def __call__(self, image: Image.Image) -> np.ndarray:
        """What the model sees of `image`, as uint8 height x width x 3 (resized, cropped).

        Kept as 8-bit pixels until `batch`: a quarter of the bytes of the float input, which is
        what decode processes send to the indexer and what waits in the query batcher's queue.
        """
        width, height = self.resized_size(*image.size)
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        if self.grayscale:
            image = image.convert("L").convert("RGB")
        if self.resize == "center_crop":
            left, top = (width - self.size) // 2, (height - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        return np.array(image, dtype=np.uint8)  # writable, as torch.from_numpy wants

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
