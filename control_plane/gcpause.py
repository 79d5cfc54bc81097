"""Cyclic garbage collection paused while a policy is loaded.

Loading a large policy allocates hundreds of thousands of containers (YAML nodes, dicts,
pydantic models), nearly all of which live until the end. Each allocation burst starts a
collection that walks the whole heap, and those collections cost more than the work itself
(10,000 models: 0.75 s to load with them, 0.3 s without). Reference counting still frees
everything acyclic; the collector resumes afterwards. (Compiling allocates mostly protobuf
messages, which the collector does not track: pausing it there changes nothing measurable.)
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Nests: only the outermost pause turns the collector back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def without_gc(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return function(*args, **kwargs)
    return paused
