"""Strategy loading: by entry point or dotted path, one rule for which class; params checked
strictly with errors naming the field; every mistake a ConfigError for that strategy alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from orchestrator.config import StrategyConfig
from orchestrator.errors import ConfigError
from orchestrator.strategy import Strategy, StrategyParams
from orchestrator.strategy_loader import (
    ENTRY_POINT_GROUP,
    EntryPointLike,
    load_strategy,
    load_strategy_class,
    params_class,
    parse_params,
)
from tests.fixtures.strategies import quoter
from tests.fixtures.strategies.quoter import Quoter

FIXTURES = "tests.fixtures.strategies"


def entry_points(**values: str) -> Iterable[EntryPointLike]:
    return [EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in values.items()]


def no_entry_points() -> Iterable[EntryPointLike]:
    return []


def config(module: str, params: Mapping[str, Any] | None = None) -> StrategyConfig:
    return StrategyConfig(name="mm1", module=module, account="sub1", pairs=["XBT/USD"],
                          params=dict(params or {}))  # fmt: skip


def refused(module: str, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_strategy_class(module, where="strategies[2]", **kwargs)
    assert caught.value.path == "strategies[2].module"
    return caught.value


def refused_params(raw: Mapping[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_params(Quoter, raw, where="strategies[1]")
    return caught.value


# --- which class -----------------------------------------------------------------------------


def test_dotted_module_gives_its_one_strategy() -> None:
    assert load_strategy_class(f"{FIXTURES}.quoter", entry_points=no_entry_points) is Quoter


def test_default_lookup_falls_back_to_the_import() -> None:
    assert load_strategy_class(f"{FIXTURES}.quoter") is Quoter  # no such entry point installed


def test_entry_point_naming_the_class_wins_over_the_import() -> None:
    # The entry point's name is also a module that would be refused: the entry point is used.
    name = f"{FIXTURES}.two_strategies"
    found = entry_points(**{name: f"{FIXTURES}.quoter:Quoter"})
    assert load_strategy_class(name, entry_points=lambda: found) is Quoter


def test_entry_point_naming_a_module_applies_the_module_rule() -> None:
    found = entry_points(market_maker=f"{FIXTURES}.quoter", other=f"{FIXTURES}.two_strategies")
    assert load_strategy_class("market_maker", entry_points=lambda: found) is Quoter
    assert "several Strategy subclasses" in refused("other", entry_points=lambda: found).reason


def test_entry_point_that_fails_to_load() -> None:
    found = entry_points(mm=f"{FIXTURES}.quoter:NoSuchClass", dep=f"{FIXTURES}.missing_dependency")
    error = refused("mm", entry_points=lambda: found)
    assert error.reason.startswith(f"entry point 'mm' ({FIXTURES}.quoter:NoSuchClass) failed")
    assert "AttributeError" in error.reason
    assert "orchestrator_fixture_not_installed" in refused("dep", entry_points=lambda: found).reason


def test_entry_point_to_something_else() -> None:
    found = entry_points(mm=f"{FIXTURES}.quoter:Params")
    assert (
        "neither a Strategy subclass nor a module"
        in refused("mm", entry_points=lambda: found).reason
    )


def test_two_entry_points_of_one_name() -> None:
    found = entry_points(mm=f"{FIXTURES}.quoter:Quoter")
    twice = [*found, EntryPoint(name="mm", value="elsewhere:Quoter", group=ENTRY_POINT_GROUP)]
    error = refused("mm", entry_points=lambda: twice)
    assert "several entry points" in error.reason
    assert "elsewhere:Quoter" in error.reason


def test_broken_entry_point_listing() -> None:
    def broken() -> Iterable[EntryPointLike]:
        raise ValueError("bad METADATA")

    assert "bad METADATA" in refused(f"{FIXTURES}.quoter", entry_points=broken).reason


def test_module_not_found() -> None:
    error = refused(f"{FIXTURES}.nope", entry_points=no_entry_points)
    assert error.reason.startswith(f"no module named '{FIXTURES}.nope'")
    assert str(error).startswith("strategies[2].module: no module named")
    assert (
        "no module named 'nowhere_at_all" in refused("nowhere_at_all.mm").reason
    )  # parent missing


def test_module_importing_a_missing_dependency_is_not_not_found() -> None:
    error = refused(f"{FIXTURES}.missing_dependency", entry_points=no_entry_points)
    assert "no module named" not in error.reason
    assert "orchestrator_fixture_not_installed" in error.reason
    assert error.reason.startswith(f"importing '{FIXTURES}.missing_dependency' failed")


def test_module_raising_import_error_itself() -> None:
    error = refused(f"{FIXTURES}.raises_on_import", entry_points=no_entry_points)
    assert "no module named" not in error.reason
    assert "raised ImportError: libquant.so: cannot open shared object file" in error.reason
    assert isinstance(error.__cause__, ImportError)


def test_module_defining_no_strategy() -> None:
    # It imports Quoter: an imported class does not count.
    error = refused(f"{FIXTURES}.no_strategy", entry_points=no_entry_points)
    assert error.reason == f"module '{FIXTURES}.no_strategy' defines no Strategy subclass"


def test_module_defining_two_strategies_names_them() -> None:
    error = refused(f"{FIXTURES}.two_strategies", entry_points=no_entry_points)
    assert "(Buyer, Seller)" in error.reason


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("plain_params", "Plain.Params must be a subclass of orchestrator.strategy.StrategyParams"),
        ("mutable_params", "Mutable.Params must stay frozen and refuse unknown fields"),
        ("mismatched_params", "Mismatched is a Strategy[Declared] but its Params is"),
    ],
)
def test_params_class_must_be_a_frozen_strict_strategy_params(module: str, expected: str) -> None:
    assert expected in refused(f"{FIXTURES}.{module}", entry_points=no_entry_points).reason


def test_params_class_from_the_generic_argument_or_the_attribute() -> None:
    class Explicit(Strategy[StrategyParams]):
        Params = quoter.Params

    assert params_class(Quoter) is quoter.Params  # the documented form: no `Params = Params`
    assert params_class(Explicit) is quoter.Params
    assert params_class(Strategy) is StrategyParams


# --- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["0.01", Decimal("0.01")])
def test_decimal_params_from_toml_text_or_number(size: object) -> None:
    # The config reads TOML floats as Decimal: `size = 0.01` arrives as Decimal("0.01").
    params = parse_params(Quoter, {"size": size, "spread_bps": Decimal("12.5"), "levels": 2},
                          where="strategies[0]")  # fmt: skip
    assert isinstance(params, quoter.Params)
    assert params == quoter.Params(size=Decimal("0.01"), spread_bps=12.5, levels=2)
    assert type(params.size) is Decimal


def test_unknown_param_refused_naming_it_and_the_known_ones() -> None:
    error = refused_params({"size": "1", "sise": "2"})
    assert error.path == "strategies[1].params.sise"
    assert error.reason == "unknown parameter (known: size, spread_bps, levels, max_levels, tags)"


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        ({"size": "1", "levels": "3"}, "levels", "Expected `int`, got `str`"),
        ({"size": "1", "levels": Decimal("2.0")}, "levels", "Expected `int`, got `decimal`"),
        ({"size": "lots"}, "size", "Invalid decimal string"),
        ({"size": True}, "size", "Expected `decimal`, got `bool`"),
        ({"size": "1", "spread_bps": 0}, "spread_bps", "Expected `float` > 0.0"),
        ({"size": "1", "tags": ["a", 2]}, "tags[1]", "Expected `str`, got `int`"),
    ],
)
def test_wrong_type_names_the_field(raw: dict[str, Any], path: str, reason: str) -> None:
    error = refused_params(raw)
    assert (error.path, error.reason) == (f"strategies[1].params.{path}", reason)


def test_missing_required_param() -> None:
    error = refused_params({"levels": 2})
    assert (error.path, error.reason) == ("strategies[1].params.size", "required, missing")


def test_cross_field_check_of_the_strategy() -> None:
    error = refused_params({"size": "1", "levels": 9})
    assert error.path == "strategies[1].params"
    assert error.reason == "levels (9) above max_levels (5)"


def test_params_not_a_table() -> None:
    error = refused_params(["size", "1"])  # type: ignore[arg-type]
    assert error.path == "strategies[1].params"


def test_set_params_revalidates_the_whole_new_set() -> None:
    first = parse_params(Quoter, {"size": "1", "levels": 3}, where="strategies[0]")
    second = parse_params(Quoter, {"size": "2"}, where="strategies[0]")
    # Replaced whole: what the new set leaves out is back at its default, not kept from before.
    assert isinstance(first, quoter.Params)
    assert isinstance(second, quoter.Params)
    assert (first.levels, second.levels) == (3, 1)
    assert first.size == Decimal("1")
    with pytest.raises(ConfigError) as caught:
        parse_params(Quoter, {"size": "2", "levels": 6}, where="set_params")
    assert caught.value.path == "set_params.params"
    with pytest.raises(AttributeError):  # frozen: nobody mutates params in place
        first.size = Decimal("3")  # type: ignore[misc]


# --- from the config -------------------------------------------------------------------------


def test_load_strategy_from_its_config() -> None:
    loaded = load_strategy(config(f"{FIXTURES}.quoter", {"size": Decimal("0.5")}), index=0,
                           entry_points=no_entry_points)  # fmt: skip
    assert (loaded.name, loaded.cls) == ("mm1", Quoter)
    assert loaded.params == quoter.Params(size=Decimal("0.5"))


def test_load_strategy_names_the_strategy_index() -> None:
    with pytest.raises(ConfigError) as unknown:
        load_strategy(config(f"{FIXTURES}.absent"), index=3, entry_points=no_entry_points)
    assert unknown.value.path == "strategies[3].module"
    with pytest.raises(ConfigError) as bad:
        load_strategy(config(f"{FIXTURES}.quoter", {"size": "x"}), index=4)
    assert str(bad.value) == "strategies[4].params.size: Invalid decimal string"
