"""A real uvicorn on 127.0.0.1: searches, an endless upload refused while it streams, and stalled
uploads refused at their deadline with their memory let go."""

import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import psutil
from helpers import LIVE_UPLOAD_LIMIT, PHOTOS, eventually, running_server


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


def _server_memory(base: str) -> float:
    """The RSS in MiB of the uvicorn listening on `base`'s port."""
    port = urlsplit(base).port
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid).memory_info().rss / 2**20
    raise AssertionError(f"no process listens on port {port}")


def test_stalled_uploads_are_refused_at_the_deadline_and_let_go_of_their_memory(demo_collection):
    """Clients without a key that send most of a 3 MB upload and then nothing more used to hold
    it in the server's memory for as long as they kept the connection open (forever): now a 408
    at SBI_UPLOAD_TIMEOUT_S, the connection closed, the memory let go."""
    limit = 4 * 2**20
    env = {"SBI_MAX_UPLOAD_BYTES": str(limit), "SBI_UPLOAD_TIMEOUT_S": "3", "SBI_SEARCH_REQUIRES_KEY": "true"}
    with running_server(demo_collection, **env) as base:
        url = urlsplit(base)
        body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        body += b"\x00" * (3 * 2**20)
        head = (
            "POST /search HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {len(body) + 100}\r\n\r\n"
        ).encode()
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"  # what it loads lazily
        before = _server_memory(base)
        conns = [socket.create_connection((url.hostname, url.port), timeout=30) for _ in range(20)]
        start = time.monotonic()
        for conn in conns:
            conn.sendall(head + body)  # and never the last 100 bytes
        replies = []
        for conn in conns:
            reply = b""
            try:
                while part := conn.recv(65536):  # the server closes the connection after answering
                    reply += part
            except ConnectionResetError:
                pass
            conn.close()
            replies.append(reply)
        took = time.monotonic() - start
        assert all(reply.startswith(b"HTTP/1.1 408") for reply in replies), replies[0][:200]
        assert b"did not arrive within 3 s" in replies[0]
        assert took < 20
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        assert eventually(lambda: _server_memory(base) < before + 30)  # 20 x 3 MB would be 60 MB more
