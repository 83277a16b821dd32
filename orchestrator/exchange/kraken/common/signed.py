"""What every signed Kraken client is built from: its guarantees, all required.

A client cannot exist without its credentials, the nonce source and the lock of its key (nonces
reach Kraken in the order they were taken) and a permit source (every request takes a permit
first). The spot REST client and the futures client share this; each signs its own way.
"""

from __future__ import annotations

from orchestrator.exchange.kraken.common.auth import key_fingerprint
from orchestrator.exchange.kraken.common.key_lock import KeyLock
from orchestrator.exchange.kraken.common.nonce import NonceSource
from orchestrator.exchange.kraken.common.transport import Transport
from orchestrator.ratelimit.permits import PermitSource
from orchestrator.secrets import ApiCredentials


class SignedClient:
    def __init__(
        self,
        transport: Transport,
        base_url: str,
        *,
        account: str,
        credentials: ApiCredentials,
        nonce: NonceSource,
        key_lock: KeyLock,
        permits: PermitSource,
        strategy: str | None = None,
        permit_deadline_s: float = 5.0,
    ) -> None:
        """`base_url`: scheme and host; the client adds the paths. `strategy`: the limiter
        identity whose fair share the calls count toward."""
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.credentials = credentials
        self.nonce = nonce
        self.key_lock = key_lock
        self.permits = permits
        self.strategy = strategy
        self.permit_deadline_s = permit_deadline_s
        self.key_id = key_fingerprint(credentials.key.reveal())
