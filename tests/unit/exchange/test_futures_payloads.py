"""Recorded futures payloads decode exactly into our wire types, and Kraken's futures error
codes map into our error tree (docs/kraken/rest.md section 5.3)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from orchestrator.errors import (
    AmbiguousOutcome,
    AuthError,
    InsufficientFunds,
    InvalidNonce,
    InvalidRequest,
    VenueError,
    VenueRateLimited,
    VenueRejected,
    VenueUnavailable,
)
from orchestrator.exchange.kraken.common.amounts import amount_text
from orchestrator.exchange.kraken.futures import client as futures_module
from orchestrator.exchange.kraken.futures import errors as errors_module
from orchestrator.exchange.kraken.futures import methods as methods_module
from orchestrator.exchange.kraken.futures import schemas as schemas_module
from orchestrator.exchange.kraken.futures import treasury as treasury_module
from orchestrator.exchange.kraken.futures.errors import to_exception
from orchestrator.exchange.kraken.futures.schemas import (
    AccountLog,
    AccountsResponse,
    CashAccount,
    Envelope,
    FlexAccount,
    MarginAccount,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "futures"
KRAKEN_EXAMPLE = (FIXTURES / "accounts_example.json").read_bytes()
ZERO = Decimal(0)


# --- recorded payloads -----------------------------------------------------------------------------
def _exact(value: Any) -> Any:
    """Seed JSON decoded with numbers kept as written, every leaf as text (like to_builtins)."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, int | Decimal):
        return str(value)
    return value


def test_seed_004_decodes_every_account_type() -> None:
    reply = msgspec.json.decode(KRAKEN_EXAMPLE, type=AccountsResponse)
    assert reply.server_time == datetime(2016, 2, 25, 9, 45, 53, 818000, tzinfo=UTC)
    match reply.accounts["cash"]:
        case CashAccount(balances=balances):
            assert balances == {"xbt": Decimal("141.31756797"), "xrp": Decimal("52465.1254")}
        case other:
            pytest.fail(f"cash decoded as {other!r}")
    match reply.accounts["fi_xbtusd"]:
        case MarginAccount(
            currency="xbt", auxiliary=aux, margin_requirements=im, trigger_estimates=te
        ):
            assert aux.af == aux.funding == Decimal("100.73891563")
            assert (aux.pnl, aux.pv, aux.usd) == (
                Decimal("12.42134766"),
                Decimal("153.73891563"),
                ZERO,
            )
            assert (im.im, im.mm, im.lt, im.tt) == tuple(
                map(Decimal, ("52.8", "23.76", "39.6", "15.84"))
            )
            assert te.im == Decimal(3110)
        case other:
            pytest.fail(f"fi_xbtusd decoded as {other!r}")
    match reply.accounts["flex"]:
        case FlexAccount(currencies=currencies, balance_value=balance, available_margin=available):
            assert str(currencies["XBT"].value) == "4998.721054420551"  # not float-rounded
            assert str(currencies["EUR"].collateral) == "4886.906656949836"
            assert currencies["USD"].quantity == 5000
            assert (balance, available) == (Decimal("34995.52"), Decimal("34122.66"))
        case other:
            pytest.fail(f"flex decoded as {other!r}")


def test_seed_004_round_trips_field_for_field_and_digit_for_digit() -> None:
    """Nothing dropped, nothing renamed, no number rounded: the struct re-encodes to the seed."""
    reply = msgspec.json.decode(KRAKEN_EXAMPLE, type=AccountsResponse)
    seed = msgspec.json.Decoder(float_hook=Decimal).decode(KRAKEN_EXAMPLE)
    ours = msgspec.to_builtins(reply)
    ours["serverTime"] = seed["serverTime"]  # a datetime re-encodes as "...53.818000Z"
    assert ours == _exact(seed)


def test_unknown_fields_are_tolerated_at_every_level() -> None:
    seed: dict[str, Any] = msgspec.json.decode(KRAKEN_EXAMPLE)
    seed["newTopLevel"] = {"x": 1}
    for wallet in seed["accounts"].values():
        wallet["addedByVenue"] = [1, "two"]
    seed["accounts"]["fi_xbtusd"]["auxiliary"]["newFigure"] = 1.5
    seed["accounts"]["flex"]["currencies"]["XBT"]["haircut"] = 0.02245
    extended = msgspec.json.decode(msgspec.json.encode(seed), type=AccountsResponse)
    assert extended == msgspec.json.decode(KRAKEN_EXAMPLE, type=AccountsResponse)


def test_an_unknown_account_type_is_refused() -> None:
    seed: dict[str, Any] = msgspec.json.decode(KRAKEN_EXAMPLE)
    seed["accounts"]["cash"]["type"] = "brandNewAccount"
    with pytest.raises(msgspec.ValidationError, match="brandNewAccount"):
        msgspec.json.decode(msgspec.json.encode(seed), type=AccountsResponse)


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("error_invalid_unit.json", "invalidUnit", InvalidRequest),
        ("error_api_limit_exceeded.json", "apiLimitExceeded", VenueRateLimited),
    ],
)
def test_recorded_error_envelopes(name: str, code: str, expected: type[VenueError]) -> None:
    envelope = msgspec.json.decode((FIXTURES / name).read_bytes(), type=Envelope)
    assert (envelope.result, envelope.error, envelope.server_time) == ("error", code, None)
    error = to_exception(code, acting=True, call="POST /transfer")
    assert type(error) is expected
    assert error.codes == (code,)


@pytest.mark.parametrize(
    ("code", "as_query", "as_action"),
    [
        ("apiLimitExceeded", VenueRateLimited, VenueRateLimited),
        ("authenticationError", AuthError, AuthError),
        ("accountInactive", AuthError, AuthError),
        ("nonceBelowThreshold", InvalidNonce, InvalidNonce),
        ("nonceDuplicate", InvalidNonce, InvalidNonce),
        ("insufficientFunds", InsufficientFunds, InsufficientFunds),
        ("invalidArgument", InvalidRequest, InvalidRequest),
        ("invalidAmount", InvalidRequest, InvalidRequest),
        ("invalidUnit", InvalidRequest, InvalidRequest),
        ("invalidAccount", InvalidRequest, InvalidRequest),
        ("requiredArgumentMissing", InvalidRequest, InvalidRequest),
        ("notFound", InvalidRequest, InvalidRequest),
        ("Json Parse Error", InvalidRequest, InvalidRequest),
        ("marketUnavailable", VenueUnavailable, VenueUnavailable),
        ("Unavailable", VenueUnavailable, AmbiguousOutcome),
        ("Server Error", VenueUnavailable, AmbiguousOutcome),
        ("unknownError", VenueUnavailable, AmbiguousOutcome),
        ("somethingNew", VenueRejected, AmbiguousOutcome),
    ],
)
def test_error_code_table(
    code: str, as_query: type[VenueError], as_action: type[VenueError]
) -> None:
    assert type(to_exception(code, acting=False, call="GET /accounts")) is as_query
    assert type(to_exception(code, acting=True, call="POST /transfer")) is as_action


def test_amount_text_is_plain_finite_and_positive() -> None:
    assert amount_text(Decimal("1E+2")) == "100"
    assert amount_text(Decimal("0.00000001")) == "0.00000001"
    for bad in ("NaN", "Infinity", "-Infinity", "0", "-5"):
        with pytest.raises(InvalidRequest):
            amount_text(Decimal(bad))


def test_the_client_never_imports_the_simulator() -> None:
    for module in (futures_module, errors_module, methods_module, schemas_module, treasury_module):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith("orchestrator.simulator")], module


# Every field Kraken's `AccountLogEntry` schema requires, `null` where it does not apply to a
# transfer, and balances as JSON numbers (doubles), as the spec types them.
ACCOUNT_LOG = b"""{"accountUid": "f3b6a8b6-9c2e-4a63-b1a8-8d3c6f0c0e11", "logs": [
 {"asset": "usd", "booking_uid": "6f1d2c8e-0c43-4d8e-9a57-2d0f5e8b7a01", "collateral": null,
  "contract": null, "date": "2024-05-01T12:00:00.000Z", "execution": "9c1e7b5a-3f0d",
  "fee": null, "funding_rate": null, "id": 42, "info": "subaccount transfer",
  "margin_account": "flex", "mark_price": null, "new_average_entry_price": null,
  "new_balance": 9749.9999, "old_average_entry_price": null, "old_balance": 10000.0,
  "realized_funding": null, "realized_pnl": null, "trade_price": null,
  "conversion_spread_percentage": null, "liquidation_fee": null},
 {"asset": "xbt", "booking_uid": "7a", "date": "2024-05-01T12:00:01Z", "id": 43,
  "info": "futures trade", "margin_account": null, "new_balance": 3.46e-9,
  "old_balance": null}
]}"""


def test_the_account_log_decodes_balances_as_written() -> None:
    reply = msgspec.json.decode(ACCOUNT_LOG, type=AccountLog)
    assert reply.account_uid == "f3b6a8b6-9c2e-4a63-b1a8-8d3c6f0c0e11"
    first, second = reply.logs
    assert (first.id, first.info, first.asset, first.margin_account) == (
        42, "subaccount transfer", "usd", "flex",
    )  # fmt: skip
    assert first.new_balance - first.old_balance == Decimal("-250.0001")  # type: ignore[operator]
    assert first.date == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert (second.margin_account, second.old_balance) == (None, None)
    assert str(second.new_balance) == "3.46E-9"
