"""Money leaving an account other than by trading: AccountTransfer between the accounts of the
domain, Withdraw (with Organizations approvals), and sub-account creation.

Settings decide how transfers end (`complete` at once, `pending` then complete, or `fail` after
pending) so that clients can be tested against every outcome Kraken documents. Withdrawals are
held to the tier's daily limit in USD (`withdraw_limits`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from orchestrator.clock import Clock
from orchestrator.simulator import withdraw_limits as wl
from orchestrator.simulator.accounts import EXTERNAL, FEES, Account, Domain, LedgerEntry
from orchestrator.simulator.errors import (
    FUNDING_DAILY_LIMIT,
    FUNDING_INSUFFICIENT,
    FUNDING_INVALID_AMOUNT,
    FUNDING_UNKNOWN_ASSET,
    FUNDING_UNKNOWN_KEY,
    PERMISSION_DENIED,
    KrakenError,
)
from orchestrator.simulator.limits import Tier
from orchestrator.simulator.orders import invalid, parse_decimal

TransferMode = Literal["complete", "pending", "fail"]
TransferStatus = Literal["pending", "complete", "failed"]
WithdrawStatus = Literal["Initial", "Pending", "Success", "Failure"]
# Kraken does not document this subtype: a Decision (docs/kraken/accounts-and-transfers.md 2).
_TRANSFER_SUBTYPE: Final = "spottransfer"


class FundingSettings(msgspec.Struct, kw_only=True):
    transfer_mode: TransferMode = "complete"
    transfer_delay_s: float = 2.0
    organization_mode: bool = False
    withdraw_delay_s: float = 1.0
    withdraw_keys: frozenset[str] = frozenset({"desk-wallet"})
    withdraw_fee: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"XXBT": Decimal("0.00015"), "ZUSD": Decimal(5)}
    )
    # The tier's daily withdrawal limit in USD (docs/kraken/accounts-and-transfers.md 3).
    daily_withdraw_limit_usd: dict[Tier, Decimal] = msgspec.field(
        default_factory=lambda: dict(wl.DAILY_WITHDRAW_LIMIT_USD)
    )
    withdraw_limit_scope: wl.LimitScope = "domain"
    withdraw_limit_window: wl.LimitWindow = "utc_day"


@dataclass(slots=True)
class Transfer:
    transfer_id: str
    asset: str
    amount: Decimal
    source: str
    target: str
    status: TransferStatus
    created_s: float
    due_s: float
    will_fail: bool = False


@dataclass(slots=True)
class Withdrawal:
    refid: str
    account: str
    asset: str
    amount: Decimal
    fee: Decimal
    key: str
    created_s: float
    status: WithdrawStatus = "Initial"
    status_prop: str | None = None
    approval_request_id: str | None = None
    approved: bool = True
    due_s: float = 0.0
    usd_value: Decimal = Decimal(0)  # what the daily limit counts


@dataclass(slots=True)
class Funding:
    domain: Domain
    clock: Clock
    settings: FundingSettings
    on_ledger: Callable[[str, LedgerEntry | None], None]
    tier: Tier
    price_usd: wl.PriceUsd  # an asset id's USD price, for the daily withdrawal limit
    transfers: dict[str, Transfer] = field(default_factory=dict)
    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)  # approval request id -> refid

    def _amount(self, text: str | None) -> Decimal:
        amount = parse_decimal(text, "amount")
        if amount <= 0:
            raise KrakenError(FUNDING_INVALID_AMOUNT)
        return amount

    def _asset(self, name: str | None) -> str:
        if not name:
            raise invalid("asset")
        try:
            return self.domain.catalog.asset(name).id
        except KrakenError:
            raise KrakenError(FUNDING_UNKNOWN_ASSET) from None

    # --- AccountTransfer -----------------------------------------------------------------------
    def account_transfer(
        self,
        caller: Account,
        asset: str | None,
        amount: str | None,
        source: str | None,
        target: str | None,
    ) -> Transfer:
        """Move funds between two accounts of the domain; only the master's key may."""
        if caller.role != "master":
            raise KrakenError(PERMISSION_DENIED)
        asset_id = self._asset(asset)
        value = self._amount(amount)
        src = self.domain.find(source or "")
        dst = self.domain.find(target or "")
        if src is None or src.role == "system":
            raise invalid("from")
        if dst is None or dst.role == "system" or dst is src:
            raise invalid("to")
        now_s = self.clock.time()
        mode = self.settings.transfer_mode
        transfer = Transfer(
            transfer_id=self.domain.ids.make("TR"),
            asset=asset_id,
            amount=value,
            source=src.name,
            target=dst.name,
            status="complete" if mode == "complete" else "pending",
            created_s=now_s,
            due_s=now_s + (0 if mode == "complete" else self.settings.transfer_delay_s),
            will_fail=mode == "fail",
        )
        src.reserve_out(asset_id, value, FUNDING_INSUFFICIENT)
        self.transfers[transfer.transfer_id] = transfer
        if mode == "complete":
            self._finish_transfer(transfer)
        return transfer

    def _finish_transfer(self, transfer: Transfer) -> None:
        src = self.domain.accounts[transfer.source]
        dst = self.domain.accounts[transfer.target]
        src.unreserve_out(transfer.asset, transfer.amount)
        if transfer.will_fail:
            transfer.status = "failed"
            return
        out, into = self.domain.move(
            src, dst, transfer.asset, transfer.amount, type_="transfer",
            refid=transfer.transfer_id, now_s=self.clock.time(), subtype=_TRANSFER_SUBTYPE,
        )  # fmt: skip
        transfer.status = "complete"
        self.on_ledger(src.name, out)
        self.on_ledger(dst.name, into)

    # --- Withdraw ------------------------------------------------------------------------------
    def withdraw(
        self,
        caller: Account,
        asset: str | None,
        key: str | None,
        amount: str | None,
        max_fee: str | None,
    ) -> Withdrawal:
        asset_id = self._asset(asset)
        if not key or key not in self.settings.withdraw_keys:
            raise KrakenError(FUNDING_UNKNOWN_KEY)
        value = self._amount(amount)
        fee = self.settings.withdraw_fee.get(asset_id, Decimal(0))
        if max_fee is not None and fee > parse_decimal(max_fee, "max_fee"):
            raise KrakenError("EFunding:Max fee exceeded")
        usd_value = value * self.price_usd(asset_id)
        if usd_value > self.withdraw_headroom_usd(caller.name):
            raise KrakenError(FUNDING_DAILY_LIMIT)
        caller.reserve_out(asset_id, value + fee, FUNDING_INSUFFICIENT)
        now_s = self.clock.time()
        withdrawal = Withdrawal(
            refid=self.domain.ids.make("F"), account=caller.name, asset=asset_id, amount=value,
            fee=fee, key=key, created_s=now_s, due_s=now_s + self.settings.withdraw_delay_s,
            usd_value=usd_value,
        )  # fmt: skip
        if self.settings.organization_mode:
            withdrawal.approval_request_id = self.domain.ids.uuid()
            withdrawal.approved = False
            withdrawal.status_prop = "onhold"
            self.approvals[withdrawal.approval_request_id] = withdrawal.refid
        self.withdrawals[withdrawal.refid] = withdrawal
        return withdrawal

    def daily_withdraw_limit_usd(self) -> Decimal:
        """The venue's tier's limit: the setting, else the Decision's figure."""
        limits = self.settings.daily_withdraw_limit_usd
        return limits.get(self.tier, wl.DAILY_WITHDRAW_LIMIT_USD[self.tier])

    def withdrawn_usd(self, account: str) -> Decimal:
        """USD counted against the limit for `account` now (its domain's, with scope `domain`):
        withdrawals made in the window that have not failed or been denied."""
        counted = (
            wl.Counted(w.account, w.created_s, w.usd_value)
            for w in self.withdrawals.values()
            if w.status != "Failure"
        )
        return wl.used_usd(
            counted, account=account, now_s=self.clock.time(),
            scope=self.settings.withdraw_limit_scope, window=self.settings.withdraw_limit_window,
        )  # fmt: skip

    def withdraw_headroom_usd(self, account: str) -> Decimal:
        """USD `account` may still withdraw now; never negative."""
        return max(wl.ZERO, self.daily_withdraw_limit_usd() - self.withdrawn_usd(account))

    def decide(self, approval_request_id: str, approve: bool) -> Withdrawal:
        """The Organization's approvers' answer (admin API): approve, or deny and refund."""
        refid = self.approvals.pop(approval_request_id, None)
        if refid is None:
            raise KeyError(approval_request_id)
        withdrawal = self.withdrawals[refid]
        withdrawal.status_prop = None
        if approve:
            withdrawal.approved = True
            withdrawal.due_s = self.clock.time() + self.settings.withdraw_delay_s
        else:
            withdrawal.status = "Failure"
            withdrawal.status_prop = "canceled"
            self.domain.accounts[withdrawal.account].unreserve_out(
                withdrawal.asset, withdrawal.amount + withdrawal.fee
            )
        return withdrawal

    def _finish_withdrawal(self, withdrawal: Withdrawal) -> None:
        account = self.domain.accounts[withdrawal.account]
        account.unreserve_out(withdrawal.asset, withdrawal.amount + withdrawal.fee)
        entry = self.domain.post(
            account, withdrawal.asset, -withdrawal.amount, fee=withdrawal.fee,
            type_="withdrawal", refid=withdrawal.refid, now_s=self.clock.time(),
        )  # fmt: skip
        self.domain.post(
            self.domain.accounts[EXTERNAL], withdrawal.asset, withdrawal.amount,
            type_="withdrawal", refid=withdrawal.refid, now_s=self.clock.time(),
        )  # fmt: skip
        if withdrawal.fee:
            self.domain.post(
                self.domain.accounts[FEES], withdrawal.asset, withdrawal.fee,
                type_="withdrawal", refid=withdrawal.refid, now_s=self.clock.time(),
            )  # fmt: skip
        withdrawal.status = "Success"
        self.on_ledger(account.name, entry)

    def withdraw_status(self, caller: Account, asset: str | None) -> list[dict[str, Any]]:
        asset_id = self._asset(asset) if asset else None
        out: list[dict[str, Any]] = []
        for w in self.withdrawals.values():
            if w.account != caller.name or (asset_id is not None and w.asset != asset_id):
                continue
            item: dict[str, Any] = {
                "method": "Bitcoin" if w.asset == "XXBT" else "Bank",
                "network": "Bitcoin" if w.asset == "XXBT" else "",
                "aclass": "currency",
                "asset": w.asset,
                "refid": w.refid,
                "txid": "",
                "info": w.key,
                "amount": str(w.amount),
                "fee": str(w.fee),
                "time": int(w.created_s),
                "status": w.status,
                "key": w.key,
            }
            if w.status_prop is not None:
                item["status-prop"] = w.status_prop
            out.append(item)
        return out

    # --- sub-accounts --------------------------------------------------------------------------
    def create_subaccount(
        self, caller: Account, username: str | None, email: str | None
    ) -> Account:
        if caller.role != "master":
            raise KrakenError(PERMISSION_DENIED)
        if not username or not email or len(username) > 64 or "@" not in email:
            raise invalid("username" if not username else "email")
        if self.domain.find(username) is not None:
            raise invalid("username already exists")
        return self.domain.add_account(username, "sub", account_id=username, email=email)

    # --- time ----------------------------------------------------------------------------------
    def tick(self) -> None:
        now_s = self.clock.time()
        for transfer in self.transfers.values():
            if transfer.status == "pending" and transfer.due_s <= now_s:
                self._finish_transfer(transfer)
        for withdrawal in self.withdrawals.values():
            if withdrawal.status in ("Initial", "Pending") and withdrawal.approved:
                if withdrawal.due_s <= now_s:
                    self._finish_withdrawal(withdrawal)
                else:
                    withdrawal.status = "Pending"
