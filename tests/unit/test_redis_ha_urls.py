"""Sentinel and Cluster URLs: their nodes, service, db and credentials; anything malformed is a
ConfigError naming redis.url and never the password."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.store.cluster import parse_cluster_url
from orchestrator.store.connection import safe_url
from orchestrator.store.sentinel import parse_sentinel_url


def test_a_full_url_is_read_part_by_part() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://orch:p%40ss@10.0.0.1:26379,10.0.0.2:26380,sentinel-c/desk/2"
        "?sentinel_password=s3cret"
    )
    assert parsed.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-c", 26379))
    assert (parsed.service, parsed.db) == ("desk", 2)
    assert (parsed.username, parsed.password) == ("orch", "p@ss")
    assert (parsed.sentinel_username, parsed.sentinel_password) == (None, "s3cret")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h:1",  # no service
        "redis+sentinel://h:1/desk/x",  # db not a number
        "redis+sentinel://h:99999/desk",  # port out of range
        "redis+sentinel://:1/desk",  # no host
        "redis+sentinel://user:hunter2@h:1/desk?timeout=1",  # unknown parameter
    ],
)
def test_a_malformed_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match=r"redis\.url") as caught:
        parse_sentinel_url(url)
    assert "hunter2" not in str(caught.value)


def test_the_safe_url_hides_the_password_of_a_sentinel_url() -> None:
    url = "redis+sentinel://orch:hunter2@h1:26379,h2:26379/desk?sentinel_password=s3cret"
    shown = safe_url(url)
    assert "hunter2" not in shown
    assert "s3cret" not in shown
    assert shown.startswith("redis+sentinel://orch:***@h1:26379,h2:26379/desk")


def test_a_cluster_url_names_its_startup_nodes_and_credentials() -> None:
    nodes, user, password = parse_cluster_url("redis+cluster://orch:p%3Ass@n1:7000,n2")
    assert nodes == [("n1", 7000), ("n2", 6379)]
    assert (user, password) == ("orch", "p:ss")


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://u:hunter2@n1:7000/3", "redis+cluster://n1:0", "redis+cluster://n1:7000?x=1"],
)
def test_a_malformed_cluster_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match=r"redis\.url") as caught:
        parse_cluster_url(url)
    assert "hunter2" not in str(caught.value)
