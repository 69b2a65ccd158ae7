"""Two small checks shared by the submission modules (transfers and job parameters)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["is_int", "suggestion"]


def is_int(value: object) -> bool:
    """An int that is not a bool (``True`` is an int to Python, never to FTS)."""
    return isinstance(value, int) and not isinstance(value, bool)


def suggestion(name: str, known: Iterable[str]) -> str:
    """The fix for an unknown name: the closest known one, or the list of them all.

    :param name: the name given.
    :param known: the names allowed there.
    """
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{close[0]}'?"
    return f"Known names: {', '.join(sorted(known))}."
