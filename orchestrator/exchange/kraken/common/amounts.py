"""Amounts on the wire: plain decimal text, and only amounts a transfer can move."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.errors import InvalidRequest


def amount_text(amount: Decimal) -> str:
    """Plain decimal text (`100`, never `1E+2`); NaN, infinities, zero and negatives refused."""
    if not amount.is_finite() or amount <= 0:
        raise InvalidRequest(f"amount {amount} is not a finite positive number")
    return format(amount, "f")
