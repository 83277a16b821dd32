"""Kraken's `Treasury`: transfers between the master and its sub-accounts, and withdrawals.

Only the master's key may move money, so this object is built for the master account alone and
handed to the rebalancer, never to a strategy. Kraken has no idempotency key for
AccountTransfer or Withdraw: before sending, the treasury notes what the venue already lists
(the source account's transfer ledger entries, the withdrawals of the asset); after an ambiguous
outcome, the one new entry of the same asset and amount is the call having executed. Anything
else (no new entry: not executed, or still pending, which Kraken lists nowhere; entries we
cannot tell apart) stays `AmbiguousOutcome`: money is never re-sent on a guess, the journal and
the operator settle it. Transfers and withdrawals of one treasury are sent one at a time, so a
new entry cannot be another of our calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousOutcome, InvalidRequest
from orchestrator.exchange.kraken.common import methods as m
from orchestrator.exchange.kraken.common.amounts import amount_text
from orchestrator.exchange.kraken.common.reconcile import act_once
from orchestrator.exchange.kraken.spot import schemas as s
from orchestrator.exchange.kraken.spot.rest import KrakenRest
from orchestrator.exchange.protocol import AccountReader, Transfer, Withdrawal, WithdrawalState


class _Listed(Protocol):
    @property
    def refid(self) -> str: ...


E = TypeVar("E", bound=_Listed)


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
        what = f"AccountTransfer {asset} {amount}"
        async with self._one_at_a_time:
            known = {e.refid for e in await reader.ledger(asset=asset, type_="transfer")}

            async def send() -> Transfer:
                result = await self.master.call_as(s.TransferResult, m.ACCOUNT_TRANSFER, params)
                pending = result.status == "pending"
                return Transfer(transfer_id=result.transfer_id,
                                status="pending" if pending else "complete")  # fmt: skip

            async def lookup() -> Transfer:
                entry = await self._new_entry(
                    what,
                    lambda: reader.ledger(asset=asset, type_="transfer"),
                    known,
                    lambda e: -e.amount == amount,
                )
                return Transfer(transfer_id=entry.refid, status="complete")

            return await act_once(what, send, lookup, clock=self.clock,
                                  confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    async def withdraw(
        self, asset: str, key: str, amount: Decimal, max_fee: Decimal | None = None
    ) -> Withdrawal:
        params = {"asset": asset, "key": key, "amount": amount_text(amount)}
        if max_fee is not None:
            params["max_fee"] = format(max_fee, "f")
        what = f"Withdraw {asset} {amount}"
        async with self._one_at_a_time:
            known = {w.refid for w in await self.withdraw_status(asset)}

            async def send() -> Withdrawal:
                result = await self.master.call_as(s.WithdrawResult, m.WITHDRAW, params)
                approval = result.approval_request_id
                return Withdrawal(refid=result.refid, approval_request_id=approval,
                                  awaiting_approval=approval is not None)  # fmt: skip

            async def lookup() -> Withdrawal:
                found = await self._new_entry(
                    what, lambda: self.withdraw_status(asset), known, lambda w: w.amount == amount
                )
                return Withdrawal(refid=found.refid, approval_request_id=None,
                                  awaiting_approval=found.status_prop == "onhold")  # fmt: skip

            return await act_once(what, send, lookup, clock=self.clock,
                                  confirm_delay_s=self.confirm_delay_s)  # fmt: skip

    async def _new_entry(
        self,
        what: str,
        entries: Callable[[], Awaitable[Sequence[E]]],
        known: set[str],
        matches: Callable[[E], bool],
    ) -> E:
        """The one entry the venue lists now that it did not before sending, if it is ours.

        Money is never re-sent on a guess: an entry missing (the call may not have executed, or
        may be pending, which Kraken lists nowhere yet) or entries we cannot tell apart leave
        the outcome ambiguous, for the journal and the operator to settle."""
        for attempt in range(2):
            new = [e for e in await entries() if e.refid not in known]
            ours = [e for e in new if matches(e)]
            if len(ours) == 1 and len(new) == 1:
                return ours[0]
            if new:
                break  # someone else's entry too: a second look cannot tell them apart
            if attempt == 0:
                await self.clock.sleep(self.confirm_delay_s)  # lists can lag the call a little
        raise AmbiguousOutcome(
            f"{what}: {len(new)} new entries where exactly ours was expected; it may be pending "
            "or not executed, and money is never re-sent on a guess"
        )

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
