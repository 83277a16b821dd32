"""The HTTP edge: one seam between the Kraken clients and aiohttp, and aiohttp's errors mapped once.

Clients hand a `Transport` a fully signed request and get the status and body back, so unit
tests swap in `MockTransport` (no sockets, like httpx's mock transport) and the same client code
runs against Kraken, the simulator or a scripted handler.

What a transport failure means (docs/outcomes.md):
- the connection could not be opened: nothing was sent, so nothing executed -> `VenueUnavailable`;
- anything after the request may have left (timeout, reset, server closed the connection, a
  broken payload): for a call that acts the venue may have executed it -> `AmbiguousOutcome`;
  for a query it is only `VenueUnavailable`, and the client may ask again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Final, NamedTuple, Protocol

import aiohttp
from yarl import URL

from orchestrator.errors import AmbiguousOutcome, VenueUnavailable

USER_AGENT: Final = "orchestrator/0.1"


class HttpRequest(NamedTuple):
    method: str  # GET, POST, PUT
    url: str  # already encoded, query included
    headers: Mapping[str, str]
    body: bytes | None


class HttpReply(NamedTuple):
    status: int
    body: bytes


class Transport(Protocol):
    async def send(self, request: HttpRequest, *, call: str, acting: bool) -> HttpReply:
        """Send once. Raises `VenueUnavailable` when nothing can have executed and
        `AmbiguousOutcome` when an acting `call` may have (see the module's table)."""
        ...


@contextlib.contextmanager
def http_errors(call: str, *, acting: bool) -> Iterator[None]:
    """aiohttp's (and the socket's) errors in our tree, decided by whether the call acts."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:  # the TCP/TLS connect failed: nothing left
        raise VenueUnavailable(f"{call}: cannot connect ({type(exc).__name__})") from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        if acting:
            raise AmbiguousOutcome(
                f"{call}: no reply ({type(exc).__name__}); the venue may have acted"
            ) from exc
        raise VenueUnavailable(f"{call}: {type(exc).__name__}") from exc


class AiohttpTransport:
    """The real transport: one aiohttp session (shared by every client of the process)."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, request: HttpRequest, *, call: str, acting: bool) -> HttpReply:
        with http_errors(call, acting=acting):
            async with self.session.request(
                request.method,
                URL(request.url, encoded=True),
                data=request.body,
                headers={"User-Agent": USER_AGENT, **request.headers},
                timeout=self.timeout,
            ) as resp:
                return HttpReply(resp.status, await resp.read())


Handler = Callable[[HttpRequest], Awaitable[HttpReply]]


class MockTransport:
    """A transport for unit tests: `handler` answers each request (or raises, e.g.
    `TimeoutError` or `aiohttp.ServerDisconnectedError`, mapped exactly as the real one)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest, *, call: str, acting: bool) -> HttpReply:
        self.requests.append(request)
        with http_errors(call, acting=acting):
            return await self.handler(request)
