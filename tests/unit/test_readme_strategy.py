"""The README's "Write a strategy" is true: its strategy module, its config block and its
replay-harness test are taken from the README as written and run."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import msgspec
import pytest

from orchestrator.config import StrategyConfig
from orchestrator.strategy_loader import load_strategy_class

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def section_blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Write a strategy\n")
    end = text.index("\n## ", start + 1)
    return [(m[1], m[2]) for m in _BLOCK.finditer(text[start:end])]


@pytest.fixture
def desk_package(tmp_path: Path) -> Iterator[Path]:
    """The README's module saved as `desk_strategies/one_bid.py`, importable."""
    package = tmp_path / "desk_strategies"
    package.mkdir()
    (package / "__init__.py").write_text("")
    strategy = next(code for lang, code in section_blocks() if lang == "python")
    (package / "one_bid.py").write_text(strategy)
    sys.path.insert(0, str(tmp_path))
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("desk_strategies")]:
            del sys.modules[name]


def test_the_strategy_is_about_thirty_lines_of_code() -> None:
    strategy = next(code for lang, code in section_blocks() if lang == "python")
    code = [line for line in strategy.splitlines() if line.strip()]
    assert len(code) <= 40, len(code)


def test_the_config_block_is_a_valid_strategy_entry() -> None:
    toml = next(code for lang, code in section_blocks() if lang == "toml")
    (entry,) = tomllib.loads(toml)["strategies"]
    config = msgspec.convert(entry, StrategyConfig)
    assert config.module == "desk_strategies.one_bid"


async def test_the_readme_test_passes_against_the_readme_strategy(desk_package: Path) -> None:
    module = importlib.import_module("desk_strategies.one_bid")
    assert load_strategy_class("desk_strategies.one_bid") is module.OneBid  # by dotted path
    test_code = [code for lang, code in section_blocks() if lang == "python"][1]
    namespace: dict[str, object] = {}
    exec(compile(test_code, "README.md#write-a-strategy", "exec"), namespace)  # our own README
    (name,) = [n for n in namespace if n.startswith("test_")]
    await cast(Callable[[], Awaitable[None]], namespace[name])()
