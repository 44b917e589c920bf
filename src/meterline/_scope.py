"""Scopes: the ``ContextVar`` that says which scope entry is in force, and the `Scope` that sets it.

Like ``decimal``'s ``localcontext()``: entering a scope sets a new entry (its parent is the one
in force) and leaving restores the parent. Being a ``ContextVar``, the entry is isolated
between threads and asyncio tasks and follows copied contexts. What an entry holds (its
dimensions and live totals, `meterline.ActiveScope`) is the roll-ups' business: a stack only
opens and closes entries through the two functions its owner gives it.
"""

from __future__ import annotations as _annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from meterline._entry import ActiveScope, Entry

__all__ = ["Scope", "ScopeStack"]

P = ParamSpec("P")
R = TypeVar("R")


class ScopeStack:
    """One meter's scope entries in force, per context.

    Args:
        name: The ``ContextVar``'s name (unique per meter).
        open_entry: Makes the entry for ``(parent, dimensions)``.
        close_entry: Called with an entry when it is left.
    """

    __slots__ = ("_close", "_open", "_var")

    def __init__(
        self,
        name: str,
        open_entry: Callable[[Entry | None, dict[str, str]], Entry],
        close_entry: Callable[[Entry], None],
    ) -> None:
        self._var: ContextVar[Entry | None] = ContextVar(name, default=None)
        self._open = open_entry
        self._close = close_entry

    @property
    def current(self) -> Callable[[], Entry | None]:
        """The entry in force in this context (a bound ``ContextVar.get``: the record path calls it)."""
        return self._var.get

    def enter(self, dims: dict[str, str]) -> tuple[Entry, Token[Entry | None]]:
        """Open an entry of ``dims`` under the one in force, and put it in force."""
        entry = self._open(self._var.get(), dims)
        return entry, self._var.set(entry)

    def exit(self, entry: Entry, token: Token[Entry | None]) -> None:
        """Put the entry's parent back in force, and close the entry."""
        try:
            self._var.reset(token)
        except ValueError:
            # Left in another context than it was entered in (a generator handed between
            # tasks, say): restore the parent there instead.
            self._var.set(entry.parent)
        self._close(entry)


class Scope:
    """Attribution dimensions for everything recorded inside; a context manager and a decorator.

    Made by `Meter.scope`. Used with ``with``, it returns the `ActiveScope` of that entry.
    Used as a decorator on a function or coroutine function, every call runs in its own
    entry. Scopes nest; an inner scope's dimensions are merged over the outer ones'.
    """

    __slots__ = ("_dims", "_entries", "_stack")

    def __init__(self, stack: ScopeStack, dims: dict[str, str]) -> None:
        self._stack = stack
        self._dims = dims
        self._entries: list[tuple[Entry, Token[Entry | None]]] = []

    @property
    def dimensions(self) -> Mapping[str, str]:
        """The dimensions this scope adds."""
        return MappingProxyType(self._dims)

    def __enter__(self) -> ActiveScope:
        entry = self._stack.enter(self._dims)
        self._entries.append(entry)
        return entry[0].view

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entry, token = self._entries.pop()
        self._stack.exit(entry, token)

    async def __aenter__(self) -> ActiveScope:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Run every call of ``func`` (sync or async) in a new entry of this scope."""
        stack, dims = self._stack, self._dims
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def _meterline_scoped_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                entry, token = stack.enter(dims)
                try:
                    return await func(*args, **kwargs)
                finally:
                    stack.exit(entry, token)

            return _meterline_scoped_async

        @functools.wraps(func)
        def _meterline_scoped(*args: P.args, **kwargs: P.kwargs) -> Any:
            entry, token = stack.enter(dims)
            try:
                return func(*args, **kwargs)
            finally:
                stack.exit(entry, token)

        return _meterline_scoped
