"""UploadSizeLimit (api/uploads.py): a body that stalls or trickles is refused with a 408 at the
deadline, and lets go of what it had sent; a body that arrives in time is untouched."""

import asyncio
import json

from fastapi import FastAPI, Request

from search_by_image.api.uploads import UploadSizeLimit

CHUNK = b"x" * 1000


def _app(timeout_s: float) -> tuple[UploadSizeLimit, list[int]]:
    app = FastAPI()
    read: list[int] = []

    @app.post("/upload")
    async def upload(request: Request):
        body = await request.body()
        read.append(len(body))
        return {"bytes": len(body)}

    return UploadSizeLimit(app, max_bytes=100_000, timeout_s=timeout_s), read


def _call(app: UploadSizeLimit, chunks: list[bytes], gap_s: float, stall: bool) -> tuple[int, dict, float]:
    """POST `chunks` `gap_s` apart, then (with `stall`) never the end of the body."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "headers": [(b"content-type", b"application/octet-stream")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
    }
    pending = list(chunks)
    sent: list[dict] = []

    async def receive() -> dict:
        if not pending:
            if stall:
                await asyncio.sleep(3600)  # a client that never sends the rest
            await asyncio.sleep(3600)  # after the body: waiting for a disconnect
        await asyncio.sleep(gap_s)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": stall or bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(app(scope, receive, send), 10)
        return loop.time() - start

    took = asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), took


def test_a_stalled_body_is_refused_at_the_deadline():
    app, read = _app(timeout_s=0.3)
    status, answer, took = _call(app, [CHUNK], gap_s=0, stall=True)
    assert status == 408
    assert "did not arrive within 0.3 s" in answer["detail"]
    assert took < 2
    assert read == []  # the route never got a body


def test_a_trickling_body_is_refused_at_the_deadline_too():
    """Bytes keep coming, each soon after the last, but the whole body is far too slow."""
    app, read = _app(timeout_s=0.5)
    status, _, took = _call(app, [b"x"] * 1000, gap_s=0.05, stall=False)
    assert status == 408
    assert took < 2
    assert read == []


def test_a_body_that_arrives_in_time_is_served():
    app, read = _app(timeout_s=5)
    status, answer, _ = _call(app, [CHUNK] * 5, gap_s=0.01, stall=False)
    assert status == 200
    assert answer == {"bytes": 5000}
    assert read == [5000]
