"""Kraken WebSocket v2: the connection, its typed frames and the checksummed L2 books."""
