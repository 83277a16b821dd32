"""Kraken adapter: wire types, signing, REST and WebSocket protocol state, and the L2 book."""
