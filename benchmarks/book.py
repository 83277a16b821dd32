"""Our Kraken L2 book against python-kraken-sdk's, on one generated WS v2 `book` stream.

    python -m benchmarks.book            # >= 100k updates at depth 10 and depth 100
    python -m benchmarks.book --quick    # a few thousand, for a smoke run

Both sides do the whole job per frame: decode the raw bytes (we: msgspec; the SDK: `json.loads`,
as its connector does), apply, truncate, checksum. The SDK's `SpotOrderBookClient.on_message` is
called directly with no connection: its book is pre-seeded with the pair's decimals (it would
fetch them over REST) and its resubscribe-on-mismatch is replaced by a counter (it would
unsubscribe and sleep 3 s).

The stream is a seeded random walk of a deeper venue-side book; each message carries the visible
changes Kraken would send (1-3 levels mostly; deletes followed by the refill from below the
window; inserts that push the worst level out unannounced; now and then two updates to one
price) and the checksum of the venue's true top 10, computed here by a string-rendering
reference that shares no code with the book under test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import random
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Any, Final

from orchestrator.exchange.kraken.ws.book import CHECKSUM_LEVELS, PairPrecision
from orchestrator.exchange.kraken.ws.book_store import BookStore

SYMBOL: Final = "BTC/USD"
PRECISION: Final = PairPrecision(price_decimals=1, qty_decimals=8)
TARGET_RATIO: Final = {10: 5.0, 100: 12.0}
_VENUE_SPARE_LEVELS: Final = 40  # hidden levels below the window, for refills
_START_PRICE: Final = 300_000  # 30000.0 at 1 decimal


@dataclass(frozen=True)
class BookStream:
    symbol: str
    depth: int
    precision: PairPrecision
    snapshot: bytes
    updates: list[bytes]


# -- the generator --------------------------------------------------------------------------


def _fixed(scaled: int, decimals: int) -> str:
    """`1000, 8` -> `"0.00001000"`: the fixed-precision text Kraken's checksum starts from."""
    if decimals == 0:
        return str(scaled)
    digits = str(scaled).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


def _wire(scaled: int, decimals: int) -> str:
    """The JSON number as Kraken prints it: shortest form (`0.001`, `4.0`, `1e-05`)."""
    text = _fixed(scaled, decimals)
    if "." not in text:
        return text
    text = text.rstrip("0")
    if text.endswith("."):
        return text + "0"
    if text.startswith("0.0000"):
        return repr(float(text))  # 1e-05 style, exact for these few digits
    return text


def _checksum_reference(asks: list[tuple[int, int]], bids: list[tuple[int, int]]) -> int:
    """Kraken's algorithm to the letter: fixed render, drop '.', strip leading zeros, CRC32."""
    parts = []
    for price, qty in asks[:CHECKSUM_LEVELS] + bids[:CHECKSUM_LEVELS]:
        for scaled, decimals in ((price, PRECISION.price_decimals), (qty, PRECISION.qty_decimals)):
            parts.append(_fixed(scaled, decimals).replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())


class _VenueSide:
    """The venue's side, deeper than the window. Keys ascend best-first (bids negated)."""

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: dict[int, int] = {}

    def level(self, index: int) -> tuple[int, int]:
        key = self.keys[index]
        return key * self.sign, self.qty[key]

    def top(self, n: int) -> list[tuple[int, int]]:
        return [self.level(i) for i in range(min(n, len(self.keys)))]


class _Generator:
    def __init__(self, depth: int, seed: int) -> None:
        self.depth = depth
        self.rng = random.Random(seed)
        self.asks = _VenueSide(1)
        self.bids = _VenueSide(-1)
        for side in (self.asks, self.bids):
            key = side.sign * _START_PRICE + self.rng.randint(1, 3)
            for _ in range(depth + _VENUE_SPARE_LEVELS):
                side.keys.append(key)
                side.qty[key] = self._qty()
                key += self.rng.randint(1, 4)

    def _qty(self) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.randint(1, 50_000)  # dust, < 0.0005
        if roll < 0.75:
            return rng.randint(1, 2_000_000_000)  # up to 20
        return rng.randint(1, 40) * 10_000_000  # round lots: 0.1 .. 4.0

    def _index(self, side: _VenueSide) -> int:
        window = min(self.depth, len(side.keys))
        if self.rng.random() < 0.5:
            return min(int(self.rng.expovariate(0.35)), window - 1)
        return self.rng.randrange(window)

    def _top_up(self, side: _VenueSide) -> None:
        while len(side.keys) < self.depth + _VENUE_SPARE_LEVELS:
            key = side.keys[-1] + self.rng.randint(1, 4)
            side.keys.append(key)
            side.qty[key] = self._qty()

    def _change(self, side: _VenueSide, other: _VenueSide, out: list[tuple[int, int]]) -> None:
        rng = self.rng
        keys = side.keys
        i = self._index(side)
        action = rng.random()
        low = -other.keys[0] if i == 0 else keys[i - 1]
        if action < 0.2 and keys[i] - low > 1:  # a new level before i (in the spread if i == 0)
            key = rng.randint(low + 1, keys[i] - 1)
            keys.insert(i, key)
            side.qty[key] = self._qty()
            out.append(side.level(i))
            return
        if 0.2 <= action < 0.4:  # delete, then the refill from below the window
            key = keys.pop(i)
            del side.qty[key]
            out.append((key * side.sign, 0))
            out.append(side.level(self.depth - 1))
            self._top_up(side)
            return
        key = keys[i]
        if rng.random() < 0.03:  # an intermediate value first: two updates, one price
            out.append((key * side.sign, self._qty()))
        side.qty[key] = self._qty()
        out.append(side.level(i))

    def _levels_json(self, levels: list[tuple[int, int]]) -> str:
        price_decimals = PRECISION.price_decimals
        qty_decimals = PRECISION.qty_decimals
        return ",".join(
            f'{{"price":{_wire(p, price_decimals)},"qty":{_wire(q, qty_decimals)}}}'
            for p, q in levels
        )

    def _frame(
        self, kind: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]], n: int
    ) -> bytes:
        checksum = _checksum_reference(
            self.asks.top(CHECKSUM_LEVELS), self.bids.top(CHECKSUM_LEVELS)
        )
        seconds, micros = divmod(n * 137_113, 1_000_000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        stamp = f"2023-07-30T{hours % 24:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{SYMBOL}",'
            f'"bids":[{self._levels_json(bids)}],"asks":[{self._levels_json(asks)}],'
            f'"checksum":{checksum},"timestamp":"{stamp}"}}]}}'
        ).encode()

    def snapshot(self) -> bytes:
        return self._frame("snapshot", self.bids.top(self.depth), self.asks.top(self.depth), 0)

    def update(self, n: int) -> bytes:
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        for _ in range(self.rng.choice((1, 1, 1, 1, 2, 2, 3))):
            if self.rng.random() < 0.5:
                self._change(self.bids, self.asks, bids)
            else:
                self._change(self.asks, self.bids, asks)
        return self._frame("update", bids, asks, n)


def generate_stream(updates: int, depth: int, seed: int = 1) -> BookStream:
    """A snapshot and `updates` update frames for one symbol at `depth`, deterministic by seed."""
    generator = _Generator(depth, seed)
    snapshot = generator.snapshot()
    frames = [generator.update(n) for n in range(1, updates + 1)]
    return BookStream(SYMBOL, depth, PRECISION, snapshot, frames)


# -- the two contestants --------------------------------------------------------------------


def run_ours(stream: BookStream) -> tuple[float, int]:
    """Seconds for the whole stream, and checksum mismatches plus refused entries."""
    store = BookStore()
    store.add_book(stream.symbol, stream.depth, stream.precision)
    on_message = store.on_message
    gc.collect()
    start = time.perf_counter()
    on_message(stream.snapshot)
    for frame in stream.updates:
        on_message(frame)
    elapsed = time.perf_counter() - start
    return elapsed, store.mismatches + store.malformed + store.ignored_stale


class _PeerResync(Exception):
    """Raised where the SDK would unsubscribe, sleep 3 s and resubscribe."""


def peer_available() -> bool:
    try:
        importlib.import_module("kraken.spot.orderbook")
    except ImportError:
        return False
    return True


async def _peer_replay(stream: BookStream) -> tuple[float, int]:
    module: Any = importlib.import_module("kraken.spot.orderbook")

    async def on_book_update(self: Any, pair: str, message: dict[str, Any]) -> None:
        return None

    async def remove_book(self: Any, pairs: list[str]) -> None:
        raise _PeerResync

    peer_class: Any = type(
        "PeerBook",
        (module.SpotOrderBookClient,),
        {"on_book_update": on_book_update, "remove_book": remove_book},
    )
    client = peer_class(depth=stream.depth)
    try:
        # Its book registry (name-mangled private), seeded as its REST lookup would.
        client._SpotOrderBookClient__book[stream.symbol] = {
            "bid": {},
            "ask": {},
            "valid": True,
            "price_decimals": stream.precision.price_decimals,
            "qty_decimals": stream.precision.qty_decimals,
        }
        on_message = client.on_message
        loads = json.loads
        mismatches = 0
        gc.collect()
        start = time.perf_counter()
        await on_message(loads(stream.snapshot))
        for frame in stream.updates:
            try:
                await on_message(loads(frame))
            except _PeerResync:
                mismatches += 1
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return elapsed, mismatches


def run_peer(stream: BookStream) -> tuple[float, int]:
    """Seconds for the whole stream through python-kraken-sdk, and its checksum mismatches."""
    return asyncio.run(_peer_replay(stream))


# -- the report -----------------------------------------------------------------------------


def _best(runner: Any, stream: BookStream, repeat: int) -> tuple[float, int]:
    results = [runner(stream) for _ in range(repeat)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.book", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (smoke)")
    parser.add_argument("--updates", type=int, default=None, help="update frames per depth")
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeat", type=int, default=None, help="runs per side; best is kept")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    updates = args.updates or (3_000 if args.quick else 120_000)
    repeat = args.repeat or (1 if args.quick else 3)
    with_peer = peer_available()
    if not with_peer:
        print("python-kraken-sdk not installed (pip install -e '.[bench]'): ours only")

    header = (
        f"{'depth':>5} {'updates':>8} {'ours upd/s':>11} {'sdk upd/s':>10} {'ratio':>7} "
        f"{'target':>7} {'ours mism':>9} {'sdk mism':>8}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for depth in args.depths:
        stream = generate_stream(updates, depth, seed=args.seed)
        ours_s, ours_bad = _best(run_ours, stream, repeat)
        ours_rate = updates / ours_s
        failed = failed or ours_bad > 0
        target = TARGET_RATIO.get(depth)
        target_text = f">={target:g}x" if target else "-"
        if with_peer:
            peer_s, peer_bad = _best(run_peer, stream, repeat)
            peer_rate = updates / peer_s
            ratio_text = f"{ours_rate / peer_rate:6.1f}x"
            peer_text = f"{peer_rate:10,.0f}"
            peer_bad_text = f"{peer_bad:8d}"
        else:
            ratio_text, peer_text, peer_bad_text = f"{'-':>7}", f"{'-':>10}", f"{'-':>8}"
        print(
            f"{depth:5d} {updates:8d} {ours_rate:11,.0f} {peer_text} {ratio_text} "
            f"{target_text:>7} {ours_bad:9d} {peer_bad_text}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
