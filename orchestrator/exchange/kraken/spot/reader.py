"""Kraken's `AccountReader` for one account: balances, ledger and order queries (its own key)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.exchange.instruments import Instruments
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.orders import order_state
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import Balance, LedgerEntry, OrderState


class KrakenAccountReader:
    """`AccountReader` for one Kraken account."""

    def __init__(self, rest: KrakenRest, instruments: Instruments) -> None:
        self._rest = rest
        self.instruments = instruments

    async def balances(self) -> dict[str, Balance]:
        result = await self._rest.call_as(dict[str, s.BalanceEx], m.BALANCE_EX)
        return {
            asset: Balance(asset=asset, total=entry.balance, held=entry.hold_trade)
            for asset, entry in result.items()
        }

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]:
        params = {k: v for k, v in (("asset", asset), ("type", type_)) if v is not None}
        result = await self._rest.call_as(s.Ledgers, m.LEDGERS, params)
        return [
            LedgerEntry(id=ledger_id, refid=e.refid, time_s=e.time, type=e.type, subtype=e.subtype,
                        asset=e.asset, amount=e.amount, fee=e.fee, balance=e.balance)
            for ledger_id, e in result.ledger.items()
        ]  # fmt: skip

    async def query_orders(self, txids: Sequence[str]) -> list[OrderState]:
        result = await self._rest.call_as(
            dict[str, s.KrakenOrder], m.QUERY_ORDERS, {"txid": ",".join(txids)}
        )
        return [order_state(txid, o, self.instruments) for txid, o in result.items()]
