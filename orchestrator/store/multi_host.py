"""The part Sentinel and Cluster URLs share: `scheme://[user:password@]host:port,host:port...`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from orchestrator.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    parts: SplitResult  # the path and query, for the caller to read


def split_multi_host(url: str, *, scheme: str, default_port: int, what: str) -> MultiHostUrl:
    """The hosts and credentials of `url`; `ConfigError` naming `redis.url` (never the
    password) when it does not start with `scheme` or a host is not host[:port]. `what`
    names a host in errors ("sentinel", "cluster node")."""
    if not url.startswith(scheme):
        raise ConfigError("redis.url", f"this URL starts with {scheme}")
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    found = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", str(default_port))
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("redis.url", f"{what} {host!r} is not host:port")
        found.append((name, int(port)))
    return MultiHostUrl(tuple(found), unquote(username) or None, unquote(password) or None, parts)
