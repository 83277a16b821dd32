"""Kraken: Spot WebSocket v2 protocol state (order books) with no I/O of its own."""
