"""`trade` and `ticker` frames decoded typed, numbers exact; bad venue input counted, never raised.

Frames are built as docs/kraken/websocket.md section 4 shows them: JSON numbers (their text kept
with `msgspec.Raw`), RFC 3339 times, v2 symbols.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from orchestrator.exchange.instruments import Instrument, Instruments
from orchestrator.feeds.channels import MarketDecoder
from orchestrator.strategy import Ticker, Trade

_encode = msgspec.json.Encoder().encode


def _instrument(wsname: str, symbol: str, price_decimals: int) -> Instrument:
    return Instrument(rest_name=wsname.replace("/", ""), altname=wsname.replace("/", ""),
                      wsname=wsname, symbol=symbol, base="B", quote="Q",
                      price_decimals=price_decimals, qty_decimals=8,
                      tick_size=Decimal(1).scaleb(-price_decimals), ordermin=Decimal("0.0001"),
                      costmin=Decimal("0.5"))  # fmt: skip


REGISTRY = Instruments([_instrument("XBT/USD", "BTC/USD", 1), _instrument("ETH/USD", "ETH/USD", 2)])
T0 = "2023-09-25T07:49:37.708706Z"
T0_S = datetime(2023, 9, 25, 7, 49, 37, 708706, tzinfo=UTC).timestamp()


def num(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


def trade(symbol: str = "BTC/USD", price: str = "26310.3", qty: str = "0.02000000",
          side: str = "buy", timestamp: str = T0, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"symbol": symbol, "side": side, "price": num(price), "qty": num(qty),
            "ord_type": "market", "trade_id": 4665906, "timestamp": timestamp, **extra}  # fmt: skip


def ticker(symbol: str = "BTC/USD", **numbers: str) -> dict[str, Any]:
    fields = {"bid": "26310.2", "bid_qty": "0.5", "ask": "26310.3", "ask_qty": "1.25",
              "last": "26310.3", "volume": "1234.56789012", "vwap": "26100.1", "low": "25900.0",
              "high": "26400.0", "change": "12.5", "change_pct": "0.05"} | numbers  # fmt: skip
    return {"symbol": symbol, **{k: num(v) for k, v in fields.items()}, "timestamp": T0}


def frame(channel: str, *data: Any, type_: str = "update") -> bytes:
    return _encode({"channel": channel, "type": type_, "data": list(data)})


def test_trades_decode_exactly_named_by_wsname_in_order() -> None:
    decoder = MarketDecoder(REGISTRY)
    # 17 significant digits: a float would not give this quantity back.
    big_qty = "123456789.12345678"
    assert Decimal(float(big_qty)) != Decimal(big_qty)
    trades = decoder.trades(frame("trade", trade(), trade("ETH/USD", "1650.12", big_qty, "sell")))
    assert trades == [
        Trade(pair="XBT/USD", side="buy", price=Decimal("26310.3"), qty=Decimal("0.02"),
              time_s=T0_S),
        Trade(pair="ETH/USD", side="sell", price=Decimal("1650.12"), qty=Decimal(big_qty),
              time_s=T0_S),
    ]  # fmt: skip
    assert (decoder.malformed, decoder.unknown_symbol) == (0, 0)


def test_a_ticker_decodes_exactly() -> None:
    decoder = MarketDecoder(REGISTRY)
    [got] = decoder.tickers(frame("ticker", ticker(volume="98765432.10987654"), type_="snapshot"))
    assert got == Ticker(pair="XBT/USD", bid=Decimal("26310.2"), ask=Decimal("26310.3"),
                         last=Decimal("26310.3"), volume_24h=Decimal("98765432.10987654"))  # fmt: skip


def test_a_ticker_with_an_empty_side_shows_zero() -> None:
    [got] = MarketDecoder(REGISTRY).tickers(frame("ticker", ticker(bid="0", last="0")))
    assert (got.bid, got.last) == (Decimal(0), Decimal(0))


@pytest.mark.parametrize(
    "bad",
    [
        trade(price="-1.0"),
        trade(qty="0"),
        trade(price='"NaN"'),
        trade(price='"Infinity"'),
        trade(side="short"),
        trade(timestamp="2023-09-25T07:49:37"),  # no zone: no instant
        trade(timestamp="yesterday"),
        {"symbol": "BTC/USD", "side": "buy", "price": 1},  # fields missing
        "not an object",
    ],
)
def test_a_bad_trade_is_counted_and_costs_only_itself(bad: object) -> None:
    decoder = MarketDecoder(REGISTRY)
    trades = decoder.trades(frame("trade", trade(price="1.0"), bad, trade(price="2.0")))
    assert [t.price for t in trades] == [Decimal("1.0"), Decimal("2.0")]
    assert decoder.malformed == 1


@pytest.mark.parametrize(
    "bad",
    [ticker(bid="-0.1"), ticker(volume='"NaN"'), {"symbol": "BTC/USD", "bid": 1}, 7],
)
def test_a_bad_ticker_is_counted_never_raised(bad: object) -> None:
    decoder = MarketDecoder(REGISTRY)
    assert decoder.tickers(frame("ticker", bad)) == []
    assert decoder.malformed == 1


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"channel": "trade"}', b'{"channel": "trade", "data": 5}', b"\xff"],
)
def test_frames_that_are_no_frames_are_counted(raw: bytes) -> None:
    decoder = MarketDecoder(REGISTRY)
    assert decoder.trades(raw) == []
    assert decoder.tickers(raw) == []
    assert decoder.malformed == 2


def test_symbols_the_registry_does_not_list_are_counted_apart() -> None:
    decoder = MarketDecoder(REGISTRY)
    trades = decoder.trades(frame("trade", trade("DOGE/USD"), trade()))
    assert [t.pair for t in trades] == ["XBT/USD"]
    assert decoder.tickers(frame("ticker", ticker("DOGE/USD"))) == []
    assert (decoder.unknown_symbol, decoder.malformed) == (2, 0)
