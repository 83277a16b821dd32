"""Kraken's implementation of `SpotVenue`, over the signed REST client.

It turns the protocol's calls into Kraken's methods and parameters, describes each request to the
limiter (pair, order ages) so that the right counters are charged, and decodes results into the
protocol's types. AddOrder goes through `add_order_once`: at most one order per `cl_ord_id`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orchestrator.clock import Clock
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.reconcile import add_order_once, find_order
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import (
    Balance,
    LedgerEntry,
    OrderSpec,
    OrderState,
    Transfer,
    Withdrawal,
    WithdrawalState,
)
from orchestrator.ratelimit.policy import VenueRequest


def _order_state(txid: str, order: s.KrakenOrder) -> OrderState:
    limit = order.descr.price if order.descr.ordertype == "limit" else None
    return OrderState(
        txid=txid,
        cl_ord_id=order.cl_ord_id,
        pair=order.descr.pair,
        side="buy" if order.descr.type == "buy" else "sell",
        order_type=order.descr.ordertype,
        status=order.status,  # type: ignore[arg-type]  # Kraken's five statuses
        volume=order.vol,
        executed=order.vol_exec,
        price=limit,
        avg_price=order.price,
        cost=order.cost,
        fee=order.fee,
        opened_s=order.opentm,
        closed_s=order.closetm,
        reason=order.reason,
    )


class PairNames:
    """Kraken names a pair four ways; the limiter uses the REST wsname (`XBT/USD`) for all of
    them, so that REST and WS requests charge the same counters, and REST calls send the altname."""

    def __init__(self, asset_pairs: dict[str, Any]) -> None:
        self._wsname: dict[str, str] = {}
        self._altname: dict[str, str] = {}
        for key, info in asset_pairs.items():
            names = {key, info["altname"], info["wsname"]}
            for name in names:
                self._wsname[name] = info["wsname"]
                self._altname[name] = info["altname"]

    @classmethod
    async def load(cls, rest: KrakenRest) -> PairNames:
        return cls(await rest.public("AssetPairs"))

    def limiter(self, pair: str) -> str:
        return self._wsname.get(pair, pair)

    def rest(self, pair: str) -> str:
        return self._altname.get(pair, pair)


class KrakenSpot:
    """`SpotVenue` for one Kraken account."""

    def __init__(self, rest: KrakenRest, clock: Clock, names: PairNames) -> None:
        self.rest = rest
        self.clock = clock
        self.names = names

    def _pair(self, pair: str) -> str:
        return self.names.limiter(pair)

    async def place_order(self, spec: OrderSpec) -> str:
        params: dict[str, Any] = {
            "pair": self.names.rest(spec.pair),
            "type": spec.side,
            "ordertype": spec.order_type,
            "volume": str(spec.volume),
            "cl_ord_id": spec.cl_ord_id,
            "timeinforce": spec.time_in_force,
        }
        if spec.price is not None:
            params["price"] = str(spec.price)
        if spec.post_only:
            params["oflags"] = "post"
        if spec.expire_s is not None:
            params["expiretm"] = f"{spec.expire_s:.3f}"
        request = VenueRequest(method="AddOrder", pair=self._pair(spec.pair))
        return await add_order_once(self.rest, params, request=request, clock=self.clock)

    async def amend_order(
        self,
        txid: str,
        *,
        age_s: float,
        volume: Decimal | None = None,
        price: Decimal | None = None,
    ) -> str:
        params: dict[str, Any] = {"txid": txid}
        if volume is not None:
            params["order_qty"] = str(volume)
        if price is not None:
            params["limit_price"] = str(price)
        order = (await self.query_orders([txid]))[0]
        request = VenueRequest(
            method="AmendOrder", pair=self._pair(order.pair), order_ages_s=(age_s,)
        )
        return (
            await self.rest.private_as(s.AmendResult, "AmendOrder", params, request=request)
        ).amend_id

    async def cancel_order(self, txid: str, *, age_s: float | None, pair: str | None = None) -> int:
        if pair is None:
            pair = (await self.query_orders([txid]))[0].pair
        request = VenueRequest(method="CancelOrder", pair=self._pair(pair), order_ages_s=(age_s,))
        result = await self.rest.private_as(
            s.CancelResult, "CancelOrder", {"txid": txid}, request=request
        )
        return result.count

    async def cancel_all(self, open_orders: list[OrderState]) -> int:
        now_s = self.clock.time()
        ages = tuple((self._pair(o.pair), max(0.0, now_s - o.opened_s)) for o in open_orders)
        request = VenueRequest(method="CancelAll", cancel_all=ages)
        return (await self.rest.private_as(s.CancelResult, "CancelAll", request=request)).count

    async def dead_man_switch(self, timeout_s: int) -> str:
        result = await self.rest.private_as(
            s.DeadManResult, "CancelAllOrdersAfter", {"timeout": timeout_s}
        )
        return result.triggerTime

    async def open_orders(self) -> list[OrderState]:
        result = await self.rest.private_as(s.OpenOrders, "OpenOrders")
        return [_order_state(txid, order) for txid, order in result.open.items()]

    async def find_order(self, cl_ord_id: str) -> OrderState | None:
        found = await find_order(self.rest, cl_ord_id)
        return None if found is None else _order_state(*found)

    async def query_orders(self, txids: list[str]) -> list[OrderState]:
        result = await self.rest.private_as(
            dict[str, s.KrakenOrder], "QueryOrders", {"txid": ",".join(txids)}
        )
        return [_order_state(txid, order) for txid, order in result.items()]

    async def balances(self) -> dict[str, Balance]:
        result = await self.rest.private_as(dict[str, s.BalanceEx], "BalanceEx")
        return {
            asset: Balance(asset=asset, total=entry.balance, held=entry.hold_trade)
            for asset, entry in result.items()
        }

    async def ledger(
        self, *, asset: str | None = None, type_: str | None = None
    ) -> list[LedgerEntry]:
        params = {k: v for k, v in (("asset", asset), ("type", type_)) if v is not None}
        result = await self.rest.private_as(s.Ledgers, "Ledgers", params)
        return [
            LedgerEntry(id=ledger_id, refid=e.refid, time_s=e.time, type=e.type, subtype=e.subtype,
                        asset=e.asset, amount=e.amount, fee=e.fee, balance=e.balance)
            for ledger_id, e in result.ledger.items()
        ]  # fmt: skip

    async def account_transfer(
        self, asset: str, amount: Decimal, source_id: str, target_id: str
    ) -> Transfer:
        params = {"asset": asset, "amount": str(amount), "from": source_id, "to": target_id}
        result = await self.rest.private_as(s.TransferResult, "AccountTransfer", params)
        return Transfer(
            transfer_id=result.transfer_id,
            status="pending" if result.status == "pending" else "complete",
        )

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal:
        params = {"asset": asset, "key": key, "amount": str(amount)}
        if max_fee is not None:
            params["max_fee"] = str(max_fee)
        result = await self.rest.private_as(s.WithdrawResult, "Withdraw", params)
        return Withdrawal(refid=result.refid, approval_request_id=result.approval_request_id)

    async def withdraw_status(self, asset: str | None = None) -> list[WithdrawalState]:
        params = {"asset": asset} if asset is not None else {}
        result = await self.rest.private_as(list[s.WithdrawStatus], "WithdrawStatus", params)
        return [
            WithdrawalState(
                refid=w.refid,
                asset=w.asset,
                amount=w.amount,
                fee=w.fee,
                status=w.status,
                status_prop=w.status_prop,
            )
            for w in result
        ]

    async def create_subaccount(self, username: str, email: str) -> None:
        await self.rest.private("CreateSubaccount", {"username": username, "email": email})

    async def websockets_token(self) -> str:
        return (await self.rest.private_as(s.WebSocketsToken, "GetWebSocketsToken")).token
