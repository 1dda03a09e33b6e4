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

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return a `3 x size x size` tensor and the (height, width) of its image content.

        keep_aspect pads bottom/right with zeros (the mean colour after normalisation); the pooling
        step averages over the content cells only, so padding does not dilute the descriptor.
        """
        width, height = self.resized_size(*image.size)
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        if self.grayscale:
            image = image.convert("L").convert("RGB")
        if self.resize == "center_crop":
            left, top = (width - self.size) // 2, (height - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
            width = height = self.size
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        out = torch.zeros(3, self.size, self.size)
        out[:, :height, :width] = (pixels - mean) / std
        return out, (height, width)
