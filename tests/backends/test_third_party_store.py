"""A backend written outside relcrm passes the shipped contract, and plugs in through the hook.

``DictStore`` is deliberately built differently from :mod:`relcrm.storage.memory`: it keeps
immutable snapshots and commits by swapping in a new one (copy-on-write), which shows that the
contract describes behaviour rather than one implementation. It uses only the public storage port.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import pluggy
import pytest

import relcrm
from relcrm.exceptions import ConcurrencyConflict, NotFound, RelcrmError, StorageError
from relcrm.storage.base import EventRecord, OutboxRecord, OutboxStatus, Record, Store
from relcrm.testing import StoreContract

_Key = tuple[str, str]


def _freeze(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A private deep copy, checked to be JSON data (as a real database would insist)."""

    def check(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {str(k): check(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [check(v) for v in item]
        if isinstance(item, float) and not math.isfinite(item):
            raise StorageError(f"{what}: {item!r} is not JSON")
        if item is None or isinstance(item, str | int | float | bool):
            return item
        raise StorageError(f"{what}: {type(item).__name__} is not JSON")

    return check(value)  # type: ignore[no-any-return]


@attrs.frozen
class _Snapshot:
    records: dict[_Key, Record] = attrs.field(factory=dict)
    events: tuple[EventRecord, ...] = ()
    outbox: dict[str, OutboxRecord] = attrs.field(factory=dict)


class DictStore:
    """``dictdb://``: a toy third-party backend."""

    def __init__(self, url: str) -> None:
        if not url.startswith("dictdb://"):
            raise StorageError(f"DictStore wants dictdb:// URLs, not {url!r}")
        self.url = url
        self._snapshot: _Snapshot | None = _Snapshot()
        self._writer = threading.Lock()
        self._owner: int | None = None

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise StorageError("dictdb store is closed")
        return snapshot

    @contextmanager
    def transaction(self) -> Iterator[_DictTransaction]:
        if self._owner == threading.get_ident():
            raise StorageError("dictdb transactions do not nest")
        self._current()
        with self._writer:
            self._owner = threading.get_ident()
            try:
                base = self._current()
                tx = _DictTransaction(base)
                try:
                    yield tx
                finally:
                    tx.done = True
                if self._snapshot is None:
                    raise StorageError("dictdb store was closed during the transaction")
                self._snapshot = tx.result()
            finally:
                self._owner = None

    def get(self, kind: str, id: str) -> Record | None:
        record = self._current().records.get((kind, id))
        return None if record is None else copy.deepcopy(record)

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        return _find(self._current().records, kind, person_id, opening_id)

    def iter_records(self, kind: str, *, batch_size: int = 1000) -> Iterator[Record]:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        return iter(self.find(kind))

    def events(
        self, *, after: int = 0, person_id: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        selected = [
            e
            for e in self._current().events
            if e.seq > after and (person_id is None or e.person_id == person_id)
        ]
        return copy.deepcopy(selected if limit is None else selected[:limit])

    def outbox(
        self,
        *,
        status: OutboxStatus | None = "pending",
        due_by: str | None = None,
        event_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRecord]:
        rows = sorted(
            (
                row
                for row in self._current().outbox.values()
                if (status is None or row.status == status)
                and (due_by is None or row.next_attempt_at <= due_by)
                and (event_ids is None or row.event_id in event_ids)
            ),
            key=lambda row: (row.next_attempt_at, row.id),
        )
        return copy.deepcopy(rows if limit is None else rows[:limit])

    def update_outbox(
        self,
        id: str,
        *,
        status: OutboxStatus,
        attempts: int,
        next_attempt_at: str,
        last_error: str | None,
    ) -> None:
        with self._writer:
            snapshot = self._current()
            if id not in snapshot.outbox:
                raise NotFound("outbox row", id)
            outbox = dict(snapshot.outbox)
            outbox[id] = attrs.evolve(
                outbox[id],
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
            )
            self._snapshot = attrs.evolve(snapshot, outbox=outbox)

    def close(self) -> None:
        self._snapshot = None


def _find(
    records: Mapping[_Key, Record | None],
    kind: str,
    person_id: str | None,
    opening_id: str | None,
) -> list[Record]:
    found = [
        r
        for (k, _), r in records.items()
        if r is not None
        and k == kind
        and (person_id is None or r.person_id == person_id)
        and (opening_id is None or r.opening_id == opening_id)
    ]
    return copy.deepcopy(sorted(found, key=lambda r: r.id))


class _DictTransaction:
    def __init__(self, base: _Snapshot) -> None:
        self.done = False
        self._records: dict[_Key, Record | None] = dict(base.records)
        self._events = list(base.events)
        self._outbox = dict(base.outbox)
        self._next_seq = (base.events[-1].seq if base.events else 0) + 1

    def result(self) -> _Snapshot:
        records = {key: r for key, r in self._records.items() if r is not None}
        return _Snapshot(records, tuple(self._events), self._outbox)

    def _live(self) -> None:
        if self.done:
            raise StorageError("dictdb transaction already finished")

    def get(self, kind: str, id: str) -> Record | None:
        self._live()
        return copy.deepcopy(self._records.get((kind, id)))

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        self._live()
        return _find(self._records, kind, person_id, opening_id)

    def put(
        self,
        kind: str,
        id: str,
        data: Mapping[str, Any],
        *,
        expected_version: int,
        person_id: str | None = None,
        opening_id: str | None = None,
    ) -> Record:
        self._live()
        current = self._records.get((kind, id))
        actual = None if current is None else current.version
        if (actual or 0) != expected_version:
            raise ConcurrencyConflict(kind, id, expected_version, actual)
        record = Record(
            kind, id, expected_version + 1, _freeze(data, f"{kind} {id}"), person_id, opening_id
        )
        self._records[(kind, id)] = record
        return copy.deepcopy(record)

    def delete(self, kind: str, id: str, *, expected_version: int) -> None:
        self._live()
        current = self._records.get((kind, id))
        if current is None or current.version != expected_version:
            actual = None if current is None else current.version
            raise ConcurrencyConflict(kind, id, expected_version, actual)
        self._records[(kind, id)] = None

    def append_event(self, event: EventRecord) -> EventRecord:
        self._live()
        if any(e.id == event.id for e in self._events):
            raise StorageError(f"duplicate event id {event.id!r}")
        stored = attrs.evolve(
            event, seq=self._next_seq, payload=_freeze(event.payload, f"event {event.id}")
        )
        self._next_seq += 1
        self._events.append(stored)
        return copy.deepcopy(stored)

    def add_outbox(self, row: OutboxRecord) -> None:
        self._live()
        if row.id in self._outbox:
            raise StorageError(f"duplicate outbox id {row.id!r}")
        self._outbox[row.id] = attrs.evolve(
            row,
            recipient=_freeze(row.recipient, "recipient"),
            payload=_freeze(row.payload, "payload"),
        )

    def replace_event_payload(self, event_id: str, payload: Mapping[str, Any]) -> None:
        self._live()
        for n, event in enumerate(self._events):
            if event.id == event_id:
                self._events[n] = attrs.evolve(event, payload=_freeze(payload, "payload"))
                return
        raise NotFound("event", event_id)


class TestDictStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = DictStore("dictdb://contract")
        yield store
        store.close()


def test_the_contract_catches_a_broken_backend() -> None:
    """The suite is not a tautology: a backend that forgets to roll back fails it."""

    class LeakyStore(DictStore):
        @contextmanager
        def transaction(self) -> Iterator[_DictTransaction]:
            base = self._current()
            tx = _DictTransaction(base)
            try:
                yield tx
            finally:  # commits even when the block raised
                self._snapshot = tx.result()

    store = LeakyStore("dictdb://leaky")
    try:
        contract = StoreContract()
        with pytest.raises(AssertionError):
            contract.test_raising_rolls_back_everything(store, Exception)
    finally:
        store.close()


hookimpl = pluggy.HookimplMarker("relcrm")


class DictDBPlugin:
    """What a third-party package would register through its ``relcrm`` entry point."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    @hookimpl
    def relcrm_register_storage_backends(self, register: Callable[[str, Any], None]) -> None:
        def factory(url: str) -> Store:
            self.opened.append(url)
            return DictStore(url)

        register("dictdb", factory)


def test_dictdb_registered_through_plugin_hook() -> None:
    plugin = DictDBPlugin()
    crm = relcrm.open("dictdb://x", plugins=[plugin], load_entrypoints=False)
    try:
        assert plugin.opened == ["dictdb://x"]
        assert isinstance(crm.store, DictStore)
        assert crm.store.url == "dictdb://x"
        # The whole CRM works on it: a command's state, event and timeline go through the backend.
        recruiter = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")
        person = crm.add_person({"name": "Grace Hopper"}, actor=recruiter)
        crm.set_availability(person.id, "not_looking", actor=recruiter)
        assert crm.get_person(person.id).preferences.availability.value == "not_looking"
        assert [e.type for e in crm.timeline(person.id, "candidate")] == [
            "person.created",
            "relationship.availability_changed",
        ]
    finally:
        crm.close()
    with pytest.raises(RelcrmError):
        relcrm.open("dictdb://x", load_entrypoints=False)  # not registered without the plugin
