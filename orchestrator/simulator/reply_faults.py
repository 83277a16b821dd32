"""Faults after the venue acted: which one a request gets, and how each is done to a connection.

The three ambiguous outcomes a client must reconcile, each struck after the venue carried the
request out (its state change is kept):
- lost: no reply. Over HTTP the connection is closed without a response (FIN: aiohttp raises
  `ServerDisconnectedError`) or, with `lost_reply_hold_s`, held silent until the client times out;
- garbled: a reply that is not Kraken's envelope (truncated JSON, or a proxy's HTML 502 page);
- reset: the TCP connection is reset (RST: aiohttp raises `ClientOSError`, errno 104).

`choose` is deterministic for the counted faults (`*_next`) and draws from the venue's seeded RNG
only for `lost_reply_rate`. The HTTP shells (spot, futures) call `strike`; the WS shell does its
own version in `ws_session` with `close_transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from typing import Final, Literal

from aiohttp import web

from orchestrator.simulator.settings import FaultSettings, GarbledBody
from orchestrator.simulator.venue import Venue

ReplyFault = Literal["lost", "garbled", "reset"]
# Set when the simulator stops: replies held silent by the lost-reply fault end then.
RELEASE_KEY: Final = web.AppKey("held_replies_release", asyncio.Event)
HTML_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_LINGER_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def _targets(methods: tuple[str, ...], method: str, *, acting: bool) -> bool:
    return method in methods if methods else acting


def choose(
    faults: FaultSettings, rng: random.Random, method: str, *, acting: bool
) -> ReplyFault | None:
    """The reply fault for one request the venue carried out, consuming its count; or None.

    `method` is the name the filters use; `acting` says whether the request changes state
    (unfiltered faults strike only those).
    """
    if faults.lost_reply_next > 0 and _targets(faults.lost_reply_methods, method, acting=acting):
        faults.lost_reply_next -= 1
        return "lost"
    if faults.garbled_reply_next > 0 and _targets(
        faults.garbled_reply_methods, method, acting=acting
    ):
        faults.garbled_reply_next -= 1
        return "garbled"
    if faults.reset_reply_next > 0 and _targets(faults.reset_reply_methods, method, acting=acting):
        faults.reset_reply_next -= 1
        return "reset"
    if (
        faults.lost_reply_rate > 0
        and _targets(faults.lost_reply_methods, method, acting=acting)
        and rng.random() < faults.lost_reply_rate
    ):
        return "lost"
    return None


def garble(body: bytes) -> bytes:
    """The first half of a reply: never valid JSON (the closing brace is gone)."""
    return body[: len(body) // 2]


def close_transport(transport: asyncio.Transport | None, *, reset: bool) -> None:
    """Close the TCP connection at once, without flushing: a FIN, or with `reset` an RST."""
    if transport is None:  # the peer is already gone
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


def garbled_response(body: bytes, kind: GarbledBody) -> web.Response:
    if kind == "html_502":
        return web.Response(body=HTML_502, status=502, content_type="text/html")
    return web.Response(body=garble(body), status=200, content_type="application/json")


async def drop_reply(request: web.Request, hold_s: float) -> None:
    """The lost-reply fault: optionally stay silent for `hold_s`, then close without a reply."""
    if hold_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(request.app[RELEASE_KEY].wait(), hold_s)
    close_transport(request.transport, reset=False)


async def strike(
    venue: Venue, request: web.Request, fault: ReplyFault, reply: web.Response
) -> web.Response:
    """Do `fault` to the reply of an HTTP request the venue already carried out.

    After a lost or reset reply the connection is gone, so the response returned is never sent.
    """
    venue.count(f"fault:{fault}_reply")
    faults = venue.settings.faults
    if fault == "garbled":
        body = reply.body if isinstance(reply.body, bytes) else b""
        return garbled_response(body, faults.garbled_reply_body)
    if fault == "lost":
        await drop_reply(request, faults.lost_reply_hold_s)
    else:
        close_transport(request.transport, reset=True)
    return reply


def add_release(app: web.Application) -> None:
    """Let held replies end when the simulator stops (before aiohttp waits for handlers)."""
    app[RELEASE_KEY] = asyncio.Event()

    async def release(app: web.Application) -> None:
        app[RELEASE_KEY].set()

    app.on_shutdown.append(release)
