"""Kraken's `AccountReader` for one account: balances, ledger and order queries (its own key)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.orders import order_state
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import Balance, LedgerEntry, OrderState


def balances_of(result: dict[str, s.BalanceEx]) -> dict[str, Balance]:
    """BalanceEx's reply as balances (total, and what open orders hold)."""
    return {
        asset: Balance(asset=asset, total=entry.balance, held=entry.hold_trade)
        for asset, entry in result.items()
    }


def ledger_params(asset: str | None, type_: str | None) -> dict[str, str]:
    return {k: v for k, v in (("asset", asset), ("type", type_)) if v is not None}


def ledger_entries(result: s.Ledgers) -> list[LedgerEntry]:
    return [
        LedgerEntry(id=ledger_id, refid=e.refid, time_s=e.time, type=e.type, subtype=e.subtype,
                    asset=e.asset, amount=e.amount, fee=e.fee, balance=e.balance)
        for ledger_id, e in result.ledger.items()
    ]  # fmt: skip


def order_states(result: dict[str, s.KrakenOrder], instruments: Instruments) -> list[OrderState]:
    return [order_state(txid, o, instruments) for txid, o in result.items()]


class KrakenAccountReader:
    """`AccountReader` for one Kraken account."""

    def __init__(self, rest: KrakenRest, instruments: Instruments) -> None:
        self._rest = rest
        self.instruments = instruments

    async def balances(self) -> dict[str, Balance]:
        return balances_of(await self._rest.call_as(dict[str, s.BalanceEx], m.BALANCE_EX))

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]:
        params = ledger_params(asset, type_)
        return ledger_entries(await self._rest.call_as(s.Ledgers, m.LEDGERS, params))

    async def query_orders(self, txids: Sequence[str]) -> list[OrderState]:
        result = await self._rest.call_as(
            dict[str, s.KrakenOrder], m.QUERY_ORDERS, {"txid": ",".join(txids)}
        )
        return order_states(result, self.instruments)
