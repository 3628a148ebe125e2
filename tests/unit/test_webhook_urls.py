"""Where a webhook may go: hostile URLs refused with the reason that names the problem, and the
receivers the policy allows, allowed."""

from __future__ import annotations

import ipaddress

import pytest

from clipmesh.generator.webhook_urls import (
    ADDRESS_NOT_ALLOWED,
    HOST_NOT_ALLOWED,
    SCHEME_NOT_ALLOWED,
    URL_INVALID,
    WebhookTarget,
    address_allowed,
    check_webhook_url,
    parse_ipv4_forms,
)
from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.policy import WebhookRules

# Every IP literal below is listed as allowed, so that only its address can refuse it.
LITERALS = (
    "127.0.0.1",
    "::1",
    "169.254.169.254",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "fe80::1",
    "100.64.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "255.255.255.255",
    "224.0.0.1",
)
PRODUCTION = WebhookRules(
    allowed_hosts=("allowed.example", "*.team-a.example", "8.8.8.8", *LITERALS)
)
DEVELOPMENT = WebhookRules(allowed_hosts=("allowed.example",), allow_http_loopback=True)
PRIVATE = WebhookRules(allowed_hosts=("10.1.2.3", "hooks.internal"), allow_private_networks=True)

HOSTILE = [
    # Not a URL the gateway can send to.
    ("", URL_INVALID),
    ("allowed.example/hook", URL_INVALID),
    ("//allowed.example/hook", URL_INVALID),
    ("https:allowed.example/hook", URL_INVALID),
    ("https:///hook", URL_INVALID),
    ("https://", URL_INVALID),
    ("https://allowed.example/" + "a" * 2048, URL_INVALID),
    # Schemes.
    ("ftp://allowed.example/hook", SCHEME_NOT_ALLOWED),
    ("file:///etc/passwd", SCHEME_NOT_ALLOWED),
    ("gopher://allowed.example:70/_GET%20/", SCHEME_NOT_ALLOWED),
    ("javascript:alert(1)", SCHEME_NOT_ALLOWED),
    ("data:text/html,<script>alert(1)</script>", SCHEME_NOT_ALLOWED),
    ("http://allowed.example/hook", SCHEME_NOT_ALLOWED),
    ("HTTP://allowed.example/hook", SCHEME_NOT_ALLOWED),
    # Parser differentials: what one parser reads as the host, another reads as user or path.
    ("https://allowed.example@evil.example/", URL_INVALID),
    ("https://user:pass@allowed.example/", URL_INVALID),
    ("https://evil.example#@allowed.example", URL_INVALID),
    ("https://allowed.example/hook#part", URL_INVALID),
    ("https://allowed.example\\@evil.example/", URL_INVALID),
    ("https:\\\\allowed.example\\hook", URL_INVALID),
    ("https://evil.example\\.allowed.example/", URL_INVALID),
    # Spaces, controls and invisible characters.
    ("https://allowed.example/hook\r\nX-Injected: 1", URL_INVALID),
    ("https://allowed.example/a b", URL_INVALID),
    (" https://allowed.example/", URL_INVALID),
    ("https://allowed.example\t/", URL_INVALID),
    ("https://allowed.example/\x00", URL_INVALID),
    ("https://allo\u200bwed.example/", URL_INVALID),
    ("https://allowed.example\u202e/", URL_INVALID),
    ("https://allowed.example\u3000/", URL_INVALID),
    # Hosts.
    ("https://allowed.example./hook", URL_INVALID),
    ("https://allowed.example\u3002/hook", URL_INVALID),  # an ideographic full stop
    ("https://%61llowed.example/", URL_INVALID),
    ("https://allowed..example/", URL_INVALID),
    ("https://-allowed.example/", URL_INVALID),
    ("https://allowed_example/", URL_INVALID),
    ("https://" + "a" * 64 + ".example/", URL_INVALID),
    ("https://::1/", URL_INVALID),
    ("https://[::1/", URL_INVALID),
    ("https://[127.0.0.1]/", URL_INVALID),
    ("https://[::1]x/", URL_INVALID),
    ("https://1.2.3.4.5/", URL_INVALID),
    ("https://256.0.0.1/", URL_INVALID),
    ("https://08.0.0.1/", URL_INVALID),
    ("https://allowed.example.123/", URL_INVALID),
    ("https://evil.example/", HOST_NOT_ALLOWED),
    ("https://allowed.example.evil.example/", HOST_NOT_ALLOWED),
    ("https://evilallowed.example/", HOST_NOT_ALLOWED),
    ("https://team-a.example/", HOST_NOT_ALLOWED),  # a wildcard never matches its bare domain
    ("https://\u0430llowed.example/", HOST_NOT_ALLOWED),  # Cyrillic а: xn--llowed-2nf.example
    ("https://allowed.ex\u0430mple/", HOST_NOT_ALLOWED),
    ("https://xn--llowed-2nf.example/", HOST_NOT_ALLOWED),
    ("https://8.8.4.4/", HOST_NOT_ALLOWED),
    # Ports.
    ("https://allowed.example:0/", URL_INVALID),
    ("https://allowed.example:65536/", URL_INVALID),
    ("https://allowed.example:99999999999/", URL_INVALID),
    ("https://allowed.example:/", URL_INVALID),
    ("https://allowed.example:-1/", URL_INVALID),
    ("https://allowed.example:44\u0663/", URL_INVALID),  # an Arabic-Indic digit
    # Addresses, however they are written.
    ("https://127.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://127.1/", ADDRESS_NOT_ALLOWED),
    ("https://2130706433/", ADDRESS_NOT_ALLOWED),
    ("https://0x7f000001/", ADDRESS_NOT_ALLOWED),
    ("https://0X7F.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://0177.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://0177.1/", ADDRESS_NOT_ALLOWED),
    ("https://\uff11\uff12\uff17.0.0.1/", ADDRESS_NOT_ALLOWED),  # full-width digits
    ("https://localhost/", ADDRESS_NOT_ALLOWED),
    ("https://LOCALHOST:8080/", ADDRESS_NOT_ALLOWED),
    ("https://api.localhost/", ADDRESS_NOT_ALLOWED),
    ("https://[::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[0:0:0:0:0:0:0:1]/", ADDRESS_NOT_ALLOWED),
    ("https://[::ffff:127.0.0.1]/", ADDRESS_NOT_ALLOWED),
    ("https://[::FFFF:7f00:1]/", ADDRESS_NOT_ALLOWED),
    ("https://[::127.0.0.1]/", ADDRESS_NOT_ALLOWED),  # IPv4-compatible
    ("https://[::8.8.8.8]/", ADDRESS_NOT_ALLOWED),  # IPv4-compatible: deprecated, reserved
    ("https://[64:ff9b::127.0.0.1]/", ADDRESS_NOT_ALLOWED),  # NAT64
    ("https://[64:ff9b::a9fe:a9fe]/", ADDRESS_NOT_ALLOWED),  # NAT64 of 169.254.169.254
    ("https://[64:ff9b:1::808:808]/", ADDRESS_NOT_ALLOWED),  # local-use NAT64
    ("https://[2002:a9fe:a9fe::1]/", ADDRESS_NOT_ALLOWED),  # 6to4 of 169.254.169.254
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", ADDRESS_NOT_ALLOWED),  # Teredo
    ("https://[2001:0:808:808:0:0:f5ff:fffe]/", ADDRESS_NOT_ALLOWED),  # Teredo, client 10.0.0.1
    ("https://[fe80::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[fe80::1%25eth0]/", ADDRESS_NOT_ALLOWED),
    ("https://[2606:4700::1%25eth0]/", ADDRESS_NOT_ALLOWED),
    ("https://[fc00::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[fd12:3456::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[fec0::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[ff02::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[2001:db8::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[3fff::1]/", ADDRESS_NOT_ALLOWED),
    ("https://[::]/", ADDRESS_NOT_ALLOWED),
    ("https://169.254.169.254/latest/meta-data/", ADDRESS_NOT_ALLOWED),
    ("https://0xa9fea9fe/", ADDRESS_NOT_ALLOWED),
    ("https://2852039166/", ADDRESS_NOT_ALLOWED),
    ("https://0.0.0.0/", ADDRESS_NOT_ALLOWED),
    ("https://0/", ADDRESS_NOT_ALLOWED),
    ("https://0.1.2.3/", ADDRESS_NOT_ALLOWED),
    ("https://10.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://012.0.0.1/", ADDRESS_NOT_ALLOWED),  # octal 10.0.0.1
    ("https://172.16.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://192.168.1.1/", ADDRESS_NOT_ALLOWED),
    ("https://100.64.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://198.18.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://192.0.2.1/", ADDRESS_NOT_ALLOWED),
    ("https://203.0.113.7/", ADDRESS_NOT_ALLOWED),
    ("https://224.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://240.0.0.1/", ADDRESS_NOT_ALLOWED),
    ("https://255.255.255.255/", ADDRESS_NOT_ALLOWED),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=[repr(u[:60]) for u, _ in HOSTILE])
def test_hostile_urls_are_refused_naming_the_problem(url: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_webhook_url(url, PRODUCTION)
    assert refused.value.reason == reason, refused.value.message
    assert refused.value.field == "webhook_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/",
        "https://[fe80::1]/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://192.0.2.1/",
        "https://[::ffff:169.254.169.254]/",
    ],
)
def test_no_flag_opens_metadata_multicast_or_special_ranges(url: str) -> None:
    everything = WebhookRules(
        allowed_hosts=(*LITERALS, "::ffff:169.254.169.254"),
        allow_private_networks=True,
        allow_http_loopback=True,
    )
    with pytest.raises(InvalidArgument) as refused:
        check_webhook_url(url, everything)
    assert refused.value.reason == ADDRESS_NOT_ALLOWED


@pytest.mark.parametrize(
    ("url", "rules", "expected"),
    [
        (
            "https://allowed.example/hooks/job?x=1",
            PRODUCTION,
            WebhookTarget(
                "https://allowed.example/hooks/job?x=1",
                "https",
                "allowed.example",
                443,
                "/hooks/job?x=1",
            ),
        ),
        (
            "HTTPS://Allowed.EXAMPLE:8443",
            PRODUCTION,
            WebhookTarget("https://allowed.example:8443/", "https", "allowed.example", 8443, "/"),
        ),
        (
            "https://ci.build.team-a.example/hook",
            PRODUCTION,
            WebhookTarget(
                "https://ci.build.team-a.example/hook",
                "https",
                "ci.build.team-a.example",
                443,
                "/hook",
            ),
        ),
        (
            "https://\uff41llowed.example/",  # a full-width a is an a, to resolvers too
            PRODUCTION,
            WebhookTarget("https://allowed.example/", "https", "allowed.example", 443, "/"),
        ),
        (
            "https://0x08080808/",  # 8.8.8.8, listed
            PRODUCTION,
            WebhookTarget("https://8.8.8.8/", "https", "8.8.8.8", 443, "/"),
        ),
        (
            "https://[::ffff:8.8.8.8]:444/",
            PRODUCTION,
            WebhookTarget("https://8.8.8.8:444/", "https", "8.8.8.8", 444, "/"),
        ),
        (
            "https://allowed.example/caf\u00e9?q=a|b",
            PRODUCTION,
            WebhookTarget(
                "https://allowed.example/caf%C3%A9?q=a%7Cb",
                "https",
                "allowed.example",
                443,
                "/caf%C3%A9?q=a%7Cb",
            ),
        ),
        (
            "http://localhost:8080/hook",
            DEVELOPMENT,
            WebhookTarget("http://localhost:8080/hook", "http", "localhost", 8080, "/hook"),
        ),
        (
            "http://127.0.0.1:9000/",
            DEVELOPMENT,
            WebhookTarget("http://127.0.0.1:9000/", "http", "127.0.0.1", 9000, "/"),
        ),
        (
            "http://[::1]:9000/",
            DEVELOPMENT,
            WebhookTarget("http://[::1]:9000/", "http", "::1", 9000, "/"),
        ),
        (
            "https://10.1.2.3/hook",
            PRIVATE,
            WebhookTarget("https://10.1.2.3/hook", "https", "10.1.2.3", 443, "/hook"),
        ),
        (
            "https://hooks.internal/",
            PRIVATE,
            WebhookTarget("https://hooks.internal/", "https", "hooks.internal", 443, "/"),
        ),
    ],
)
def test_allowed_receivers_pass_normalised(
    url: str, rules: WebhookRules, expected: WebhookTarget
) -> None:
    assert check_webhook_url(url, rules) == expected


def test_a_callers_own_hosts_are_allowed_for_that_caller_only() -> None:
    url = "https://ci.team-b.example/hook"
    assert check_webhook_url(url, PRODUCTION, ("ci.team-b.example",)).host == "ci.team-b.example"
    assert check_webhook_url(url, PRODUCTION, ("*.team-b.example",)).host == "ci.team-b.example"
    with pytest.raises(InvalidArgument) as refused:
        check_webhook_url(url, PRODUCTION, ("ci.team-c.example",))
    assert refused.value.reason == HOST_NOT_ALLOWED


def test_private_networks_still_need_listing_and_https() -> None:
    with pytest.raises(InvalidArgument) as unlisted:
        check_webhook_url("https://10.9.9.9/", PRIVATE)
    assert unlisted.value.reason == HOST_NOT_ALLOWED
    with pytest.raises(InvalidArgument) as plain:
        check_webhook_url("http://10.1.2.3/", PRIVATE)
    assert plain.value.reason == SCHEME_NOT_ALLOWED


def test_development_opens_loopback_only() -> None:
    with pytest.raises(InvalidArgument) as public_http:
        check_webhook_url("http://allowed.example/", DEVELOPMENT)
    assert public_http.value.reason == SCHEME_NOT_ALLOWED
    with pytest.raises(InvalidArgument) as private:
        check_webhook_url("http://10.0.0.1/", DEVELOPMENT)
    assert private.value.reason == ADDRESS_NOT_ALLOWED
    with pytest.raises(InvalidArgument) as private_http:
        check_webhook_url("http://10.0.0.1/", WebhookRules(("10.0.0.1",), True, True))
    assert private_http.value.reason == SCHEME_NOT_ALLOWED
    with pytest.raises(InvalidArgument) as metadata:
        check_webhook_url("http://169.254.169.254/", DEVELOPMENT)
    assert metadata.value.reason == ADDRESS_NOT_ALLOWED


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.0x0.0.01", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("allowed.example", None),
        ("deadbeef", None),
        ("1e3", None),
    ],
)
def test_hosts_written_as_numbers_are_read_as_resolvers_read_them(
    host: str, address: str | None
) -> None:
    expected = None if address is None else ipaddress.IPv4Address(address)
    assert parse_ipv4_forms(host) == expected


@pytest.mark.parametrize(
    ("address", "production", "development", "private"),
    [
        ("8.8.8.8", True, True, True),
        ("2606:4700:4700::1111", True, True, True),
        ("::ffff:8.8.8.8", True, True, True),
        ("64:ff9b::8.8.8.8", True, True, True),
        ("127.0.0.1", False, True, True),
        ("::1", False, True, True),
        ("::ffff:127.0.0.1", False, True, True),
        ("10.0.0.1", False, False, True),
        ("172.31.255.255", False, False, True),
        ("192.168.0.1", False, False, True),
        ("100.64.0.1", False, False, True),
        ("fd00::1", False, False, True),
        ("::ffff:10.0.0.1", False, False, True),
        ("169.254.169.254", False, False, False),
        ("fe80::1", False, False, False),
        ("0.0.0.0", False, False, False),
        ("0.1.2.3", False, False, False),
        ("::", False, False, False),
        ("224.0.0.251", False, False, False),
        ("ff02::1", False, False, False),
        ("240.0.0.1", False, False, False),
        ("255.255.255.255", False, False, False),
        ("192.0.0.8", False, False, False),
        ("192.0.2.1", False, False, False),
        ("198.51.100.1", False, False, False),
        ("203.0.113.1", False, False, False),
        ("198.19.255.255", False, False, False),
        ("2001:db8::1", False, False, False),
        ("3fff::1", False, False, False),
        ("2001:2::1", False, False, False),
        ("100::1", False, False, False),
        ("fec0::1", False, False, False),
        ("::ffff:169.254.169.254", False, False, False),
        ("64:ff9b::a9fe:a9fe", False, False, False),
        ("2002:a9fe:a9fe::", False, False, False),
        ("::127.0.0.1", False, False, False),
    ],
)
def test_address_rules(address: str, production: bool, development: bool, private: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert address_allowed(ip, WebhookRules()) is production
    assert address_allowed(ip, WebhookRules(allow_http_loopback=True)) is development
    assert address_allowed(ip, WebhookRules(allow_private_networks=True)) is private


def test_refusals_say_what_the_address_is() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_webhook_url("https://0xa9fea9fe/", PRODUCTION)
    assert "169.254.169.254" in refused.value.message
    assert "link-local" in refused.value.message
