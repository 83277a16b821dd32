"""Kraken futures (derivatives) REST: wallets, sub-accounts and transfers."""
