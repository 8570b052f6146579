"""``memory://``: a store that lives in the process, for tests, notebooks and examples.

Nothing is persisted. It behaves like the database backends (it passes the same
:class:`relcrm.testing.StoreContract`):

* One transaction at a time: :meth:`MemoryStore.transaction` holds a lock for the whole ``with``
  block, writes are staged in the transaction and applied together on commit, and an exception
  discards them all.
* Readers never wait for a transaction and never see its writes before it commits.
* Everything is stored as JSON text and decoded afresh on every read, so a caller cannot change
  stored state by mutating what it passed in or got back, and data round-trips exactly as it would
  through SQLite or PostgreSQL (tuples come back as lists, ``NaN`` is refused).
* It offers the optional bulk capability (:class:`~relcrm.storage.base.BulkTransaction` and
  :class:`~relcrm.storage.base.BulkStore`), with the same checks as the one-row methods.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from relcrm.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    ConcurrencyConflict,
    NotFound,
    StorageError,
)
from relcrm.storage._checks import check_limit, check_status, decode_json, dump_mapping
from relcrm.storage.base import EventRecord, JSONText, OutboxRecord, OutboxStatus, Record

__all__ = ["MemoryStore"]


def _check_text(what: str, value: str | None) -> None:
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StorageError(f"{what} {value!r} is not valid UTF-8 text: {exc}") from exc


@attrs.frozen
class _StoredRecord:
    version: int
    data: str
    person_id: str | None
    opening_id: str | None

    def to_record(self, kind: str, id: str) -> Record:
        return Record(
            kind=kind,
            id=id,
            version=self.version,
            data=decode_json(self.data),
            person_id=self.person_id,
            opening_id=self.opening_id,
        )


@attrs.frozen
class _StoredEvent:
    seq: int
    id: str
    type: str
    occurred_at: str
    person_id: str | None
    payload: str

    def to_event(self) -> EventRecord:
        return EventRecord(
            id=self.id,
            type=self.type,
            occurred_at=self.occurred_at,
            payload=decode_json(self.payload),
            person_id=self.person_id,
            seq=self.seq,
        )


@attrs.frozen
class _StoredOutbox:
    id: str
    event_id: str
    notifier: str
    recipient: str
    payload: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: str
    last_error: str | None

    def to_outbox(self) -> OutboxRecord:
        return OutboxRecord(
            id=self.id,
            event_id=self.event_id,
            notifier=self.notifier,
            recipient=decode_json(self.recipient),
            payload=decode_json(self.payload),
            status=self.status,
            attempts=self.attempts,
            next_attempt_at=self.next_attempt_at,
            last_error=self.last_error,
        )


def _matches(row: _StoredRecord, person_id: str | None, opening_id: str | None) -> bool:
    return (person_id is None or row.person_id == person_id) and (
        opening_id is None or row.opening_id == opening_id
    )


class MemoryStore:
    """A thread-safe in-process :class:`~relcrm.storage.Store` (``memory://``).

    Usable as a context manager, which closes it on exit.
    """

    def __init__(self, url: str = "memory://") -> None:
        if not url.startswith("memory://"):
            raise BackendUnavailable(f"MemoryStore needs a 'memory://' URL, not {url!r}")
        self.url = url
        # Held by the thread running a transaction for the whole ``with`` block: writers take turns.
        self._write_lock = threading.RLock()
        self._writer: int | None = None  # thread id of the transaction holding _write_lock
        # Held briefly to read committed state or to apply a commit: readers never wait for writers.
        self._state_lock = threading.Lock()
        self._closed = False
        self._records: dict[str, dict[str, _StoredRecord]] = {}
        self._events: list[_StoredEvent] = []
        self._event_positions: dict[str, int] = {}
        self._events_by_person: dict[str, list[int]] = {}
        self._outbox: dict[str, _StoredOutbox] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryStore {self.url!r} ({state})>"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self.url!r} is closed")

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTransaction]:
        """Begin a unit of work; commits on normal exit, discards every write on an exception."""
        self._check_open()
        if self._writer == threading.get_ident():
            raise StorageError(
                "a transaction is already open in this thread and transactions do not nest; "
                "do all the work in the outer transaction"
            )
        with self._write_lock:
            self._check_open()
            self._writer = threading.get_ident()
            tx = _MemoryTransaction(self)
            try:
                yield tx
                with self._state_lock:
                    self._check_open()
                    self._apply(tx)
            finally:
                tx._finished = True
                self._writer = None

    def _apply(self, tx: _MemoryTransaction) -> None:
        # Every check happened while staging, so applying cannot fail half-way.
        for (kind, id), row in tx._writes.items():
            if row is None:
                rows = self._records.get(kind)
                if rows is not None:
                    rows.pop(id, None)
                    if not rows:
                        del self._records[kind]
            else:
                self._records.setdefault(kind, {})[id] = row
        for event_id, payload in tx._payloads.items():
            position = self._event_positions[event_id]
            self._events[position] = attrs.evolve(self._events[position], payload=payload)
        for event in tx._events:
            position = len(self._events)
            self._events.append(event)
            self._event_positions[event.id] = position
            if event.person_id is not None:
                self._events_by_person.setdefault(event.person_id, []).append(position)
        self._outbox.update(tx._outbox)

    # -- reads -------------------------------------------------------------------------------

    def get(self, kind: str, id: str) -> Record | None:
        """The committed record, or ``None``."""
        with self._state_lock:
            self._check_open()
            row = self._records.get(kind, {}).get(id)
        return None if row is None else row.to_record(kind, id)

    def existing_ids(self, kind: str, ids: Sequence[str]) -> set[str]:
        """The committed ids among ``ids`` for records of ``kind``."""
        with self._state_lock:
            self._check_open()
            rows = self._records.get(kind, {})
            return {id for id in ids if id in rows}

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Committed records of ``kind`` matching every given key, ordered by id."""
        with self._state_lock:
            self._check_open()
            rows = [
                (id, row)
                for id, row in self._records.get(kind, {}).items()
                if _matches(row, person_id, opening_id)
            ]
        rows.sort(key=lambda item: item[0])
        return [row.to_record(kind, id) for id, row in rows]

    def iter_records(self, kind: str, *, batch_size: int = 1000) -> Iterator[Record]:
        """Every committed record of ``kind`` ordered by id (a snapshot taken on the first step)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        return self._iter_records(kind)

    def _iter_records(self, kind: str) -> Iterator[Record]:
        with self._state_lock:
            self._check_open()
            rows = sorted(self._records.get(kind, {}).items(), key=lambda item: item[0])
        for id, row in rows:
            yield row.to_record(kind, id)

    def events(
        self, *, after: int = 0, person_id: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Committed events with ``seq > after`` (optionally for one person), in ``seq`` order."""
        check_limit(limit)
        with self._state_lock:
            self._check_open()
            start = max(after, 0)  # seq n lives at position n - 1
            if person_id is None:
                stop = None if limit is None else start + limit
                selected = self._events[start:stop]
            else:
                positions = [p for p in self._events_by_person.get(person_id, ()) if p >= start]
                selected = [self._events[p] for p in positions[:limit]]
        return [event.to_event() for event in selected]

    def outbox(
        self,
        *,
        status: OutboxStatus | None = "pending",
        due_by: str | None = None,
        event_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRecord]:
        """Outbox rows with that status (``None``: any), due at or before ``due_by``, for those
        events; ordered by ``(next_attempt_at, id)``."""
        check_limit(limit)
        wanted = None if event_ids is None else frozenset(event_ids)
        with self._state_lock:
            self._check_open()
            rows = [
                row
                for row in self._outbox.values()
                if (status is None or row.status == status)
                and (due_by is None or row.next_attempt_at <= due_by)
                and (wanted is None or row.event_id in wanted)
            ]
        rows.sort(key=lambda row: (row.next_attempt_at, row.id))
        return [row.to_outbox() for row in rows[:limit]]

    # -- writes outside transactions -----------------------------------------------------------

    def update_outbox(
        self,
        id: str,
        *,
        status: OutboxStatus,
        attempts: int,
        next_attempt_at: str,
        last_error: str | None,
    ) -> None:
        """Record the result of a delivery attempt; :class:`relcrm.NotFound` for an unknown row."""
        check_status(status)
        _check_text("next_attempt_at", next_attempt_at)
        _check_text("last_error", last_error)
        if self._writer == threading.get_ident():
            raise StorageError(
                "update_outbox() cannot run while this thread has a transaction open; "
                "call it after the transaction has committed"
            )
        with self._state_lock:
            self._check_open()
            row = self._outbox.get(id)
            if row is None:
                raise NotFound("outbox row", id)
            self._outbox[id] = attrs.evolve(
                row,
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
            )

    def close(self) -> None:
        """Drop everything; further use raises :class:`relcrm.StorageError`. Idempotent."""
        with self._state_lock:
            self._closed = True
            self._records = {}
            self._events = []
            self._event_positions = {}
            self._events_by_person = {}
            self._outbox = {}


class _MemoryTransaction:
    """The writes of one :meth:`MemoryStore.transaction`, staged until it commits."""

    #: Stores the text of :class:`~relcrm.storage.base.JSONText` data as it is (see
    #: :func:`relcrm.storage.base.insert_many`).
    takes_json_text = True

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._finished = False
        self._writes: dict[tuple[str, str], _StoredRecord | None] = {}  # None: deleted
        self._events: list[_StoredEvent] = []
        self._event_positions: dict[str, int] = {}
        self._payloads: dict[str, str] = {}  # replacement payloads for committed events
        self._outbox: dict[str, _StoredOutbox] = {}

    def _check_active(self) -> None:
        if self._finished:
            raise StorageError("this transaction has already finished; begin a new one")
        self._store._check_open()

    def _current(self, kind: str, id: str) -> _StoredRecord | None:
        key = (kind, id)
        if key in self._writes:
            return self._writes[key]
        # Committed state only changes under the write lock, which this transaction holds.
        return self._store._records.get(kind, {}).get(id)

    def get(self, kind: str, id: str) -> Record | None:
        """The record, seeing this transaction's own writes, or ``None``."""
        self._check_active()
        row = self._current(kind, id)
        return None if row is None else row.to_record(kind, id)

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Records of ``kind`` matching every given key (with this transaction's writes), by id."""
        self._check_active()
        rows: dict[str, _StoredRecord | None] = dict(self._store._records.get(kind, {}))
        for (written_kind, id), row in self._writes.items():
            if written_kind == kind:
                rows[id] = row
        return [
            row.to_record(kind, id)
            for id, row in sorted(rows.items(), key=lambda item: item[0])
            if row is not None and _matches(row, person_id, opening_id)
        ]

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
        """Write a record whose current version is ``expected_version`` (0: must not exist yet)."""
        self._check_active()
        for what, value in (("kind", kind), ("id", id), ("person_id", person_id)):
            _check_text(what, value)
        _check_text("opening_id", opening_id)
        text = dump_mapping(f"data of {kind} {id!r}", data)
        current = self._current(kind, id)
        actual = None if current is None else current.version
        if (actual or 0) != expected_version:
            raise ConcurrencyConflict(kind, id, expected_version, actual)
        row = _StoredRecord(
            version=expected_version + 1, data=text, person_id=person_id, opening_id=opening_id
        )
        self._writes[(kind, id)] = row
        return row.to_record(kind, id)

    def delete(self, kind: str, id: str, *, expected_version: int) -> None:
        """Remove a record at ``expected_version``; else :class:`relcrm.ConcurrencyConflict`."""
        self._check_active()
        current = self._current(kind, id)
        if current is None or current.version != expected_version:
            actual = None if current is None else current.version
            raise ConcurrencyConflict(kind, id, expected_version, actual)
        self._writes[(kind, id)] = None

    def append_event(self, event: EventRecord) -> EventRecord:
        """Append to the log; returns the event with its ``seq``. A duplicate id is an error."""
        self._check_active()
        for what, value in (
            ("event id", event.id),
            ("event type", event.type),
            ("occurred_at", event.occurred_at),
            ("person_id", event.person_id),
        ):
            _check_text(what, value)
        if event.id in self._event_positions or event.id in self._store._event_positions:
            raise AlreadyExists("event", event.id, "event ids are unique in the log")
        stored = _StoredEvent(
            seq=len(self._store._events) + len(self._events) + 1,
            id=event.id,
            type=event.type,
            occurred_at=event.occurred_at,
            person_id=event.person_id,
            payload=dump_mapping(f"payload of event {event.id!r}", event.payload),
        )
        self._event_positions[event.id] = len(self._events)
        self._events.append(stored)
        return stored.to_event()

    def add_outbox(self, row: OutboxRecord) -> None:
        """Queue a notification for delivery after commit. A duplicate id is an error."""
        self._check_active()
        self._outbox[row.id] = self._stored_outbox(row, self._outbox)

    def _stored_outbox(self, row: OutboxRecord, staged: Mapping[str, object]) -> _StoredOutbox:
        """``row`` checked and encoded; ``staged`` holds the ids it must not repeat."""
        check_status(row.status)
        for what, value in (
            ("outbox id", row.id),
            ("event_id", row.event_id),
            ("notifier", row.notifier),
            ("next_attempt_at", row.next_attempt_at),
            ("last_error", row.last_error),
        ):
            _check_text(what, value)
        if row.id in staged or row.id in self._store._outbox:
            raise AlreadyExists("outbox row", row.id, "outbox ids are unique")
        return _StoredOutbox(
            id=row.id,
            event_id=row.event_id,
            notifier=row.notifier,
            recipient=dump_mapping(f"recipient of outbox row {row.id!r}", row.recipient),
            payload=dump_mapping(f"payload of outbox row {row.id!r}", row.payload),
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
        )

    def replace_event_payload(self, event_id: str, payload: Mapping[str, Any]) -> None:
        """Rewrite one logged event's payload (erasure); :class:`relcrm.NotFound` if unknown."""
        self._check_active()
        text = dump_mapping(f"payload of event {event_id!r}", payload)
        position = self._event_positions.get(event_id)
        if position is not None:
            self._events[position] = attrs.evolve(self._events[position], payload=text)
        elif event_id in self._store._event_positions:
            self._payloads[event_id] = text
        else:
            raise NotFound("event", event_id)

    # -- bulk (optional capability of the port) ---------------------------------------------------
    #
    # Each method checks every row before it stages any, so a refused batch leaves the
    # transaction as it was; the caller rolls it back in any case.

    def insert_many(self, records: Sequence[Record]) -> None:
        """Insert new records at version 1. If a ``(kind, id)`` is already stored or given twice,
        raise :class:`relcrm.AlreadyExists` naming the first such record."""
        self._check_active()
        staged: dict[tuple[str, str], _StoredRecord] = {}
        for rec in records:
            kind, id, person_id, opening_id = rec.kind, rec.id, rec.person_id, rec.opening_id
            for what, value in (("kind", kind), ("id", id), ("person_id", person_id)):
                _check_text(what, value)
            _check_text("opening_id", opening_id)
            key = (kind, id)
            if key in staged or self._current(kind, id) is not None:
                raise AlreadyExists(kind, id)
            text = dump_mapping(f"data of {rec.kind} {rec.id!r}", rec.data)
            staged[key] = _StoredRecord(
                version=1, data=text, person_id=person_id, opening_id=opening_id
            )
        self._writes.update(staged)

    def append_events(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Append events in the given order; returns them with their ``seq``. An id already in
        the log or given twice raises :class:`relcrm.AlreadyExists`."""
        self._check_active()
        first = len(self._store._events) + len(self._events) + 1
        staged: list[_StoredEvent] = []
        positions: dict[str, int] = {}
        for n, event in enumerate(events):
            for what, value in (
                ("event id", event.id),
                ("event type", event.type),
                ("occurred_at", event.occurred_at),
                ("person_id", event.person_id),
            ):
                _check_text(what, value)
            if (
                event.id in positions
                or event.id in self._event_positions
                or event.id in self._store._event_positions
            ):
                raise AlreadyExists("event", event.id, "event ids are unique in the log")
            positions[event.id] = len(self._events) + n
            staged.append(
                _StoredEvent(
                    seq=first + n,
                    id=event.id,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    person_id=event.person_id,
                    payload=dump_mapping(f"payload of event {event.id!r}", event.payload),
                )
            )
        self._events.extend(staged)
        self._event_positions.update(positions)
        return [
            EventRecord(
                id=e.id,
                type=e.type,
                occurred_at=e.occurred_at,
                payload=JSONText(e.payload),
                person_id=e.person_id,
                seq=e.seq,
            )
            for e in staged
        ]

    def add_outbox_many(self, rows: Sequence[OutboxRecord]) -> None:
        """Queue many notifications; an id already queued or given twice raises
        :class:`relcrm.AlreadyExists`."""
        self._check_active()
        staged: dict[str, _StoredOutbox] = {}
        for row in rows:
            if row.id in self._outbox:
                raise AlreadyExists("outbox row", row.id, "outbox ids are unique")
            staged[row.id] = self._stored_outbox(row, staged)
        self._outbox.update(staged)
