"""State a process keeps for itself, which a forked child builds afresh instead of inheriting."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic
from typing import Protocol
from typing import TypeVar


class _OfProcess(Protocol):
    pid: int  # the process that made it


T = TypeVar("T", bound=_OfProcess)


class PerProcess(Generic[T]):
    """Called, gives this process's `T`: after a fork the child makes its own, as the parent's
    threads did not come along and its locks may be held by none of the child's."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value = make()

    def __call__(self) -> T:
        if self._value.pid != os.getpid():
            self._value = self._make()
        return self._value
