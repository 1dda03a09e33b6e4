"""The query image fetched from a URL (POST /search `url`, on with SBI_URL_SEARCH), safely.

A URL is a request the service makes on a stranger's behalf, so each hop is checked first:
http or https only; the host resolved here and every address it resolves to checked against the
`AddressPolicy` (url_policy.py: no loopback, private, link-local, metadata... addresses); then the
connection goes to that checked address, with the name in the Host header and TLS's SNI (and the
certificate checked against the name), so a DNS answer that changes between the check and the
connection (rebinding) reaches nothing unchecked. No proxy from the environment is used. Redirects
are followed here, at most `MAX_REDIRECTS`, each one checked like the first URL. The body is
streamed and refused once past the upload limit; the whole fetch, redirects included, has one
time limit. The bytes then go through the same decode as an upload (serving/search.py).

Every refusal is a `UrlRefused` with a 4xx that names the reason; failures of the network or of
the other server are 502, running out of time 504.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from functools import partial

import httpx

from search_by_image import __version__
from search_by_image.api.url_policy import Address, AddressPolicy, parse_address, shown
from search_by_image.errors import UrlRefused

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024
#: Longest `url` field: browsers and servers commonly stop at 8 KiB too.
MAX_URL_CHARS = 8192
HEADERS = {
    "User-Agent": f"search-by-image/{__version__} (search by URL)",
    "Accept": "image/*",
    "Accept-Encoding": "identity",  # the limit counts the bytes as they arrive: nothing to inflate
}
ENABLE_HINT = "searching by URL is off on this server; its operator can turn it on with SBI_URL_SEARCH=true"


def parse_url(text: str, where: str = "url") -> httpx.URL:
    """`text` as an absolute http(s) URL with a host and no credentials, else UrlRefused (422)."""
    try:
        url = httpx.URL(text.strip())
    except (httpx.InvalidURL, TypeError) as error:
        raise UrlRefused(422, f"{where} is not a valid URL: {error}") from None
    if url.scheme not in ("http", "https"):
        scheme = f"{url.scheme}:" if url.scheme else "a relative address"
        raise UrlRefused(422, f"{where} must be an http or https URL, not {scheme}")
    if not url.host:
        raise UrlRefused(422, f"{where} has no host")
    if url.userinfo:
        raise UrlRefused(422, f"{where} must not carry a user name or password")
    return url


def size_reason(max_bytes: int) -> str:
    return f"the url's content is larger than the limit of {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB)"


@dataclass(frozen=True)
class UrlFetcher:
    """Fetches query images for one app: its address policy, byte limit and time limit."""

    policy: AddressPolicy
    max_bytes: int
    timeout_s: float
    #: the certificate authorities https URLs are checked against (default: certifi's)
    verify: ssl.SSLContext | bool = True

    async def fetch(self, url: str) -> bytes:
        """The bytes at `url`, or UrlRefused saying why not."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._fetch(parse_url(url))
        except (TimeoutError, httpx.TimeoutException):
            raise UrlRefused(504, f"fetching the url took longer than {self.timeout_s:g} s") from None

    async def _fetch(self, target: httpx.URL) -> bytes:
        timeout = httpx.Timeout(self.timeout_s)
        async with httpx.AsyncClient(
            trust_env=False, timeout=timeout, headers=HEADERS, verify=self.verify
        ) as client:
            for hop in range(MAX_REDIRECTS + 1):
                where = "url" if hop == 0 else f"the url's redirect to {target}"
                addresses = await self._checked_addresses(target, where)
                response = await self._send(client, target, addresses)
                try:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        target = parse_url(
                            str(target.join(response.headers["location"])),
                            f"the url's redirect to {response.headers['location']}",
                        )
                        continue
                    return await self._body(response)
                finally:
                    await response.aclose()
        raise UrlRefused(422, f"too many redirects: the url redirected more than {MAX_REDIRECTS} times")

    async def _checked_addresses(self, url: httpx.URL, where: str) -> list[Address]:
        """The addresses to connect to for `url`: its host resolved, every address checked."""
        host = url.raw_host.decode("ascii")
        literal = parse_address(host)
        if literal is not None:
            refusal = self.policy.refusal(literal)
            if refusal:
                raise UrlRefused(422, f"{where} points to {refusal} {shown(literal)}; {PUBLIC_ONLY}")
            return [literal]
        addresses = await resolve(host, url.port or (443 if url.scheme == "https" else 80))
        for address in addresses:
            refusal = self.policy.refusal(address)
            if refusal:
                raise UrlRefused(
                    422, f"{where}: {host} resolves to {refusal} {shown(address)}; {PUBLIC_ONLY}"
                )
        return addresses

    async def _send(
        self, client: httpx.AsyncClient, url: httpx.URL, addresses: list[Address]
    ) -> httpx.Response:
        """GET `url` from the first of `addresses` (all checked) that connects, naming the host in
        the Host header and in TLS's SNI."""
        host = url.raw_host.decode("ascii")
        extensions = {}
        if url.scheme == "https" and parse_address(host) is None:
            extensions["sni_hostname"] = host  # and the certificate is checked against it
        failure = ""
        for address in addresses:
            request = client.build_request(
                "GET",
                url.copy_with(host=str(address)),
                headers={"Host": url.netloc.decode("ascii")},
                extensions=extensions,
            )
            try:
                return await client.send(request, stream=True)
            except httpx.TimeoutException:
                raise
            except httpx.ConnectError as error:
                failure = f"could not connect to {host} ({address}): {error or 'refused'}"
            except httpx.HTTPError as error:
                raise UrlRefused(502, f"fetching the url failed: {error or type(error).__name__}") from None
        raise UrlRefused(502, failure)

    async def _body(self, response: httpx.Response) -> bytes:
        """The answer's bytes, refused once past the limit (by its Content-Length or by count)."""
        status = response.status_code
        if not 200 <= status < 300:
            answered = f"the url answered HTTP {status} {response.reason_phrase}".rstrip()
            raise UrlRefused(502 if status >= 500 else 422, answered)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UrlRefused(422, f"the url answered with Content-Encoding {encoding}, not the image itself")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise UrlRefused(413, size_reason(self.max_bytes))
        chunks, size = [], 0
        try:
            async for chunk in response.aiter_raw(READ_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise UrlRefused(413, size_reason(self.max_bytes))
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as error:
            reason = error or type(error).__name__
            raise UrlRefused(502, f"reading the url's content failed: {reason}") from None
        if size == 0:
            raise UrlRefused(400, "the url's content is empty (0 bytes)")
        return b"".join(chunks)


PUBLIC_ONLY = "URL search fetches from public addresses only"


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (getaddrinfo, in a worker thread), or UrlRefused."""
    lookup = partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        found = await asyncio.get_running_loop().run_in_executor(None, lookup)
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        unknown = isinstance(error, UnicodeError) or error.errno in _NO_SUCH_NAME
        raise UrlRefused(422 if unknown else 502, f"cannot resolve the url's host {host}: {reason}") from None
    addresses = list(dict.fromkeys(parse_address(str(info[4][0])) for info in found))
    checked = [address for address in addresses if address is not None]
    if not checked:
        raise UrlRefused(422, f"cannot resolve the url's host {host}: no IP address")
    return checked


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
