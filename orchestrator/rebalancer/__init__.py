"""Automatic rebalancing and treasury: money moved between the domain's accounts, exactly once.

portfolio.py (pure): balances net of holds per account, the domain total, values, futures margin.
plan.py (pure): the fewest transfers that bring every account back into its band.
journal.py (Redis): each transfer written before it is sent; states until final.
executor.py: sends one planned transfer, withdrawal or futures top-up exactly once.
component.py: the supervised service component (triggers, cycles, events, status).
"""
