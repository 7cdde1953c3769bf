"""What every concern of the catalog (assets, runs, profiles, ...) shares: the core's cursors and its writer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .cursor import Cursor

if TYPE_CHECKING:
    from . import Catalog

T = TypeVar("T")


class Concern:
    def __init__(self, core: Catalog) -> None:
        self._core = core

    def _cursor(self) -> Cursor:
        return self._core._cursor()

    def _write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in a write transaction and return its result once committed."""
        return self._core._write(work)
