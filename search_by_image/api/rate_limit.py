"""Requests per client over a moving window (the `limits` library), for the expensive endpoints.

A client is its API key when it sends one, else its address: one key shared by many machines
shares one budget, and clients without keys cannot spend each other's. Memory holds one entry per
recent client, expired with the window.

The address is the connection's, never a header's, unless the connection comes from a configured
trusted proxy (SBI_TRUSTED_PROXIES). uvicorn itself believes `X-Forwarded-For` from 127.0.0.1 by
default and rewrites the client address before the app sees it, so any local process could reset
its budget with a rotating header: requests it re-addressed that way, with no trusted proxy
configured, share one budget (`FORWARDED`). Addresses are compared as uvicorn reads the header
(every X-Forwarded-For header, a hop's port and brackets dropped) and normalised (`normalised`),
so no other spelling of one address is another client.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from search_by_image.lazy_imports import LazyModule

limits = LazyModule("limits")  # at the first limited request, not at start-up (0.06-0.15 s)


class RateLimiter:
    def __init__(self, rule: str):
        """`rule` in the limits notation, e.g. "300/minute" (checked by the settings); empty
        means no limit."""
        self.rule_text = rule
        self._building = threading.Lock()
        self._built: tuple[Any, Any] | None = None

    def _rule_and_limiter(self) -> tuple[Any, Any]:
        if self._built is None:
            with self._building:
                if self._built is None:
                    self._built = (
                        limits.parse(self.rule_text),
                        limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage()),
                    )
        return self._built

    @property
    def rule(self) -> Any:
        """The parsed rule (its str reads "300 per 1 minute"), None without a limit."""
        return self._rule_and_limiter()[0] if self.rule_text else None

    def wait_seconds(self, client: str) -> int | None:
        """Count one request; None when allowed, else whole seconds until one would be."""
        if not self.rule_text:
            return None
        rule, limiter = self._rule_and_limiter()
        if limiter.hit(rule, client):
            return None
        reset = limiter.get_window_stats(rule, client).reset_time
        return max(1, math.ceil(reset - time.time()))


#: The one identity of every request whose address came from a forwarded header nobody trusts.
FORWARDED = "forwarded"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR ranges (`10.0.0.2`, `10.0.0.0/8`); ValueError names a bad one."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _within(host: str, networks: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def normalised(host: str) -> str:
    """One spelling per client: a hop's port and brackets dropped (`1.2.3.4:80`, `[::1]:80`),
    an IPv4-mapped IPv6 address as IPv4, any other IPv6 address as its /64 (the block one host
    is given, whose addresses it can rotate through). Not an address: the text, stripped."""
    try:
        address = ipaddress.ip_address(_host(host))
    except ValueError:
        return host.strip()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _host(hop: str) -> str:
    """A forwarded hop without its port, brackets or IPv6 zone."""
    text = hop.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.rsplit(":", 1)[0]
    return text.split("%", 1)[0]


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """Who is calling, for the rate limit: `peer` is the address the server reports (uvicorn may
    already have replaced it from X-Forwarded-For), `forwarded_for` that header, if any (every
    copy of it, joined with commas, as uvicorn joins them)."""
    client = normalised(peer)
    if not forwarded_for:
        return client
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if trusted and _within(_host(peer), trusted):
        # from our proxy: the nearest hop it did not add itself
        return next((normalised(hop) for hop in reversed(hops) if not _within(_host(hop), trusted)), client)
    if not trusted and client in {normalised(hop) for hop in hops}:
        return FORWARDED  # uvicorn took the address from the header; the header is not trusted
    return client
