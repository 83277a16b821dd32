"""What a WebSocket v2 connection is subscribed to, kept across reconnects."""

from __future__ import annotations

from typing import Any, Final

import msgspec

PRIVATE_CHANNELS: Final = frozenset({"executions", "balances"})


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """One wanted subscription: a channel, maybe a symbol, and its channel parameters."""

    channel: str
    symbol: str | None = None
    depth: int | None = None
    snapshot: bool = True
    extra: tuple[tuple[str, Any], ...] = ()

    def unsubscribe_params(self) -> dict[str, Any]:
        """What identifies the subscription (Kraken wants `depth` repeated for books)."""
        params: dict[str, Any] = {"channel": self.channel}
        if self.symbol is not None:
            params["symbol"] = [self.symbol]
        if self.depth is not None:
            params["depth"] = self.depth
        return params

    def params(self, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": self.channel, **dict(self.extra)}
        if self.symbol is not None:
            params["symbol"] = [self.symbol]
        if self.depth is not None:
            params["depth"] = self.depth
        if self.channel in PRIVATE_CHANNELS:
            params["snap_orders" if self.channel == "executions" else "snapshot"] = self.snapshot
            params["token"] = token
        else:
            params["snapshot"] = self.snapshot
        return params
