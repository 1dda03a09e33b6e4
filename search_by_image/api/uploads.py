"""Uploaded bytes to a decoded image, or an UploadRejected (4xx) that says what is wrong with them.

Limits are enforced twice: `UploadSizeLimit` refuses a too-large request body while it streams in
(before multipart parsing spools it anywhere), and one that takes longer than
`SBI_UPLOAD_TIMEOUT_S` to arrive (a stalled or trickling body would otherwise hold up to the size
limit in memory for as long as its client keeps the connection open), and `read_upload` and the decode
(images/rejections.py) check the file itself: empty, too large, not an image, corrupt, or too
many pixels (decompression bombs).
"""

from __future__ import annotations

import asyncio
import io
import json

from fastapi import UploadFile
from PIL import Image
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_by_image.errors import UploadRejected
from search_by_image.images import formats
from search_by_image.metrics import REJECTED_UPLOADS

#: Room for the multipart boundaries and small form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
READ_CHUNK = 1024 * 1024


def size_limit_reason(max_bytes: int) -> str:
    return f"upload is larger than the limit of {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB)"


class UploadSizeLimit:
    """ASGI middleware: 413 as soon as a POST body passes the limit, by header or by count, and 408
    when the body has not all arrived `timeout_s` after the request's headers.

    The refusal is sent from here because FastAPI turns any error raised while it parses a form
    into a generic 400; the app is then told the client disconnected, and its answer dropped.
    The body is read before any dependency runs (the API key included), so the deadline holds for
    callers without a key too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float):
        self.app = app
        self.max_body = max_bytes + MULTIPART_OVERHEAD
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(send, UploadRejected(413, size_limit_reason(self.max_bytes)), "too_many_bytes")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        received = 0
        refused = False
        complete = False

        async def counting_receive() -> Message:
            """Past the limit or the deadline: answer now, and tell the app the client went away."""
            nonlocal received, refused, complete
            if refused:
                return {"type": "http.disconnect"}
            if complete:  # the body is in: what remains to receive is the client going away
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                refused = True
                reason = f"the request body did not arrive within {self.timeout_s:g} s"
                await self._refuse(send, UploadRejected(408, reason), "too_slow")
                return {"type": "http.disconnect"}
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.max_body:
                refused = True
                await self._refuse(
                    send, UploadRejected(413, size_limit_reason(self.max_bytes)), "too_many_bytes"
                )
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # once refused, whatever the app answers is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send, error: UploadRejected, reason: str) -> None:
        REJECTED_UPLOADS.labels(reason).inc()
        body = json.dumps({"detail": str(error)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def parse_into_memory(max_bytes: int) -> None:
    """Uploads up to `max_bytes` parsed into memory, not into a temporary file: their bytes are
    read into memory to be decoded anyway, and past Starlette's 1 MB a spooled file is written to
    disk with one thread-pool hop per received chunk (bench/README.md "Where a 12 MP query's time
    goes"). A request's whole body is held to the limit (`UploadSizeLimit`), so that is the most
    one request holds while it arrives; `read_upload` lets go of the parsed copy once read.
    Process-wide: Starlette's parser has no per-app setting."""
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_bytes)


async def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The file's bytes, reading at most one chunk past the limit; the parsed file closed (its
    memory freed) once read."""
    chunks, size = [], 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            REJECTED_UPLOADS.labels("too_many_bytes").inc()
            raise UploadRejected(413, size_limit_reason(max_bytes))
        chunks.append(chunk)
    await file.close()
    if size == 0:
        REJECTED_UPLOADS.labels("empty").inc()
        raise UploadRejected(400, "the uploaded file is empty (0 bytes)")
    return b"".join(chunks)


def declared_pixels(data: bytes) -> int:
    """Width x height that the header declares (0 when it cannot be read: decoding says why)."""
    try:
        with Image.open(io.BytesIO(data), formats=formats.PILLOW_NAMES) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - any unreadable header is decode_upload's to explain
        return 0


def image_format(data: bytes) -> str:
    """The format (formats.FORMATS) of bytes that `decode_upload` accepted: JPEG, HEIC, DNG..."""
    found = formats.identify(data)
    if found is None:  # decode_upload opened it, so this cannot happen short of a bug
        raise UploadRejected(415, f"cannot use this upload: {formats.unsupported_reason(data)}")
    return found.name
