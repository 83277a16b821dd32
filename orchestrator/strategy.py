"""The public plug-in API: what a strategy is, what it hears, what it may read and ask for.

A strategy is a plain Python module holding one `Strategy` subclass (and its `Params`):

    class Params(StrategyParams, frozen=True):
        size: Decimal
        spread_bps: float = 10.0

    class Quoter(Strategy[Params]):
        def on_book(self, book: BookView) -> None:
            mid = book.mid
            if mid is not None and not self.ctx.open_orders(book.pair):
                self.ctx.place(book.pair, "buy", self.ctx.params.size, mid * Decimal("0.999"))

Callbacks are synchronous and must be fast: they run on the service's one event loop between
other strategies' callbacks, under a time budget. They read state through `self.ctx` and express
*intents* (`place`, `amend`, `cancel`, `cancel_all`, `set_timer`, `request_rebalance`), which the
worker checks against the strategy's risk limits and executes asynchronously; what became of
each intent comes back as `on_order` (and `on_fill`). The `Context` API reaches no credentials,
no other account and no treasury (a boundary for mistakes, not a sandbox against hostile code:
see docs/strategies.md).

A callback that raises stops this strategy alone (its orders are cancelled); the others go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import msgspec

from orchestrator.exchange.instruments import Instrument

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC"]
OrderStatus = Literal[
    "pending_new",  # journalled and being sent; not acknowledged by the venue yet
    "new",  # resting on the book
    "partially_filled",
    "filled",
    "canceled",
    "expired",
    "rejected",  # refused by our risk checks (nothing sent) or by the venue
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"filled", "canceled", "expired", "rejected"})
TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
"""The domain's trading state. REDUCING: only intents that shrink a position or cancel;
HALTED: only cancels."""


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a strategy's parameters: a frozen msgspec Struct. Unknown keys are refused and
    types checked when the config is loaded or `set_params` replaces them (whole, atomically,
    between two callbacks)."""


P = TypeVar("P", bound=StrategyParams)
P_co = TypeVar("P_co", bound=StrategyParams, covariant=True)


class BookView(Protocol):
    """A read-only view of one pair's live book (no copy: read it inside the callback)."""

    @property
    def pair(self) -> str:
        """The pair as the strategy's config names it (`XBT/USD`)."""
        ...

    def bids(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """The best `n` bids (price, qty), best first; all when `n` is None."""
        ...

    def asks(self, n: int | None = None) -> list[tuple[Decimal, Decimal]]: ...

    @property
    def best_bid(self) -> tuple[Decimal, Decimal] | None: ...

    @property
    def best_ask(self) -> tuple[Decimal, Decimal] | None: ...

    @property
    def mid(self) -> Decimal | None:
        """(best bid + best ask) / 2, or None when a side is empty."""
        ...

    @property
    def spread(self) -> Decimal | None:
        """best ask - best bid, or None when a side is empty."""
        ...


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """A public trade on a pair (the `trade` channel)."""

    pair: str
    side: Side  # the taker's side
    price: Decimal
    qty: Decimal
    time_s: float


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    """Top of book and last trade of a pair (the `ticker` channel)."""

    pair: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    volume_24h: Decimal


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One of the strategy's orders after a change of state (or a refused intent)."""

    cl_ord_id: str
    pair: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    volume: Decimal
    filled: Decimal
    price: Decimal | None  # the limit price now (after amends)
    avg_price: Decimal | None  # of what filled
    txid: str | None = None  # the venue's id, once known
    reason: str | None = None  # why rejected, cancelled or expired; why an amend was refused

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.filled


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """A trade of one of the strategy's orders."""

    cl_ord_id: str
    pair: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Literal["maker", "taker"]
    exec_id: str
    time_s: float


class BalanceUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The sub-account's balances changed: asset -> total (as the venue names assets)."""

    totals: Mapping[str, Decimal]


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """The strategy's position in one pair, from its own fills (quote currency for PnL)."""

    pair: str
    qty: Decimal  # base units, > 0 long
    avg_price: Decimal | None  # of the open quantity
    realized_pnl: Decimal
    unrealized_pnl: Decimal  # at the mid now (0 when flat or no mid)
    fees: Decimal


class Logger(Protocol):
    """A structured logger: an event name plus fields (never a secret)."""

    def info(self, event: str, **fields: Any) -> None: ...

    def warning(self, event: str, **fields: Any) -> None: ...

    def error(self, event: str, **fields: Any) -> None: ...


class Context(Protocol[P_co]):
    """What a strategy reads and asks for. Reads are of live state; intents return at once."""

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> P_co: ...

    @property
    def pairs(self) -> Sequence[str]:
        """The pairs of the strategy's config, by their WS names (`XBT/USD`) whatever name
        the config used (`BTC/USD`, `XXBTZUSD`): the names every read and intent takes."""
        ...

    @property
    def log(self) -> Logger: ...

    @property
    def trading_state(self) -> TradingState: ...

    def now_s(self) -> float:
        """The service clock (Unix seconds; manual in replays)."""
        ...

    def book(self, pair: str) -> BookView | None:
        """The live book of one of the strategy's pairs, or None while it is not whole."""
        ...

    def instrument(self, pair: str) -> Instrument:
        """The pair's venue facts: tick size, decimals, minimum volume and cost, asset codes."""
        ...

    def balances(self) -> Mapping[str, Decimal]:
        """Available balance per asset (total minus what open orders hold)."""
        ...

    def open_orders(self, pair: str | None = None) -> list[OrderUpdate]:
        """The strategy's orders not yet in a final state (pending ones included)."""
        ...

    def order(self, cl_ord_id: str) -> OrderUpdate | None: ...

    def position(self, pair: str) -> Position: ...

    def pnl(self) -> Decimal:
        """Realized + unrealized PnL of every pair, net of fees, in the quote currency."""
        ...

    # --- intents ------------------------------------------------------------------------------
    def place(
        self,
        pair: str,
        side: Side,
        volume: Decimal,
        price: Decimal | None = None,
        *,
        order_type: OrderType = "limit",
        time_in_force: TimeInForce = "GTC",
        post_only: bool = False,
    ) -> str:
        """Ask for a new order; returns its `cl_ord_id` at once. A refusal (risk, trading
        state) arrives as `on_order` with status `rejected` and the reason; nothing is sent."""
        ...

    def amend(
        self, cl_ord_id: str, *, price: Decimal | None = None, volume: Decimal | None = None
    ) -> None:
        """Change an open order in place (cancel-replace only where the venue refuses amends)."""
        ...

    def cancel(self, cl_ord_id: str) -> None: ...

    def cancel_all(self, pair: str | None = None) -> None: ...

    def set_timer(self, name: str, delay_s: float, *, repeat: bool = False) -> None:
        """`on_timer(name)` after `delay_s` (again every `delay_s` when `repeat`); setting a
        timer of the same name replaces it. A delay that is not a finite number >= 0 (> 0 when
        repeating) raises `ValueError` in the calling callback."""
        ...

    def cancel_timer(self, name: str) -> None: ...

    def request_rebalance(self, asset: str, reason: str) -> None:
        """Ask the rebalancer to bring this account's `asset` back to its target; `asset` and
        `reason` are text (`ValueError` otherwise)."""
        ...


class Strategy(Generic[P]):
    """Base of every strategy. Subclass it, set `Params`, override the callbacks you need.

    The service builds it with its `Context` once its params are validated; `self.ctx` is the
    strategy's whole world. Every callback is synchronous; the defaults do nothing.
    """

    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, ctx: Context[P]) -> None:
        self.ctx = ctx

    def on_start(self) -> None:
        """Once, after the account is reconciled and before any other callback."""

    def on_book(self, book: BookView) -> None:
        """The book of a pair changed (conflated: a slow strategy sees the latest book)."""

    def on_trade(self, trade: Trade) -> None: ...

    def on_ticker(self, ticker: Ticker) -> None: ...

    def on_order(self, order: OrderUpdate) -> None:
        """One of its orders changed state, or an intent was refused (status `rejected`)."""

    def on_fill(self, fill: Fill) -> None: ...

    def on_balance(self, balance: BalanceUpdate) -> None: ...

    def on_timer(self, name: str) -> None: ...

    def on_stop(self) -> None:
        """Once, when the strategy stops (its orders are cancelled after, unless configured
        otherwise)."""
