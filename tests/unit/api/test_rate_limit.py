"""Who a request is, for the rate limit, and how many it may send (search_by_image/api/rate_limit.py)."""

import pytest

from search_by_image.api.rate_limit import FORWARDED, RateLimiter, client_address, trusted_networks


def test_each_client_has_its_own_budget_and_is_told_how_long_to_wait():
    limiter = RateLimiter("2/minute")
    assert limiter.wait_seconds("10.0.0.1") is None and limiter.wait_seconds("10.0.0.1") is None
    wait = limiter.wait_seconds("10.0.0.1")
    assert wait is not None and 1 <= wait <= 60
    assert limiter.wait_seconds("10.0.0.2") is None  # another client's budget is untouched


def test_an_empty_rule_never_limits():
    limiter = RateLimiter("")
    assert all(limiter.wait_seconds("10.0.0.1") is None for _ in range(1000))


def test_without_a_header_the_connection_is_the_client():
    assert client_address("203.0.113.7", None, []) == "203.0.113.7"


def test_an_address_taken_from_an_untrusted_header_shares_one_budget():
    """uvicorn rewrote the peer from X-Forwarded-For (the peer is one of its hops): with no trusted
    proxy configured, every such request is the same client, whatever the header says."""
    assert client_address("198.51.100.9", "198.51.100.9", []) == FORWARDED
    assert client_address("198.51.100.9", "1.2.3.4, 198.51.100.9", []) == FORWARDED
    assert client_address("203.0.113.7", "1.2.3.4", []) == "203.0.113.7"  # header ignored


def test_addresses_are_compared_as_uvicorn_reads_them():
    """A port, brackets, another spelling of one IPv6 address, or an IPv4 address mapped into
    IPv6 is the same client; an IPv6 client is its /64 (one host's addresses)."""
    assert client_address("198.51.100.9", "198.51.100.9:4242", []) == FORWARDED
    assert client_address("2001:db8::1", "[2001:DB8:0::1]:80", []) == FORWARDED
    assert client_address("2001:db8::1", "2001:db8::1", []) == FORWARDED
    assert client_address("203.0.113.7", "1.2.3.4:80", []) == "203.0.113.7"
    assert client_address("::ffff:203.0.113.7", None, []) == "203.0.113.7"
    assert client_address("2001:db8::1", None, []) == client_address("2001:db8::abcd", None, [])
    assert client_address("2001:db8::1", None, []) != client_address("2001:db8:0:1::1", None, [])
    trusted = trusted_networks(["10.0.0.0/8"])
    assert client_address("10.0.0.5", "5.6.7.8:1234, 10.0.0.9:80", trusted) == "5.6.7.8"
    proxies = trusted_networks(["fd00::/8"])
    assert client_address("fd00::5", "5.6.7.8, [fd00::9]:80", proxies) == "5.6.7.8"


def test_behind_a_trusted_proxy_the_nearest_hop_it_did_not_add_is_the_client():
    trusted = trusted_networks(["10.0.0.0/8", " 192.168.1.2 ", ""])
    assert client_address("10.0.0.5", "1.2.3.4, 5.6.7.8, 10.0.0.9", trusted) == "5.6.7.8"
    assert client_address("10.0.0.5", "10.0.0.8", trusted) == "10.0.0.5"  # only proxies: the peer
    assert client_address("203.0.113.7", "1.2.3.4", trusted) == "203.0.113.7"  # not from a proxy


def test_a_bad_trusted_proxy_entry_is_refused():
    with pytest.raises(ValueError, match="not-an-address"):
        trusted_networks(["10.0.0.0/8", "not-an-address"])
