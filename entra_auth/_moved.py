"""Old import paths of names that moved: they keep working, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib import import_module
from typing import Any


def moved_names(old_module: str, new_modules: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) resolving ``new_modules``' names where they now live."""

    def __getattr__(name: str) -> Any:
        new_module = new_modules.get(name)
        if new_module is None:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warnings.warn(
            f"{old_module}.{name} moved to {new_module}.{name}; the old path will be removed "
            "in a future release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(import_module(new_module), name)

    return __getattr__
