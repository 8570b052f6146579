"""Running a command again when a concurrent writer got there first.

Optimistic locking turns a lost race into :class:`relcrm.ConcurrencyConflict` (and, on
PostgreSQL, a deadlock or serialization failure into :class:`relcrm.TransactionAborted`, which
is one too). Nothing was written, so the command can run again; :func:`retry` does that with
exponential back-off and full jitter, so that writers who collided do not collide again in step.

The function retried must read what it depends on itself (a version for ``expected_version=``,
the current state of an aggregate), or it would fail the same way every time.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from relcrm.exceptions import ConcurrencyConflict

__all__ = ["retry", "retrying"]

T = TypeVar("T")
P = ParamSpec("P")


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.01,
    max_delay: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (ConcurrencyConflict,),
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn()`` until it returns, at most ``attempts`` times.

    After a failure of a type in ``retry_on`` the next attempt waits a random time between 0
    and ``min(max_delay, base_delay * 2 ** (failures - 1))`` seconds (full jitter). Any other
    exception is raised at once; the last conflict is raised when the attempts run out.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if base_delay < 0 or max_delay < 0:
        raise ValueError("base_delay and max_delay must not be negative")
    failures = 0
    while True:
        try:
            return fn()
        except retry_on:
            failures += 1
            if failures >= attempts:
                raise
            sleep(rng() * min(max_delay, base_delay * 2 ** (failures - 1)))


def retrying(
    *,
    attempts: int = 5,
    base_delay: float = 0.01,
    max_delay: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (ConcurrencyConflict,),
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """:func:`retry` as a decorator: every call of the decorated function is retried."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return retry(
                lambda: fn(*args, **kwargs),
                attempts=attempts,
                base_delay=base_delay,
                max_delay=max_delay,
                retry_on=retry_on,
            )

        return wrapper

    return decorate
