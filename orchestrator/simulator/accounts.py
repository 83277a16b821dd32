"""Accounts of a simulated Kraken domain: balances, holds, ledgers, ids. Pure bookkeeping.

Every movement of money is double-entry between accounts, so the total of each asset over all
accounts never changes. Besides the domain's master and sub-accounts there are three system
accounts: `_market` (the synthetic liquidity every client trades against), `_fees` (where fees
go) and `_external` (the outside world: funding in, withdrawals out). They keep no ledger.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from decimal import Decimal
from typing import Final, Literal

import msgspec

from orchestrator.simulator.catalog import Catalog
from orchestrator.simulator.errors import INSUFFICIENT_FUNDS, KrakenError
from orchestrator.simulator.futures_accounts import NO_RISK
from orchestrator.simulator.futures_log import LogEntry

MARKET: Final = "_market"
FEES: Final = "_fees"
EXTERNAL: Final = "_external"
SYSTEM_ACCOUNTS: Final = (MARKET, FEES, EXTERNAL)
ZERO: Final = Decimal(0)

Role = Literal["master", "sub", "system"]
LedgerType = Literal["trade", "transfer", "withdrawal", "deposit", "adjustment"]


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    refid: str
    time: float
    type: LedgerType
    subtype: str
    asset: str
    amount: Decimal
    fee: Decimal
    balance: Decimal
    aclass: str = "currency"


class Account:
    """One account: balances and holds per asset id, its ledger, its futures wallets and log."""

    __slots__ = (
        "account_id",
        "balances",
        "email",
        "flex_risk",
        "futures",
        "futures_log",
        "futures_uid",
        "holds",
        "ledger",
        "name",
        "pending_out",
        "role",
        "trading_enabled",
    )

    def __init__(self, name: str, role: Role, account_id: str, email: str = "") -> None:
        self.name = name
        self.role: Role = role
        self.account_id = account_id
        self.email = email
        self.balances: dict[str, Decimal] = {}
        self.holds: dict[str, Decimal] = {}  # Kraken's hold_trade: reserved by open orders
        self.pending_out: dict[str, Decimal] = {}  # withdrawals and transfers not yet final
        self.ledger: list[LedgerEntry] = []
        self.futures: dict[str, dict[str, Decimal]] = {"cash": {}, "flex": {}}
        self.futures_log: list[LogEntry] = []  # the futures account log, oldest first
        self.futures_uid = ""
        self.flex_risk = NO_RISK  # the flex wallet's positions and orders (tests set them)
        self.trading_enabled = True

    def balance(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)

    def held(self, asset: str) -> Decimal:
        return self.holds.get(asset, ZERO)

    def available(self, asset: str) -> Decimal:
        return self.balance(asset) - self.held(asset) - self.pending_out.get(asset, ZERO)

    def reserve_out(self, asset: str, amount: Decimal, error_code: str) -> None:
        """Set funds aside for an outgoing transfer or withdrawal that is not final yet."""
        if amount > self.available(asset):
            raise KrakenError(error_code)
        self.pending_out[asset] = self.pending_out.get(asset, ZERO) + amount

    def unreserve_out(self, asset: str, amount: Decimal) -> None:
        left = self.pending_out.get(asset, ZERO) - amount
        if left > ZERO:
            self.pending_out[asset] = left
        else:
            self.pending_out.pop(asset, None)

    def hold(self, asset: str, amount: Decimal) -> None:
        """Reserve `amount` for an order; refuse when it is not available."""
        if self.role != "system" and amount > self.available(asset):
            raise KrakenError(INSUFFICIENT_FUNDS)
        self.holds[asset] = self.held(asset) + amount

    def release(self, asset: str, amount: Decimal) -> None:
        left = self.held(asset) - amount
        if left > ZERO:
            self.holds[asset] = left
        else:
            self.holds.pop(asset, None)


class IdFactory:
    """Kraken-looking ids (`OQCLML-BW3P3-BUCMWZ`), deterministic for a seed."""

    _ALPHABET: Final = string.ascii_uppercase + string.digits

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - ids, not secrets
        self._seen: set[str] = set()

    def _block(self, n: int) -> str:
        return "".join(self._rng.choice(self._ALPHABET) for _ in range(n))

    def make(self, prefix: str) -> str:
        while True:
            value = f"{prefix}{self._block(5)}-{self._block(5)}-{self._block(6)}"
            if value not in self._seen:
                self._seen.add(value)
                return value

    def uuid(self) -> str:
        """A UUID4-shaped id (approval requests, futures uids)."""
        hexits = f"{self._rng.getrandbits(128):032x}"
        return f"{hexits[:8]}-{hexits[8:12]}-4{hexits[13:16]}-a{hexits[17:20]}-{hexits[20:32]}"


class Domain:
    """A master account, its sub-accounts and the system accounts, with their ledgers."""

    def __init__(self, catalog: Catalog, ids: IdFactory) -> None:
        self.catalog = catalog
        self.ids = ids
        self.accounts: dict[str, Account] = {}
        self._by_alias: dict[str, Account] = {}
        self.ledger_index: dict[str, tuple[str, LedgerEntry]] = {}
        for name in SYSTEM_ACCOUNTS:
            self.add_account(name, "system", account_id=name)

    def add_account(self, name: str, role: Role, account_id: str, email: str = "") -> Account:
        if name in self.accounts:
            raise ValueError(f"account {name!r} exists")
        account = Account(name, role, account_id, email)
        account.futures_uid = self.ids.uuid()
        self.accounts[name] = account
        for alias in (name, account_id, account.futures_uid):
            self._by_alias[alias] = account
        return account

    @property
    def master(self) -> Account:
        return next(a for a in self.accounts.values() if a.role == "master")

    def clients(self) -> Iterator[Account]:
        """The master and sub-accounts (not the system accounts)."""
        return (a for a in self.accounts.values() if a.role != "system")

    def find(self, name_or_id: str) -> Account | None:
        """By our name, Kraken account id / IIBAN or username, or futures uid."""
        return self._by_alias.get(name_or_id)

    def post(
        self,
        account: Account,
        asset: str,
        amount: Decimal,
        *,
        type_: LedgerType,
        refid: str,
        now_s: float,
        fee: Decimal = ZERO,
        subtype: str = "",
    ) -> LedgerEntry | None:
        """Add `amount - fee` to a balance and write the ledger entry (system accounts: none)."""
        account.balances[asset] = account.balance(asset) + amount - fee
        if account.role == "system":
            return None
        decimals = self.catalog.assets[asset].decimals if asset in self.catalog.assets else 10
        entry = LedgerEntry(
            id=self.ids.make("L"),
            refid=refid,
            time=now_s,
            type=type_,
            subtype=subtype,
            asset=asset,
            amount=amount.quantize(Decimal(1).scaleb(-decimals)),
            fee=fee,
            balance=account.balances[asset],
        )
        account.ledger.append(entry)
        self.ledger_index[entry.id] = (account.name, entry)
        return entry

    def move(
        self,
        source: Account,
        target: Account,
        asset: str,
        amount: Decimal,
        *,
        type_: LedgerType,
        refid: str,
        now_s: float,
        subtype: str = "",
    ) -> tuple[LedgerEntry | None, LedgerEntry | None]:
        """Move `amount` between two accounts: one ledger entry on each side."""
        out = self.post(
            source, asset, -amount, type_=type_, refid=refid, now_s=now_s, subtype=subtype
        )
        into = self.post(
            target, asset, amount, type_=type_, refid=refid, now_s=now_s, subtype=subtype
        )
        return out, into

    def totals(self) -> dict[str, Decimal]:
        """Sum of every asset over every account, system accounts included (conserved)."""
        out: dict[str, Decimal] = {}
        for account in self.accounts.values():
            for asset, amount in account.balances.items():
                out[asset] = out.get(asset, ZERO) + amount
        return out
