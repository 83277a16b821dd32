"""The executor against the simulator through the product's clients: every outcome Kraken
documents for a transfer or a withdrawal, each journalled before the call, sent once, and
settled from the venue's ledgers, withdrawal list and futures log, never from memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import msgspec
import pytest

from orchestrator.exchange.protocol import AccountReader, Balance
from orchestrator.rebalancer.transfers import TransferRecord, tier_withdrawal_limit_usd, utc_day
from tests.unit.rebalancer.desk import FUNDS, SETTLE_AFTER_S, SUB_FUNDS, Desk, move, open_desk


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    async with open_desk() as opened:
        yield opened


def states(desk: Desk, record_id: str) -> list[str]:
    """The states `on_event` published for one record, in order."""
    return [r.state for r in desk.events if r.id == record_id]


async def test_a_transfer_is_journalled_sent_once_and_complete(desk: Desk) -> None:
    executor = desk.executor()
    record = await executor.execute(move("125.5"), "band")
    assert record.state == "complete"
    assert states(desk, record.id) == ["intent", "sent", "complete"]
    [transfer] = desk.sim.venue.funding.transfers.values()
    assert record.venue_id == transfer.transfer_id
    assert desk.balance("s0", "ZUSD") == SUB_FUNDS["ZUSD"] + Decimal("125.5")
    assert await desk.journal().get(record.id) == record
    assert await desk.journal().moved_today("ZUSD", record.day) == Decimal("125.5")
    assert desk.events[0].ledger_mark is None  # no transfer in the master's ledger before
    assert desk.registry.counter("orch_transfers_total", "", ("kind", "state")).get(
        "transfer", "complete"
    ) == 1  # fmt: skip
    assert desk.registry.gauge("orch_transfers_open", "").get() == 0
    assert await executor.reconcile() == []
    second = await executor.execute(move("1"), "band")
    [entry, *_] = await desk.readers["master"].ledger(asset="ZUSD", type_="transfer")
    assert entry.refid == second.venue_id
    [mark] = [r.ledger_mark for r in desk.events if r.id == second.id and r.state == "intent"]
    assert mark is not None
    assert mark != entry.id


@pytest.mark.parametrize("fault", ["lost", "garbled", "reset"])
async def test_reply_lost_after_the_venue_moved_the_money(desk: Desk, fault: str) -> None:
    desk.strike("AccountTransfer", fault)
    record = await desk.executor().execute(move("40"), "band")
    assert record.state == "complete"
    assert desk.sent("AccountTransfer") == 1
    assert [t.transfer_id for t in desk.sim.venue.funding.transfers.values()] == [record.venue_id]
    assert desk.balance("master", "ZUSD") == FUNDS["ZUSD"] - 40


async def test_pending_then_complete(desk: Desk) -> None:
    desk.sim.venue.funding.settings.transfer_mode = "pending"
    executor = desk.executor()
    record = await executor.execute(move("60"), "band")
    assert record.state == "pending"
    assert await desk.journal().in_flight() == {("master", "ZUSD"), ("s0", "ZUSD")}
    assert [r.state for r in await executor.reconcile()] == ["pending"]  # not due yet
    await desk.later(desk.sim.venue.funding.settings.transfer_delay_s)
    [done] = await executor.reconcile()
    assert (done.id, done.state, done.venue_id) == (record.id, "complete", record.venue_id)
    assert desk.balance("s0", "ZUSD") == SUB_FUNDS["ZUSD"] + 60
    assert await desk.journal().in_flight() == set()
    assert desk.sent("AccountTransfer") == 1


async def test_pending_then_failed(desk: Desk) -> None:
    desk.sim.venue.funding.settings.transfer_mode = "fail"
    executor = desk.executor()
    record = await executor.execute(move("60"), "band")
    assert record.state == "pending"
    await desk.later(desk.sim.venue.funding.settings.transfer_delay_s)
    [failed] = await executor.reconcile()
    assert failed.state == "failed"
    assert failed.error is not None
    assert "failed at the venue" in failed.error
    assert desk.balance("master", "ZUSD") == FUNDS["ZUSD"]
    assert await desk.journal().moved_today("ZUSD", record.day) == 0  # not counted any more
    desk.sim.venue.funding.settings.transfer_mode = "complete"
    assert (await executor.execute(move("60"), "band")).state == "complete"  # planned again


class HidesSetAside:
    """A reader of a venue that does not show a pending transfer's amount set aside (its
    balance counts it still): Kraken lists pending transfers nowhere, so it may be this one."""

    def __init__(self, desk: Desk, account: str) -> None:
        self.inner = desk.readers[account]
        self.account = desk.sim.venue.domain.accounts[account]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def balances(self) -> dict[str, Balance]:
        out = dict(await self.inner.balances())
        for asset, amount in self.account.pending_out.items():
            if asset in out:
                b = out[asset]
                out[asset] = Balance(asset=asset, total=b.total + amount, held=b.held)
        return out


async def test_a_pending_transfer_never_seen_set_aside_is_never_read_as_failed(desk: Desk) -> None:
    """Without a sign of the pending amount, its absence from the ledger says nothing: the move
    stays pending (nothing planned again for it), and its ledger entry completes it later."""
    desk.sim.venue.funding.settings.transfer_mode = "pending"
    readers = dict(desk.readers) | {"master": cast(AccountReader, HidesSetAside(desk, "master"))}
    executor = desk.executor(readers=readers)
    record = await executor.execute(move("60"), "band")
    assert (record.state, record.seen_set_aside) == ("pending", False)
    [still] = await executor.reconcile()  # not in the ledger, no sign set aside
    assert still.state == "pending"
    assert "its ledger entry (or an operator) settles it" in (still.error or "")
    assert ("master", "ZUSD") in await desk.journal().in_flight()  # nothing sent again for it
    await desk.later(desk.sim.venue.funding.settings.transfer_delay_s)
    [done] = await executor.reconcile()
    assert done.state == "complete"
    assert desk.balance("s0", "ZUSD") == SUB_FUNDS["ZUSD"] + 60


async def test_a_pending_transfer_whose_reply_was_lost_is_found_set_aside(desk: Desk) -> None:
    """The treasury cannot tell (a pending transfer shows in no ledger): the record stays
    `sent`, then the balance shows the amount set aside (pending), then the ledger (complete)."""
    desk.sim.venue.funding.settings.transfer_mode = "pending"
    desk.strike("AccountTransfer")
    executor = desk.executor()
    record = await executor.execute(move("75"), "band")
    assert record.state == "sent"
    assert record.error is not None
    assert record.error.startswith("outcome unknown")
    [pending] = await executor.reconcile()
    assert pending.state == "pending"
    await desk.later(desk.sim.venue.funding.settings.transfer_delay_s)
    [done] = await executor.reconcile()
    assert done.state == "complete"
    assert done.venue_id == next(iter(desk.sim.venue.funding.transfers))
    assert desk.sent("AccountTransfer") == 1


async def test_refused_for_insufficient_funds_fails_and_nothing_is_stuck(desk: Desk) -> None:
    executor = desk.executor()
    record = await executor.execute(move("5000", source="s1", target="master"), "band")
    assert record.state == "failed"
    assert record.error is not None
    assert "Insufficient funds" in record.error
    assert await desk.journal().in_flight() == set()
    assert await desk.journal().moved_today("ZUSD", record.day) == 0
    assert await executor.reconcile() == []
    again = await executor.execute(move("500", source="s1", target="master"), "band")
    assert again.state == "complete"


async def test_an_account_and_asset_with_an_open_move_is_refused(desk: Desk) -> None:
    desk.sim.venue.funding.settings.transfer_mode = "pending"
    executor = desk.executor()
    await executor.execute(move("10"), "band")
    refused = await executor.execute(move("20", source="s0", target="s1"), "band")
    assert refused.state == "failed"
    assert refused.error is not None
    assert refused.error.startswith("refused: an open move")
    assert len(desk.sim.venue.funding.transfers) == 1


async def test_an_intent_is_settled_not_executed_at_once(desk: Desk) -> None:
    """Killed before `sent` was journalled: the call never went out."""
    journal = desk.journal()
    intent = TransferRecord(id="dead", planned=move("10"), state="intent", trigger="period",
                            created_s=desk.clock.time(), updated_s=desk.clock.time(),
                            day=utc_day(desk.clock.time()))  # fmt: skip
    await journal.create(intent)
    [settled] = await desk.executor().reconcile()
    assert (settled.state, settled.error) == ("failed", "not executed: never sent")


async def test_sent_without_a_trace_fails_as_not_executed_only_after_the_window(
    desk: Desk,
) -> None:
    """Killed after `sent` was journalled and before the call: nothing at the venue, but a
    request could still be on its way, so the verdict waits `settle_after_s`."""
    journal = desk.journal()
    moves = await desk.readers["master"].ledger(asset="ZUSD", type_="transfer")
    now_s = desk.clock.time()
    sent = TransferRecord(id="quiet", planned=move("10"), state="sent", trigger="period",
                          created_s=now_s, updated_s=now_s, day=utc_day(now_s), sent_s=now_s,
                          ledger_mark=moves[0].id if moves else None)  # fmt: skip
    await journal.create(sent)
    executor = desk.executor()
    assert [r.state for r in await executor.reconcile()] == ["sent"]
    await desk.later(SETTLE_AFTER_S)
    [settled] = await executor.reconcile()
    assert settled.state == "failed"
    assert settled.error is not None
    assert settled.error.startswith("not executed: no trace")


async def test_a_sent_transfer_found_in_the_ledger_by_a_fresh_executor(desk: Desk) -> None:
    """Killed after the venue executed and before the answer was journalled: a new process
    finds the one new entry after the mark."""
    executor = desk.executor()
    record = await executor.execute(move("33"), "band")
    forgotten = msgspec.structs.replace(record, id="forgotten", state="sent", venue_id=None)
    await desk.journal().create(forgotten)
    [found] = await desk.executor().reconcile()
    assert (found.state, found.venue_id) == ("complete", record.venue_id)


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
async def test_a_withdrawal_awaiting_approval_is_followed_never_resent(
    desk: Desk, approve: bool
) -> None:
    funding = desk.sim.venue.funding
    funding.settings.organization_mode = True
    executor = desk.executor()
    planned = move("0.5", target="desk-wallet", asset="XXBT", kind="withdrawal")
    record = await executor.execute(planned, "sweep")
    assert record.state == "awaiting_approval"
    assert record.approval_request_id is not None
    assert [r.state for r in await executor.reconcile()] == ["awaiting_approval"]
    await desk.later(10)
    assert [r.state for r in await executor.reconcile()] == ["awaiting_approval"]
    funding.decide(record.approval_request_id, approve)
    await desk.later(funding.settings.withdraw_delay_s)
    await desk.later(funding.settings.withdraw_delay_s)
    [done] = await executor.reconcile()
    assert done.state == ("complete" if approve else "failed")
    assert desk.sent("Withdraw") == 1
    fee = funding.settings.withdraw_fee["XXBT"]
    left = FUNDS["XXBT"] - (Decimal("0.5") + fee if approve else 0)
    assert desk.balance("master", "XXBT") == left
    assert await desk.journal().withdrawn_today(record.day) == (
        {"XXBT": Decimal("0.5")} if approve else {}
    )


async def test_a_plain_withdrawal_is_pending_until_success(desk: Desk) -> None:
    executor = desk.executor()
    planned = move("0.25", target="desk-wallet", asset="XXBT", kind="withdrawal")
    desk.strike("Withdraw")  # reconciled by the treasury from WithdrawStatus
    record = await executor.execute(planned, "sweep")
    assert record.state == "pending"
    await desk.later(desk.sim.venue.funding.settings.withdraw_delay_s)
    [done] = await executor.reconcile()
    assert done.state == "complete"
    assert desk.sent("Withdraw") == 1


@pytest.mark.parametrize("fault", ["none", "lost"])
async def test_a_futures_top_up_is_sent_once(desk: Desk, fault: str) -> None:
    if fault == "lost":
        desk.strike("transfer/subaccount")
    planned = move("250", asset="USD", kind="futures_transfer")
    record = await desk.executor().execute(planned, "margin")
    assert record.state == "complete"
    assert record.log_mark is not None
    assert desk.flex("master") == Decimal(4_750)
    assert desk.flex("s0") == Decimal(350)
    forgotten = msgspec.structs.replace(record, id="forgotten", state="sent")
    await desk.journal().create(forgotten)
    [found] = await desk.executor().reconcile()
    assert found.state == "complete"  # a fresh process finds the leg after the mark


def test_the_tier_daily_withdrawal_limits() -> None:
    assert tier_withdrawal_limit_usd("starter") == 5_000
    assert tier_withdrawal_limit_usd("intermediate") == 500_000
    assert tier_withdrawal_limit_usd("pro") == 10_000_000
