"""One sub-account's balances as the worker knows them: totals from the venue, holds from ours.

Totals come from REST at start (`Balance`) and from the private `balances` channel after (every
ledger entry carries the balance after it). WebSocket v2 names assets its own way (`BTC`, `USD`)
where REST says `XXBT`, `ZUSD`; the instruments the strategy trades know both names, so the map
is built from them. What is *available* is the total minus what the strategy's own open and
pending orders hold: the account is the strategy's alone, and our holds are known the moment an
intent is accepted, before the venue reports anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from orchestrator.exchange.instruments import Instrument
from orchestrator.exchange.kraken.ws.schemas import BalanceSnapshot, LedgerUpdate
from orchestrator.exchange.protocol import Balance

ZERO = Decimal(0)


class AccountBalances:
    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._rest_name: dict[str, str] = {}
        for instrument in instruments:
            ws_base, _, ws_quote = instrument.symbol.partition("/")
            for ws_name, code in ((ws_base, instrument.base), (ws_quote, instrument.quote)):
                self._rest_name[ws_name] = code
                self._rest_name[code] = code
        self._totals: dict[str, Decimal] = {}

    @property
    def totals(self) -> Mapping[str, Decimal]:
        return self._totals

    def load(self, balances: Mapping[str, Balance]) -> None:
        """The venue's full picture (REST): replaces what was known."""
        self._totals = {asset: b.total for asset, b in balances.items()}

    def apply(self, event: BalanceSnapshot | LedgerUpdate) -> bool:
        """One `balances` element; whether a total changed. Wallets other than spot (earn,
        futures) are not what orders spend from."""
        if isinstance(event, LedgerUpdate) and event.wallet_type != "spot":
            return False
        code = self._rest_name.get(event.asset, event.asset)
        if self._totals.get(code) == event.balance:
            return False
        self._totals[code] = event.balance
        return True

    def available(self, holds: Mapping[str, Decimal]) -> dict[str, Decimal]:
        assets = self._totals.keys() | holds.keys()
        return {a: self._totals.get(a, ZERO) - holds.get(a, ZERO) for a in assets}
