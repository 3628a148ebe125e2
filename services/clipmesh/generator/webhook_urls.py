"""Where a webhook may go: the check of a job's `webhook_url`, and the addresses it may reach.

A webhook URL asks the gateway to send a request on a caller's behalf, so a careless check is a
server-side request forgery: the cloud metadata service on 169.254.169.254, databases on the
private network, the gateway's own ports on loopback. A URL passes only as https to a host the
policy allows (`runtime.policy.WebhookRules` plus the caller's `webhook_hosts`), written in one
unambiguous way, and an IP literal only when its address is public. A host name's addresses are
unknown until delivery; `webhook_post.GuardedNetworkBackend` checks them then, with the same
`address_refusal`.

With `allow_http_loopback` (development), loopback receivers (`localhost`, 127.0.0.0/8, ::1) are
allowed over http or https without being listed in `allowed_hosts`: a developer's receiver on
`http://127.0.0.1:8080/hook` needs no policy entry of its own.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import idna

from clipmesh.runtime.errors import InvalidArgument
from clipmesh.runtime.policy import WebhookRules

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
FIELD = "webhook_url"

URL_INVALID = "WEBHOOK_URL_INVALID"
SCHEME_NOT_ALLOWED = "WEBHOOK_SCHEME_NOT_ALLOWED"
HOST_NOT_ALLOWED = "WEBHOOK_HOST_NOT_ALLOWED"
ADDRESS_NOT_ALLOWED = "WEBHOOK_ADDRESS_NOT_ALLOWED"

_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_PORT = re.compile(r"[0-9]{1,5}")
# Characters a request target may hold as they are (RFC 3986 reserved and unreserved, and `%`
# of escapes already made); anything else is percent-encoded as UTF-8.
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"
# Invisible or spacing characters: controls, format characters (zero-width joiners,
# bidirectional overrides, soft hyphens) and separators. A URL holding one reads differently
# from what it requests.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL, in the pieces a request needs.

    Attributes:
        url: The URL as it will be requested (scheme, host and target normalised).
        scheme: `https`, or `http` for a loopback receiver in development.
        host: A lower-case ASCII host name (IDNA), or an IP address without brackets (IPv4,
            IPv4-mapped IPv6 included, in dotted-quad form; IPv6 compressed).
        port: The TCP port (the scheme's default when the URL names none).
        target: Path and query, at least `/`.
    """

    url: str
    scheme: str
    host: str
    port: int
    target: str


def check_webhook_url(
    url: str, rules: WebhookRules, caller_hosts: tuple[str, ...] = ()
) -> WebhookTarget:
    """Checks a job's `webhook_url` against the policy's webhook rules.

    Args:
        url: The URL as the caller gave it.
        rules: The policy's webhook rules.
        caller_hosts: The caller's own `webhook_hosts`, allowed besides `rules.allowed_hosts`.

    Raises:
        InvalidArgument: The URL may not be used; `field` is `webhook_url` and `reason` one of
            WEBHOOK_URL_INVALID, WEBHOOK_SCHEME_NOT_ALLOWED, WEBHOOK_HOST_NOT_ALLOWED and
            WEBHOOK_ADDRESS_NOT_ALLOWED.
    """
    if not url:
        raise _invalid("webhook_url is empty")
    if len(url) > MAX_URL_CHARS:
        raise _invalid(f"webhook_url holds {len(url):,} characters; at most {MAX_URL_CHARS:,}")
    _refuse_ambiguous_characters(url)
    absolute = _ABSOLUTE.fullmatch(url)
    if absolute is None:
        raise _invalid("webhook_url is not an absolute URL (https://host/path)")
    scheme, rest = absolute[1].lower(), absolute[2]
    if scheme not in DEFAULT_PORTS:
        raise _refused(SCHEME_NOT_ALLOWED, f"webhook_url scheme {scheme!r}: webhooks use https")
    if not rest.startswith("//"):
        raise _invalid("webhook_url names no host (https://host/path)")
    if "#" in rest:
        raise _invalid("webhook_url has a fragment (#…), which is never sent to a receiver")
    authority, target = _split_target(rest[2:])
    if "@" in authority:
        raise _invalid("webhook_url carries user information (user@host); it is not allowed")
    host_text, port = _split_port(authority, DEFAULT_PORTS[scheme])
    host, ip = _parse_host(host_text)
    loopback = _is_loopback_host(host, ip)
    if ip is not None and (refusal := address_refusal(ip, rules)) is not None:
        raise _refused(ADDRESS_NOT_ALLOWED, f"webhook_url host {host} is {refusal}")
    if ip is None and loopback and not (rules.allow_http_loopback or rules.allow_private_networks):
        raise _refused(ADDRESS_NOT_ALLOWED, f"webhook_url host {host} is a loopback name")
    if scheme == "http" and not (loopback and rules.allow_http_loopback):
        raise _refused(
            SCHEME_NOT_ALLOWED,
            "webhook_url uses http; webhooks use https (http only to loopback in development)",
        )
    exempt = loopback and rules.allow_http_loopback
    if not exempt and not host_allowed(host, ip, (*rules.allowed_hosts, *caller_hosts)):
        raise _refused(
            HOST_NOT_ALLOWED,
            f"webhook_url host {host} is not an allowed webhook host (the policy's "
            "webhooks.allowed_hosts and the caller's webhook_hosts)",
        )
    bracketed = f"[{host}]" if isinstance(ip, ipaddress.IPv6Address) else host
    shown_port = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    return WebhookTarget(f"{scheme}://{bracketed}{shown_port}{target}", scheme, host, port, target)


def host_allowed(host: str, ip: IPAddress | None, allowed: tuple[str, ...]) -> bool:
    """Whether `host` (`ip` when it is an IP literal) is one of the `allowed` entries.

    An entry is an exact host name, `*.domain` (one or more labels under `domain`, never
    `domain` itself) or an IP address, compared as an address (`::ffff:10.0.0.1` is
    `10.0.0.1`, and `127.1` is `127.0.0.1`).
    """
    for raw_entry in allowed:
        entry = raw_entry.lower().strip("[]")
        if entry.startswith("*."):
            if ip is None and host.endswith(entry[1:]):
                return True
            continue
        entry_ip = _ip_entry(entry)
        if entry_ip is None:
            if ip is None and host == entry:
                return True
        elif ip is not None and _unwrapped(ip) == _unwrapped(entry_ip):
            return True
    return False


def address_allowed(ip: IPAddress, rules: WebhookRules) -> bool:
    """Whether a webhook may connect to `ip` under `rules` (see `address_refusal`)."""
    return address_refusal(ip, rules) is None


# What `ipaddress` cannot tell apart: its `is_private` lumps private-use networks (which
# `allow_private_networks` opens) with documentation, benchmarking and "this network" (which
# nothing opens); it knows CGNAT as neither private nor global; and Python 3.11 predates the
# IPv6 documentation prefix 3fff::/20 (it calls it global).
_ALWAYS_REFUSED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), 'in "this network" (0.0.0.0/8)'),
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol assignment (192.0.0.0/24)"),
    (ipaddress.ip_network("192.0.2.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.51.100.0/24"), "a documentation address"),
    (ipaddress.ip_network("203.0.113.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking address"),
    (ipaddress.ip_network("2001:db8::/32"), "a documentation address"),
    (ipaddress.ip_network("3fff::/20"), "a documentation address"),
    (ipaddress.ip_network("2001:2::/48"), "a benchmarking address"),
    (ipaddress.ip_network("100::/64"), "a discard-only address"),
    # Local-use NAT64 prefixes embed the IPv4 address at operator-chosen offsets, so the
    # address they lead to cannot be read from them.
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),
)
_PRIVATE_USE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("10.0.0.0/8"), "a private address (RFC 1918)"),
    (ipaddress.ip_network("172.16.0.0/12"), "a private address (RFC 1918)"),
    (ipaddress.ip_network("192.168.0.0/16"), "a private address (RFC 1918)"),
    (ipaddress.ip_network("100.64.0.0/10"), "a carrier-grade NAT address (100.64.0.0/10)"),
    (ipaddress.ip_network("fc00::/7"), "a unique local (private) address"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What `ipaddress` does tell apart well, as the property that tells it.
_REFUSED_KINDS = (
    ("is_unspecified", "the unspecified address"),
    ("is_link_local", "a link-local address (where cloud metadata services answer)"),
    ("is_multicast", "a multicast address"),
    ("is_site_local", "a site-local address"),  # IPv6 only
    ("is_reserved", "a reserved address"),  # incl. 240.0.0.0/4 and the broadcast address
)


def address_refusal(ip: IPAddress, rules: WebhookRules) -> str | None:
    """Why a webhook may not connect to `ip` ("a link-local address …"), or None when it may.

    Refused: unspecified, loopback, link-local (the cloud metadata services), multicast,
    reserved, broadcast, documentation, benchmarking, "this network", carrier-grade NAT,
    private-use and any other address the IANA registries do not call global; an IPv6 address
    that carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) when that IPv4
    address is refused. `allow_private_networks` opens private-use, carrier-grade NAT and
    loopback addresses; `allow_http_loopback` opens loopback. Nothing opens link-local,
    multicast, reserved or the special-purpose ranges: no receiver legitimately lives there.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded, how in _embedded_ipv4(ip):
            refusal = address_refusal(embedded, rules)
            if refusal is not None:
                return f"{how} of {embedded}, {refusal}"
        # A mapped or NAT64 address reaches exactly its IPv4 address, judged above.
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None
    if ip.is_loopback:
        opened = rules.allow_http_loopback or rules.allow_private_networks
        return None if opened else "a loopback address"
    for kind, what in _REFUSED_KINDS:
        if getattr(ip, kind, False):
            return what
    for network, what in _ALWAYS_REFUSED:
        if ip in network:
            return what
    for network, what in _PRIVATE_USE:
        if ip in network:
            return None if rules.allow_private_networks else what
    # The stdlib's registry catches what the lists above do not name (e.g. 2001::/23).
    if not ip.is_global:
        return "not a globally routable address"
    return None


def parse_ipv4_forms(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written as numbers stands for, or None for a host name.

    Resolvers (inet_aton) and browsers (WHATWG URL) read a host whose last label is a number as
    an IPv4 address in any of its old forms: `127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`.
    Each is read here as they read it, so that none passes as a name.

    Raises:
        ValueError: The host ends in a number but is no IPv4 address (`1.2.3.4.5`, `256.1.1.1`).
    """
    parts = host.split(".")
    if not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", parts[-1]):
        return None
    if len(parts) > 4:
        raise ValueError(f"{host} has more than four numbers")
    *leading, last = [_ipv4_number(part, host) for part in parts]
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"{host} holds a number too large for an IPv4 address")
    value = last
    for i, number in enumerate(leading):
        value += number << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str, host: str) -> int:
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
        return int(part[2:] or "0", 16)
    if re.fullmatch(r"0[0-7]+", part):
        return int(part, 8)
    if re.fullmatch(r"0|[1-9][0-9]*", part):
        return int(part)
    raise ValueError(f"{host} holds {part!r}, which is not a decimal, octal or hex number")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address carries, each with the way it carries it."""
    if ip.ipv4_mapped is not None:
        return [(ip.ipv4_mapped, "an IPv4-mapped address")]
    if ip in _NAT64:
        return [(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "a NAT64 address")]
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return [(ipaddress.IPv4Address(int(ip)), "an IPv4-compatible address")]
    if ip.sixtofour is not None:
        return [(ip.sixtofour, "a 6to4 address")]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [(server, "a Teredo address (server)"), (client, "a Teredo address (client)")]
    return []


def _unwrapped(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ip_entry(entry: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        pass
    try:
        return parse_ipv4_forms(entry)
    except ValueError:
        return None


def _is_loopback_host(host: str, ip: IPAddress | None) -> bool:
    if ip is not None:
        return _unwrapped(ip).is_loopback
    # RFC 6761: `localhost` and every name under it are loopback.
    return host == "localhost" or host.endswith(".localhost")


def _refuse_ambiguous_characters(url: str) -> None:
    for position, char in enumerate(url):
        if char == "\\":
            # WHATWG parsers read `\` as `/` and RFC 3986 parsers as data: the host differs.
            raise _invalid(f"webhook_url holds a backslash (at {position})")
        if char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise _invalid(
                f"webhook_url holds a space, control or invisible character "
                f"U+{ord(char):04X} (at {position})"
            )


def _split_target(rest: str) -> tuple[str, str]:
    """`host:port/path?query` → (`host:port`, `/path?query`), the target percent-encoded."""
    end = next((i for i, char in enumerate(rest) if char in "/?"), len(rest))
    authority, target = rest[:end], rest[end:]
    if not target.startswith("/"):
        target = "/" + target
    return authority, quote(target, safe=_TARGET_SAFE)


def _split_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _invalid("webhook_url has an unclosed [ in its host")
        host_text, after = authority[: end + 1], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise _invalid("webhook_url has characters after its ]")
        port_text = after[1:] if after else None
    elif authority.count(":") > 1:
        raise _invalid("an IPv6 address in a URL is written in brackets: https://[2001:db8::1]/")
    else:
        host_text, colon, port_text = authority.partition(":")
        port_text = port_text if colon else None
    if port_text is None:
        return host_text, default_port
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise _invalid(f"webhook_url port {port_text[:16]!r} is not a port number (1-65535)")
    return host_text, int(port_text)


def _parse_host(host_text: str) -> tuple[str, IPAddress | None]:
    """(normalised host, its address when it is an IP literal)."""
    if not host_text:
        raise _invalid("webhook_url has an empty host")
    if host_text.startswith("["):
        address, percent, _zone = host_text[1:-1].partition("%")
        try:
            ip = ipaddress.IPv6Address(address)
        except ValueError as exc:
            raise _invalid(f"webhook_url host {host_text[:64]} is not an IPv6 address") from exc
        if percent:
            raise _refused(
                ADDRESS_NOT_ALLOWED,
                f"webhook_url host {host_text[:64]} names an interface of this machine (a zone)",
            )
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped), ip.ipv4_mapped  # ::ffff:a.b.c.d is a.b.c.d
        return ip.compressed, ip
    if "%" in host_text:
        raise _invalid("webhook_url host is percent-encoded; write it as it is")
    try:
        # UTS 46 maps what resolvers map (case, full-width forms) and IDNA 2008 encodes the
        # rest, so the name checked is the name resolved: `аllowed.example` (Cyrillic а) is
        # xn--llowed-2nf.example, which no allowed entry names.
        host = idna.encode(host_text, uts46=True, std3_rules=True).decode("ascii")
    except UnicodeError as exc:
        raise _invalid(f"webhook_url host {host_text[:64]!r} is not a valid host name") from exc
    if host.endswith("."):
        raise _invalid(f"webhook_url host {host} ends in a dot; write it without")
    try:
        ipv4 = parse_ipv4_forms(host)
    except ValueError as exc:
        raise _invalid(f"webhook_url host: {exc}") from exc
    return (str(ipv4), ipv4) if ipv4 is not None else (host, None)


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, field=FIELD, reason=URL_INVALID)


def _refused(reason: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, field=FIELD, reason=reason)
