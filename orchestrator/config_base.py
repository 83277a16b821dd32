"""What every section of the config tree is made of: the section base, field docs, shared types.

Kept apart from config.py so that sections living in modules of their own (config_rebalancer.py)
use the same base without importing the whole tree.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

Tier = Literal["starter", "intermediate", "pro"]
Name = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
SecretRef = Annotated[
    str,
    Meta(
        pattern=r"^(env|file):.+$",
        description="Reference to a secret: `env:NAME` or `file:PATH`; never the value itself.",
    ),
]
SECRET_REF_PATTERN: Final = "^(env|file):.+$"  # noqa: S105 - a pattern, not a secret


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: immutable, keyword-only, unknown fields are errors."""


def doc(text: str, **constraints: Any) -> Meta:
    return Meta(description=text, **constraints)
