"""URL search's address policy: public addresses only, in every spelling, unless allowed."""

import pytest

from search_by_image.api.url_policy import AddressPolicy, parse_address, shown


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),  # IPv4-mapped: judged by the IPv4 address it reaches
        ("64:ff9b::808:808", None),  # NAT64 of a public address
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("64:ff9b::a00:5", "a private address"),  # NAT64 of 10.0.0.5
        ("2002:a00:5::1", "a private address"),  # 6to4 of 10.0.0.5
        ("fc00::1", "a private address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("fd00:ec2::254%eth0", "a cloud metadata address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("100.64.0.1", "a non-public address"),
    ],
)
def test_the_default_policy_lets_public_addresses_through_only(address, kind):
    parsed = parse_address(address)
    assert parsed is not None
    assert AddressPolicy().refusal(parsed) == kind


def test_allowed_networks_pass_but_metadata_never_does():
    policy = AddressPolicy(["127.0.0.1/32", "10.1.0.0/16", "169.254.0.0/16"])
    assert policy.refusal(parse_address("127.0.0.1")) is None
    assert policy.refusal(parse_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(parse_address("10.1.2.3")) is None
    assert policy.refusal(parse_address("127.0.0.2")) == "a loopback address"
    assert policy.refusal(parse_address("10.2.0.1")) == "a private address"
    assert policy.refusal(parse_address("169.254.169.254")) == "a cloud metadata address"


def test_names_are_not_addresses_and_mapped_addresses_read_as_written():
    assert parse_address("example.com") is None and parse_address("127.1") is None
    assert shown(parse_address("::ffff:127.0.0.1")) == "::ffff:127.0.0.1"
