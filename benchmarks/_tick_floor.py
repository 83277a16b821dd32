"""The tick-to-order floor: the path's three hops with no product code, for context (not graded).

A bare client on uvloop: it reads a tick's `book` frame (websockets, as the product connects),
decodes it (msgspec, untyped), asks Redis one EVALSHA of `return 1` on the same kind of client as
the limiter's, and writes an `amend_order` priced at the new best bid. What the product's path
costs above this is the product's; this much is the host's (processes waking each other up,
loopback TCP, the libraries underneath).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from benchmarks._tick_venue import VenueAddress
from orchestrator.store.connection import redis_client

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_BOOK_SUBSCRIBE = {
    "method": "subscribe",
    "params": {"channel": "book", "depth": 10, "symbol": ["BTC/USD"]},
}
_FIRST_ORDER = {
    "method": "add_order",
    "req_id": 1,
    "params": {
        "order_type": "limit",
        "side": "buy",
        "symbol": "BTC/USD",
        "order_qty": msgspec.Raw(b"0.001"),
        "limit_price": msgspec.Raw(b"1.0"),
        "cl_ord_id": "floor",
    },
}


def _best_bid(frame: bytes) -> Any:
    """The price of the bid level a tick added (the new best bid), or None for other frames."""
    message = _decode(frame)
    if message.get("channel") != "book" or message.get("type") != "update":
        return None
    return next((level["price"] for level in message["data"][0]["bids"] if level["qty"]), None)


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def run_floor(venue: VenueAddress, redis_url: str, stop: Any) -> dict[str, float]:
    redis = redis_client(redis_url)
    try:
        return await _follow(venue, redis, stop)
    finally:
        await redis.aclose()


async def _follow(venue: VenueAddress, redis: Any, stop: Any) -> dict[str, float]:
    sha = await redis.script_load("return 1")
    ids = itertools.count(2)
    amends = 0
    async with (
        connect(venue.ws_public_url, ping_interval=None) as public,
        connect(venue.ws_private_url, ping_interval=None) as private,
    ):
        await private.send(_encode(_FIRST_ORDER).decode())
        await public.send(_encode(_BOOK_SUBSCRIBE).decode())

        async def follow() -> None:
            nonlocal amends
            async for frame in public:
                price = _best_bid(frame if isinstance(frame, bytes) else frame.encode())
                if price is None:
                    continue
                await redis.evalsha(sha, 0)
                amend = {
                    "method": "amend_order",
                    "req_id": next(ids),
                    "params": {"order_id": "floor", "limit_price": price},
                }
                await private.send(_encode(amend).decode())
                amends += 1

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(follow()), tg.create_task(_drain(private))]
            await asyncio.to_thread(stop.wait)
            for task in tasks:
                task.cancel()
    return {"amends": float(amends)}
