"""The simulated venue's trading engine: order entry, matching, settlement, Kraken's counters.

REST and WS both call these methods, so both share one set of trading counters, as on Kraken.
Every method takes the acting account's name (the authenticated key's account) and reads time from
the injected clock. Refusals are `KrakenError`s carrying Kraken's strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.simulator import limits as rl
from orchestrator.simulator.accounts import MARKET, Account, Domain, LedgerEntry
from orchestrator.simulator.catalog import PairSpec
from orchestrator.simulator.errors import UNKNOWN_ORDER, KrakenError
from orchestrator.simulator.events import (
    ExecutionListener,
    LedgerListener,
    execution,
    ledger_update,
    rfc3339,
)
from orchestrator.simulator.matching import BookSide, Fill, OrderBook
from orchestrator.simulator.money import buy_hold, fee_on, order_value
from orchestrator.simulator.orders import (
    Order,
    OrderRequest,
    ValidOrder,
    invalid,
    parse_price,
    parse_volume,
    record_amend,
    validate,
)
from orchestrator.simulator.stats import PairStats

_POST_ONLY_REASON: Final = "Post only order"
_IOC_REASON: Final = "Immediate or cancel"
_USER_REASON: Final = "User requested"


@dataclass(slots=True)
class PlaceResult:
    order: Order
    validated_only: bool = False


TradeListener = Callable[[PairSpec, dict[str, Any]], None]


@dataclass(slots=True)
class Engine:
    """Order books per pair plus the domain's accounts and counters."""

    domain: Domain
    limits: rl.VenueLimits
    clock: Clock
    tier: rl.Tier
    books: dict[str, OrderBook] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    open_by_account: dict[str, dict[str, Order]] = field(default_factory=dict)
    synthetic: dict[tuple[str, BookSide, int], Order] = field(default_factory=dict)
    dead_man: dict[str, float] = field(default_factory=dict)
    execution_listeners: list[ExecutionListener] = field(default_factory=list)
    ledger_listeners: list[LedgerListener] = field(default_factory=list)
    level_listeners: list[Any] = field(default_factory=list)  # (pair_key, side, price, qty)
    trade_listeners: list[TradeListener] = field(default_factory=list)
    pair_stats: dict[str, PairStats] = field(default_factory=dict)
    trades_count: int = 0

    def __post_init__(self) -> None:
        for pair in self.domain.catalog.pairs.values():
            self.books[pair.key] = OrderBook(self._level_notifier(pair.key))

    def _level_notifier(self, pair_key: str) -> Any:
        def notify(side: BookSide, price: int, qty: int) -> None:
            for listener in self.level_listeners:
                listener(pair_key, side, price, qty)

        return notify

    # --- helpers -------------------------------------------------------------------------------
    def stats(self, pair_key: str) -> PairStats:
        return self.pair_stats.setdefault(pair_key, PairStats())

    def now_s(self) -> float:
        return self.clock.time()

    def _emit(self, order: Order, exec_type: str, **extra: Any) -> None:
        if order.account == MARKET or not self.execution_listeners:
            return
        event = execution(order, exec_type, self.now_s(), **extra)
        for listener in self.execution_listeners:
            listener(order.account, event)

    def emit_ledger(self, account: str, entry: LedgerEntry | None) -> None:
        """Tell private subscribers of one ledger entry (system accounts write none: None)."""
        if entry is None or not self.ledger_listeners:
            return
        payload = ledger_update(entry, self.domain.catalog)
        for listener in self.ledger_listeners:
            listener(account, payload)

    def account(self, name: str) -> Account:
        return self.domain.accounts[name]

    def open_orders(self, account: str) -> dict[str, Order]:
        return self.open_by_account.setdefault(account, {})

    def _charge(self, account: str, pair: PairSpec, cost: int) -> None:
        if cost > 0 and account != MARKET:
            self.limits.charge_trading(account, pair.wsname, cost, self.now_s())

    # --- order entry ---------------------------------------------------------------------------
    def add_order(self, account: str, req: OrderRequest, *, charge: bool = True) -> PlaceResult:
        """AddOrder / add_order: charge, validate, hold funds, match, rest or close.

        `charge=False` for the orders of a batch, whose cost the batch paid as a whole.
        """
        pair = self.domain.catalog.pair(req.pair)
        if charge:
            self._charge(account, pair, rl.fixed_trading_cost("add"))  # on receipt, even if invalid
        book = self.books[pair.key]
        valid = validate(req, pair, book.mid())
        self._check_cl_ord_id_free(account, valid.cl_ord_id)
        if valid.ordertype == "limit" and valid.timeinforce != "IOC":
            open_on_pair = sum(1 for o in self.open_orders(account).values() if o.pair is pair)
            self.limits.check_open_orders(account, pair.wsname, open_on_pair)
        order = Order(self.domain.ids.make("O"), account, valid, self.now_s())
        self._hold_for(order, book)
        if req.validate:
            self._release_all(order)
            return PlaceResult(order, validated_only=True)
        self._book_new(order)
        return PlaceResult(order)

    def _book_new(self, order: Order) -> None:
        """A placed order: known, open, its entry in the amend history, then matched."""
        self.orders[order.txid] = order
        self.open_orders(order.account)[order.txid] = order
        record_amend(order, self.domain.ids.make("T"), "original", self.now_s())
        self._emit(order, "pending_new")
        self._execute(order)

    def validate_batch(self, account: str, requests: list[OrderRequest]) -> None:
        """A batch is refused whole when any order fails the static checks
        (docs/kraken/rest.md 2.3)."""
        seen: set[str] = set()
        for req in requests:
            pair = self.domain.catalog.pair(req.pair)
            valid = validate(req, pair, self.books[pair.key].mid())
            self._check_cl_ord_id_free(account, valid.cl_ord_id)
            if valid.cl_ord_id is not None:
                if valid.cl_ord_id in seen:
                    raise invalid("cl_ord_id repeated in the batch")
                seen.add(valid.cl_ord_id)

    def _check_cl_ord_id_free(self, account: str, cl_ord_id: str | None) -> None:
        if cl_ord_id is None:
            return
        if any(o.cl_ord_id == cl_ord_id for o in self.open_orders(account).values()):
            raise invalid("cl_ord_id already used by an open order")

    def _hold_for(self, order: Order, book: OrderBook) -> None:
        """Reserve what the order may spend: quote (with the taker fee) for buys, base for sells."""
        if order.account == MARKET:
            return
        pair = order.pair
        holder = self.account(order.account)
        if order.side == "sell":
            amount = Decimal(order.remaining).scaleb(-pair.lot_decimals)
            asset = pair.base
        else:
            if order.price is not None:
                value = order_value(pair, order.price, order.remaining)
            else:
                value = sum(
                    (order_value(pair, p, v) for p, v in book.walk("buy", order.remaining, None)),
                    Decimal(0),
                )
            amount = buy_hold(self.domain.catalog, pair, value)
            asset = pair.quote
        holder.hold(asset, amount)
        order.hold_asset = asset
        order.hold_left = amount

    def _release_all(self, order: Order) -> None:
        if order.hold_asset and order.hold_left:
            self.account(order.account).release(order.hold_asset, order.hold_left)
        order.hold_left = Decimal(0)

    def _execute(self, order: Order, *, announce: bool = True) -> None:
        """Match an incoming order, settle its fills, then rest, close or cancel it."""
        book = self.books[order.pair.key]
        if order.post_only and book.crosses(order.side, order.price):
            self._close(order, "canceled", _POST_ONLY_REASON)
            return
        result = book.match(order, order.price)
        for evicted in result.evicted:
            self._close(evicted, "canceled", "Self trade prevention", in_book=False)
        # The book counted every fill of the match at once; each trade frame must show the
        # taker's quantity after that trade, as Kraken's do, so it is replayed fill by fill.
        matched = order.executed
        order.executed -= sum(fill.volume for fill in result.fills)
        for fill in result.fills:
            order.executed += fill.volume
            self._settle(fill)
        order.executed = matched
        if order.remaining == 0:
            self._close(order, "closed", None)
        elif result.stopped_by_stp:
            self._close(order, "canceled", "Self trade prevention")
        elif order.ordertype == "market" or order.timeinforce == "IOC":
            self._close(order, "canceled", _IOC_REASON)
        else:
            order.status = "open"
            order.rested = True
            book.rest(order)
            if announce and order.account != MARKET and not result.fills:
                self._emit(order, "new")

    def _settle(self, fill: Fill) -> None:
        """Move the money of one fill: base one way, quote (less fees) the other."""
        pair = fill.taker.pair
        catalog = self.domain.catalog
        base_amount = Decimal(fill.volume).scaleb(-pair.lot_decimals)
        value = order_value(pair, fill.price, fill.volume)
        now_s = self.now_s()
        trade_id = self.domain.ids.make("T")
        self.trades_count += 1
        self.stats(pair.key).record(fill.price, fill.volume)
        if self.trade_listeners:
            trade = {
                "symbol": pair.symbol,
                "side": fill.taker.side,
                "price": Decimal(fill.price).scaleb(-pair.pair_decimals),
                "qty": base_amount,
                "ord_type": fill.taker.ordertype,
                "trade_id": self.trades_count,
                "timestamp": rfc3339(now_s),
            }
            for listener in self.trade_listeners:
                listener(pair, trade)
        fees = self.account("_fees")
        for order, maker in ((fill.maker, True), (fill.taker, False)):
            holder = self.account(order.account)
            fee = Decimal(0)
            if order.account != MARKET:
                fee = fee_on(catalog, pair, value, maker=maker)
            post = self._poster(holder, trade_id, now_s)
            if order.side == "buy":
                spent = value + fee
                entries = (post(pair.quote, -value, fee), post(pair.base, base_amount, Decimal(0)))
            else:
                spent = base_amount
                entries = (post(pair.base, -base_amount, Decimal(0)), post(pair.quote, value, fee))
            if fee:
                self.domain.post(fees, pair.quote, fee, type_="trade", refid=trade_id, now_s=now_s)
            if order.hold_asset:
                released = min(order.hold_left, spent)
                holder.release(order.hold_asset, released)
                order.hold_left -= released
            order.cost += value
            order.fee += fee
            order.trades.append(trade_id)
            if order.account != MARKET:
                self._emit(
                    order,
                    "trade",
                    exec_id=self.domain.ids.make("E"),
                    trade_id=self.trades_count,
                    last_qty=base_amount,
                    last_price=Decimal(fill.price).scaleb(-pair.pair_decimals),
                    cost=value,
                    liquidity_ind="m" if maker else "t",
                    fees=[{"asset": catalog.assets[pair.quote].ws_name, "qty": fee}],
                )
                for entry in entries:
                    self.emit_ledger(order.account, entry)
            if order is fill.maker and order.remaining == 0:
                self._close(order, "closed", None, in_book=False)

    def _poster(
        self, holder: Account, refid: str, now_s: float
    ) -> Callable[[str, Decimal, Decimal], LedgerEntry | None]:
        """A function posting one trade ledger entry (asset, amount, fee) for `holder`."""

        def post(asset: str, amount: Decimal, fee: Decimal) -> LedgerEntry | None:
            return self.domain.post(
                holder, asset, amount, fee=fee, type_="trade", refid=refid, now_s=now_s
            )

        return post

    def _close(self, order: Order, status: str, reason: str | None, in_book: bool = True) -> None:
        """End an order: out of the book, funds released, listeners told."""
        if in_book and order.status == "open":
            self.books[order.pair.key].remove(order)
        order.status = status  # type: ignore[assignment]  # one of the final statuses
        order.reason = reason
        order.closed_s = self.now_s()
        self._release_all(order)
        if order.account == MARKET:
            self._drop_synthetic(order)
            return
        self.open_orders(order.account).pop(order.txid, None)
        self._emit(order, {"closed": "filled"}.get(status, status))

    def _drop_synthetic(self, order: Order) -> None:
        assert order.price is not None  # noqa: S101 - synthetic orders are limits
        side: BookSide = "bid" if order.side == "buy" else "ask"
        key = (order.pair.key, side, order.price)
        if self.synthetic.get(key) is order:
            del self.synthetic[key]

    # --- finding orders ------------------------------------------------------------------------
    def find_orders(
        self,
        account: str,
        txid: str | None = None,
        cl_ord_id: str | None = None,
        userref: int | None = None,
    ) -> list[Order]:
        """Open orders of `account` by txid, cl_ord_id or userref; UNKNOWN_ORDER if none."""
        opened = self.open_orders(account)
        if txid is not None:
            found = [opened[txid]] if txid in opened else []
        elif cl_ord_id is not None:
            found = [o for o in opened.values() if o.cl_ord_id == cl_ord_id]
        elif userref is not None:
            found = [o for o in opened.values() if o.userref == userref]
        else:
            raise invalid("txid")
        if not found:
            raise KrakenError(UNKNOWN_ORDER)
        return found

    # --- cancel / amend / edit -----------------------------------------------------------------
    def cancel(self, account: str, orders: list[Order]) -> int:
        """Cancel each order, charging Kraken's cancel cost by its age first."""
        now_s = self.now_s()
        for order in orders:
            self._charge(account, order.pair, rl.trading_cost("cancel", order.age_s(now_s)))
            self._close(order, "canceled", _USER_REASON)
        return len(orders)

    def cancel_all(self, account: str) -> int:
        """CancelAll: every open order; the cancel costs are charged even past the threshold."""
        now_s = self.now_s()
        orders = list(self.open_orders(account).values())
        for order in orders:
            cost = rl.trading_cost("cancel", order.age_s(now_s))
            self.limits.force_charge_trading(account, order.pair.wsname, cost, now_s)
            self._close(order, "canceled", _USER_REASON)
        return len(orders)

    def amend(
        self,
        account: str,
        order: Order,
        *,
        order_qty: str | None = None,
        limit_price: str | None = None,
        post_only: bool = False,
    ) -> str:
        """AmendOrder: in place; a smaller quantity keeps queue priority, a new price loses it.

        Returns the amend id, the one the order's amend history (OrderAmends) records."""
        pair = order.pair
        now_s = self.now_s()
        self._charge(account, pair, rl.trading_cost("amend", order.age_s(now_s)))
        if order_qty is None and limit_price is None:
            raise invalid("order_qty or limit_price")
        new_volume = order.volume
        if order_qty is not None:
            new_volume = parse_volume(order_qty, pair)
        new_price = order.price
        if limit_price is not None:
            if order.ordertype != "limit":
                raise invalid("limit_price")
            new_price = parse_price(limit_price, pair)
        book = self.books[pair.key]
        if post_only and new_price != order.price and book.crosses(order.side, new_price):
            raise KrakenError("EOrder:Post only order")
        self._rehold(order, new_volume, new_price)
        order.amended = True
        order.changed_s = now_s
        amend_id = self.domain.ids.make("T")  # Kraken's amend ids look like its trade ids
        if new_volume <= order.executed:
            order.volume = order.executed
            record_amend(order, amend_id, "user", now_s, post_only=post_only)
            self._close(order, "closed" if order.executed else "canceled", _USER_REASON)
            return amend_id
        if new_price == order.price and new_volume - order.executed <= order.remaining:
            book.reduce(order, new_volume - order.executed)
            order.volume = new_volume
            record_amend(order, amend_id, "user", now_s, post_only=post_only)
        else:
            book.remove(order)
            order.volume = new_volume
            order.price = new_price
            order.status = "pending"
            record_amend(order, amend_id, "user", now_s, post_only=post_only)
            self._execute(order, announce=False)  # the client hears "amended", not a new order
        self._emit(order, "amended")
        return amend_id

    def _rehold(self, order: Order, new_volume: int, new_price: int | None) -> None:
        """Adjust the order's hold to its new size and price, refusing if funds are short."""
        if order.account == MARKET:
            return
        pair = order.pair
        remaining = max(0, new_volume - order.executed)
        if order.side == "sell":
            needed = Decimal(remaining).scaleb(-pair.lot_decimals)
        else:
            assert new_price is not None  # noqa: S101 - only limit orders are amended
            needed = buy_hold(self.domain.catalog, pair, order_value(pair, new_price, remaining))
        delta = needed - order.hold_left
        holder = self.account(order.account)
        if delta > 0:
            holder.hold(order.hold_asset, delta)
        else:
            holder.release(order.hold_asset, -delta)
        order.hold_left = needed

    def edit(self, account: str, order: Order, req: OrderRequest) -> tuple[Order, Order]:
        """EditOrder: cancel and replace with a new txid (queue position lost)."""
        now_s = self.now_s()
        self._charge(account, order.pair, rl.trading_cost("edit", order.age_s(now_s)))
        pair = order.pair
        valid: ValidOrder = validate(req, pair, self.books[pair.key].mid())
        if valid.volume <= order.executed:
            raise invalid("volume")
        self._close(order, "canceled", "Order replaced")
        replacement = Order(self.domain.ids.make("O"), account, valid, now_s)
        self._hold_for(replacement, self.books[pair.key])
        self._book_new(replacement)
        return order, replacement

    # --- time-driven ---------------------------------------------------------------------------
    def set_dead_man(self, account: str, timeout_s: int) -> float:
        """CancelAllOrdersAfter: arm (or with 0 disarm) the account's countdown."""
        now_s = self.now_s()
        if timeout_s == 0:
            self.dead_man.pop(account, None)
            return 0.0
        self.dead_man[account] = now_s + timeout_s
        return now_s + timeout_s

    def tick(self) -> None:
        """Fire due dead-man's switches and expire GTD orders."""
        now_s = self.now_s()
        for account, trigger_s in list(self.dead_man.items()):
            if trigger_s <= now_s:
                del self.dead_man[account]
                for order in list(self.open_orders(account).values()):
                    self._close(order, "canceled", "Dead man's switch")
        for opened in self.open_by_account.values():
            for order in list(opened.values()):
                if order.expire_s is not None and order.expire_s <= now_s:
                    self._close(order, "expired", "Order expired")

    # --- synthetic liquidity -------------------------------------------------------------------
    def set_synthetic_level(self, pair: PairSpec, side: BookSide, price: int, qty: int) -> None:
        """Make the synthetic market's quantity at one level `qty` (0 removes it)."""
        key = (pair.key, side, price)
        existing = self.synthetic.get(key)
        book = self.books[pair.key]
        if existing is not None and existing.status == "open":
            if qty <= 0:
                self._close(existing, "canceled", None)
            else:
                book.reduce(existing, qty)
                existing.volume = existing.executed + qty
            return
        if qty <= 0:
            return
        valid = ValidOrder(
            pair=pair, side="buy" if side == "bid" else "sell", ordertype="limit", volume=qty,
            price=price, cl_ord_id=None, userref=None, post_only=False, timeinforce="GTC",
            expire_s=None, stptype="cancel-oldest",
        )  # fmt: skip
        order = Order(self.domain.ids.make("S"), MARKET, valid, self.now_s())
        self.synthetic[key] = order
        self._execute(order)  # may trade with resting client orders the market moved through
        if order.status != "open":
            self.synthetic.pop(key, None)
