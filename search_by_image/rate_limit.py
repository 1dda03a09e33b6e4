"""Requests per client over a moving window (the `limits` library), for the expensive endpoints.

A client is its API key when it sends one, else its address: one key shared by many machines
shares one budget, and clients without keys cannot spend each other's. Memory holds one entry per
recent client, expired with the window.

The address is the connection's, never a header's, unless the connection comes from a configured
trusted proxy (SBI_TRUSTED_PROXIES). uvicorn itself believes `X-Forwarded-For` from 127.0.0.1 by
default and rewrites the client address before the app sees it, so any local process could reset
its budget with a rotating header: requests it re-addressed that way, with no trusted proxy
configured, share one budget (`FORWARDED`).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable

from limits import parse, storage, strategies


class RateLimiter:
    def __init__(self, rule: str):
        """`rule` in the limits notation, e.g. "300/minute"; empty means no limit."""
        self.rule = parse(rule) if rule else None
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def wait_seconds(self, client: str) -> int | None:
        """Count one request; None when allowed, else whole seconds until one would be."""
        if self.rule is None or self._limiter.hit(self.rule, client):
            return None
        reset = self._limiter.get_window_stats(self.rule, client).reset_time
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


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """Who is calling, for the rate limit: `peer` is the address the server reports (uvicorn may
    already have replaced it from X-Forwarded-For), `forwarded_for` that header, if any."""
    if not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if trusted and _within(peer, trusted):
        # from our proxy: the nearest hop it did not add itself
        return next((hop for hop in reversed(hops) if not _within(hop, trusted)), peer)
    if not trusted and peer in hops:
        return FORWARDED  # uvicorn took the address from the header; the header is not trusted
    return peer
