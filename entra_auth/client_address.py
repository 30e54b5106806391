"""The client's IP address: ``REMOTE_ADDR``, or, behind trusted proxies, ``X-Forwarded-For``.

``X-Forwarded-For`` is read only when the direct peer is one of ``TRUSTED_PROXIES``; then
the right-most address that is not a trusted proxy is the client. Anything else in the
header is what the client claims, and a client could claim anything.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from .conf import entra_settings

UNKNOWN_CLIENT = "unknown"
FORWARDED_FOR_HEADER = "HTTP_X_FORWARDED_FOR"


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parse(address: str) -> Any | None:
    """An address; IPv4 seen through a dual-stack socket (``::ffff:a.b.c.d``) as IPv4."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    return getattr(parsed, "ipv4_mapped", None) or parsed


def _is_trusted(address: Any, networks: tuple[Any, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: Any) -> str:
    """The address of whoever sent the request, as far as trusted proxies can tell."""
    peer = _parse(request.META.get("REMOTE_ADDR") or "")
    if peer is None:
        return UNKNOWN_CLIENT
    networks = _networks(tuple(entra_settings.TRUSTED_PROXIES))
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    hops = request.META.get(FORWARDED_FOR_HEADER, "").split(",")
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # A malformed hop cannot be trusted, nor can anything to its left.
            return str(peer)
        if not _is_trusted(address, networks):
            return str(address)
        peer = address
    return str(peer)
