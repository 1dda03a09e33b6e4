"""An upload decoded, or refused with the HTTP status and reason that say what is wrong with it:
not an image (415), corrupt (422), too many pixels (413), or the decode budget busy (503). Each
refusal is counted in metrics.REJECTED_UPLOADS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from search_by_image.errors import BUSY_DECODE_RETRY_AFTER_S, UploadRejected
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.metrics import REJECTED_UPLOADS

_STATUS_BY_KIND = {"not_image": 415, "corrupt": 422, "too_large": 413, "busy": 503}
#: UnreadableImage kinds as rejection reasons (metrics.REJECTION_REASONS)
_REASON_BY_KIND = {
    "not_image": "not_image",
    "corrupt": "corrupt",
    "too_large": "too_many_pixels",
    "busy": "busy",
}


def decode_upload(
    data: bytes,
    max_pixels: int,
    size_for: Callable[[int, int], tuple[int, int]] | None,
    finish: Callable[[Image.Image], Any] | None = None,
) -> Any:
    """`open_rgb` (within the process' decode budget), its refusals as UploadRejected."""
    try:
        return open_rgb(data, max_pixels, size_for, finish)
    except UnreadableImage as exc:
        REJECTED_UPLOADS.labels(_REASON_BY_KIND[exc.kind]).inc()
        headers = {"Retry-After": str(BUSY_DECODE_RETRY_AFTER_S)} if exc.kind == "busy" else None
        raise UploadRejected(
            _STATUS_BY_KIND[exc.kind], f"cannot use this upload: {exc.reason}", headers
        ) from exc
