"""Functions of the libraries an app uses, known by their code objects.

Probes that recognise a library's function on a stack (a pool's waiting function, a client's
response read) compare code objects, which is one dictionary lookup per frame. The functions are
looked up only in modules the app has already imported (the agent never imports a library for
the app), and again as more get imported; the code objects are kept so their ids stay theirs.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def resolve(module_name: str, dotted: str) -> types.CodeType | None:
    """The code object of `module_name`'s `dotted` function ("Class.method"), when imported."""
    obj: object = sys.modules.get(module_name)
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


class KnownCode(Generic[T]):
    """`id(code) -> value` for the functions of `specs` (module, dotted name, value)."""

    def __init__(self, specs: Iterable[tuple[str, str, T]]) -> None:
        self.by_id: dict[int, T] = {}
        self.code_of: dict[int, types.CodeType] = {}
        """id(value) -> its code object, for asking where a known function is."""
        self._missing = list(specs)

    def fresh(self) -> dict[int, T]:
        """The table, with the functions of modules imported since the last look added."""
        if self._missing and any(module in sys.modules for module, _, _ in self._missing):
            for spec in list(self._missing):
                module, dotted, value = spec
                code = resolve(module, dotted)
                if code is not None:
                    self.by_id[id(code)] = value
                    self.code_of[id(value)] = code
                    self._missing.remove(spec)
        return self.by_id
