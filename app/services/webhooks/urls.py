"""Which callback URLs the service may POST to: the guard against server-side request forgery.

Pure checks, made twice: on the URL as given (`check_url`, when a prediction or a deployment names
it: 422 `callback_url_refused`), and on every address its host resolves to when a callback is
delivered (`check_address`, from `transport`): a name may resolve to a private address, from the
start or only later (DNS rebinding). The URL is read by httpx, the client that sends it, so the
guard and the request see one host."""

import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from app.core.config import Settings, comma_separated
from app.core.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
# Names that mean this machine whatever DNS says (RFC 6761): treated as its loopback address.
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# What the C library reads as an IPv4 address besides dotted quads (`127.1`, `0x7f.1`,
# `2130706433`); anything else made of these characters is a name.
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


class CallbackRefused(Exception):
    """A callback URL, or an address its host resolves to, that the policy forbids; the message
    says why."""


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """WEBHOOK_ALLOWED_HOSTS (exact names and IP literals in `hosts`, `*.` entries as the
    `.suffix` they allow) and WEBHOOK_ALLOWED_NETWORKS. No hosts: any host is allowed."""

    hosts: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, settings: Settings) -> "UrlPolicy":
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in comma_separated(settings.webhook_allowed_hosts.lower()):
            if entry.startswith("*."):
                suffixes.append(_without_root(entry[1:]))
            else:
                name = _without_root(entry)
                literal = _ip_literal(name)
                hosts.add(name if literal is None else str(literal))
        networks = tuple(
            ipaddress.ip_network(entry, strict=False)
            for entry in comma_separated(settings.webhook_allowed_networks)
        )
        return cls(frozenset(hosts), tuple(suffixes), networks)

    def allows_host(self, host: str) -> bool:
        if not self.hosts and not self.suffixes:
            return True
        return host in self.hosts or host.endswith(self.suffixes)


def check_url(url: str, policy: UrlPolicy) -> None:
    """Refuse (`CallbackRefused`) a URL that is not plain http(s) to an allowed host, or whose host
    is an address (or a loopback name) outside the public internet and the allowed networks."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise CallbackRefused("it is not a valid URL") from exc
    if parsed.scheme not in SCHEMES:
        raise CallbackRefused("only http and https URLs are allowed")
    if parsed.userinfo:
        raise CallbackRefused("a user name or password in the URL is not allowed")
    if port is not None and not 0 < port < 65536:
        raise CallbackRefused(f"port {port} is out of range")
    name = _without_root(parsed.raw_host.decode("ascii").lower())
    literal = _ip_literal(name)
    host = name if literal is None else str(literal)
    if literal is None and not _HOSTNAME.fullmatch(host):
        raise CallbackRefused("its host is not a valid host name or IP address")
    if not policy.allows_host(host):
        raise CallbackRefused(f"the host {host!r} is not in WEBHOOK_ALLOWED_HOSTS")
    if literal is not None:
        check_address(literal, policy)
    elif host in LOOPBACK_NAMES or host.endswith(".localhost"):
        check_address(LOOPBACK, policy, host)


def check_address(address: IPAddress, policy: UrlPolicy, host: str | None = None) -> None:
    """Refuse an address that is not public (loopback, private, link-local, multicast, reserved,
    unspecified, or otherwise not globally reachable) unless WEBHOOK_ALLOWED_NETWORKS holds it.
    An IPv4-mapped IPv6 address is judged as the IPv4 address it is."""
    effective = _unmapped(address)
    if any(effective in network or address in network for network in policy.networks):
        return
    kind = _non_public_kind(effective)
    if kind is not None:
        named = f"{host} is {effective}, a" if host else f"{effective} is a"
        raise CallbackRefused(f"{named} {kind} address (not in WEBHOOK_ALLOWED_NETWORKS)")


def checked_callback(settings: Settings, url: str | None) -> str | None:
    """`url` as given when the policy allows it (None stays None); 422 `callback_url_refused`
    naming the field `callback_url` otherwise."""
    if url is not None:
        try:
            check_url(url, UrlPolicy.of(settings))
        except CallbackRefused as refused:
            raise Unprocessable(
                "callback_url_refused", f"callback_url is refused: {refused}.", field="callback_url"
            ) from refused
    return url


# Not public either, whatever the interpreter's tables say: site-local IPv6 (deprecated, still
# routed inside some networks), and 192.0.0.0/24 (IETF protocol assignments), which the standard
# library counted as global before Python 3.11.10.
_ALSO_NON_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("192.0.0.0/24"))


def _non_public_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        # 6to4 and Teredo carry an IPv4 address inside: judged by it (2002:a9fe:a9fe:: is
        # 169.254.169.254, the cloud metadata service, through a 6to4 relay).
        inside = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inside is not None and (kind := _non_public_kind(inside)) is not None:
            return kind
    if any(address in network for network in _ALSO_NON_PUBLIC):
        return "reserved"
    for kind, applies in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ):
        if applies:
            return kind
    return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host written as one stands for, legacy IPv4 spellings included."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _without_root(name: str) -> str:
    """`example.com.` (the DNS root spelled out) is `example.com`."""
    return name[:-1] if name.endswith(".") else name
