"""Waiting for an HTTP endpoint of a test's child (a service, a simulator) to answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """GET `url`: its status and body (parsed when JSON, else text)."""
    async with session.get(url) as reply:
        json = reply.content_type == "application/json"
        return reply.status, await reply.json() if json else await reply.text()


async def until_status(
    session: aiohttp.ClientSession,
    url: str,
    status: int = 200,
    *,
    timeout_s: float = 15.0,
    alive: Callable[[], bool] = lambda: True,
) -> Any:
    """Poll `url` until it answers `status`: the body it then sent. Refused connections are
    waited out; `AssertionError` after `timeout_s`, or as soon as `alive()` says the process
    that should answer has gone."""
    deadline_s = time.monotonic() + timeout_s
    seen: tuple[int, Any] | str = "no answer"
    while time.monotonic() < deadline_s:
        assert alive(), f"the process behind {url} exited"
        try:
            seen = await fetch(session, url)
        except aiohttp.ClientError as exc:
            seen = type(exc).__name__
        else:
            if seen[0] == status:
                return seen[1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s} s: {seen}")
