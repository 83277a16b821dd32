"""Kraken parts every client shares: request signing, nonces, the venue error table."""
