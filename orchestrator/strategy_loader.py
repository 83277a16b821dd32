"""Finding a strategy's class from its config and checking its parameters, with errors that name
the field (`strategies[2].module`, `strategies[2].params.size`).

Which class a `module` names, in this order:
1. an entry point of the group `orchestrator.strategies` with exactly that name (an installed
   package registers `market_maker = "desk_strategies.mm:MarketMaker"`); its value may name the
   class or a module (then rule 2 applies to that module);
2. otherwise the dotted module is imported and must *define* exactly one `Strategy` subclass
   (classes it merely imports do not count). Several are refused, naming them: a module holds
   one strategy, or registers the one to run as an entry point.

The params class is the class's `Params` attribute or, when left at the base's, the type argument
of `Strategy[Params]` (so the documented `class Quoter(Strategy[Params])` needs no `Params =
Params`); both given and different is an error. It must be a frozen `StrategyParams` refusing
unknown fields (as the base does), so that `set_params` can swap them whole and a typo is an
error, never a default. `params_class` is that rule, for whoever validates params later.

Parameters are converted strictly (`msgspec.convert(..., strict=True)`): the config's TOML is
read with floats as `Decimal`, so `size = 0.01` and `size = "0.01"` both give `Decimal("0.01")`,
a `float` field takes `10` or `10.5`, but `"5"` is no `int` and `1` no `bool`. The same
`parse_params` re-validates the whole new set on `set_params`.

A strategy module is code we run: whatever its import raises (a missing dependency, a
`SyntaxError`, its own checks) becomes a `ConfigError` for that strategy alone; the service
runs the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Protocol, TypeGuard

import msgspec

from orchestrator.config import StrategyConfig
from orchestrator.errors import ConfigError
from orchestrator.strategy import Strategy, StrategyParams

ENTRY_POINT_GROUP: Final = "orchestrator.strategies"

_AT: Final = re.compile(r"^(?P<reason>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


class EntryPointLike(Protocol):
    """What we use of `importlib.metadata.EntryPoint` (tests pass their own)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


EntryPoints = Callable[[], Iterable[EntryPointLike]]


def installed_entry_points() -> Iterable[EntryPointLike]:
    """The entry points of `ENTRY_POINT_GROUP` of every installed distribution."""
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


@dataclass(frozen=True)
class LoadedStrategy:
    """A strategy ready to build: its config name, its class and its validated params."""

    name: str
    cls: type[Strategy[Any]]
    params: StrategyParams


def load_strategy(
    config: StrategyConfig, *, index: int, entry_points: EntryPoints | None = None
) -> LoadedStrategy:
    """Load the class of `strategies[index]` and check its params; `ConfigError` naming the
    field otherwise."""
    where = f"strategies[{index}]"
    cls = load_strategy_class(config.module, entry_points=entry_points, where=where)
    params = parse_params(cls, config.params, where=where)
    return LoadedStrategy(name=config.name, cls=cls, params=params)


def load_strategy_class(
    module: str, *, entry_points: EntryPoints | None = None, where: str = "strategy"
) -> type[Strategy[Any]]:
    """The `Strategy` subclass `module` names (see the module docstring for the rule).

    Errors are `ConfigError(f"{where}.module", reason)`.
    """
    path = f"{where}.module"
    entry_point = _entry_point(module, entry_points or installed_entry_points, path)
    if entry_point is not None:
        origin = f"entry point {module!r} ({entry_point.value})"
        try:
            target = entry_point.load()
        except Exception as exc:
            raise ConfigError(path, f"{origin} failed to load: {_describe(exc)}") from exc
    else:
        origin = f"module {module!r}"
        target = _import(module, path)
    if isinstance(target, ModuleType):
        cls = _defined_strategy(target, origin, path)
    elif _is_strategy_class(target):
        cls = target
    else:
        raise ConfigError(path, f"{origin} is neither a Strategy subclass nor a module")
    _check_params_class(cls, path)
    _check_callbacks(cls, path)
    return cls


CALLBACKS: Final = ("on_start", "on_book", "on_trade", "on_ticker", "on_order", "on_fill",
                    "on_balance", "on_timer", "on_stop")  # fmt: skip


def _check_callbacks(cls: type[Strategy[Any]], path: str) -> None:
    """Callbacks are synchronous: an `async def` one would never run (its coroutine dropped)."""
    for name in CALLBACKS:
        if inspect.iscoroutinefunction(getattr(cls, name, None)):
            raise ConfigError(
                path,
                f"{cls.__name__}.{name} is `async def`: callbacks are "
                "synchronous (express intents; the worker does the I/O)",
            )


def parse_params(cls: type[Strategy[Any]], raw: Mapping[str, Any], *, where: str) -> StrategyParams:
    """`raw` converted to the params class of `cls` (`params_class`), whole: unknown keys
    refused, types checked, required fields present.

    Errors are `ConfigError(f"{where}.params.<field>", reason)`.
    """
    base = f"{where}.params"
    if not isinstance(raw, Mapping):
        raise ConfigError(base, f"must be a table of parameters, not {type(raw).__name__}")
    params_cls = params_class(cls)
    try:
        return msgspec.convert(dict(raw), params_cls, strict=True)
    except msgspec.ValidationError as exc:
        field, reason = _locate(str(exc), params_cls)
        raise ConfigError(base + field, reason) from exc
    except Exception as exc:  # the strategy's own __post_init__ raising something unexpected
        raise ConfigError(
            base, f"{params_cls.__qualname__} refused them: {_describe(exc)}"
        ) from exc


def params_class(cls: type[Strategy[Any]]) -> type[StrategyParams]:
    """The class `cls`'s params convert to: its `Params`, else its `Strategy[...]` argument."""
    declared = cls.Params
    argument = _generic_argument(cls)
    if declared is StrategyParams and argument is not None:
        return argument
    return declared


def _generic_argument(cls: type[Strategy[Any]]) -> type[StrategyParams] | None:
    """`X` of the nearest `Strategy[X]` among the bases of `cls` and of its ancestors."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Strategy:
                (argument,) = typing.get_args(base)
                if isinstance(argument, type) and issubclass(argument, StrategyParams):
                    return argument
                return None
    return None


def _entry_point(module: str, entry_points: EntryPoints, path: str) -> EntryPointLike | None:
    try:
        found = [ep for ep in entry_points() if ep.name == module]
    except Exception as exc:  # broken metadata of some installed distribution
        raise ConfigError(
            path, f"cannot list the entry points of {ENTRY_POINT_GROUP!r}: {_describe(exc)}"
        ) from exc
    if len(found) > 1:
        values = ", ".join(sorted(ep.value for ep in found))
        raise ConfigError(
            path, f"several entry points of {ENTRY_POINT_GROUP!r} are named {module!r}: {values}"
        )
    return found[0] if found else None


def _import(module: str, path: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise ConfigError(
                path,
                f"no module named {module!r} (nor an entry point of {ENTRY_POINT_GROUP!r} "
                "by that name)",
            ) from exc
        raise ConfigError(
            path, f"importing {module!r} failed: it imports {missing or '?'!r}, not installed"
        ) from exc
    except Exception as exc:  # ImportError, SyntaxError, whatever the module's own code raises
        raise ConfigError(path, f"importing {module!r} raised {_describe(exc)}") from exc
    except SystemExit as exc:  # a module that exits on import must not end the service
        raise ConfigError(path, f"importing {module!r} called exit ({exc.code!r})") from exc


def _is_strategy_class(value: object) -> TypeGuard[type[Strategy[Any]]]:
    return isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy


def _defined_strategy(module: ModuleType, origin: str, path: str) -> type[Strategy[Any]]:
    """The one Strategy subclass `module` defines itself (imported ones do not count)."""
    candidates: dict[str, type[Strategy[Any]]] = {}
    for value in vars(module).values():
        if _is_strategy_class(value) and value.__module__ == module.__name__:
            candidates[value.__qualname__] = value
    if not candidates:
        raise ConfigError(path, f"{origin} defines no Strategy subclass")
    if len(candidates) > 1:
        names = ", ".join(sorted(candidates))
        raise ConfigError(
            path,
            f"{origin} defines several Strategy subclasses ({names}): keep one per module, "
            f"or register the one to run as an entry point of {ENTRY_POINT_GROUP!r}",
        )
    return next(iter(candidates.values()))


def _check_params_class(cls: type[Strategy[Any]], path: str) -> None:
    name = cls.__qualname__
    declared: object = getattr(cls, "Params", None)
    argument = _generic_argument(cls)
    if argument is not None and declared not in (StrategyParams, argument):
        raise ConfigError(
            path,
            f"{name} is a Strategy[{argument.__qualname__}] but its Params is {declared!r}: "
            "give one params class",
        )
    params_cls: object = params_class(cls)
    if not (isinstance(params_cls, type) and issubclass(params_cls, StrategyParams)):
        raise ConfigError(
            path,
            f"{name}.Params must be a subclass of orchestrator.strategy.StrategyParams, "
            f"not {params_cls!r}",
        )
    config = params_cls.__struct_config__
    if not config.frozen or not config.forbid_unknown_fields:
        raise ConfigError(
            path,
            f"{name}.Params must stay frozen and refuse unknown fields, as StrategyParams does",
        )


def _locate(message: str, params_cls: type[StrategyParams]) -> tuple[str, str]:
    """msgspec's "reason - at `$.a[0].b`" as (".a[0].b", reason), field names made explicit."""
    field, reason = "", message
    matched = _AT.match(message)
    if matched:
        field, reason = matched["path"], matched["reason"]
    if missing := _MISSING.match(reason):
        return f"{field}.{missing['field']}", "required, missing"
    if unknown := _UNKNOWN.match(reason):
        known = ", ".join(params_cls.__struct_encode_fields__) if not field else ""
        hint = f" (known: {known})" if known else ""
        return f"{field}.{unknown['field']}", f"unknown parameter{hint}"
    return field, reason


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
