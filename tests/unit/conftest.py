"""Fixtures shared by the unit tests: a controllable clock and fresh CRMs on memory and SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm import CRM, Actor, ActorRole

#: The fixed moment every unit test starts at.
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


class Clock:
    """A timezone-aware clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        assert start.utcoffset() is not None
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recruiter() -> Actor:
    return Actor(ActorRole.RECRUITER, "rec_alice")


CRMFactory = Callable[..., CRM]


@pytest.fixture
def open_crm(tmp_path: Path, clock: Clock) -> Iterator[CRMFactory]:
    """Open fresh CRMs (``"memory"`` or ``"sqlite"``) on the test clock; all closed at the end."""
    opened: list[CRM] = []
    counter = iter(range(1_000))

    def factory(backend: str = "memory", **kwargs: Any) -> CRM:
        if backend == "memory":
            url = "memory://"
        elif backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'talent-{next(counter)}.db'}"
        else:
            raise AssertionError(backend)
        kwargs.setdefault("notifiers", ["memory"])
        kwargs.setdefault("load_entrypoints", False)
        kwargs.setdefault("clock", clock)
        crm = relcrm.open(url, **kwargs)
        opened.append(crm)
        return crm

    yield factory
    for crm in reversed(opened):
        crm.close()


@pytest.fixture
def crm(open_crm: CRMFactory) -> CRM:
    """A fresh in-memory CRM with the memory notifier and the fixed clock."""
    return open_crm("memory")
