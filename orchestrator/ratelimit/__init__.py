"""The shared limiter: Kraken's counters modelled in Redis, one permit per venue request.

`policy` (Kraken's tables and which counters a request touches), `bucket` (the counter maths, pure,
mirrored exactly by `lua/acquire.lua`), `redis` (the shared limiter over Redis, with reservations,
lanes, fair shares, venue feedback and a fail-closed fallback).
"""
