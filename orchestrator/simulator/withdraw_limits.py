"""The tier's daily withdrawal limit, in USD: which withdrawals count, and what one is worth.

Kraken caps crypto withdrawals per day by verification tier (Starter $5,000, Pro $10,000,000+;
Intermediate is a Decision). Where the sources say nothing the simulator follows the Decisions
of `docs/kraken/accounts-and-transfers.md` section 3:
- every withdrawal counts (fiat too), valued at the asset's USD mid when the venue quotes one,
  else at the catalog's reference price; the amount counts, not the fee;
- a withdrawal counts from its acceptance (awaiting approval included) until it fails or is
  denied; counted per domain (the master and its sub-accounts share the tier) or per account;
- the day is the UTC calendar day on the simulator's clock, or, if set, the last 24 hours.
Pure: callers pass the time, the prices and the withdrawals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal

from orchestrator.simulator.catalog import Catalog
from orchestrator.simulator.limits import Tier
from orchestrator.simulator.matching import OrderBook

LimitScope = Literal["domain", "account"]
LimitWindow = Literal["utc_day", "rolling_24h"]

DAY_S: Final = 86_400
USD: Final = "ZUSD"
ZERO: Final = Decimal(0)
# Starter and Pro from Kraken's tier table; Intermediate and Pro's exact figure are Decisions.
DAILY_WITHDRAW_LIMIT_USD: Final[Mapping[Tier, Decimal]] = MappingProxyType(
    {"starter": Decimal(5_000), "intermediate": Decimal(500_000), "pro": Decimal(10_000_000)}
)

PriceUsd = Callable[[str], Decimal]


@dataclass(frozen=True, slots=True)
class Counted:
    """One withdrawal as the limit sees it."""

    account: str
    created_s: float
    usd_value: Decimal


def in_window(created_s: float, now_s: float, window: LimitWindow) -> bool:
    """Does a withdrawal made at `created_s` still count at `now_s`: made since 00:00 UTC
    today, or within the last 24 hours (a withdrawal exactly 24 hours old no longer counts)."""
    if created_s > now_s:
        return False
    if window == "rolling_24h":
        return created_s > now_s - DAY_S
    return created_s // DAY_S == now_s // DAY_S


def used_usd(
    withdrawals: Iterable[Counted],
    *,
    account: str,
    now_s: float,
    scope: LimitScope,
    window: LimitWindow,
) -> Decimal:
    """USD already withdrawn in the window by `account` (scope `account`) or by anyone."""
    return sum(
        (
            w.usd_value
            for w in withdrawals
            if in_window(w.created_s, now_s, window) and (scope == "domain" or w.account == account)
        ),
        ZERO,
    )


def book_mid(book: OrderBook, price_decimals: int) -> Decimal | None:
    """(best bid + best ask) / 2 in price units; None unless both sides are quoted."""
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return None
    return (Decimal(bid) + Decimal(ask)).scaleb(-price_decimals) / 2


def usd_pricer(catalog: Catalog, books: Mapping[str, OrderBook]) -> PriceUsd:
    """The USD price of an asset id: 1 for USD, the mid of its `<asset>/USD` pair when the venue
    quotes both sides, else the catalog's reference price."""
    usd_pairs = {pair.base: pair for pair in catalog.pairs.values() if pair.quote == USD}

    def price_usd(asset: str) -> Decimal:
        if asset == USD:
            return Decimal(1)
        pair = usd_pairs.get(asset)
        if pair is not None and pair.key in books:
            mid = book_mid(books[pair.key], pair.pair_decimals)
            if mid is not None:
                return mid
        return catalog.assets[asset].usd_price

    return price_usd
