"""A Kraken-compatible venue: REST, WebSocket v2 and futures wire formats, Kraken's limits.

Independent of the clients on purpose: it implements Kraken's rules from `docs/kraken/` in its
own modules and imports neither `orchestrator.ratelimit` nor the clients' signing code, so that
agreement between the two is evidence rather than an echo.
"""
