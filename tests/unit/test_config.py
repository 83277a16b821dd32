"""Config loading: defaults, the example file, env overrides, and every bad-config message."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.config import Config, load_config, parse_config
from orchestrator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[venue]
kind = "kraken"
tier = "pro"

[[accounts]]
name = "master"
role = "master"
api_key = "env:MASTER_KEY"
api_secret = "env:MASTER_SECRET"

[[accounts]]
name = "sub1"
role = "sub"
account_id = "AA12 N84G XXXX XXXX"
api_key = "env:SUB1_KEY"
api_secret = "file:sub1.secret"

[[accounts]]
name = "sub2"
role = "sub"
api_key = "env:SUB2_KEY"
api_secret = "env:SUB2_SECRET"

[[strategies]]
name = "mm"
module = "strategies.market_maker"
account = "sub1"
pairs = ["XBT/USD", "ETH/USD"]
weight = 2.5
params = { spread_bps = 8 }

[[rebalancer.targets]]
account = "sub1"
asset = "ZUSD"
low = 100.5
target = 200
high = 300.25
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orchestrator.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=env or {})


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    return info.value


def test_defaults_make_a_runnable_demo_config() -> None:
    config = load_config(None, environ={})
    assert config.redis.url == "embedded"
    assert config.venue.kind == "simulator"
    assert config.venue.is_embedded
    assert config.limits.domain_multiplier == 5
    assert config.limits.domain_scope == "pair"
    assert config.limits.per_account_cap is True


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "orchestrator.example.toml", environ={})
    assert config.master.name == "master"
    assert [a.name for a in config.accounts if a.role == "sub"] == [
        "mm-xbt",
        "twap-eth",
        "grid-sol",
    ]
    assert config.rebalancer.targets[0].target == Decimal(10000)


def test_full_config_types(tmp_path: Path) -> None:
    config = load_text(tmp_path, GOOD)
    assert config.venue.tier == "pro"
    assert not config.venue.is_embedded
    assert config.account("sub1").venue_id == "AA12 N84G XXXX XXXX"
    assert config.account("sub2").venue_id == "sub2"
    assert config.strategies[0].pairs == ["XBT/USD", "ETH/USD"]
    assert config.strategies[0].weight == 2.5
    assert config.strategies[0].params == {"spread_bps": 8}
    band = config.rebalancer.targets[0]
    # TOML floats are read as Decimal: no binary rounding of money.
    assert (band.low, band.target, band.high) == (Decimal("100.5"), Decimal(200), Decimal("300.25"))


def test_env_overrides_parse_toml_literals(tmp_path: Path) -> None:
    env = {
        "ORCH__VENUE__TIER": "starter",
        "ORCH__LIMITS__DOMAIN_MULTIPLIER": "3",
        "ORCH__LIMITS__PER_ACCOUNT_CAP": "false",
        "ORCH__REDIS__URL": "redis://redis.internal:6380/2",
        "ORCH__STRATEGIES__0__PAIRS": '["SOL/USD"]',
        "ORCH__ACCOUNTS__1__ACCOUNT_ID": "sub-one",
        "ORCH__METRICS__PORT": "0",
        "UNRELATED": "ignored",
    }
    config = load_text(tmp_path, GOOD, env)
    assert config.venue.tier == "starter"
    assert config.limits.domain_multiplier == 3
    assert config.limits.per_account_cap is False
    assert config.redis.url == "redis://redis.internal:6380/2"
    assert config.strategies[0].pairs == ["SOL/USD"]
    assert config.account("sub1").venue_id == "sub-one"
    assert config.metrics.port == 0


def test_env_override_creates_missing_section() -> None:
    config = load_config(None, environ={"ORCH__REDIS__NAMESPACE": "desk2"})
    assert config.redis.namespace == "desk2"


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ("[redis]\nurl = 'embedded'\nport = 1\n", "redis.port", "unknown field"),
        ("colour = 'blue'\n", "colour", "unknown field"),
        ("[venue.simulator]\nsed = 1\n", "venue.simulator.sed", "unknown field"),
        ("[limits]\ndomain_multiplier = 'five'\n", "limits.domain_multiplier", "Expected `int`"),
        ("[limits]\ndomain_multiplier = 0\n", "limits.domain_multiplier", ">= 1"),
        ("[limits]\nper_account_cap = 1\n", "limits.per_account_cap", "Expected `bool`"),
        ("[limits]\nrisk_reserve_fraction = 0.9\n", "limits.risk_reserve_fraction", "<= 0.5"),
        ("[limits]\ndomain_scope = 'world'\n", "limits.domain_scope", "'pair', 'all'"),
        ("[venue]\ntier = 'gold'\n", "venue.tier", "'starter', 'intermediate', 'pro'"),
        ("[metrics]\nport = 70000\n", "metrics.port", "<= 65535"),
        ("[redis]\nnamespace = 'a{b}'\n", "redis.namespace", "matching regex"),
        ("log_level = 'loud'\n", "log_level", "'debug', 'info', 'warning', 'error'"),
    ],
)
def test_bad_field_names_its_path(tmp_path: Path, text: str, path: str, reason: str) -> None:
    err = error_of(tmp_path, text)
    assert err.path == path
    assert reason in err.reason
    assert str(err).startswith(f"{tmp_path / 'orchestrator.toml'}: {path}: ")


def test_unknown_field_in_list_entry(tmp_path: Path) -> None:
    err = error_of(
        tmp_path, GOOD.replace('role = "sub"\naccount_id', 'role = "sub"\ncolor = 1\naccount_id')
    )
    assert (err.path, err.reason) == ("accounts[1].color", "unknown field")


def test_bad_enum_in_list_entry_lists_allowed_values(tmp_path: Path) -> None:
    err = error_of(
        tmp_path, GOOD.replace('name = "sub2"\nrole = "sub"', 'name = "sub2"\nrole = "boss"')
    )
    assert err.path == "accounts[2].role"
    assert "'boss'" in err.reason
    assert "'master', 'sub'" in err.reason


def test_missing_required_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[[accounts]]\nname = 'm'\n")
    assert (err.path, err.reason) == ("accounts[0].role", "required field is missing")


def test_wrong_type_in_nested_list(tmp_path: Path) -> None:
    err = error_of(
        tmp_path, GOOD.replace('pairs = ["XBT/USD", "ETH/USD"]', 'pairs = ["XBT/USD", 5]')
    )
    assert err.path == "strategies[0].pairs[1]"
    assert "Expected `str`, got `int`" in err.reason


def test_unknown_account_in_strategy(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('account = "sub1"\npairs', 'account = "sub9"\npairs'))
    assert err.path == "strategies[0].account"
    assert "unknown account 'sub9'" in err.reason
    assert "master, sub1, sub2" in err.reason


def test_two_strategies_on_one_sub_account(tmp_path: Path) -> None:
    extra = '\n[[strategies]]\nname = "twap"\nmodule = "strategies.twap"\naccount = "sub1"\npairs = ["ETH/USD"]\n'
    err = error_of(tmp_path, GOOD + extra)
    assert err.path == "strategies[1].account"
    assert "already used by strategy 'mm'" in err.reason


def test_strategy_on_master_account(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('account = "sub1"\npairs', 'account = "master"\npairs'))
    assert err.path == "strategies[0].account"
    assert "master account" in err.reason


def test_duplicate_strategy_name(tmp_path: Path) -> None:
    extra = '\n[[strategies]]\nname = "mm"\nmodule = "strategies.twap"\naccount = "sub2"\npairs = ["ETH/USD"]\n'
    err = error_of(tmp_path, GOOD + extra)
    assert (err.path, err.reason) == ("strategies[1].name", "duplicate strategy name 'mm'")


def test_duplicate_pair_in_strategy(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('["XBT/USD", "ETH/USD"]', '["XBT/USD", "XBT/USD"]'))
    assert err.path == "strategies[0].pairs"


def test_empty_pairs(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('["XBT/USD", "ETH/USD"]', "[]"))
    assert err.path == "strategies[0].pairs"
    assert "length >= 1" in err.reason


def test_duplicate_account_name(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('name = "sub2"', 'name = "sub1"'))
    assert (err.path, err.reason) == ("accounts[2].name", "duplicate account name 'sub1'")


def test_two_masters(tmp_path: Path) -> None:
    err = error_of(
        tmp_path, GOOD.replace('name = "sub2"\nrole = "sub"', 'name = "sub2"\nrole = "master"')
    )
    assert err.path == "accounts[2].role"
    assert "exactly one account must have role 'master', found 2" in err.reason


def test_no_master(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[[accounts]]\nname = 'a'\nrole = 'sub'\n")
    assert err.path == "accounts"
    assert "found 0" in err.reason


def test_literal_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    literal = (
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    )
    err = error_of(tmp_path, GOOD.replace('"env:MASTER_SECRET"', f'"{literal}"'))
    assert err.path == "accounts[0].api_secret"
    assert "secret reference `env:NAME` or `file:PATH`" in err.reason
    assert literal not in str(err)


def test_kraken_needs_key_references(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('api_key = "env:SUB2_KEY"\n', ""))
    assert err.path == "accounts[2].api_key"
    assert "required when the venue is not the embedded simulator" in err.reason


def test_kraken_cannot_be_embedded(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('kind = "kraken"', 'kind = "kraken"\nembedded = true'))
    assert err.path == "venue.embedded"


def test_rebalance_band_out_of_order(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("low = 100.5", "low = 250"))
    assert err.path == "rebalancer.targets[0]"
    assert "low <= target <= high" in err.reason


def test_rebalance_band_unknown_account(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace('account = "sub1"\nasset', 'account = "nobody"\nasset'))
    assert err.path == "rebalancer.targets[0].account"


def test_rebalance_source_unknown(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD + '\n[rebalancer]\nsource_account = "ghost"\n')
    assert err.path == "rebalancer.source_account"


def test_env_override_with_wrong_type_names_the_variable(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD, {"ORCH__LIMITS__DOMAIN_MULTIPLIER": "lots"})
    assert err.path == "limits.domain_multiplier"
    assert "(set by ORCH__LIMITS__DOMAIN_MULTIPLIER)" in err.reason


def test_env_override_of_unknown_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD, {"ORCH__VENUE__TEIR": "pro"})
    assert err.path == "venue.teir"
    assert err.reason == "unknown field (set by ORCH__VENUE__TEIR)"


def test_env_override_index_out_of_range(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD, {"ORCH__ACCOUNTS__7__NAME": "x"})
    assert err.path == "accounts"
    assert "ORCH__ACCOUNTS__7__NAME" in err.reason


def test_env_override_into_a_scalar(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD, {"ORCH__LOG_LEVEL__X": "1"})
    assert err.path == "log_level"


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Path("/nonexistent/orchestrator.toml"), environ={})
    assert "file not found" in str(info.value)


def test_invalid_toml(tmp_path: Path) -> None:
    err = error_of(tmp_path, "[redis\nurl = 1\n")
    assert "not valid TOML" in err.reason


def test_parse_config_from_dict() -> None:
    config = parse_config({"venue": {"tier": "pro"}})
    assert config.venue.tier == "pro"


# --- redis.url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "embedded",
        "redis://redis.internal",
        "redis://redis.internal:6380/2",
        "redis://:hunter2pw@127.0.0.1:6379/0",
        "rediss://alice:hunter2pw@redis.internal:6380",
        "redis://[::1]:6379/",
        "redis://redis.internal/0?password=hunter2pw&socket_keepalive=true",
        "unix:///run/redis/redis.sock",
        "unix://:hunter2pw@/run/redis/redis.sock?db=3",
    ],
)
def test_good_redis_urls(url: str) -> None:
    assert parse_config({"redis": {"url": url}}).redis.url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("http://x", "scheme `http` is not one of"),
        ("REDIS://host", "scheme `REDIS` is not one of"),
        ("redis://:hunter2pw@[::1", "is not a valid URL"),
        ("hunter2pw@redis.internal:6379", "not `embedded` nor a URL"),
        ("redis://:hunter2pw@host:notaport", "port must be a number from 1 to 65535"),
        ("redis://:hunter2pw@host:0", "port must be a number from 1 to 65535"),
        ("redis://:hunter2pw@host:70000", "port must be a number from 1 to 65535"),
        ("redis://:hunter2pw@:6379/0", "needs a host"),
        ("redis://", "needs a host"),
        ("redis://:hunter2pw@host/zero", "path must be a database number"),
        ("redis://:hunter2pw@host/0?db=zero", "query parameter `db` has an invalid value"),
        ("redis://:hunter2pw@host/0?colour=blue", "query parameter `colour` is not accepted"),
        ("redis://:hunter/2pw@host", "percent-encode"),
        ("redis://:hunter#2pw@host", "percent-encode"),
        ("unix://:hunter2pw@", "needs a socket path"),
        ("unix://:hunter2pw@relative.sock", "needs a socket path"),
    ],
)
def test_bad_redis_url_names_the_field_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"redis": {"url": url}}, source="orchestrator.toml")
    err = info.value
    assert err.path == "redis.url"
    assert reason in err.reason
    assert str(err).startswith("orchestrator.toml: redis.url: ")
    assert "hunter" not in str(err)
    assert "2pw" not in str(err)


def test_bad_redis_url_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD, {"ORCH__REDIS__URL": "redis://:hunter2pw@redis.internal:x"})
    assert err.path == "redis.url"
    assert "(set by ORCH__REDIS__URL)" in err.reason
    assert "hunter2pw" not in str(err)


def band(account: str, asset: str, **fields: str) -> str:
    lines = [
        f'account = "{account}"',
        f'asset = "{asset}"',
        *(f"{k} = {v}" for k, v in fields.items()),
    ]
    return "\n[[rebalancer.targets]]\n" + "\n".join(lines) + "\n"


GOOD_WEIGHTS = band("master", "XXBT", weight="0.5", band="0.2") + band(
    "sub1", "XXBT", weight="0.3", band="0.2"
) + band("sub2", "XXBT", weight="0.2", band="0.25", floor="0.01")  # fmt: skip


def test_weight_targets_and_limits_load(tmp_path: Path) -> None:
    config = load_text(tmp_path, GOOD + GOOD_WEIGHTS + textwrap.dedent("""
        [[rebalancer.limits]]
        asset = "ZUSD"
        min_transfer = 10
        max_per_transfer = 5000
        max_per_day = 20000

        [[rebalancer.targets.ramp]]
        after_s = 0
        fraction = 0.1

        [[rebalancer.targets.ramp]]
        after_s = 3600
        fraction = 1
    """))  # fmt: skip
    weights = [t.weight for t in config.rebalancer.targets if t.asset == "XXBT"]
    assert weights == [Decimal("0.5"), Decimal("0.3"), Decimal("0.2")]
    assert config.rebalancer.limits[0].max_per_day == Decimal(20000)
    assert [s.fraction for s in config.rebalancer.targets[-1].ramp] == [Decimal("0.1"), 1]


@pytest.mark.parametrize(
    ("extra", "path", "reason"),
    [
        (band("master", "XXBT", weight="0.5", band="0.2")
         + band("sub2", "XXBT", weight="0.4", band="0.2"),
         "rebalancer.targets[1].weight", "sum to 0.9, not 1"),
        (band("sub2", "XETH", target="5", weight="0.5", band="0.1"),
         "rebalancer.targets[1]", "exactly one of target"),
        (band("sub2", "XETH", target="5"), "rebalancer.targets[1]", "either low and high"),
        (band("sub2", "XETH", target="5", low="1", high="9", band="0.1"),
         "rebalancer.targets[1]", "either low and high"),
        (band("sub2", "XETH", weight="1", low="1", high="9"),
         "rebalancer.targets[1]", "give band"),
        (band("sub2", "XETH", target="5", band="1.5"), "rebalancer.targets[1].band", "[0, 1]"),
        (band("sub2", "XETH", target="5", band="0.1", floor="6"),
         "rebalancer.targets[1].floor", "above the target"),
        (band("sub2", "XETH", target="-5", band="0.1"), "rebalancer.targets[1].target", ">= 0"),
        (band("outsider", "XETH", target="5", band="0.1"),
         "rebalancer.targets[1].account", "unknown account 'outsider'"),
        ('\n[[rebalancer.limits]]\nasset = "ZUSD"\nmax_per_day = -1\n',
         "rebalancer.limits[0].max_per_day", "> 0"),
        ('\n[[rebalancer.limits]]\nasset = "ZUSD"\nmin_transfer = 50\nmax_per_transfer = 10\n',
         "rebalancer.limits[0].max_per_transfer", "below min_transfer"),
        ('\n[[rebalancer.withdrawals]]\nasset = "XXBT"\nkey = "cold"\nkeep = -2\n',
         "rebalancer.withdrawals[0].keep", ">= 0"),
        ('\n[[rebalancer.margin]]\naccount = "sub2"\nmin_margin_level = 3\n'
         'target_margin_level = 2\n', "rebalancer.margin[0].target_margin_level", "above"),
        ('\n[[rebalancer.margin]]\naccount = "ghost"\n', "rebalancer.margin[0].account",
         "unknown account"),
        ('\n[rebalancer]\nsenders = ["master", "ghost"]\n', "rebalancer.senders[1]",
         "unknown account"),
    ],
)  # fmt: skip
def test_bad_rebalancing_policy_is_refused_naming_the_field(
    tmp_path: Path, extra: str, path: str, reason: str
) -> None:
    err = error_of(tmp_path, GOOD + extra)
    assert err.path == path
    assert reason in err.reason


def test_a_ramp_must_start_at_zero_and_go_up(tmp_path: Path) -> None:
    ramp = "\n[[rebalancer.targets.ramp]]\nafter_s = {after}\nfraction = {fraction}\n"
    err = error_of(tmp_path, GOOD + ramp.format(after=60, fraction=0.5))
    assert err.path == "rebalancer.targets[0].ramp"
    err = error_of(tmp_path, GOOD + ramp.format(after=0, fraction=0.5)
                   + ramp.format(after=0, fraction=1))  # fmt: skip
    assert err.path == "rebalancer.targets[0].ramp"
    err = error_of(tmp_path, GOOD + ramp.format(after=0, fraction=2))
    assert err.path == "rebalancer.targets[0].ramp[0].fraction"
