"""Per-pair trade statistics of the simulated venue, as Ticker reports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PairStats:
    """What Ticker reports: trades since the venue started (our "today")."""

    last_price: int = 0
    last_qty: int = 0
    volume: int = 0
    value_int: int = 0  # sum of price x volume, for the VWAP
    trades: int = 0
    high: int = 0
    low: int = 0
    open_price: int = 0

    @property
    def vwap_int(self) -> int:
        return self.value_int // self.volume if self.volume else 0

    def record(self, price: int, volume: int) -> None:
        if not self.trades:
            self.open_price = self.low = self.high = price
        self.last_price, self.last_qty = price, volume
        self.volume += volume
        self.value_int += price * volume
        self.trades += 1
        self.high, self.low = max(self.high, price), min(self.low, price)
