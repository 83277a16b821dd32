"""Kraken's `Treasury`: transfers between the master and its sub-accounts, and withdrawals.

Only the master's key may move money, so this object is built for the master account alone and
handed to the rebalancer, never to a strategy. Kraken has no idempotency key for
AccountTransfer or Withdraw: before sending, the treasury notes what the venue already lists
(the source account's transfer ledger entries, the withdrawals of the asset); after an ambiguous
outcome, a new entry of the same asset and amount is the call having executed, and its absence
means it did not (`act_once`). Transfers and withdrawals of one treasury are sent one at a time,
so a new entry cannot be another call's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal

from orchestrator.clock import Clock
from orchestrator.errors import InvalidRequest
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.common.amounts import amount_text
from orchestrator.exchange.kraken.common.reconcile import act_once
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import AccountReader, Transfer, Withdrawal, WithdrawalState


class KrakenTreasury:
    """`Treasury` over the master's REST client. `readers` reads each account that can be the
    source of a transfer, by its Kraken account id (what `from` names)."""

    def __init__(
        self,
        master: KrakenRest,
        clock: Clock,
        readers: Mapping[str, AccountReader],
        *,
        confirm_delay_s: float = 0.5,
    ) -> None:
        self.master = master
        self.clock = clock
        self.readers = readers
        self.confirm_delay_s = confirm_delay_s
        self._one_at_a_time = asyncio.Lock()

    async def account_transfer(
        self, asset: str, amount: Decimal, source_id: str, target_id: str
    ) -> Transfer:
        reader = self.readers.get(source_id)
        if reader is None:
            raise InvalidRequest(f"no account {source_id!r} to transfer from")
        params = {"asset": asset, "amount": amount_text(amount), "from": source_id,
                  "to": target_id}  # fmt: skip
        async with self._one_at_a_time:
            known = {e.refid for e in await reader.ledger(asset=asset, type_="transfer")}

            async def send() -> Transfer:
                result = await self.master.call_as(s.TransferResult, m.ACCOUNT_TRANSFER, params)
                pending = result.status == "pending"
                return Transfer(transfer_id=result.transfer_id,
                                status="pending" if pending else "complete")  # fmt: skip

            async def lookup() -> Transfer | None:
                for entry in await reader.ledger(asset=asset, type_="transfer"):
                    if entry.refid not in known and -entry.amount == amount:
                        return Transfer(transfer_id=entry.refid, status="complete")
                return None

            what = f"AccountTransfer {asset} {amount}"
            return await act_once(what, send, lookup, clock=self.clock,
                                  confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal:
        params = {"asset": asset, "key": key, "amount": amount_text(amount)}
        if max_fee is not None:
            params["max_fee"] = format(max_fee, "f")
        async with self._one_at_a_time:
            known = {w.refid for w in await self.withdraw_status(asset)}

            async def send() -> Withdrawal:
                result = await self.master.call_as(s.WithdrawResult, m.WITHDRAW, params)
                return Withdrawal(refid=result.refid,
                                  approval_request_id=result.approval_request_id)  # fmt: skip

            async def lookup() -> Withdrawal | None:
                for w in await self.withdraw_status(asset):
                    if w.refid not in known and w.amount == amount:
                        return Withdrawal(refid=w.refid, approval_request_id=None)
                return None

            return await act_once(f"Withdraw {asset} {amount}", send, lookup, clock=self.clock,
                                  confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    async def withdraw_status(self, asset: str | None = None) -> list[WithdrawalState]:
        params = {"asset": asset} if asset is not None else {}
        result = await self.master.call_as(list[s.WithdrawStatus], m.WITHDRAW_STATUS, params)
        return [
            WithdrawalState(refid=w.refid, asset=w.asset, amount=w.amount, fee=w.fee,
                            status=w.status, status_prop=w.status_prop)
            for w in result
        ]  # fmt: skip

    async def create_subaccount(self, username: str, email: str) -> None:
        await self.master.call(m.CREATE_SUBACCOUNT, {"username": username, "email": email})
