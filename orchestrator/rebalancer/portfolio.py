"""The domain's money as the rebalancer sees it: per account, per asset, a total and a hold.

    portfolio = portfolio_from({name: await reader.balances() for name in accounts})
    portfolio.available("mm-xbt", "XXBT")      # what may leave the account now
    portfolio.total("XXBT")                    # the domain total (Kraken has no such endpoint)
    portfolio.value(mid_prices(quotes), quote="ZUSD")

Pure: no I/O. Kraken returns balances per account only, so the caller reads `BalanceEx` once per
account (through the limiter) and hands the results here.

Holds: `Balance.held` is BalanceEx's `hold_trade`, which already counts what the account's open
orders hold, so nothing here subtracts open orders again (that would count them twice). The
caller adds to an account's `held` whatever it has sent that the venue may not have debited yet
(a transfer not final), so that money is neither moved twice nor counted as available.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from orchestrator.errors import OrchestratorError
from orchestrator.exchange.protocol import Balance
from orchestrator.rebalancer.transfers import PlannedTransfer

ZERO: Final = Decimal(0)
TWO: Final = Decimal(2)


class MissingPrice(OrchestratorError, LookupError):
    """An asset with a balance has no price in the quote currency: valuing it at 0 would
    understate the portfolio, so the caller hears which asset lacks one."""

    def __init__(self, asset: str, quote: str, account: str | None = None) -> None:
        self.asset = asset
        self.quote = quote
        self.account = account
        where = f" (held by {account})" if account else ""
        super().__init__(f"no {asset} price in {quote}{where}")


@dataclass(frozen=True, slots=True)
class AccountFunds:
    """One account's balances: `total` per asset, and the part of it that is `held` (orders,
    transfers not final). Assets absent from a mapping are 0, as Kraken omits empty ones."""

    account: str
    total: Mapping[str, Decimal]
    held: Mapping[str, Decimal]

    def available(self, asset: str) -> Decimal:
        """What may leave the account: total - held, never negative (a hold above the total,
        seen when a balance and its hold are read at different moments, frees nothing)."""
        free = self.total.get(asset, ZERO) - self.held.get(asset, ZERO)
        return free if free > 0 else ZERO

    def assets(self) -> frozenset[str]:
        return frozenset(self.total) | frozenset(self.held)


def account_funds(account: str, balances: Mapping[str, Balance]) -> AccountFunds:
    """An account's funds from its `Balance`s (keyed by asset, as the reader returns them)."""
    total = {asset: b.total for asset, b in balances.items()}
    held = {asset: b.held for asset, b in balances.items() if b.held}
    return AccountFunds(account, MappingProxyType(total), MappingProxyType(held))


class Portfolio:
    """The accounts of one domain by name; immutable (moves give a new portfolio)."""

    __slots__ = ("_accounts", "_free", "_totals")

    def __init__(self, accounts: Iterable[AccountFunds]) -> None:
        by_name: dict[str, AccountFunds] = {}
        free: dict[str, Mapping[str, Decimal]] = {}
        totals: dict[str, Decimal] = {}
        for funds in accounts:
            if funds.account in by_name:
                raise ValueError(f"account {funds.account!r} given twice")
            by_name[funds.account] = funds
            held = funds.held
            free[funds.account] = MappingProxyType(
                {a: max(t - held.get(a, ZERO), ZERO) for a, t in funds.total.items()}
            )
            for asset, amount in funds.total.items():
                totals[asset] = totals.get(asset, ZERO) + amount
        self._accounts: Mapping[str, AccountFunds] = MappingProxyType(by_name)
        self._free = free  # computed once: a plan reads every (account, asset)
        self._totals: Mapping[str, Decimal] = MappingProxyType(totals)

    @property
    def accounts(self) -> Mapping[str, AccountFunds]:
        return self._accounts

    def __iter__(self) -> Iterator[AccountFunds]:
        return iter(self._accounts.values())

    def funds(self, account: str) -> AccountFunds:
        """An account's funds; an account we hold no balances for is an error, not zeros:
        planning against a balance that was never read would move money blind."""
        try:
            return self._accounts[account]
        except KeyError:
            raise KeyError(f"no balances for account {account!r}") from None

    def available(self, account: str, asset: str) -> Decimal:
        return self.available_in(account).get(asset, ZERO)

    def available_in(self, account: str) -> Mapping[str, Decimal]:
        """Asset -> available for one account (assets it lacks are absent: 0)."""
        try:
            return self._free[account]
        except KeyError:
            raise KeyError(f"no balances for account {account!r}") from None

    def total(self, asset: str) -> Decimal:
        """The domain total of `asset`: every account's total, held parts included."""
        return self._totals.get(asset, ZERO)

    def total_available(self, asset: str) -> Decimal:
        return sum((funds.available(asset) for funds in self), ZERO)

    def assets(self) -> frozenset[str]:
        return frozenset().union(*(funds.assets() for funds in self))

    def value(
        self, prices: Mapping[str, Decimal], *, quote: str, account: str | None = None
    ) -> Decimal:
        """The totals (of one account, or of the domain) in `quote`, at `prices` (asset -> price
        in `quote`; the quote itself is 1). Raises MissingPrice for an asset with a non-zero
        balance and no price; an empty balance needs none."""
        accounts = [self.funds(account)] if account is not None else list(self)
        worth = ZERO
        for funds in accounts:
            for asset, amount in funds.total.items():
                if not amount:
                    continue
                if asset == quote:
                    worth += amount
                    continue
                price = prices.get(asset)
                if price is None:
                    raise MissingPrice(asset, quote, funds.account)
                worth += amount * price
        return worth

    def moved(self, transfers: Iterable[PlannedTransfer]) -> Portfolio:
        """The portfolio once `transfers` completed: each amount leaves its source's total and
        reaches its target's (an account absent so far starts empty). Holds are unchanged."""
        totals = {name: dict(funds.total) for name, funds in self._accounts.items()}
        held = {name: funds.held for name, funds in self._accounts.items()}
        for move in transfers:
            for name, delta in ((move.source, -move.amount), (move.target, move.amount)):
                account = totals.setdefault(name, {})
                account[move.asset] = account.get(move.asset, ZERO) + delta
                held.setdefault(name, MappingProxyType({}))
        return Portfolio(
            AccountFunds(name, MappingProxyType(total), held[name])
            for name, total in totals.items()
        )


def portfolio_from(balances: Mapping[str, Mapping[str, Balance]]) -> Portfolio:
    """A portfolio from each account's balances (account -> asset -> Balance)."""
    return Portfolio(account_funds(name, funds) for name, funds in balances.items())


def mid_prices(quotes: Mapping[str, tuple[Decimal, Decimal]]) -> dict[str, Decimal]:
    """Asset -> (best bid, best ask) in the quote currency, as mids: (bid + ask) / 2, Kraken's
    fallback when no reference rate is at hand. A one-sided or crossed quote is refused:
    a price from it would misvalue the asset."""
    mids: dict[str, Decimal] = {}
    for asset, (bid, ask) in quotes.items():
        if not (bid > 0 and ask >= bid):
            raise ValueError(f"{asset}: no usable mid from bid {bid} / ask {ask}")
        mids[asset] = (bid + ask) / TWO
    return mids
