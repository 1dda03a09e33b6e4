"""Which addresses URL search may connect to: public ones only, unless the operator allows more.

`AddressPolicy.refusal` is asked about every address a URL's host resolves to, and about the
address of each redirect, before anything connects (url_fetch.py connects to the very address it
checked). Refused: loopback, private, link-local, multicast, reserved, unspecified and other
non-public addresses, and cloud metadata services, also in IPv6 forms that carry an IPv4 address
(IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4 2002:...). `SBI_URL_SEARCH_ALLOW` lists
networks that are let through anyway (a private deployment's image server, tests); metadata
addresses never are.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud instances' metadata services (credentials live there): refused whatever is allowed.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure's wire server
    )
)
#: NAT64's well-known prefix: its last 32 bits are the IPv4 address a gateway connects to.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_address(text: str) -> Address | None:
    """The address `text` spells, or None for a host name."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def shown(address: Address) -> str:
    """`address` as people write it: IPv4-mapped IPv6 as ::ffff:a.b.c.d on every Python."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def carried_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (IPv4-mapped, NAT64, 6to4), else None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _kind(address: Address) -> str | None:
    """What makes `address` no place to fetch from ("a private address"), or None if public."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:  # shared (carrier NAT) space, documentation and benchmark ranges
        return "a non-public address"
    return None


class AddressPolicy:
    """Public addresses only, plus the networks in `allow`; cloud metadata never."""

    def __init__(self, allow: Iterable[str] = ()):
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in allow
        )

    def refusal(self, address: Address) -> str | None:
        """None when URL search may connect to `address`, else what it is ("a loopback address")."""
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(str(address).partition("%")[0])  # fe80::1%eth0
        carried = carried_ipv4(address)
        if address in METADATA or carried in METADATA:
            return "a cloud metadata address"
        reached = (address,) if carried is None else (address, carried)
        if any(a in network for a in reached for network in self.allowed):
            return None
        # an IPv6 form of an IPv4 address is judged by the IPv4 address it reaches
        return _kind(carried if carried is not None else address)
