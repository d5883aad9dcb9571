"""A guard for feed URLs that a chat user supplies: public http(s) hosts only.

Feed URLs the operator sets in settings are trusted and skip this. A URL that
comes from chat could point the bot at its own network (SSRF): loopback,
private ranges, link-local (which holds the cloud metadata service at
169.254.169.254) and other non-global addresses are refused. `FeedClient`
calls the guard on the first URL and again on every redirect hop.

The host is resolved here and every address it resolves to must be global.
A host that changes its answer between this check and the connection (DNS
rebinding) is not caught; the redirect check still stops the common attack.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import httpx

from bot.sources.feed_http import FeedError

Resolver = Callable[[str], Iterable[str]]
# Metadata services that sit on otherwise global-looking addresses.
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class UnsafeUrl(FeedError):
    pass


def resolve_host(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnsafeUrl(f"cannot resolve {host[:100]!r}: {exc}") from None
    return [str(info[4][0]) for info in infos]


class PublicUrlGuard:
    def __init__(self, resolve: Resolver = resolve_host) -> None:
        self._resolve = resolve

    def __call__(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise UnsafeUrl(f"only http(s) feed URLs are allowed, not {url.scheme[:10]!r}")
        host = url.host.rstrip(".").lower()
        if not host:
            raise UnsafeUrl("the feed URL has no host")
        if host in _METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
            raise UnsafeUrl(f"the feed host {host!r} is not public")
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            addresses = list(self._resolve(host))
        if not addresses:
            raise UnsafeUrl(f"{host!r} resolves to no address")
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeUrl(f"the feed host {host!r} resolves to non-public {address}")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    # is_global excludes loopback, private, link-local (metadata), shared and reserved.
    return ip.is_global and not ip.is_multicast
