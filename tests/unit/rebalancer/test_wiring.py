"""The wiring's pure parts: transfer precision per asset, USD prices from the hub's books, and
the band watch that asks for a cycle when a strategy's own feed shows its balance left a band."""

from __future__ import annotations

from decimal import Decimal as D
from typing import cast

from orchestrator.clock import ManualClock
from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.rebalancer.plan import Band
from orchestrator.rebalancer.wiring import BandWatch, CyclePlanner, asset_decimals, usd_prices
from orchestrator.strategy import BookView


def instrument(base: str, quote: str, wsname: str, *, price_decimals: int,
               qty_decimals: int) -> Instrument:  # fmt: skip
    return Instrument(rest_name=base + quote, altname=wsname.replace("/", ""), wsname=wsname,
                      symbol=wsname, base=base, quote=quote, price_decimals=price_decimals,
                      qty_decimals=qty_decimals, tick_size=D(1).scaleb(-price_decimals),
                      ordermin=D("0.0001"), costmin=D("0.5"))  # fmt: skip


INSTRUMENTS = Instruments([
    instrument("XXBT", "ZUSD", "XBT/USD", price_decimals=1, qty_decimals=8),
    instrument("XETH", "ZUSD", "ETH/USD", price_decimals=2, qty_decimals=8),
    instrument("XETH", "XXBT", "ETH/XBT", price_decimals=5, qty_decimals=8),
])  # fmt: skip


class Book:
    def __init__(self, mid: D | None) -> None:
        self.mid = mid


class Books:
    def __init__(self, mids: dict[str, D | None]) -> None:
        self.mids = mids

    def book(self, pair: str) -> BookView | None:
        return cast(BookView, Book(self.mids[pair])) if pair in self.mids else None


def test_an_asset_moves_at_its_volume_decimals_or_else_at_the_price_decimals_it_quotes() -> None:
    assert asset_decimals(INSTRUMENTS) == {"XXBT": 8, "XETH": 8, "ZUSD": 2}


def test_usd_prices_are_the_mids_of_usd_books_and_usd_is_one() -> None:
    prices = usd_prices(INSTRUMENTS, Books({"XBT/USD": D(60000), "ETH/USD": None}))
    assert prices == {"XXBT": D(60000), "ZUSD": D(1), "USD": D(1)}  # ETH: no mid yet


class Planner:
    def __init__(self, bands: list[Band]) -> None:
        self.bands = bands


async def test_a_band_left_asks_for_a_cycle_once_per_interval() -> None:
    clock = ManualClock()
    band = Band(account="sub1", asset="ZUSD", target=D(100), low=D(50), high=D(200))
    live = {"sub1": D(120)}
    watch = BandWatch(cast(CyclePlanner, Planner([band])),
                      lambda account, asset: live.get(account), clock, every_s=30)  # fmt: skip
    assert watch() == []  # in band
    live["sub1"] = D(40)
    assert watch() == ["band:sub1:ZUSD"]
    assert watch() == []  # asked already: a move takes a cycle or two to show
    live["sub1"] = D(250)
    assert watch() == []
    await clock.advance(30)
    assert watch() == ["band:sub1:ZUSD"]
    live.clear()  # no strategy trades from it here: nothing to say
    await clock.advance(30)
    assert watch() == []
