"""Kraken spot REST: the signed client, its typed results, the venue objects over it."""
