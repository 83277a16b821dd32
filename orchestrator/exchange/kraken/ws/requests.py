"""Requests sent over a WebSocket v2 connection with a `req_id`, waiting for their replies.

What a missing reply means depends on the method (Kraken's method table): a trading method
that got no answer (timeout, link lost) may have executed, so its caller gets
`AmbiguousOutcome` and reconciles; anything else is just `VenueUnavailable`.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from orchestrator.errors import AmbiguousOutcome, VenueError, VenueUnavailable
from orchestrator.exchange.kraken.common.errors import to_exception
from orchestrator.exchange.kraken.common.methods import BY_WS_NAME

Reply = dict[str, Any]


def acting(method: str) -> bool:
    """Whether a WS method changes state at the venue."""
    row = BY_WS_NAME.get(method)
    return row is not None and row.acting


def unanswered(method: str, why: str) -> VenueError:
    """The error for a request whose reply never came."""
    error = AmbiguousOutcome if acting(method) else VenueUnavailable
    return error(f"{method}: {why}")


class PendingRequests:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, asyncio.Future[Reply]]] = {}

    def next_id(self) -> int:
        """A fresh `req_id` (also for requests nobody waits on, like pings)."""
        return next(self._ids)

    def open(self, method: str) -> tuple[int, asyncio.Future[Reply]]:
        req_id = self.next_id()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = (method, future)
        return req_id, future

    def forget(self, req_id: int) -> None:
        self._waiting.pop(req_id, None)

    def resolve(self, req_id: int | None, error: str | None, reply: Reply | None) -> bool:
        """Hand a reply to its waiter: `error` (Kraken's code) or the decoded `reply`. False when
        nobody waits for `req_id` (late, or never ours)."""
        waiting = self._waiting.pop(req_id, None) if req_id is not None else None
        if waiting is None:
            return False
        method, future = waiting
        if not future.done():
            if error is not None:
                future.set_exception(to_exception([error], acting=acting(method), method=method))
            else:
                future.set_result(reply or {})
        return True

    def fail_all(self, why: str) -> None:
        """The link is gone: every waiter hears so, ambiguously for trading methods."""
        for method, future in self._waiting.values():
            if not future.done():
                future.set_exception(unanswered(method, why))
        self._waiting.clear()
