"""Futures transfers executed exactly once: between the master's and its sub-accounts' wallets,
and between the wallets of one account.

Kraken's futures transfers return no id and take no idempotency key; what the venue can show
is the account log (`GET /api/history/v3/account-log`), where each transfer writes one entry per
wallet it touched, with the balance before and after. So before sending, the treasury notes the
newest entry of a *witness* log (one that the transfer will write to: the source's, or else the
target's); after an ambiguous outcome (`act_once`), an entry above it for the same wallet, asset
and change is the transfer having executed, and no new transfer entry at all means it did not.
A new transfer entry that is not this one (another party moved money meanwhile, or the venue
names the asset differently than the caller did) leaves the outcome ambiguous: we never resend
on a guess. Transfers of one treasury are sent one at a time, so a new entry is not another of
ours.

Balances are doubles on the log's wire, so a change matches within a double's rounding of the
balances (`_ROUNDING`), far below any amount that could be told apart on the venue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from orchestrator.clock import Clock
from orchestrator.errors import AmbiguousOutcome, InvalidRequest
from orchestrator.exchange.kraken.common.reconcile import act_once
from orchestrator.exchange.kraken.futures.client import KrakenFutures
from orchestrator.exchange.kraken.futures.methods import ACCOUNT_LOG_MAX_COUNT
from orchestrator.exchange.kraken.futures.schemas import AccountLogEntry

# The log's `info` of a transfer: Kraken does not say which endpoint writes which, so both are
# taken as transfers by either endpoint.
TRANSFER_INFOS: Final = frozenset({"subaccount transfer", "transfer"})
_ROUNDING: Final = Decimal("1e-12")  # relative: a double keeps 15-17 significant digits
_MAX_PAGES: Final = 8  # new entries read while reconciling, at most 8 x 25


@dataclass(frozen=True, slots=True)
class Leg:
    """What a transfer writes in one account's log: the wallet, the asset, the change."""

    wallet: str
    asset: str  # as the log names it: lower-case altname
    change: Decimal  # -amount on the source's side, +amount on the target's

    def written_by(self, entry: AccountLogEntry) -> bool:
        """`entry` is this leg (wallet, asset and change agree)."""
        if entry.old_balance is None or entry.new_balance is None or entry.asset is None:
            return False
        if entry.margin_account != self.wallet or entry.asset.lower() != self.asset:
            return False
        slack = _ROUNDING * max(abs(entry.old_balance), abs(entry.new_balance), abs(self.change))
        return abs((entry.new_balance - entry.old_balance) - self.change) <= slack


class FuturesTreasury:
    """Exactly-once futures transfers over the master's futures client.

    `logs`: the futures clients whose account logs can witness a transfer, by the user name that
    transfers give for them (`fromUser`/`toUser`); the master's own client belongs there under
    the master's name. A sub-account transfer needs the log of its source or its target: without
    either it is refused before anything is sent, since an ambiguous outcome could not be
    reconciled.
    """

    def __init__(
        self,
        master: KrakenFutures,
        clock: Clock,
        logs: Mapping[str, KrakenFutures],
        *,
        confirm_delay_s: float = 0.5,
    ) -> None:
        self.master = master
        self.clock = clock
        self.logs = logs
        self.confirm_delay_s = confirm_delay_s
        self._one_at_a_time = asyncio.Lock()

    async def transfer_subaccount(
        self,
        *,
        from_user: str,
        to_user: str,
        from_account: str,
        to_account: str,
        unit: str,
        amount: Decimal,
    ) -> None:
        """Move `amount` of `unit` (the futures altname, `usd`, `xbt`) from a wallet of
        `from_user` to one of `to_user`, executed exactly once (or `AmbiguousOutcome` when the
        venue never lets us tell)."""
        asset = unit.lower()
        if from_user in self.logs:
            witness = self.logs[from_user]
            legs = [Leg(from_account, asset, -amount)]
            if to_user == from_user:
                legs.append(Leg(to_account, asset, amount))
        elif to_user in self.logs:
            witness, legs = self.logs[to_user], [Leg(to_account, asset, amount)]
        else:
            raise InvalidRequest(
                f"no account log of {from_user!r} or {to_user!r} to reconcile a transfer with"
            )

        async def send() -> None:
            await self.master.transfer_subaccount(
                from_user=from_user, to_user=to_user, from_account=from_account,
                to_account=to_account, unit=unit, amount=amount,
            )  # fmt: skip

        what = (f"transfer/subaccount {amount} {unit} "
                f"{from_user}:{from_account}->{to_user}:{to_account}")  # fmt: skip
        await self._once(what, send, witness, legs)

    async def transfer(
        self, *, from_account: str, to_account: str, unit: str, amount: Decimal
    ) -> None:
        """Move `amount` of `unit` between two wallets of the master, exactly once; the master's
        own log witnesses both sides."""
        asset = unit.lower()
        legs = [Leg(from_account, asset, -amount), Leg(to_account, asset, amount)]

        async def send() -> None:
            await self.master.transfer(
                from_account=from_account, to_account=to_account, unit=unit, amount=amount
            )

        await self._once(f"transfer {amount} {unit} {from_account}->{to_account}", send,
                         self.master, legs)  # fmt: skip

    async def _once(
        self,
        what: str,
        send: Callable[[], Awaitable[None]],
        witness: KrakenFutures,
        legs: list[Leg],
    ) -> None:
        async with self._one_at_a_time:
            newest = await witness.account_log(sort="desc", count=1)
            after_id = newest.logs[0].id if newest.logs else 0

            async def sent() -> Literal[True]:
                await send()
                return True

            async def lookup() -> Literal[True] | None:
                return await _find(what, witness, after_id, legs)

            await act_once(what, sent, lookup, clock=self.clock,
                           confirm_delay_s=self.confirm_delay_s)  # fmt: skip


async def _find(
    what: str, witness: KrakenFutures, after_id: int, legs: list[Leg]
) -> Literal[True] | None:
    """True when the witness log shows one of `legs` above `after_id`; else `AmbiguousOutcome`:
    other transfers only, or none at all. No entry is not proof that nothing happened (the log
    may lag a transfer still being processed), so the call is never sent again on it: whoever
    journalled the move settles it later from the log (the rebalancer's executor)."""
    strangers: list[int] = []
    from_id = after_id + 1
    for _ in range(_MAX_PAGES):
        page = (await witness.account_log(from_id=from_id, sort="asc")).logs
        for entry in page:
            if entry.info not in TRANSFER_INFOS:
                continue  # trades, funding, fees: not a transfer
            if any(leg.written_by(entry) for leg in legs):
                return True
            strangers.append(entry.id)
        if len(page) < ACCOUNT_LOG_MAX_COUNT:
            break
        from_id = page[-1].id + 1
    else:
        raise AmbiguousOutcome(f"{what}: more new log entries than we read; cannot tell")
    if strangers:
        raise AmbiguousOutcome(
            f"{what}: the log shows other transfers since ({strangers}), not this one; cannot tell"
        )
    raise AmbiguousOutcome(f"{what}: no transfer in the log yet: not executed, or not logged yet")
