"""Search by URL (SBI_URL_SEARCH) through FastAPI's TestClient: the real demo collection, a real
HTTP server on 127.0.0.1 in a thread, and every address, redirect and body it must refuse.

The server on 127.0.0.1 is a loopback address, refused by the default policy; the `allowed`
app lets exactly 127.0.0.1/32 through (SBI_URL_SEARCH_ALLOW), as a private deployment would its
own image server. Host names are given addresses by a stand-in for socket.getaddrinfo.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, free_port

from main import create_app
from search_by_image.api.url_fetch import UrlFetcher
from search_by_image.api.url_policy import AddressPolicy
from search_by_image.errors import UrlRefused

LIMIT = 200_000  # dog.jpg is 122,601 bytes
TIMEOUT_S = 2.0
PHOTO = (PHOTOS / "dog.jpg").read_bytes()


class PhotoServer(BaseHTTPRequestHandler):
    """/dog.jpg, /notes.txt, /big (declares its size), /big-stream (no length: read until
    closed), /slow, /missing, /to?url=... (302 there), /hops/N (N redirects, then the photo)."""

    seen: list[tuple[str, str]] = []  # (path, Host header)

    def log_message(self, *args) -> None:
        pass

    def answer(self, body: bytes, kind: str = "image/jpeg", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the fetcher hung up (past the size limit)
            self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.seen.append((url.path, self.headers.get("Host", "")))
        if url.path == "/dog.jpg":
            self.answer(PHOTO)
        elif url.path == "/notes.txt":
            self.answer(b"just some text, not a photo", "text/plain")
        elif url.path == "/big":
            self.answer(PHOTO * 2)
        elif url.path == "/big-stream":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()  # HTTP/1.0 without a length: the body ends when the connection does
            with contextlib.suppress(OSError):  # the fetcher hangs up at the limit
                for _ in range(40):  # 40 x 64 KiB: far past the limit, still bounded
                    self.wfile.write(b"\xff" * 65536)
        elif url.path == "/slow":
            time.sleep(TIMEOUT_S + 1)
            self.answer(PHOTO)
        elif url.path == "/to":
            self.redirect(parse_qs(url.query)["url"][0])
        elif url.path.startswith("/hops/"):
            left = int(url.path.rsplit("/", 1)[1])
            self.redirect(f"/hops/{left - 1}") if left else self.answer(PHOTO)
        else:
            self.answer(b"not here", "text/plain", 404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PhotoServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def client_for(demo_collection, **settings):
    update = {"rate_limit": "", "max_upload_bytes": LIMIT, "url_search_timeout_s": TIMEOUT_S, **settings}
    return TestClient(create_app(demo_collection.model_copy(update=update)))


@pytest.fixture(scope="module")
def strict(demo_collection):
    """URL search on, with the default policy: public addresses only."""
    with client_for(demo_collection, url_search=True) as client:
        yield client


@pytest.fixture(scope="module")
def allowed(demo_collection):
    """URL search on, and the test server's 127.0.0.1 allowed (as a private deployment would)."""
    with client_for(demo_collection, url_search=True, url_search_allow=["127.0.0.1/32"]) as client:
        yield client


class Dns:
    """Host names -> addresses for the fetcher's resolver (socket.getaddrinfo); other names
    resolve as usual. `asked`: every name looked up."""

    def __init__(self):
        self.names: dict[str, list[str]] = {}
        self.asked: list[str] = []
        self.real = socket.getaddrinfo

    def __setitem__(self, name: str, addresses: list[str]) -> None:
        self.names[name] = addresses

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.asked.append(host)
        if host not in self.names:
            return self.real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self.names[host]
        ]


@pytest.fixture
def dns(monkeypatch) -> Dns:
    fake = Dns()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


def by_url(client, url: str, **form):
    return client.post("/search", data={"url": url, **form})


def refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert all(word in detail for word in words), detail
    return detail


def test_url_search_is_off_by_default_and_says_how_to_turn_it_on(demo_collection, server):
    with client_for(demo_collection) as client:
        refused(by_url(client, f"{server}/dog.jpg"), 422, "off", "SBI_URL_SEARCH=true")
        assert 'name="url"' not in client.get("/search").text  # no URL box on the page


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("{server}/dog.jpg", ["points to a loopback address 127.0.0.1"]),
        ("http://localhost:{port}/dog.jpg", ["localhost resolves to a loopback address"]),
        ("http://127.1:{port}/dog.jpg", ["127.1 resolves to a loopback address 127.0.0.1"]),
        ("http://2130706433:{port}/dog.jpg", ["a loopback address 127.0.0.1"]),
        ("http://0x7f000001:{port}/dog.jpg", ["a loopback address 127.0.0.1"]),
        ("http://10.0.0.5/photo.jpg", ["a private address 10.0.0.5"]),
        ("http://192.168.1.20/photo.jpg", ["a private address 192.168.1.20"]),
        ("http://172.16.0.1/photo.jpg", ["a private address 172.16.0.1"]),
        ("http://169.254.10.1/photo.jpg", ["a link-local address 169.254.10.1"]),
        ("http://169.254.169.254/latest/meta-data/", ["a cloud metadata address 169.254.169.254"]),
        ("http://[fd00:ec2::254]/latest/meta-data/", ["a cloud metadata address fd00:ec2::254"]),
        ("http://[::ffff:169.254.169.254]/", ["a cloud metadata address ::ffff:169.254.169.254"]),
        ("http://[::1]:{port}/dog.jpg", ["a loopback address ::1"]),
        ("http://[::ffff:127.0.0.1]:{port}/dog.jpg", ["a loopback address ::ffff:127.0.0.1"]),
        ("http://[fe80::1]/photo.jpg", ["a link-local address fe80::1"]),
        ("http://0.0.0.0:{port}/dog.jpg", ["an unspecified address 0.0.0.0"]),
        ("http://224.0.0.1/photo.jpg", ["a multicast address 224.0.0.1"]),
        ("http://240.0.0.1/photo.jpg", ["a reserved address 240.0.0.1"]),
        ("http://100.64.0.1/photo.jpg", ["a non-public address 100.64.0.1"]),
        ("ftp://example.com/photo.jpg", ["must be an http or https URL, not ftp:"]),
        ("file:///etc/passwd", ["must be an http or https URL, not file:"]),
        ("photo.jpg", ["must be an http or https URL, not a relative address"]),
        ("http://user:secret@example.com/photo.jpg", ["must not carry a user name or password"]),
    ],
)
def test_addresses_that_are_not_public_are_refused_naming_why(strict, server, url, words):
    url = url.format(server=server, port=server.rsplit(":", 1)[1])
    refused(by_url(strict, url), 422, *words)


def test_a_name_that_resolves_to_a_private_address_is_refused(strict, dns):
    dns["evil.example"] = ["10.0.0.5"]
    refused(
        by_url(strict, "http://evil.example/cat.jpg"),
        422,
        "evil.example resolves to a private address 10.0.0.5",
    )


def test_every_address_of_a_name_is_checked(strict, dns):
    dns["mixed.example"] = ["93.184.215.14", "127.0.0.1"]
    refused(by_url(strict, "https://mixed.example/cat.jpg"), 422, "a loopback address 127.0.0.1")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("http://127.0.0.2:{port}/dog.jpg", ["redirect to http://127.0.0.2", "a loopback address 127.0.0.2"]),
        ("http://169.254.169.254/latest/meta-data/", ["a cloud metadata address 169.254.169.254"]),
        ("http://[::1]:{port}/dog.jpg", ["a loopback address ::1"]),
        ("file:///etc/passwd", ["redirect to file:///etc/passwd", "not file:"]),
    ],
)
def test_a_redirect_is_checked_like_the_url(allowed, server, target, words):
    target = target.format(port=server.rsplit(":", 1)[1])
    refused(by_url(allowed, f"{server}/to?url={target}"), 422, *words)


def test_at_most_three_redirects_are_followed(allowed, server):
    assert by_url(allowed, f"{server}/hops/3").status_code == 200
    refused(by_url(allowed, f"{server}/hops/4"), 422, "too many redirects", "more than 3")


@pytest.mark.parametrize("path", ["/big", "/big-stream"], ids=["declared", "streamed"])
def test_a_body_over_the_upload_limit_is_refused(allowed, server, path):
    refused(by_url(allowed, server + path), 413, f"larger than the limit of {LIMIT} bytes")


def test_a_body_that_is_not_an_image_is_refused_as_an_upload_is(allowed, server):
    detail = refused(by_url(allowed, f"{server}/notes.txt"), 415, "not a recognised image")
    upload = allowed.post("/search", files={"file": ("notes.txt", b"just some text, not a photo")})
    assert upload.status_code == 415 and upload.json()["detail"] == detail


def test_failures_of_the_other_server_or_the_network(allowed, server):
    refused(by_url(allowed, f"{server}/missing"), 422, "answered HTTP 404")
    refused(by_url(allowed, f"http://127.0.0.1:{free_port()}/dog.jpg"), 502, "could not connect to 127.0.0.1")
    started = time.monotonic()
    refused(by_url(allowed, f"{server}/slow"), 504, f"longer than {TIMEOUT_S:g} s")
    assert time.monotonic() - started < TIMEOUT_S + 1


def test_both_file_and_url_is_a_422(allowed, server):
    response = allowed.post("/search", data={"url": f"{server}/dog.jpg"}, files={"file": ("q.jpg", PHOTO)})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "url"


def test_a_photo_at_an_allowed_address_is_found_as_a_copy(allowed, server):
    response = by_url(allowed, f"{server}/dog.jpg", k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["path"] == "dog.jpg" and body["results"][0]["match"] == "copy"
    assert body["query"]["filename"] == f"{server}/dog.jpg"


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(allowed, server, dns):
    """The name is resolved once per hop and the connection made to the address checked: a DNS
    answer that changes afterwards (rebinding) is never used."""
    port = server.rsplit(":", 1)[1]
    dns["photos.example"] = ["127.0.0.1"]
    PhotoServer.seen.clear()
    response = by_url(allowed, f"http://photos.example:{port}/dog.jpg", k=1)
    dns["photos.example"] = ["10.0.0.5"]  # what a rebinding server would answer next
    assert response.status_code == 200 and response.json()["results"][0]["path"] == "dog.jpg"
    assert PhotoServer.seen == [("/dog.jpg", f"photos.example:{port}")]
    assert dns.asked.count("photos.example") == 1


def test_the_page_offers_a_url_box_and_the_camera_and_its_form_searches_by_url(allowed, server):
    page = allowed.get("/search").text
    assert 'name="url"' in page and 'capture="environment"' in page
    # the form without JavaScript: an empty file part beside the url
    response = allowed.post(
        "/search",
        data={"url": f"{server}/dog.jpg"},
        files={"file": ("", b"", "application/octet-stream")},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 200 and "dog.jpg" in response.text
    page_error = allowed.post(
        "/search", data={"url": "http://10.0.0.5/x.jpg"}, headers={"Accept": "text/html"}
    )
    assert page_error.status_code == 422 and "a private address 10.0.0.5" in page_error.text


@pytest.fixture
def tls_server(tmp_path):
    """An https server on 127.0.0.1 whose certificate names photos.example (made by openssl);
    yields its port, the context that trusts it, and what it saw: SNI names and Host headers."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", key,
         "-out", cert, "-subj", "/CN=photos.example", "-addext", "subjectAltName=DNS:photos.example"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    seen: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _socket, name, _context: seen.append(f"sni:{name}")

    class Handler(PhotoServer):
        def do_GET(self) -> None:
            seen.append(f"host:{self.headers.get('Host')}")
            self.answer(PHOTO)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield httpd.server_address[1], ssl.create_default_context(cafile=cert), seen
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def test_https_sends_the_name_as_sni_and_checks_the_certificate_against_it(tls_server, dns):
    port, trusted, seen = tls_server
    dns["photos.example"] = ["127.0.0.1"]
    dns["other.example"] = ["127.0.0.1"]
    fetcher = UrlFetcher(AddressPolicy(["127.0.0.1/32"]), LIMIT, TIMEOUT_S, verify=trusted)
    assert asyncio.run(fetcher.fetch(f"https://photos.example:{port}/dog.jpg")) == PHOTO
    assert seen == ["sni:photos.example", f"host:photos.example:{port}"]
    with pytest.raises(UrlRefused) as refusal:  # the same server under a name its certificate lacks
        asyncio.run(fetcher.fetch(f"https://other.example:{port}/dog.jpg"))
    assert refusal.value.status == 502 and "not valid for 'other.example'" in str(refusal.value)
