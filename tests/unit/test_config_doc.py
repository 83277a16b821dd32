"""The README's config reference is generated from the config Structs and must match them."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec

from orchestrator import config as config_module
from orchestrator.config_doc import BEGIN, END, render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_structs() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == render(), "README config reference is stale: run `make docs`"


def test_every_field_has_a_description() -> None:
    for struct in (
        v for v in vars(config_module).values()
        if isinstance(v, type) and issubclass(v, msgspec.Struct) and v.__module__ == config_module.__name__
    ):  # fmt: skip
        hints = typing.get_type_hints(struct, include_extras=True)
        for field in msgspec.structs.fields(struct):
            metas = [
                m for m in typing.get_args(hints[field.name])[1:] if isinstance(m, msgspec.Meta)
            ]
            assert any(m.description for m in metas), (
                f"{struct.__name__}.{field.name} lacks a description"
            )
