"""The simulator's authentication: Kraken's published vectors, nonce rules, lockouts, permissions."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

import pytest

from orchestrator.simulator import errors
from orchestrator.simulator.auth import (
    ApiKey,
    FuturesAuthenticator,
    NonceBook,
    Permission,
    SpotAuthenticator,
    futures_authent,
    parse_nonce,
    sign_challenge,
    spot_signature,
)
from orchestrator.simulator.errors import KrakenError

# docs/kraken/rest.md section 6.
DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
PKS_SECRET = "cHl0aG9uLWtyYWtlbi1zZGsgdW5pdC10ZXN0IHNlY3JldCB2YWx1ZQ=="
ONES_SECRET = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
ADD_ORDER = "/0/private/AddOrder"
DOC_NONCE = "1616492376594"
DOC_BODY = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)
FUTURES_ORDER = "orderType=lmt&symbol=PI_XBTUSD&side=buy&size=1&limitPrice=1000"


@pytest.mark.parametrize(
    ("secret", "path", "nonce", "body", "expected"),
    [
        pytest.param(DOC_SECRET, ADD_ORDER, DOC_NONCE, DOC_BODY, DOC_SIGN, id="6.1-kraken-docs"),
        pytest.param(
            PKS_SECRET, ADD_ORDER, DOC_NONCE, b"nonce=1616492376594&ordertype=limit&pair=XBTUSD",
            "Fo+0Uhanvs3F1byZFCjVBMLsCcRE2xLQMDpoA3Q9hawoZ0ZL35AmbknAQBlOIs4baRx9UGhzQH+/CTl9qnyp1w==",
            id="6.2-python-kraken-sdk",
        ),
        pytest.param(
            ONES_SECRET, "/0/private/Balance", "1700000000000000000", b"nonce=1700000000000000000",
            "6i7+cpXVLDDnDOekgsRcgFQhkYFyPDSSxhSVA8OrA6vjziXcy2K1DP3n7f9B/Kgni71WjBSQusZKxduRsdF20Q==",
            id="6.3-kraken-rust-sdk",
        ),
        pytest.param(
            DOC_SECRET, ADD_ORDER, DOC_NONCE,
            b'{"nonce":1616492376594,"ordertype":"limit","pair":"XBTUSD","price":"37500","type":"buy","volume":"1.25"}',
            "kMkTQfyYJH05IdnWQ9TIqL9Kq+dKqcD5O/TGPPLRwwy1is/YvqEYtMAHf7tXsqwfbLwp7pbzJzWHxzKPnL8rfA==",
            id="6.5-spot-json-body",
        ),
    ],
)  # fmt: skip
def test_spot_signature_vectors(
    secret: str, path: str, nonce: str, body: bytes, expected: str
) -> None:
    assert spot_signature(secret, path, nonce, body) == expected
    assert len(expected) == 88


@pytest.mark.parametrize(
    ("secret", "post_data", "nonce", "path", "expected"),
    [
        pytest.param(
            PKS_SECRET, "orderType=lmt&symbol=PI_XBTUSD", DOC_NONCE, "/api/v3/sendorder",
            "Txi+gJVXe3EN1brXYQ46FuV6UVtEVSKhc6dYMhPb7a/HXZLGvO6m9UUg+KVKqhLxrbllOPI7qRkHYmPfJZZSGA==",
            id="6.4-python-kraken-sdk",
        ),
        pytest.param(
            DOC_SECRET, FUTURES_ORDER, DOC_NONCE, "/api/v3/sendorder",
            "PsVFJwHc/weleBgcLa+QSLTVmPiR4cFy+Q0jRYwLbm1m65vojtu/IOlpjlvndCJIBThXY+3Yt9Ci4iLx1j1Jpw==",
            id="6.5-with-nonce",
        ),
        pytest.param(
            DOC_SECRET, "", DOC_NONCE, "/api/v3/accounts",
            "bqTfyhuH4ot0us/gmtt6G75BrSzdgRCsHFM+oX0qrQAj2n01HkuuIFSF0N+p6535Dfe6FTmhPhk+VA1ieoP6lQ==",
            id="6.5-get-empty-post-data",
        ),
        pytest.param(
            DOC_SECRET, FUTURES_ORDER, "", "/api/v3/sendorder",
            "HDG78cUXgR7ETvwb5/lcc7q2X7/xXimEv/POo1Igg2leux37GI8ZNo0dgZMm0XnKHu5aGwayRUPZrftokzULzA==",
            id="6.5-without-nonce",
        ),
    ],
)  # fmt: skip
def test_futures_authent_vectors_with_and_without_prefix(
    secret: str, post_data: str, nonce: str, path: str, expected: str
) -> None:
    assert futures_authent(secret, post_data, nonce, path) == expected
    assert futures_authent(secret, post_data, nonce, "/derivatives" + path) == expected


def test_futures_ws_challenge_vector() -> None:
    secret = (
        "7zxMEF5p/Z8l2p2U7Ghv6x14Af+Fx+92tPgUdVQ748FOIrEoT9bgT+bTRfXc5pz8na+hL/QdrCVG7bh9KpT0eMTm"
    )
    assert sign_challenge(secret, "c100b894-1729-464d-ace1-52dbce11db42") == (
        "4JEpF3ix66GA2B+ooK128Ift4XQVtc137N9yeg4Kqsn9PI0Kpzbysl9M1IeCEdjg0zl00wkVqcsnG4bmnlMb3A=="
    )


# --- spot authenticator ---------------------------------------------------------------------


def make_key(
    key: str = "k1",
    secret: str = DOC_SECRET,
    window: int = 0,
    permissions: frozenset[Permission] | None = None,
) -> ApiKey:
    perms: frozenset[Permission] = (
        frozenset({"query_funds", "trade"}) if permissions is None else permissions
    )
    return ApiKey(
        key=key, secret_b64=secret, account="acct-" + key, permissions=perms, nonce_window=window
    )


def spot_call(
    auth: SpotAuthenticator, nonce: int | str, *, key: str = "k1", secret: str = DOC_SECRET,
    now_s: float = 0.0, sign: str | None = None,
) -> ApiKey:  # fmt: skip
    text = str(nonce)
    body = f"nonce={text}&asset=XBT".encode()
    signature = spot_signature(secret, "/0/private/Balance", text, body) if sign is None else sign
    return auth.authenticate(key, signature, "/0/private/Balance", text, body, now_s=now_s)


def refused(code: str) -> AbstractContextManager[pytest.ExceptionInfo[KrakenError]]:
    return pytest.raises(KrakenError, match=f"^{re.escape(code)}")


@pytest.fixture
def spot() -> SpotAuthenticator:
    auth = SpotAuthenticator()
    auth.add_key(make_key("k1"))
    auth.add_key(make_key("k2", secret=PKS_SECRET, window=5000))
    return auth


def test_official_vector_authenticates(spot: SpotAuthenticator) -> None:
    key = spot.authenticate("k1", DOC_SIGN, ADD_ORDER, DOC_NONCE, DOC_BODY, now_s=0.0)
    assert key.account == "acct-k1"


def test_unknown_or_missing_key_is_invalid_key(spot: SpotAuthenticator) -> None:
    for api_key in ("nope", "", None):
        with refused(errors.INVALID_KEY):
            spot.authenticate(api_key, DOC_SIGN, ADD_ORDER, DOC_NONCE, DOC_BODY, now_s=0.0)


@pytest.mark.parametrize(
    "sign",
    [None, "", "garbage", DOC_SIGN[:-2], DOC_SIGN.lower(), "é" * 88, "\udcff"],
)
def test_bad_signature_is_refused(spot: SpotAuthenticator, sign: str | None) -> None:
    with refused(errors.INVALID_SIGNATURE):
        spot.authenticate("k1", sign, ADD_ORDER, DOC_NONCE, DOC_BODY, now_s=0.0)


def test_signature_covers_path_nonce_and_body(spot: SpotAuthenticator) -> None:
    with refused(errors.INVALID_SIGNATURE):
        spot.authenticate("k1", DOC_SIGN, "/0/private/Balance", DOC_NONCE, DOC_BODY, now_s=0.0)
    with refused(errors.INVALID_SIGNATURE):
        spot.authenticate("k1", DOC_SIGN, ADD_ORDER, "1616492376595", DOC_BODY, now_s=0.0)
    with refused(errors.INVALID_SIGNATURE):
        spot.authenticate("k1", DOC_SIGN, ADD_ORDER, DOC_NONCE, DOC_BODY + b"0", now_s=0.0)


def test_another_keys_secret_is_invalid_signature(spot: SpotAuthenticator) -> None:
    with refused(errors.INVALID_SIGNATURE):
        spot_call(spot, 1, key="k1", secret=PKS_SECRET)


def test_nonce_must_strictly_increase(spot: SpotAuthenticator) -> None:
    spot_call(spot, 100)
    with refused(errors.INVALID_NONCE):
        spot_call(spot, 100)
    with refused(errors.INVALID_NONCE):
        spot_call(spot, 99)
    spot_call(spot, 101)
    spot_call(spot, 10**15)
    with refused(errors.INVALID_NONCE):
        spot_call(spot, 10**12)  # a smaller scale on the same key fails for ever


def test_nonce_counters_are_per_key(spot: SpotAuthenticator) -> None:
    spot_call(spot, 1000)
    spot_call(spot, 5, key="k2", secret=PKS_SECRET)
    spot_call(spot, 1001)
    with refused(errors.INVALID_NONCE):
        spot_call(spot, 1000)


def test_window_accepts_a_lower_unseen_nonce_once(spot: SpotAuthenticator) -> None:
    def call(nonce: int) -> ApiKey:
        return spot_call(spot, nonce, key="k2", secret=PKS_SECRET)

    call(10_000)
    call(9_000)
    call(5_000)  # exactly the window below the highest: inclusive
    with refused(errors.INVALID_NONCE):
        call(9_000)  # replay inside the window
    with refused(errors.INVALID_NONCE):
        call(10_000)
    with refused(errors.INVALID_NONCE):
        call(4_999)  # below the window
    call(12_000)
    with refused(errors.INVALID_NONCE):
        call(6_999)  # the window moved up with the highest
    call(7_001)


def test_bad_signature_does_not_consume_the_nonce(spot: SpotAuthenticator) -> None:
    with refused(errors.INVALID_SIGNATURE):
        spot_call(spot, 500, sign=DOC_SIGN)
    spot_call(spot, 500)


@pytest.mark.parametrize(
    "nonce",
    [None, "", "abc", "-1", "+5", "1.0", " 5", "5\n", "007", "١٢٣", "\udcff", str(2**64), "9" * 21],
)
def test_malformed_nonce_is_invalid_nonce(spot: SpotAuthenticator, nonce: str | None) -> None:
    body = b"nonce=x"
    sign = spot_signature(DOC_SECRET, ADD_ORDER, nonce or "", body)
    with refused(errors.INVALID_NONCE):
        spot.authenticate("k1", sign, ADD_ORDER, nonce, body, now_s=0.0)


def test_nonce_bounds() -> None:
    assert parse_nonce("0") == 0
    assert parse_nonce(str(2**64 - 1)) == 2**64 - 1
    assert parse_nonce(str(2**64)) is None


def test_lockout_after_n_failures_within_the_window() -> None:
    auth = SpotAuthenticator(lockout_after=3, lockout_window_s=60.0, lockout_s=900.0)
    auth.add_key(make_key("k1"))
    for now_s in (0.0, 1.0, 2.0):
        with refused(errors.INVALID_SIGNATURE):
            spot_call(auth, 1, now_s=now_s, sign="bad")
    with refused(errors.TEMPORARY_LOCKOUT):
        spot_call(auth, 1, now_s=3.0)  # a correct call is refused too
    spot_call(auth, 1, now_s=903.0)  # 900 s after the last call
    assert auth.failures() == {errors.INVALID_SIGNATURE: 3, errors.TEMPORARY_LOCKOUT: 1}


def test_failures_outside_the_window_do_not_lock() -> None:
    auth = SpotAuthenticator(lockout_after=3, lockout_window_s=60.0, lockout_s=900.0)
    auth.add_key(make_key("k1"))
    for now_s in (0.0, 30.0, 60.0, 90.0, 120.0):
        with refused(errors.INVALID_SIGNATURE):
            spot_call(auth, 1, now_s=now_s, sign="bad")
    spot_call(auth, 1, now_s=121.0)


def test_retrying_during_lockout_extends_it() -> None:
    auth = SpotAuthenticator(lockout_after=2, lockout_window_s=60.0, lockout_s=900.0)
    auth.add_key(make_key("k1"))
    for _ in range(2):
        with refused(errors.INVALID_NONCE):
            spot_call(auth, "x", now_s=0.0)
    with refused(errors.TEMPORARY_LOCKOUT):
        spot_call(auth, 1, now_s=800.0)  # lockout now ends at 1700
    with refused(errors.TEMPORARY_LOCKOUT):
        spot_call(auth, 1, now_s=1000.0)  # and now at 1900
    with refused(errors.TEMPORARY_LOCKOUT):
        spot_call(auth, 1, now_s=1899.0)
    spot_call(auth, 1, now_s=1899.0 + 900.0)


def test_lockout_is_per_key_string_including_unknown_ones() -> None:
    auth = SpotAuthenticator(lockout_after=2)
    auth.add_key(make_key("k1"))
    for _ in range(2):
        with refused(errors.INVALID_KEY):
            spot_call(auth, 1, key="intruder")
    with refused(errors.TEMPORARY_LOCKOUT):
        spot_call(auth, 1, key="intruder")
    spot_call(auth, 1, key="k1")


def test_permissions() -> None:
    auth = SpotAuthenticator()
    auth.add_key(make_key("ro", permissions=frozenset({"query_funds", "query_open"})))
    key = spot_call(auth, 1, key="ro")
    auth.require(key, "query_funds")
    for permission in ("trade", "withdraw"):
        with refused(errors.PERMISSION_DENIED):
            auth.require(key, permission)
    assert auth.failures() == {errors.PERMISSION_DENIED: 2}


def test_add_key_refuses_duplicates_and_bad_secrets() -> None:
    auth = SpotAuthenticator()
    auth.add_key(make_key("k1"))
    with pytest.raises(ValueError, match="already registered"):
        auth.add_key(make_key("k1"))
    with pytest.raises(ValueError, match="not base64"):
        auth.add_key(make_key("k3", secret="not base64!"))
    with pytest.raises(ValueError, match="window"):
        NonceBook(-1)


# --- futures authenticator ------------------------------------------------------------------


@pytest.fixture
def futures() -> FuturesAuthenticator:
    auth = FuturesAuthenticator()
    auth.add_key(make_key("f1", secret=DOC_SECRET))
    auth.add_key(make_key("f2", secret=PKS_SECRET, window=1000))
    return auth


def futures_call(
    auth: FuturesAuthenticator, nonce: str | None, *, key: str = "f1", secret: str = DOC_SECRET,
    path: str = "/derivatives/api/v3/sendorder",
) -> ApiKey:  # fmt: skip
    authent = futures_authent(secret, FUTURES_ORDER, nonce or "", path)
    return auth.authenticate(key, authent, FUTURES_ORDER, nonce, path)


@pytest.mark.parametrize("path", ["/derivatives/api/v3/sendorder", "/api/v3/sendorder"])
@pytest.mark.parametrize(
    ("nonce", "authent"),
    [
        (DOC_NONCE, "PsVFJwHc/weleBgcLa+QSLTVmPiR4cFy+Q0jRYwLbm1m65vojtu/IOlpjlvndCJIBThXY+3Yt9Ci4iLx1j1Jpw=="),
        (None, "HDG78cUXgR7ETvwb5/lcc7q2X7/xXimEv/POo1Igg2leux37GI8ZNo0dgZMm0XnKHu5aGwayRUPZrftokzULzA=="),
    ],
)  # fmt: skip
def test_futures_vectors_authenticate(
    futures: FuturesAuthenticator, path: str, nonce: str | None, authent: str
) -> None:
    assert futures.authenticate("f1", authent, FUTURES_ORDER, nonce, path).key == "f1"


def test_futures_unknown_key_and_bad_authent(futures: FuturesAuthenticator) -> None:
    good = futures_authent(DOC_SECRET, FUTURES_ORDER, DOC_NONCE, "/api/v3/sendorder")
    with refused("authenticationError"):
        futures.authenticate("nope", good, FUTURES_ORDER, DOC_NONCE, "/api/v3/sendorder")
    with refused("authenticationError"):
        futures.authenticate("f1", None, FUTURES_ORDER, DOC_NONCE, "/api/v3/sendorder")
    with refused("authenticationError"):
        futures.authenticate("f1", good, FUTURES_ORDER, DOC_NONCE, "/api/v3/cancelorder")
    with refused("authenticationError"):
        futures.authenticate("f1", good, FUTURES_ORDER + "&x=1", DOC_NONCE, "/api/v3/sendorder")
    assert futures.failures() == {"authenticationError": 4}


def test_futures_nonce_below_threshold_and_duplicate(futures: FuturesAuthenticator) -> None:
    futures_call(futures, "100")
    with refused("nonceDuplicate"):
        futures_call(futures, "100")
    with refused("nonceBelowThreshold"):
        futures_call(futures, "99")
    futures_call(futures, None)  # no Nonce header: no nonce check
    futures_call(futures, "")
    futures_call(futures, "101")
    with refused("invalidArgument"):
        futures_call(futures, "1e5")


def test_futures_nonce_window_is_the_keys(futures: FuturesAuthenticator) -> None:
    def call(nonce: str) -> ApiKey:
        return futures_call(futures, nonce, key="f2", secret=PKS_SECRET)

    call("5000")
    call("4500")
    with refused("nonceDuplicate"):
        call("4500")
    with refused("nonceBelowThreshold"):
        call("3999")
    futures_call(futures, "1")  # another key, its own counter


def test_futures_bad_authent_does_not_consume_the_nonce(futures: FuturesAuthenticator) -> None:
    with refused("authenticationError"):
        futures.authenticate("f1", "bad", FUTURES_ORDER, "7", "/api/v3/sendorder")
    futures_call(futures, "7")


def test_futures_permissions(futures: FuturesAuthenticator) -> None:
    key = futures_call(futures, None)
    futures.require(key, "trade")
    with refused("authenticationError"):
        futures.require(key, "withdraw")
