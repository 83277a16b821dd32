"""Venue clients: wire formats and protocol state, kept apart from the I/O that carries them."""
