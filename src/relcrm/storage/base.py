"""The storage port: what a backend must provide.

A backend stores three things, all as JSON-compatible mappings so that it never needs to know the
domain types:

* **records**: the current state of aggregates, keyed by ``(kind, id)``, each with a ``version``
  that increases by one on every write (optimistic locking) and two optional lookup keys,
  ``person_id`` and ``opening_id``;
* **events**: an append-only log with a global order (``seq``), filterable by person;
* **outbox**: one row per notification to deliver, written in the same transaction as the event.

Writes happen inside :meth:`Store.transaction`; the transaction commits when the ``with`` block ends
normally and rolls back entirely when it raises. :class:`relcrm.testing.StoreContract` is the test
suite that says what "behaves" means.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

__all__ = [
    "BulkStore",
    "BulkTransaction",
    "EventRecord",
    "JSONText",
    "OutboxRecord",
    "OutboxStatus",
    "Record",
    "Store",
    "StoreFactory",
    "Transaction",
    "add_outbox_many",
    "append_events",
    "existing_ids",
    "insert_many",
]

JSONMapping = Mapping[str, Any]
OutboxStatus = Literal["pending", "delivered", "dead"]


class JSONText(Mapping[str, Any]):
    """A JSON object held as its compact text, for bulk writes that encode many similar mappings
    from templates instead of one by one.

    It is a read-only mapping like any other (its text is decoded on first use). Only
    transactions that declare ``takes_json_text = True`` are given it (the built-in backends,
    which store ``text`` as it is, without encoding the mapping again); the module-level bulk
    functions below hand any other backend plain dicts. ``text`` must be what those backends
    would write for the mapping: compact separators (``,`` and ``:``), non-ASCII characters
    verbatim, no ``NaN``. The built-in backends return it as the payload of
    :meth:`BulkTransaction.append_events` too, so that reading the events back costs nothing
    until something looks at them.
    """

    __slots__ = ("_value", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._value: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        value = self._value
        if value is None:
            decoded = json.loads(self.text)
            if not isinstance(decoded, dict):
                raise TypeError(f"JSONText must hold a JSON object, not {self.text[:40]!r}")
            value = self._value = decoded
        return value

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"


@attrs.frozen
class Record:
    """The stored state of one aggregate."""

    kind: str
    id: str
    version: int
    data: JSONMapping
    person_id: str | None = None
    opening_id: str | None = None


@attrs.frozen
class EventRecord:
    """One entry of the event log. ``seq`` is assigned by the store on append (0 before)."""

    id: str
    type: str
    occurred_at: str
    payload: JSONMapping
    person_id: str | None = None
    seq: int = 0


@attrs.frozen
class OutboxRecord:
    """One notification waiting for (or done with) delivery by the notifier named ``notifier``."""

    id: str
    event_id: str
    notifier: str
    recipient: JSONMapping
    payload: JSONMapping
    status: OutboxStatus = "pending"
    attempts: int = 0
    next_attempt_at: str = ""
    last_error: str | None = None


class Transaction(Protocol):
    """Reads and writes inside one all-or-nothing unit of work."""

    def get(self, kind: str, id: str) -> Record | None:
        """The record, seeing this transaction's own writes, or ``None``."""

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Records of ``kind`` matching every given key, ordered by id."""

    def put(
        self,
        kind: str,
        id: str,
        data: JSONMapping,
        *,
        expected_version: int,
        person_id: str | None = None,
        opening_id: str | None = None,
    ) -> Record:
        """Write a record whose current version is ``expected_version`` (0: must not exist yet).

        Returns the stored record at ``expected_version + 1``. Raises
        :class:`relcrm.ConcurrencyConflict` when the stored version differs.
        """

    def delete(self, kind: str, id: str, *, expected_version: int) -> None:
        """Remove a record at ``expected_version``, else :class:`relcrm.ConcurrencyConflict`."""

    def append_event(self, event: EventRecord) -> EventRecord:
        """Append to the log; returns the event with its ``seq``. A duplicate ``id`` is an error."""

    def add_outbox(self, row: OutboxRecord) -> None:
        """Queue a notification for delivery after commit."""

    def replace_event_payload(self, event_id: str, payload: JSONMapping) -> None:
        """Rewrite one logged event's payload (used only by erasure; order and id are kept)."""


@runtime_checkable
class Store(Protocol):
    """A storage backend. Safe to use from several threads; one store per process."""

    url: str

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Begin a unit of work; commits on normal exit, rolls back whole on an exception."""

    def get(self, kind: str, id: str) -> Record | None:
        """The committed record, or ``None``."""

    def find(
        self, kind: str, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Record]:
        """Committed records of ``kind`` matching every given key, ordered by id."""

    def iter_records(self, kind: str, *, batch_size: int = 1000) -> Iterator[Record]:
        """Every committed record of ``kind`` ordered by id, fetched in batches (for big scans)."""

    def events(
        self, *, after: int = 0, person_id: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Committed events with ``seq > after`` (optionally for one person), in ``seq`` order."""

    def outbox(
        self,
        *,
        status: OutboxStatus | None = "pending",
        due_by: str | None = None,
        event_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[OutboxRecord]:
        """Outbox rows with that status (``None``: any), due at or before ``due_by`` (ISO time),
        for those events; ordered by ``(next_attempt_at, id)``."""

    def update_outbox(
        self,
        id: str,
        *,
        status: OutboxStatus,
        attempts: int,
        next_attempt_at: str,
        last_error: str | None,
    ) -> None:
        """Record the result of a delivery attempt."""

    def close(self) -> None:
        """Release connections. Further use is an error."""


@runtime_checkable
class BulkTransaction(Protocol):
    """Optional: a transaction that can write many rows at once (bulk import).

    A backend need not offer it: :func:`insert_many`, :func:`append_events` and
    :func:`add_outbox_many` fall back to the one-row methods of :class:`Transaction`. A backend
    that does offer it must behave exactly as the fallback does, only faster.
    """

    def insert_many(self, records: Sequence[Record]) -> None:
        """Insert new records (each ``version`` must be 1). If any ``(kind, id)`` is already
        stored or given twice, raise :class:`relcrm.AlreadyExists` naming it; the transaction
        is then rolled back by its caller, so nothing of the batch stays."""

    def append_events(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Append events in the given order; returns them with their ``seq``."""

    def add_outbox_many(self, rows: Sequence[OutboxRecord]) -> None:
        """Queue many notifications."""


@runtime_checkable
class BulkStore(Protocol):
    """Optional: a store that can tell which of many ids it holds in one round trip."""

    def existing_ids(self, kind: str, ids: Sequence[str]) -> set[str]:
        """The committed ids among ``ids`` for records of ``kind``."""


def _takes_json_text(tx: Transaction) -> bool:
    return getattr(type(tx), "takes_json_text", False) is True


def _plain(value: JSONMapping) -> JSONMapping:
    return dict(value) if type(value) is JSONText else value


def insert_many(tx: Transaction, records: Sequence[Record]) -> None:
    """Insert new records through the backend's bulk path, or one :meth:`~Transaction.put` each.

    A transaction whose class sets ``takes_json_text = True`` (the built-in backends do) is given
    :class:`JSONText` data as it is; any other gets it as plain dicts, which is what every
    backend could always expect (as :func:`append_events` and :func:`add_outbox_many` do)."""
    if not _takes_json_text(tx):
        records = [
            attrs.evolve(rec, data=_plain(rec.data)) if type(rec.data) is JSONText else rec
            for rec in records
        ]
    if isinstance(tx, BulkTransaction):
        tx.insert_many(records)
        return
    from relcrm.exceptions import AlreadyExists

    for rec in records:
        if tx.get(rec.kind, rec.id) is not None:
            raise AlreadyExists(rec.kind, rec.id)
        tx.put(
            rec.kind,
            rec.id,
            rec.data,
            expected_version=0,
            person_id=rec.person_id,
            opening_id=rec.opening_id,
        )


def append_events(tx: Transaction, events: Sequence[EventRecord]) -> list[EventRecord]:
    """Append events through the backend's bulk path, or one at a time."""
    if not _takes_json_text(tx):
        events = [
            attrs.evolve(e, payload=_plain(e.payload)) if type(e.payload) is JSONText else e
            for e in events
        ]
    if isinstance(tx, BulkTransaction):
        return tx.append_events(events)
    return [tx.append_event(e) for e in events]


def add_outbox_many(tx: Transaction, rows: Sequence[OutboxRecord]) -> None:
    """Queue notifications through the backend's bulk path, or one at a time."""
    if not _takes_json_text(tx):
        rows = [
            attrs.evolve(row, recipient=_plain(row.recipient), payload=_plain(row.payload))
            if type(row.recipient) is JSONText or type(row.payload) is JSONText
            else row
            for row in rows
        ]
    if isinstance(tx, BulkTransaction):
        tx.add_outbox_many(rows)
        return
    for row in rows:
        tx.add_outbox(row)


def existing_ids(store: Store, kind: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the store holds for ``kind`` (one query where the backend allows)."""
    if isinstance(store, BulkStore):
        return store.existing_ids(kind, ids)
    return {i for i in ids if store.get(kind, i) is not None}


class StoreFactory(Protocol):
    """What ``relcrm_register_storage_backends`` registers for a URL scheme."""

    def __call__(self, url: str) -> Store: ...
