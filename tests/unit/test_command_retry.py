"""A command whose read was overtaken by a concurrent writer runs again on fresh state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import relcrm
from relcrm import Actor, ActorRole
from relcrm.storage.memory import MemoryStore

RITA = Actor(ActorRole.RECRUITER, "rita")


class _Racing:
    """A transaction whose first ``losses`` writes of a person lose to a concurrent writer: the
    other writer's change is applied, then this write is refused as a real backend refuses it."""

    def __init__(self, tx: Any, store: RacingStore) -> None:
        self._tx = tx
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def put(self, kind: str, id: str, data: Any, *, expected_version: int, **keys: Any) -> Any:
        if kind == "person" and expected_version > 0 and self._store.losses > 0:
            self._store.losses -= 1
            self._store.lost += 1
            raise relcrm.ConcurrencyConflict(kind, id, expected_version, expected_version + 1)
        return self._tx.put(kind, id, data, expected_version=expected_version, **keys)


class RacingStore(MemoryStore):
    def __init__(self, url: str) -> None:
        super().__init__("memory://")
        self.url = url
        self.losses = 0
        self.lost = 0

    @contextmanager
    def transaction(self) -> Iterator[Any]:  # type: ignore[override]
        with super().transaction() as tx:
            yield _Racing(tx, self)


class _Plugin:
    def __init__(self) -> None:
        self.stores: list[RacingStore] = []

    @relcrm.hookimpl
    def relcrm_register_storage_backends(
        self, register: Callable[[str, Callable[[str], RacingStore]], None]
    ) -> None:
        def make(url: str) -> RacingStore:
            self.stores.append(RacingStore(url))
            return self.stores[-1]

        register("racing", make)


def _crm() -> tuple[relcrm.CRM, RacingStore]:
    plugin = _Plugin()
    crm = relcrm.open("racing://", plugins=[plugin], load_entrypoints=False)
    crm.add_person({"id": "per_ada", "name": "Ada"}, actor=RITA)
    return crm, plugin.stores[0]


def test_a_command_overtaken_by_another_writer_runs_again() -> None:
    crm, store = _crm()
    before = len(crm.store.events())
    store.losses = 2
    person = crm.tag("per_ada", "python", actor=RITA)
    assert store.lost == 2
    assert person.tags == ("python",)
    assert crm.get_person("per_ada").tags == ("python",)
    tagged = [e for e in crm.store.events(after=0) if e.type == "person.tagged"]
    assert len(tagged) == 1  # written once
    assert len(crm.store.events()) == before + 1
    crm.close()


def test_a_command_gives_up_after_five_attempts() -> None:
    crm, store = _crm()
    store.losses = 99
    with pytest.raises(relcrm.ConcurrencyConflict):
        crm.tag("per_ada", "python", actor=RITA)
    assert store.lost == 5
    assert crm.get_person("per_ada").tags == ()
    crm.close()


def test_a_stale_expected_version_is_not_retried() -> None:
    crm, store = _crm()
    seen = crm.load(relcrm.Person, "per_ada").version
    crm.tag("per_ada", "python", actor=RITA)
    store.losses = 99
    with pytest.raises(relcrm.ConcurrencyConflict) as info:
        crm.update_profile("per_ada", {"summary": "x"}, actor=RITA, expected_version=seen)
    assert (info.value.expected, info.value.actual) == (seen, seen + 1)
    assert store.lost == 0  # refused on reading the version: no write was even tried
    crm.close()
