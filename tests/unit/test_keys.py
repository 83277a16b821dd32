"""Key names: namespaced, one hash slot for the limiter, no forged names."""

from __future__ import annotations

import pytest

from orchestrator.store.keys import Keys


def hash_tag(key: str) -> str:
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_every_key_is_namespaced() -> None:
    a, b = Keys("desk-a"), Keys("desk-b")
    names_a = [a.limiter_state(), a.nonce("k1"), a.commands(), a.audit(), a.rebalancer_transfers(),
               a.lease("mm"), a.limiter_active("domain:XBT/USD"), a.reply("1-0")]  # fmt: skip
    names_b = [b.limiter_state(), b.nonce("k1"), b.commands(), b.audit(), b.rebalancer_transfers(),
               b.lease("mm"), b.limiter_active("domain:XBT/USD"), b.reply("1-0")]  # fmt: skip
    assert not set(names_a) & set(names_b)
    assert all("desk-a" in name for name in names_a)
    assert len(set(names_a)) == len(names_a)


def test_limiter_keys_share_one_hash_slot() -> None:
    keys = Keys("orch")
    tags = {
        hash_tag(keys.limiter_state()),
        hash_tag(keys.limiter_active("domain:XBT/USD")),
        hash_tag(keys.limiter_active("domain:ETH/USD")),
    }
    assert tags == {"orch:domain"}


@pytest.mark.parametrize("bad", ["a}b", "x{y", "", "has space", "new\nline"])
def test_parts_that_could_forge_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid key part"):
        Keys("orch").limiter_active(bad)
    with pytest.raises(ValueError, match="not a valid key part"):
        Keys.limiter_scope_field(bad)


@pytest.mark.parametrize("bad", ["", "a:b", "{x}", "x" * 40])
def test_bad_namespace(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        Keys(bad)
