"""Which URLs the service may fetch media from. Label Studio's own origins (scheme, host and port: the one in
the settings and the one /setup named) and the MEDIA_ALLOWLIST are trusted; any other host is fetched only
when every address its name resolves to is public. So a task cannot make the service read loopback, link-local
(cloud metadata) or private-network services, and Label Studio on 127.0.0.1:8080 does not make 127.0.0.1:6379
reachable. Every redirect hop is checked again by the caller."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlparse

from utils.service.errors import MediaError

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def origin_of(url: str) -> Origin | None:
    """`(scheme, host, port)` of an http(s) URL, ports defaulted; None for anything else."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        return None
    scheme, host = parsed.scheme.lower(), (parsed.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class OutboundPolicy:
    """`allowlist` entries are origins (`http://10.0.0.5:8081`), host names (any port) or IP networks
    (`10.0.0.0/8`, `192.168.1.7`)."""

    def __init__(self, allowlist: Iterable[str] = ()):
        self.origins: set[Origin] = set()
        self.hosts: set[str] = set()
        self.networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allowlist):
            if not entry:
                continue
            if "://" in entry:
                origin = origin_of(entry)
                if origin is None:
                    raise ValueError(f"MEDIA_ALLOWLIST entry {entry!r} is not an http(s) origin")
                self.origins.add(origin)
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower())

    def check(self, url: str, trusted_origins: Iterable[str] = ()) -> None:
        """Return when `url` may be fetched; MediaError saying why not otherwise."""
        origin = origin_of(url)
        if origin is None:
            scheme = url.split(":", 1)[0] if ":" in url else ""
            raise MediaError(f"scheme {scheme!r}: only http and https URLs with a host are fetched")
        trusted = self.origins | {o for o in map(origin_of, trusted_origins) if o is not None}
        if origin in trusted or origin[1] in self.hosts:
            return
        scheme, host, port = origin
        where = (
            f"{scheme}://{host}:{port}"  # never the path or query: a presigned URL's signature is a secret
        )
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise MediaError(f"{where}: host does not resolve: {exc}") from exc
        for info in infos:
            address = _address(str(info[4][0]))
            if not address.is_global and not any(address in net for net in self.networks):
                raise MediaError(
                    f"{where}: {host} resolves to the non-public address {address}; media is fetched from "
                    "Label Studio's own origin, public hosts, or hosts listed in MEDIA_ALLOWLIST"
                )
