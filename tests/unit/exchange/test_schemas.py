"""Contract tests: Kraken's documented payloads decode into our typed results, exactly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from orchestrator.errors import VenueRateLimited
from orchestrator.exchange.kraken.common.errors import to_exception
from orchestrator.exchange.kraken.spot import schemas as s

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "spot"


def result(name: str) -> msgspec.Raw:
    envelope = msgspec.json.decode((FIXTURES / name).read_bytes(), type=s.Envelope)
    assert envelope.error == []
    return envelope.result


def test_add_order_txid_is_a_list_and_absent_when_validating() -> None:
    added = msgspec.json.decode(result("add_order.json"), type=s.AddOrderResult)
    assert added.txid == ["OUF4EM-FRGI2-MQMWZD"]
    assert msgspec.json.decode(result("add_order_validate.json"), type=s.AddOrderResult).txid == []


def test_batch_entries_carry_a_scalar_txid_or_an_error() -> None:
    batch = msgspec.json.decode(result("add_order_batch.json"), type=s.AddOrderBatchResult)
    assert batch.orders[0].txid == "OUF4EM-FRGI2-MQMWZD"
    assert batch.orders[1].error == "EOrder:Insufficient funds"


def test_open_orders_decimals_and_unknown_fields() -> None:
    orders = msgspec.json.decode(result("open_orders.json"), type=s.OpenOrders)
    order = orders.open["OQCLML-BW3P3-BUCMWZ"]
    assert (order.vol, order.vol_exec, order.descr.price) == (
        Decimal("1.25000000"),
        Decimal("0.375"),
        Decimal("30010.0"),
    )
    assert order.trades == ["TCCCTY-WE2O6-P3NB37"]


def test_balance_ex_numbers_or_strings_exactly() -> None:
    balances = msgspec.json.decode(result("balance_ex.json"), type=dict[str, s.BalanceEx])
    assert balances["ZUSD"].available == Decimal("25435.21") - Decimal("8249.76")
    assert balances["XXBT"].available == Decimal("0.4012")
    assert balances["XETH.F"].balance == Decimal("0.1234567890123456789")  # no float on the way


def test_ledgers_transfers_and_withdrawals() -> None:
    ledgers = msgspec.json.decode(result("ledgers.json"), type=s.Ledgers)
    assert ledgers.count == 2
    transfer = ledgers.ledger["LMKZCZ-Z3GVL-CXKK4H"]
    assert (transfer.type, transfer.amount, transfer.refid) == (
        "transfer",
        Decimal("-100.0000"),
        "TOH3AS2-LPCWR8-JDQGEU",
    )
    moved = msgspec.json.decode(result("account_transfer.json"), type=s.TransferResult)
    assert moved.transfer_id == transfer.refid
    gated = msgspec.json.decode(result("withdraw_organization.json"), type=s.WithdrawResult)
    assert gated.approval_request_id == "656a021a-1d55-42c9-853a-aea57bf5abd1"
    [status] = msgspec.json.decode(result("withdraw_status.json"), type=list[s.WithdrawStatus])
    assert (status.status, status.status_prop, status.fee) == (
        "Pending",
        "onhold",
        Decimal("0.00015000"),
    )
    dead_man = msgspec.json.decode(result("cancel_all_orders_after.json"), type=s.DeadManResult)
    assert dead_man.triggerTime == "2023-03-24T17:42:56Z"


def test_error_envelope() -> None:
    envelope = msgspec.json.decode(
        (FIXTURES / "error_rate_limit.json").read_bytes(), type=s.Envelope
    )
    with pytest.raises(VenueRateLimited):
        raise to_exception(envelope.error, acting=True, method="AddOrder")
