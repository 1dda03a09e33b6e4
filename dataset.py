"""Reading images, kept at the top level for scripts that import it: `open_rgb` and its errors
(search_by_image/images/decoding.py, the one decode path of uploads and the indexer) and the indexer's
folder dataset (search_by_image/indexing/image_folder.py). The package itself imports those modules."""

from search_by_image.images.decoding import UnreadableImage, decode_budget, open_rgb, reduced
from search_by_image.indexing.image_folder import IMAGE_SUFFIXES, Batch, Fingerprint, ImageFolder, list_images

__all__ = [
    "IMAGE_SUFFIXES",
    "Batch",
    "Fingerprint",
    "ImageFolder",
    "UnreadableImage",
    "decode_budget",
    "list_images",
    "open_rgb",
    "reduced",
]
