"""The client's signatures reproduce every documented vector (docs/kraken/rest.md section 6)."""

from __future__ import annotations

import pytest

from orchestrator.exchange.kraken.common.auth import futures_sign, spot_sign

DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
PKS_SECRET = "cHl0aG9uLWtyYWtlbi1zZGsgdW5pdC10ZXN0IHNlY3JldCB2YWx1ZQ=="


@pytest.mark.parametrize(
    ("secret", "path", "nonce", "body", "expected"),
    [
        (DOC_SECRET, "/0/private/AddOrder", "1616492376594",
         b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
         "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="),
        (PKS_SECRET, "/0/private/AddOrder", "1616492376594", b"nonce=1616492376594&ordertype=limit&pair=XBTUSD",
         "Fo+0Uhanvs3F1byZFCjVBMLsCcRE2xLQMDpoA3Q9hawoZ0ZL35AmbknAQBlOIs4baRx9UGhzQH+/CTl9qnyp1w=="),
        ("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "/0/private/Balance", "1700000000000000000",
         b"nonce=1700000000000000000",
         "6i7+cpXVLDDnDOekgsRcgFQhkYFyPDSSxhSVA8OrA6vjziXcy2K1DP3n7f9B/Kgni71WjBSQusZKxduRsdF20Q=="),
        (DOC_SECRET, "/0/private/AddOrder", "1616492376594",
         b'{"nonce":1616492376594,"ordertype":"limit","pair":"XBTUSD","price":"37500","type":"buy","volume":"1.25"}',
         "kMkTQfyYJH05IdnWQ9TIqL9Kq+dKqcD5O/TGPPLRwwy1is/YvqEYtMAHf7tXsqwfbLwp7pbzJzWHxzKPnL8rfA=="),
    ],
)  # fmt: skip
def test_spot_vectors(secret: str, path: str, nonce: str, body: bytes, expected: str) -> None:
    assert spot_sign(secret, path, nonce, body) == expected
    assert len(expected) == 88


@pytest.mark.parametrize(
    ("secret", "post_data", "nonce", "path", "expected"),
    [
        (PKS_SECRET, "orderType=lmt&symbol=PI_XBTUSD", "1616492376594", "/derivatives/api/v3/sendorder",
         "Txi+gJVXe3EN1brXYQ46FuV6UVtEVSKhc6dYMhPb7a/HXZLGvO6m9UUg+KVKqhLxrbllOPI7qRkHYmPfJZZSGA=="),
        (PKS_SECRET, "orderType=lmt&symbol=PI_XBTUSD", "1616492376594", "/api/v3/sendorder",
         "Txi+gJVXe3EN1brXYQ46FuV6UVtEVSKhc6dYMhPb7a/HXZLGvO6m9UUg+KVKqhLxrbllOPI7qRkHYmPfJZZSGA=="),
        (DOC_SECRET, "orderType=lmt&symbol=PI_XBTUSD&side=buy&size=1&limitPrice=1000", "1616492376594",
         "/api/v3/sendorder",
         "PsVFJwHc/weleBgcLa+QSLTVmPiR4cFy+Q0jRYwLbm1m65vojtu/IOlpjlvndCJIBThXY+3Yt9Ci4iLx1j1Jpw=="),
        (DOC_SECRET, "", "1616492376594", "/api/v3/accounts",
         "bqTfyhuH4ot0us/gmtt6G75BrSzdgRCsHFM+oX0qrQAj2n01HkuuIFSF0N+p6535Dfe6FTmhPhk+VA1ieoP6lQ=="),
        (DOC_SECRET, "orderType=lmt&symbol=PI_XBTUSD&side=buy&size=1&limitPrice=1000", "", "/api/v3/sendorder",
         "HDG78cUXgR7ETvwb5/lcc7q2X7/xXimEv/POo1Igg2leux37GI8ZNo0dgZMm0XnKHu5aGwayRUPZrftokzULzA=="),
    ],
)  # fmt: skip
def test_futures_vectors(secret: str, post_data: str, nonce: str, path: str, expected: str) -> None:
    assert futures_sign(secret, post_data, nonce, path) == expected
