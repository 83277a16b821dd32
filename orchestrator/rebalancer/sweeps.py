"""Treasury sweeps out of the domain and futures margin top-ups: the rest of a cycle's plan. Pure.

Withdrawals (`rebalancer.withdrawals`): what the source account holds above a rule's `keep` is
withdrawn to the rule's allowlisted key, at least `min_amount`, at most what is left of the
rule's `max_per_day` and of the tier's daily withdrawal limit (in USD, the whole domain: the
tier belongs to the verified client, docs/kraken/accounts-and-transfers.md section 3). Nothing
is withdrawn of an asset with a move still open on the source account.

Margin top-ups (`rebalancer.margin`): a futures flex wallet whose margin level (margin.py) is
under `min_margin_level` gets, from the source account's flex wallet, the amount that brings it
back to `target_level` (seed of the maths: docs section 4).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Final

from orchestrator.config import MarginTopUp, WithdrawalRule
from orchestrator.exchange.kraken.futures.schemas import FlexAccount
from orchestrator.rebalancer.margin import flex_figures, haircut_of, top_up_amount
from orchestrator.rebalancer.portfolio import MissingPrice, Portfolio
from orchestrator.rebalancer.transfers import PlannedTransfer

ZERO: Final = Decimal(0)


def plan_withdrawals(
    portfolio: Portfolio,
    rules: Sequence[WithdrawalRule],
    *,
    source: str,
    withdrawn_today: Mapping[str, Decimal],
    usd_prices: Mapping[str, Decimal],
    tier_limit_usd: Decimal,
    in_flight: Collection[tuple[str, str]],
    decimals: Mapping[str, int] | None = None,
) -> list[PlannedTransfer]:
    """The withdrawals of one cycle. `withdrawn_today`: per asset, what today's withdrawals
    took or may still take; `usd_prices`: asset -> USD (the tier's limit is in USD)."""
    used_usd = sum((amount * _usd(usd_prices, asset) for asset, amount in withdrawn_today.items()),
                   ZERO)  # fmt: skip
    out = []
    taken: dict[str, Decimal] = {}
    for rule in rules:
        asset = rule.asset
        if (source, asset) in in_flight:
            continue
        excess = portfolio.available(source, asset) - rule.keep - taken.get(asset, ZERO)
        price = _usd(usd_prices, asset)
        room = [excess, (tier_limit_usd - used_usd) / price]
        if rule.max_per_day is not None:
            done = withdrawn_today.get(asset, ZERO) + taken.get(asset, ZERO)
            room.append(rule.max_per_day - done)
        amount = _round_down(min(room), None if decimals is None else decimals.get(asset))
        if amount <= 0 or amount < rule.min_amount:
            continue
        taken[asset] = taken.get(asset, ZERO) + amount
        used_usd += amount * price
        out.append(PlannedTransfer(kind="withdrawal", asset=asset, amount=amount, source=source,
                                   target=rule.key, reason="sweep"))  # fmt: skip
    return out


def plan_top_ups(
    wallets: Mapping[str, FlexAccount],
    rules: Sequence[MarginTopUp],
    *,
    source: str,
    usd_prices: Mapping[str, Decimal],
    in_flight: Collection[tuple[str, str]],
    decimals: int = 2,
) -> list[PlannedTransfer]:
    """The top-ups of one cycle. `wallets`: each watched account's flex wallet as the venue
    reported it this cycle (an account missing from it is skipped)."""
    out = []
    for rule in rules:
        flex = wallets.get(rule.account)
        if flex is None or (rule.account, rule.asset) in in_flight:
            continue
        level = flex_figures(flex).margin_level
        if level is None or level >= rule.min_margin_level:
            continue
        amount = top_up_amount(flex, target_level=rule.target_margin_level, asset=rule.asset,
                               price=_usd(usd_prices, rule.asset),
                               haircut=haircut_of(flex, rule.asset),
                               max_amount=rule.max_per_transfer, decimals=decimals)  # fmt: skip
        if amount > 0:
            out.append(PlannedTransfer(kind="futures_transfer", asset=rule.asset, amount=amount,
                                       source=source, target=rule.account,
                                       reason="margin"))  # fmt: skip
    return out


def _usd(prices: Mapping[str, Decimal], asset: str) -> Decimal:
    price = prices.get(asset)
    if price is None or not price > 0:
        raise MissingPrice(asset, "USD")
    return price


def _round_down(amount: Decimal, decimals: int | None) -> Decimal:
    if decimals is None or amount <= 0:
        return amount
    return amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)
