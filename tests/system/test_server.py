"""A real uvicorn on 127.0.0.1: searches, and an endless upload refused while it streams."""

import select
import socket
from urllib.parse import urlsplit

import httpx
from helpers import LIVE_UPLOAD_LIMIT, PHOTOS


def test_search_over_http(live_server):
    response = httpx.post(
        f"{live_server}/search",
        files={"file": ("g.jpg", (PHOTOS / "giraffe.jpg").read_bytes(), "image/jpeg")},
        data={"k": "3"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["path"] == "giraffe.jpg"


def test_endless_chunked_upload_is_refused_long_before_it_ends(live_server):
    """The server answers 413 after a few hundred KB, without waiting for (or storing) the rest."""
    url = urlsplit(live_server)
    chunk = b"\x00" * 65536
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(
            b"POST /search HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n"
        )
        preamble = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(preamble), preamble))
        reply = b""
        while sent < 200 * len(chunk):  # would be 13 MB if the server kept reading
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                reply = conn.recv(65536)
                break
            try:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        try:
            while part := conn.recv(65536):  # the server closes the connection after answering
                reply += part
        except ConnectionResetError:  # closing with our unread chunks pending resets the socket
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 40 * LIVE_UPLOAD_LIMIT
    assert httpx.get(f"{live_server}/health", timeout=10).json()["status"] == "ok"
