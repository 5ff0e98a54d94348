"""One registry shape for everything the package looks up by name: the claims of ``verify`` and the experiments.

A :class:`Registry` is an ordered mapping from unique names to items, filled by the modules that register into it
(a module-level call in each). It is lazy: the first lookup imports those modules, in the order given, so the
registry's order is theirs and importing the package that holds a registry stays cheap. A name may also have
aliases, which :meth:`Registry.resolve` and :meth:`Registry.get` follow when no item has that name itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one ``kind`` (the word the errors use: ``"experiment"``, ``"claim id"``) under unique names.

    ``modules`` are the dotted names of the modules whose import registers the items (with :meth:`add`), imported
    on the first lookup. Lookups: ``registry[name]``, ``name in registry``, iteration, ``len``, :meth:`keys`,
    :meth:`values`, :meth:`items`, :meth:`names` (all in the registry's order: by the registering module's place in
    ``modules``, then in the order each module registers), :meth:`get` and :meth:`resolve`.

    >>> shapes = Registry("shape")
    >>> shapes.add("square", 4, aliases=("quad",))
    4
    >>> shapes.get("quad"), shapes.names()
    (4, ['square'])
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    ValueError: unknown shape 'circle'; known: square
    """

    def __init__(self, kind: str, modules: Sequence[str] = ()):
        self.kind = kind
        self._modules = tuple(modules)
        self._items: dict[str, T] = {}
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        self._loaded = not self._modules

    def add(self, name: str, item: T, aliases: Iterable[str] = ()) -> T:
        """Register ``item`` as ``name`` (and its ``aliases``) and return it; a name taken by another item is an error.

        Adding the same item under the same name again changes nothing (a module imported twice). The item takes
        its place by the module whose top-level code registers it (the order of ``modules``; others after them), so
        the order does not depend on which module was imported first.
        """
        self._load()  # first: a duplicate of a registered name is found now, whatever was imported before
        aliases = tuple(aliases)
        if self._items.get(name, item) is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        taken = [alias for alias in aliases if alias in self.aliases and self.aliases[alias] != name]
        if taken:
            raise ValueError(f"{self.kind} alias {taken[0]!r} is registered twice")
        module = _registering_module()
        rank = self._modules.index(module) if module in self._modules else len(self._modules)
        self._rank.setdefault(name, (rank, len(self._rank)))
        self._items[name], self._aliases[name] = item, aliases
        self._items = dict(sorted(self._items.items(), key=lambda named: self._rank[named[0]]))
        return item

    def _load(self) -> dict[str, T]:
        if not self._loaded:
            self._loaded = True  # first: the modules' own registrations must not import them again
            try:
                for module in self._modules:
                    importlib.import_module(module)
            except BaseException:
                self._loaded = False
                raise
        return self._items

    @property
    def aliases(self) -> dict[str, str]:
        """``{alias: name}``, in the order of the names."""
        return {alias: name for name in self._load() for alias in self._aliases[name]}

    def names(self) -> list[str]:
        """The names, in the registry's order."""
        return list(self._load())

    def resolve(self, name: str, prefer_alias: bool = False) -> str:
        """The registered name ``name`` stands for: itself, else the name it is an alias of (with ``prefer_alias``,
        the alias wins over an item of the same name); an unknown name is returned as it is."""
        aliases = self.aliases
        if name in aliases and (prefer_alias or name not in self._items):
            return aliases[name]
        return name

    def get(self, name: str) -> T:
        """The item ``name`` (or an alias) stands for; ``ValueError`` listing the known names otherwise."""
        items = self._load()
        name = self.resolve(name)
        if name not in items:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(items))}")
        return items[name]

    def __getitem__(self, name: str) -> T:
        return self._load()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._load()))

    def __len__(self) -> int:
        return len(self._load())

    def keys(self):
        """The names (a view, in the registry's order)."""
        return self._load().keys()

    def values(self):
        """The items, in the registry's order."""
        return self._load().values()

    def items(self):
        """``(name, item)`` pairs, in the registry's order."""
        return self._load().items()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} items)"


def _registering_module() -> str | None:
    """The module whose top-level code is running (the innermost frame of a module body): the one registering."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return None if frame is None else frame.f_globals.get("__name__")
