"""Requests per client over a moving window (the `limits` library), for the expensive endpoints.

A client is its API key when it sends one, else its address: one key shared by many machines
shares one budget, and clients without keys cannot spend each other's. Memory holds one entry per
recent client, expired with the window.
"""

from __future__ import annotations

import math
import time

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
