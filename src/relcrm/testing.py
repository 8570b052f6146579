"""Test helpers for relcrm backends: the storage contract suite and pytest fixtures.

This module is for test suites only (it imports pytest); ``import relcrm`` never imports it.

Storage contract
----------------
:class:`StoreContract` is the suite of tests that says what a well-behaved
:class:`~relcrm.storage.Store` does. Every backend relcrm ships passes it, and a third-party backend
proves itself by subclassing it in its own test module and providing a ``store`` fixture that yields
a fresh, empty store and closes it afterwards::

    from collections.abc import Iterator
    from pathlib import Path

    import pytest

    from relcrm.storage import Store
    from relcrm.testing import StoreContract

    from mypackage import MyStore


    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path: Path) -> Iterator[Store]:
            store = MyStore(f"mydb:///{tmp_path}/test.db")
            yield store
            store.close()

Assertions in this module are plain ``assert`` statements; for pytest's detailed failure messages,
call ``pytest.register_assert_rewrite("relcrm.testing")`` in your ``conftest.py`` before anything
imports it (``pytest_plugins = ["relcrm.testing"]`` does this too).

The class name has no ``Test`` prefix so pytest does not collect the base class itself. Subclasses
may lower :attr:`StoreContract.thread_count` or :attr:`StoreContract.writes_per_thread` for slow
backends. The suite uses only :mod:`relcrm.storage.base` and :mod:`relcrm.exceptions`, never the
domain model.

The bulk writes are tested through the functions of :mod:`relcrm.storage.base`
(:func:`~relcrm.storage.base.insert_many`, :func:`~relcrm.storage.base.append_events`,
:func:`~relcrm.storage.base.add_outbox_many`, :func:`~relcrm.storage.base.existing_ids`), so a
backend with the optional bulk capability is held to exactly what the one-row fallbacks do for a
backend without it.

Fixtures
--------
:func:`memory_store` and :func:`sqlite_store` yield fresh stores of the built-in backends. Make them
available with ``pytest_plugins = ["relcrm.testing"]`` in a ``conftest.py``, or import them there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from relcrm.exceptions import (
    AlreadyExists,
    ConcurrencyConflict,
    NotFound,
    RelcrmError,
    StorageError,
)
from relcrm.storage.base import (
    EventRecord,
    OutboxRecord,
    Record,
    Store,
    StoreFactory,
    add_outbox_many,
    append_events,
    existing_ids,
    insert_many,
)

__all__ = ["StoreContract", "increment_counter", "memory_store", "sqlite_store"]

#: Strings that have broken storage layers before: quoting, NUL, unicode outside the BMP, RTL, ...
AWKWARD_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "'; DROP TABLE records; --",
    'Robert"); DROP TABLE events;--',
    "100% _wild_ [card]s \\ and backslashes",
    "NUL in the middle: a\x00b",
    "\x00",
    "line\nbreak\r\nand\ttab",
    "Zoë Ørsted-Łukasiewicz",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "emoji 🎉👩🏽‍💻",
    "\u200b zero width \ufeff bom",
    "null",
    "{}",
)


@pytest.fixture
def memory_store() -> Iterator[Store]:
    """A fresh ``memory://`` store, closed after the test."""
    from relcrm.storage.memory import MemoryStore

    store = MemoryStore()
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A fresh ``sqlite:///`` store on a file in the test's temporary directory."""
    from relcrm.storage.sqlite import SQLiteStore

    store = SQLiteStore(f"sqlite:///{tmp_path / 'relcrm.db'}")
    yield store
    store.close()


def increment_counter(
    factory: StoreFactory,
    url: str,
    times: int,
    start: Any = None,
    *,
    kind: str = "counter",
    id: str = "c",
) -> int:
    """Open ``factory(url)`` and add one to ``data["count"]`` of record ``(kind, id)`` ``times``
    times, each by reading the record and writing it back at the version read (creating it on first
    use), retrying after a :class:`~relcrm.ConcurrencyConflict`. Returns how many retries it took.

    Use it as the target of processes that race on one database, to check that a backend loses no
    update across processes and that several processes can create a new database at once
    (``start`` is an optional ``multiprocessing`` barrier that lines them up first). ``factory``
    must be importable by name in the child process, e.g. the store class itself::

        ctx = multiprocessing.get_context("spawn")
        start = ctx.Barrier(4)
        workers = [
            ctx.Process(target=increment_counter, args=(SQLiteStore, url, 25, start))
            for _ in range(4)
        ]
        # ... start and join them; then the count is 100 and the record at version 100.
    """
    if start is not None:
        start.wait(60)
    store = factory(url)
    conflicts = 0
    try:
        done = 0
        while done < times:
            current = store.get(kind, id)
            count = 0 if current is None else int(current.data["count"])
            try:
                with store.transaction() as tx:
                    tx.put(
                        kind,
                        id,
                        {"count": count + 1},
                        expected_version=0 if current is None else current.version,
                    )
            except ConcurrencyConflict:
                conflicts += 1
                continue
            done += 1
    finally:
        store.close()
    return conflicts


class _Boom(Exception):
    """Raised inside transactions to make them roll back."""


class _Abort(BaseException):
    """Like KeyboardInterrupt: not an Exception, must still roll back."""


def _event(
    id: str, *, person_id: str | None = None, payload: Mapping[str, Any] | None = None
) -> EventRecord:
    return EventRecord(
        id=id,
        type="contract.tested",
        occurred_at="2024-05-01T12:00:00+00:00",
        payload={"n": id} if payload is None else payload,
        person_id=person_id,
    )


def _outbox(
    id: str,
    *,
    event_id: str = "e1",
    next_attempt_at: str = "2024-05-01T12:00:00+00:00",
    notifier: str = "log",
) -> OutboxRecord:
    return OutboxRecord(
        id=id,
        event_id=event_id,
        notifier=notifier,
        recipient={"email": f"{id}@example.org"},
        payload={"subject": f"about {id}"},
        next_attempt_at=next_attempt_at,
    )


def _run_in_thread(function: Any, timeout: float = 10.0) -> Any:
    """Run ``function()`` in another thread and return its result (re-raising its exception)."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="relcrm-contract-reader", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"a reader in another thread was still blocked after {timeout} s")
    if errors:
        raise errors[0]
    return result[0]


def _try_to_mutate(value: object) -> None:
    """Change ``value`` in place if it allows that (immutable results are fine too)."""
    if isinstance(value, MutableMapping):
        for key in list(value):
            _try_to_mutate(value[key])
        value["injected"] = "by the caller"
    elif isinstance(value, MutableSequence):
        for item in value:
            _try_to_mutate(item)
        value.append("injected")


def _ids(records: list[Record]) -> list[str]:
    return [record.id for record in records]


class StoreContract:
    """What every :class:`~relcrm.storage.Store` must do. Subclass it and provide ``store``."""

    #: Threads racing on one record in :meth:`test_threads_never_lose_an_update`.
    thread_count: ClassVar[int] = 8
    #: Read-modify-write attempts each of those threads makes.
    writes_per_thread: ClassVar[int] = 15

    @pytest.fixture
    def store(self) -> Store:
        """Override in the subclass: yield a fresh, empty store and close it afterwards."""
        pytest.fail(f"{type(self).__name__} must define a `store` fixture (see relcrm.testing)")

    # -- shape ---------------------------------------------------------------------------------

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.url, str)
        assert store.url

    def test_new_store_is_empty(self, store: Store) -> None:
        assert store.get("person", "p1") is None
        assert store.find("person") == []
        assert list(store.iter_records("person")) == []
        assert store.events() == []
        assert store.outbox(status=None) == []

    # -- records -------------------------------------------------------------------------------

    def test_put_then_get(self, store: Store) -> None:
        with store.transaction() as tx:
            written = tx.put("person", "p1", {"name": "Ada"}, expected_version=0, person_id="p1")
        assert written == Record("person", "p1", 1, {"name": "Ada"}, person_id="p1")
        assert store.get("person", "p1") == written
        assert store.get("person", "p2") is None
        assert store.get("candidacy", "p1") is None

    def test_versions_start_at_one_and_grow_by_one(self, store: Store) -> None:
        for expected in range(4):
            with store.transaction() as tx:
                written = tx.put("person", "p1", {"round": expected}, expected_version=expected)
            assert written.version == expected + 1
            stored = store.get("person", "p1")
            assert stored is not None
            assert stored.version == expected + 1
            assert stored.data == {"round": expected}

    def test_several_writes_to_one_record_in_one_transaction(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {"n": 1}, expected_version=0)
            tx.put("person", "p1", {"n": 2}, expected_version=1)
            with pytest.raises(ConcurrencyConflict):
                tx.put("person", "p1", {"n": 3}, expected_version=1)
        stored = store.get("person", "p1")
        assert stored is not None
        assert (stored.version, stored.data) == (2, {"n": 2})

    def test_lookup_keys_are_replaced_on_update(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("candidacy", "c1", {}, expected_version=0, person_id="p1", opening_id="o1")
        with store.transaction() as tx:
            tx.put("candidacy", "c1", {}, expected_version=1, person_id="p2")
        assert store.find("candidacy", person_id="p1") == []
        assert store.find("candidacy", opening_id="o1") == []
        assert _ids(store.find("candidacy", person_id="p2")) == ["c1"]
        stored = store.get("candidacy", "c1")
        assert stored is not None
        assert (stored.person_id, stored.opening_id) == ("p2", None)

    def test_find_filters_and_orders_by_id(self, store: Store) -> None:
        rows = [
            ("c3", "p1", "o1"),
            ("c1", "p1", "o2"),
            ("c2", "p2", "o1"),
            ("c10", "p1", None),
            ("c0", None, "o1"),
        ]
        with store.transaction() as tx:
            for id, person_id, opening_id in rows:
                tx.put(
                    "candidacy",
                    id,
                    {"id": id},
                    expected_version=0,
                    person_id=person_id,
                    opening_id=opening_id,
                )
            tx.put("relationship", "c1", {"other": "kind"}, expected_version=0, person_id="p1")
        assert _ids(store.find("candidacy")) == ["c0", "c1", "c10", "c2", "c3"]
        assert _ids(store.find("candidacy", person_id="p1")) == ["c1", "c10", "c3"]
        assert _ids(store.find("candidacy", opening_id="o1")) == ["c0", "c2", "c3"]
        assert _ids(store.find("candidacy", person_id="p1", opening_id="o1")) == ["c3"]
        assert store.find("candidacy", person_id="p1", opening_id="o9") == []
        assert store.find("candidacy", person_id="nobody") == []
        assert store.find("opening") == []
        found = store.find("relationship", person_id="p1")
        assert found == [Record("relationship", "c1", 1, {"other": "kind"}, person_id="p1")]
        assert [r.data for r in store.find("candidacy", opening_id="o2")] == [{"id": "c1"}]

    def test_find_orders_by_code_point(self, store: Store) -> None:
        """Ids sort by Unicode code point (byte order of UTF-8), not by a locale's collation."""
        ids = ["b", "a", "B", "é", "z", "ä", "1", "😀", "aa", "日"]
        with store.transaction() as tx:
            for id in ids:
                tx.put("person", id, {}, expected_version=0)
        assert _ids(store.find("person")) == sorted(ids)
        assert [r.id for r in store.iter_records("person", batch_size=3)] == sorted(ids)

    def test_delete(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0, person_id="p1")
            tx.put("person", "p2", {}, expected_version=0, person_id="p2")
        with store.transaction() as tx:
            tx.delete("person", "p1", expected_version=1)
        assert store.get("person", "p1") is None
        assert _ids(store.find("person")) == ["p2"]
        assert store.find("person", person_id="p1") == []
        with store.transaction() as tx:  # a deleted id can be used again, from version 1
            again = tx.put("person", "p1", {"again": True}, expected_version=0)
        assert again.version == 1

    # -- optimistic locking ----------------------------------------------------------------------

    def test_inserting_an_existing_record_conflicts(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {"v": 1}, expected_version=0)
        with pytest.raises(ConcurrencyConflict) as caught, store.transaction() as tx:
            tx.put("person", "p1", {"v": "overwritten"}, expected_version=0)
        conflict = caught.value
        assert (conflict.kind, conflict.id, conflict.expected, conflict.actual) == (
            "person",
            "p1",
            0,
            1,
        )
        assert isinstance(conflict, RelcrmError)
        stored = store.get("person", "p1")
        assert stored is not None
        assert stored.data == {"v": 1}

    def test_stale_update_conflicts(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {"v": 1}, expected_version=0)
            tx.put("person", "p1", {"v": 2}, expected_version=1)
        with pytest.raises(ConcurrencyConflict) as caught, store.transaction() as tx:
            tx.put("person", "p1", {"v": "stale"}, expected_version=1)
        assert (caught.value.kind, caught.value.id) == ("person", "p1")
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        with pytest.raises(ConcurrencyConflict) as ahead, store.transaction() as tx:
            tx.put("person", "p1", {"v": "future"}, expected_version=7)
        assert (ahead.value.expected, ahead.value.actual) == (7, 2)
        stored = store.get("person", "p1")
        assert stored is not None
        assert (stored.version, stored.data) == (2, {"v": 2})

    def test_updating_a_missing_record_conflicts(self, store: Store) -> None:
        with pytest.raises(ConcurrencyConflict) as caught, store.transaction() as tx:
            tx.put("person", "ghost", {}, expected_version=3)
        assert (caught.value.kind, caught.value.id) == ("person", "ghost")
        assert (caught.value.expected, caught.value.actual) == (3, None)
        assert store.get("person", "ghost") is None

    def test_stale_delete_conflicts(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
            tx.put("person", "p1", {}, expected_version=1)
        with pytest.raises(ConcurrencyConflict) as caught, store.transaction() as tx:
            tx.delete("person", "p1", expected_version=1)
        assert (caught.value.kind, caught.value.id) == ("person", "p1")
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        assert store.get("person", "p1") is not None
        with pytest.raises(ConcurrencyConflict) as missing, store.transaction() as tx:
            tx.delete("person", "ghost", expected_version=1)
        assert (missing.value.expected, missing.value.actual) == (1, None)

    def test_conflict_rolls_back_the_whole_transaction(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)

        def insert_again() -> None:
            with store.transaction() as tx:
                tx.put("person", "p2", {}, expected_version=0)
                tx.append_event(_event("e1"))
                tx.put("person", "p1", {}, expected_version=0)

        with pytest.raises(ConcurrencyConflict):
            insert_again()
        assert store.get("person", "p2") is None
        assert store.events() == []

    # -- data fidelity -------------------------------------------------------------------------

    def test_data_round_trips_verbatim(self, store: Store) -> None:
        data: dict[str, Any] = {
            "awkward": list(AWKWARD_STRINGS),
            "long": "x" * 100_000 + "\x00end",
            "numbers": [0, -1, 2**53, 2**63 + 1, -(2**70), 0.1, -2.5e-300, 1e300],
            "flags": [True, False, None],
            "nested": {"a": [{"b": [[], {}, [{"c": None}]]}], "": "empty key"},
            "'; DROP TABLE records; --": "key with SQL in it",
            "key\x00with NUL": "ok",
            "ünïcödé 🎉": {"日本": "語"},
            "empty": {},
        }
        with store.transaction() as tx:
            written = tx.put("person", "p1", data, expected_version=0)
        assert written.data == data
        stored = store.get("person", "p1")
        assert stored is not None
        assert stored.data == data
        assert list(stored.data) == list(data)  # key order is kept
        assert stored.data["long"] == data["long"]
        assert isinstance(stored.data["numbers"][3], int)
        assert isinstance(stored.data["numbers"][5], float)

    def test_awkward_strings_as_keys_and_ids(self, store: Store) -> None:
        with store.transaction() as tx:
            for n, text in enumerate(AWKWARD_STRINGS):
                tx.put(
                    "person" + text,
                    text,
                    {"n": n},
                    expected_version=0,
                    person_id=text,
                    opening_id=text[::-1],
                )
                tx.append_event(_event(text, person_id=text, payload={text: text}))
                tx.add_outbox(
                    OutboxRecord(
                        id=text,
                        event_id=text,
                        notifier=text,
                        recipient={text: text},
                        payload={"text": text},
                        next_attempt_at=text,
                        last_error=text,
                    )
                )
        for n, text in enumerate(AWKWARD_STRINGS):
            stored = store.get("person" + text, text)
            assert stored == Record(
                "person" + text, text, 1, {"n": n}, person_id=text, opening_id=text[::-1]
            )
            assert store.find("person" + text, person_id=text) == [stored]
            assert store.find("person" + text, opening_id=text[::-1]) == [stored]
            [event] = store.events(person_id=text)
            assert (event.id, event.person_id, event.payload) == (text, text, {text: text})
            [row] = store.outbox(event_ids=[text])
            assert (row.id, row.notifier, row.recipient, row.payload) == (
                text,
                text,
                {text: text},
                {"text": text},
            )
            assert (row.next_attempt_at, row.last_error) == (text, text)
        assert store.get("person", "' OR '1'='1") is None
        assert store.find("person", person_id="' OR '1'='1") == []
        assert [e.id for e in store.events()] == list(AWKWARD_STRINGS)

    def test_tuples_come_back_as_lists(self, store: Store) -> None:
        with store.transaction() as tx:
            written = tx.put("person", "p1", {"pair": (1, "two")}, expected_version=0)
        stored = store.get("person", "p1")
        assert stored is not None
        assert stored.data == {"pair": [1, "two"]}
        assert written.data == stored.data

    def test_data_that_is_not_json_is_refused(self, store: Store) -> None:
        def write(bad: dict[str, Any]) -> None:
            with store.transaction() as tx:
                tx.put("person", "ok", {}, expected_version=0)
                tx.put("person", "p1", bad, expected_version=0)

        for bad in ({"when": object()}, {"nan": float("nan")}, {"inf": float("inf")}):
            with pytest.raises(RelcrmError):
                write(bad)
        assert store.get("person", "p1") is None
        assert store.get("person", "ok") is None

    def test_callers_cannot_mutate_stored_state(self, store: Store) -> None:
        data: dict[str, Any] = {"skills": ["python"], "contact": {"email": "a@example.org"}}
        with store.transaction() as tx:
            written = tx.put("person", "p1", data, expected_version=0, person_id="p1")
            appended = tx.append_event(_event("e1", payload={"tags": ["a"]}))
            outbox = _outbox("n1")
            tx.add_outbox(outbox)
            _try_to_mutate(data)
            _try_to_mutate(written.data)
            _try_to_mutate(appended.payload)
            _try_to_mutate(outbox.payload)
            _try_to_mutate(outbox.recipient)
            seen = tx.get("person", "p1")
            assert seen is not None
            _try_to_mutate(seen.data)
            for found in tx.find("person"):
                _try_to_mutate(found.data)
        expected = {"skills": ["python"], "contact": {"email": "a@example.org"}}
        for _ in range(2):
            stored = store.get("person", "p1")
            assert stored is not None
            assert stored.data == expected
            _try_to_mutate(stored.data)
            for found in store.find("person", person_id="p1"):
                _try_to_mutate(found.data)
            for found in store.iter_records("person"):
                _try_to_mutate(found.data)
            [event] = store.events()
            assert event.payload == {"tags": ["a"]}
            _try_to_mutate(event.payload)
            [row] = store.outbox()
            assert row.payload == {"subject": "about n1"}
            assert row.recipient == {"email": "n1@example.org"}
            _try_to_mutate(row.payload)
            _try_to_mutate(row.recipient)

    # -- transactions --------------------------------------------------------------------------

    def _seed(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "keep", {"v": 1}, expected_version=0, person_id="keep")
            tx.put("person", "doomed", {"v": 1}, expected_version=0)
            tx.append_event(_event("e0", person_id="keep", payload={"secret": "s"}))
            tx.add_outbox(_outbox("n0", event_id="e0"))

    def _assert_seed_unchanged(self, store: Store) -> None:
        assert _ids(store.find("person")) == ["doomed", "keep"]
        assert store.get("person", "keep") == Record(
            "person", "keep", 1, {"v": 1}, person_id="keep"
        )
        [event] = store.events()
        assert (event.id, event.payload) == ("e0", {"secret": "s"})
        assert [row.id for row in store.outbox(status=None)] == ["n0"]

    @pytest.mark.parametrize("error", [_Boom, _Abort], ids=["exception", "base-exception"])
    def test_raising_rolls_back_everything(self, store: Store, error: type[BaseException]) -> None:
        self._seed(store)
        raised = error("stop")

        def change_everything_then_raise() -> None:
            with store.transaction() as tx:
                tx.put("person", "new", {}, expected_version=0)
                tx.put("person", "keep", {"v": 2}, expected_version=1)
                tx.delete("person", "doomed", expected_version=1)
                tx.append_event(_event("e1"))
                tx.add_outbox(_outbox("n1", event_id="e1"))
                tx.replace_event_payload("e0", {"secret": "erased"})
                raise raised

        with pytest.raises(error) as caught:
            change_everything_then_raise()
        assert caught.value is raised  # the original exception, not a wrapper
        self._assert_seed_unchanged(store)
        with store.transaction() as tx:  # the store is still usable
            tx.put("person", "new", {}, expected_version=0)
        assert store.get("person", "new") is not None

    def test_reads_inside_see_own_writes(self, store: Store) -> None:
        self._seed(store)
        with store.transaction() as tx:
            tx.put("person", "new", {"v": "n"}, expected_version=0, person_id="keep")
            tx.put("person", "keep", {"v": 2}, expected_version=1, person_id="keep")
            tx.delete("person", "doomed", expected_version=1)
            assert tx.get("person", "doomed") is None
            kept = tx.get("person", "keep")
            assert kept is not None
            assert (kept.version, kept.data) == (2, {"v": 2})
            assert _ids(tx.find("person")) == ["keep", "new"]
            assert _ids(tx.find("person", person_id="keep")) == ["keep", "new"]
            assert tx.find("person", opening_id="o1") == []
            tx.delete("person", "new", expected_version=1)
            assert _ids(tx.find("person")) == ["keep"]

    def test_uncommitted_writes_are_invisible_outside(self, store: Store) -> None:
        self._seed(store)

        def snapshot() -> tuple[Any, ...]:
            return (
                store.get("person", "new"),
                store.get("person", "keep"),
                _ids(store.find("person")),
                _ids(store.find("person", person_id="keep")),
                [r.id for r in store.iter_records("person", batch_size=1)],
                [(e.id, e.payload) for e in store.events()],
                [row.id for row in store.outbox(status=None)],
            )

        before = snapshot()
        with store.transaction() as tx:
            tx.put("person", "new", {}, expected_version=0, person_id="keep")
            tx.put("person", "keep", {"v": 2}, expected_version=1, person_id="keep")
            tx.delete("person", "doomed", expected_version=1)
            tx.append_event(_event("e1", person_id="keep"))
            tx.add_outbox(_outbox("n1", event_id="e1"))
            tx.replace_event_payload("e0", {"secret": "erased"})
            assert _run_in_thread(snapshot) == before  # another thread, without blocking
            assert snapshot() == before  # this thread, outside the transaction
        after = snapshot()
        assert after != before
        assert after[0] is not None
        assert after[2] == ["keep", "new"]
        assert after[5] == [("e0", {"secret": "erased"}), ("e1", {"n": "e1"})]
        assert after[6] == ["n0", "n1"]
        assert _run_in_thread(snapshot) == after

    def test_transactions_do_not_nest(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "outer", {}, expected_version=0)
            with pytest.raises(StorageError), store.transaction():
                pytest.fail("a nested transaction was started")
            tx.put("person", "outer2", {}, expected_version=0)
        assert _ids(store.find("person")) == ["outer", "outer2"]

    def test_finished_transaction_cannot_be_used(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
        with pytest.raises(StorageError):
            tx.put("person", "p2", {}, expected_version=0)
        with pytest.raises(StorageError):
            tx.get("person", "p1")
        assert store.get("person", "p2") is None

    def test_empty_transaction(self, store: Store) -> None:
        with store.transaction():
            pass
        assert store.find("person") == []

    # -- events --------------------------------------------------------------------------------

    def test_events_get_increasing_seq_in_order(self, store: Store) -> None:
        with store.transaction() as tx:
            first = tx.append_event(_event("e1", person_id="p1"))
            second = tx.append_event(_event("e2", person_id="p2"))
        with store.transaction() as tx:
            third = tx.append_event(_event("e3", person_id="p1"))
            fourth = tx.append_event(_event("e4"))
        appended = [first, second, third, fourth]
        seqs = [event.seq for event in appended]
        assert seqs[0] >= 1
        assert seqs == sorted(set(seqs))
        assert first == EventRecord(
            "e1", "contract.tested", "2024-05-01T12:00:00+00:00", {"n": "e1"}, "p1", seqs[0]
        )
        assert store.events() == appended
        assert store.events(after=seqs[1]) == appended[2:]
        assert store.events(after=seqs[3]) == []
        assert store.events(person_id="p1") == [first, third]
        assert store.events(person_id="p1", after=seqs[0]) == [third]
        assert store.events(person_id="nobody") == []
        assert store.events(limit=2) == appended[:2]
        assert store.events(limit=0) == []
        assert store.events(after=seqs[0], limit=2) == appended[1:3]
        assert store.events(person_id="p1", limit=1) == [first]

    def test_seq_keeps_increasing_after_a_rollback(self, store: Store) -> None:
        with store.transaction() as tx:
            first = tx.append_event(_event("e1"))

        def append_then_raise() -> None:
            with store.transaction() as tx:
                tx.append_event(_event("lost"))
                raise _Boom

        with pytest.raises(_Boom):
            append_then_raise()
        with store.transaction() as tx:
            second = tx.append_event(_event("e2"))
        assert second.seq > first.seq
        assert [e.id for e in store.events()] == ["e1", "e2"]

    def test_duplicate_event_id_is_refused_and_rolls_back(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.append_event(_event("e1", payload={"first": True}))

        def append_logged_id() -> None:
            with store.transaction() as tx:
                tx.put("person", "p1", {}, expected_version=0)
                tx.append_event(_event("e1", payload={"second": True}))

        def append_twice() -> None:
            with store.transaction() as tx:
                tx.append_event(_event("e2"))
                tx.append_event(_event("e2"))

        with pytest.raises(RelcrmError):
            append_logged_id()
        assert store.get("person", "p1") is None
        with pytest.raises(RelcrmError):
            append_twice()
        assert [(e.id, e.payload) for e in store.events()] == [("e1", {"first": True})]

    def test_replace_event_payload(self, store: Store) -> None:
        with store.transaction() as tx:
            e1 = tx.append_event(_event("e1", person_id="p1", payload={"name": "Ada"}))
            e2 = tx.append_event(_event("e2", person_id="p1", payload={"name": "Ada"}))
            e3 = tx.append_event(_event("e3", person_id="p1", payload={"name": "Ada"}))
            # replacing an event appended in the same transaction works too
            tx.replace_event_payload("e3", {"name": "[erased]", "in": "same transaction"})
        with store.transaction() as tx:
            tx.replace_event_payload("e2", {"name": "[erased]"})
        events = store.events(person_id="p1")
        assert [(e.id, e.seq, e.type, e.occurred_at) for e in events] == [
            (e.id, e.seq, e.type, e.occurred_at) for e in (e1, e2, e3)
        ]
        assert [e.payload for e in events] == [
            {"name": "Ada"},
            {"name": "[erased]"},
            {"name": "[erased]", "in": "same transaction"},
        ]
        with pytest.raises(NotFound), store.transaction() as tx:
            tx.replace_event_payload("missing", {})

    # -- outbox --------------------------------------------------------------------------------

    def test_outbox_queries(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.append_event(_event("e1"))
            tx.append_event(_event("e2"))
            tx.add_outbox(_outbox("n3", event_id="e1", next_attempt_at="2024-05-01T12:00:00Z"))
            tx.add_outbox(_outbox("n1", event_id="e1", next_attempt_at="2024-05-01T12:00:00Z"))
            tx.add_outbox(_outbox("n2", event_id="e2", next_attempt_at="2024-05-01T11:00:00Z"))
            tx.add_outbox(_outbox("n4", event_id="e2", next_attempt_at="2024-05-02T00:00:00Z"))
        pending = store.outbox()
        assert [row.id for row in pending] == ["n2", "n1", "n3", "n4"]
        assert pending[0] == OutboxRecord(
            id="n2",
            event_id="e2",
            notifier="log",
            recipient={"email": "n2@example.org"},
            payload={"subject": "about n2"},
            status="pending",
            attempts=0,
            next_attempt_at="2024-05-01T11:00:00Z",
            last_error=None,
        )
        ids = [row.id for row in store.outbox(due_by="2024-05-01T12:00:00Z")]
        assert ids == ["n2", "n1", "n3"]
        assert [row.id for row in store.outbox(due_by="2024-05-01T11:59:59Z")] == ["n2"]
        assert store.outbox(due_by="2024-04-30T00:00:00Z") == []
        assert [row.id for row in store.outbox(event_ids=["e1"])] == ["n1", "n3"]
        assert [row.id for row in store.outbox(event_ids=("e2", "e1"))] == ["n2", "n1", "n3", "n4"]
        assert store.outbox(event_ids=[]) == []
        assert store.outbox(event_ids=["nope"]) == []
        assert [row.id for row in store.outbox(limit=2)] == ["n2", "n1"]
        assert [row.id for row in store.outbox(event_ids=["e2", "e1"], limit=3)] == [
            "n2",
            "n1",
            "n3",
        ]
        assert store.outbox(status="delivered") == []
        assert store.outbox(status="dead") == []

    def test_outbox_for_many_event_ids(self, store: Store) -> None:
        with store.transaction() as tx:
            for n in range(1200):
                tx.add_outbox(_outbox(f"n{n:04}", event_id=f"e{n:04}"))
        wanted = [f"e{n:04}" for n in range(0, 1200, 2)] + ["unknown"] * 3
        rows = store.outbox(event_ids=wanted)
        assert [row.id for row in rows] == [f"n{n:04}" for n in range(0, 1200, 2)]
        assert len(store.outbox(event_ids=wanted, limit=7)) == 7

    def test_update_outbox_transitions(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.add_outbox(_outbox("n1", next_attempt_at="2024-05-01T12:00:00Z"))
            tx.add_outbox(_outbox("n2", next_attempt_at="2024-05-01T12:00:00Z"))
            tx.add_outbox(_outbox("n3", next_attempt_at="2024-05-01T12:00:00Z"))
        store.update_outbox(
            "n1",
            status="pending",
            attempts=1,
            next_attempt_at="2024-05-01T12:05:00Z",
            last_error="SMTP 451: try again later",
        )
        [retry] = store.outbox(event_ids=["e1"], due_by="2024-05-01T12:05:00Z", limit=1)
        assert retry.id == "n2"
        [row] = [r for r in store.outbox() if r.id == "n1"]
        assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == (
            "pending",
            1,
            "2024-05-01T12:05:00Z",
            "SMTP 451: try again later",
        )
        assert (row.notifier, row.recipient, row.payload) == (
            "log",
            {"email": "n1@example.org"},
            {"subject": "about n1"},
        )
        store.update_outbox(
            "n1",
            status="delivered",
            attempts=2,
            next_attempt_at="2024-05-01T12:05:00Z",
            last_error=None,
        )
        store.update_outbox(
            "n2",
            status="dead",
            attempts=5,
            next_attempt_at="2024-05-01T13:00:00Z",
            last_error="gave up",
        )
        assert [r.id for r in store.outbox()] == ["n3"]
        [delivered] = store.outbox(status="delivered")
        assert (delivered.id, delivered.attempts, delivered.last_error) == ("n1", 2, None)
        [dead] = store.outbox(status="dead")
        assert (dead.id, dead.attempts, dead.last_error) == ("n2", 5, "gave up")
        assert [r.id for r in store.outbox(status=None)] == ["n3", "n1", "n2"]
        with pytest.raises(NotFound):
            store.update_outbox(
                "missing", status="dead", attempts=1, next_attempt_at="", last_error=None
            )

    def test_duplicate_outbox_id_is_refused(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.add_outbox(_outbox("n1"))

        def add_again() -> None:
            with store.transaction() as tx:
                tx.put("person", "p1", {}, expected_version=0)
                tx.add_outbox(_outbox("n1", notifier="other"))

        with pytest.raises(RelcrmError):
            add_again()
        assert store.get("person", "p1") is None
        assert [(r.id, r.notifier) for r in store.outbox()] == [("n1", "log")]

    # -- bulk writes (the optional capability, or the one-row fallbacks) ------------------------

    def test_insert_many(self, store: Store) -> None:
        records = [
            Record("person", f"p{n:04}", 1, {"n": n}, person_id=f"p{n:04}") for n in range(1200)
        ]
        records.append(Record("candidacy", "c1", 1, {"ok": True}, "p0001", "o1"))
        records.append(Record("opening", "p0001", 1, {}, opening_id="p0001"))  # same id, new kind
        with store.transaction() as tx:
            insert_many(tx, [])
            insert_many(tx, records[::-1])
            assert tx.get("person", "p0007") == records[7]  # seen inside the transaction
            assert _ids(tx.find("candidacy", person_id="p0001")) == ["c1"]
        assert store.get("person", "p0000") == records[0]
        assert store.get("candidacy", "c1") == records[-2]
        assert _ids(store.find("person")) == [f"p{n:04}" for n in range(1200)]
        assert store.find("candidacy", opening_id="o1") == [records[-2]]
        assert store.find("opening", opening_id="p0001") == [records[-1]]
        with store.transaction() as tx:  # bulk-inserted records update like any other
            updated = tx.put("person", "p0003", {"n": "three"}, expected_version=1)
        assert updated.version == 2

    def test_insert_many_data_round_trips(self, store: Store) -> None:
        data: dict[str, Any] = {"awkward": list(AWKWARD_STRINGS), "pair": (1, "two"), "n": 2**63}
        with store.transaction() as tx:
            insert_many(
                tx, [Record("person", text, 1, data, person_id=text) for text in AWKWARD_STRINGS]
            )
        expected = {**data, "pair": [1, "two"]}
        for text in AWKWARD_STRINGS:
            stored = store.get("person", text)
            assert stored == Record("person", text, 1, expected, person_id=text)
        with pytest.raises(RelcrmError), store.transaction() as tx:
            insert_many(tx, [Record("person", "bad", 1, {"nan": float("nan")})])
        assert store.get("person", "bad") is None

    @pytest.mark.parametrize("where", ["committed", "same transaction", "same batch"])
    def test_insert_many_refuses_a_taken_id(self, store: Store, where: str) -> None:
        with store.transaction() as tx:
            tx.put("person", "p2", {"v": "first"}, expected_version=0)
        batch = [Record("person", f"p{n}", 1, {"v": "batch"}) for n in (5, 6, 7)]
        batch.insert(1, Record("opening", "p2", 1, {}))  # another kind: not a clash

        def insert() -> None:
            with store.transaction() as tx:
                tx.put("person", "before", {}, expected_version=0)
                if where == "committed":
                    insert_many(tx, [*batch, Record("person", "p2", 1, {"v": "again"})])
                elif where == "same transaction":
                    tx.put("person", "p9", {}, expected_version=0)
                    insert_many(tx, [*batch, Record("person", "p9", 1, {"v": "again"})])
                else:
                    insert_many(tx, [*batch, Record("person", "p6", 1, {"v": "again"})])

        with pytest.raises(AlreadyExists) as caught:
            insert()
        named = {"committed": "p2", "same transaction": "p9", "same batch": "p6"}[where]
        assert (caught.value.kind, caught.value.id) == ("person", named)
        assert _ids(store.find("person")) == ["p2"]
        assert store.find("opening") == []
        stored = store.get("person", "p2")
        assert stored is not None
        assert (stored.version, stored.data) == (1, {"v": "first"})

    def test_insert_many_names_the_first_taken_id(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p3", {}, expected_version=0)
            tx.put("person", "p1", {}, expected_version=0)
        batch = [Record("person", id, 1, {}) for id in ("p0", "p3", "p2", "p1")]
        with pytest.raises(AlreadyExists) as caught, store.transaction() as tx:
            insert_many(tx, batch)
        assert caught.value.id == "p3"
        assert _ids(store.find("person")) == ["p1", "p3"]

    def test_append_events(self, store: Store) -> None:
        with store.transaction() as tx:
            first = tx.append_event(_event("e0"))
        events = [_event(f"e{n:04}", person_id=f"p{n % 3}") for n in range(1, 1201)]
        with store.transaction() as tx:
            assert append_events(tx, []) == []
            appended = append_events(tx, events[:600])
            single = tx.append_event(events[600])
            appended += [single, *append_events(tx, events[601:])]
        assert [e.id for e in appended] == [e.id for e in events]
        seqs = [e.seq for e in appended]
        assert seqs[0] > first.seq
        assert seqs == sorted(set(seqs))
        assert [attrs.evolve(e, seq=0) for e in appended] == events
        assert store.events() == [first, *appended]
        assert store.events(person_id="p1") == [e for e in appended if e.person_id == "p1"]

    @pytest.mark.parametrize("where", ["committed", "same transaction", "same batch"])
    def test_append_events_refuses_a_taken_id(self, store: Store, where: str) -> None:
        with store.transaction() as tx:
            tx.append_event(_event("e1", payload={"first": True}))
        batch = [_event("e2"), _event("e3")]

        def append() -> None:
            with store.transaction() as tx:
                tx.put("person", "p1", {}, expected_version=0)
                if where == "committed":
                    append_events(tx, [*batch, _event("e1")])
                elif where == "same transaction":
                    tx.append_event(_event("e9"))
                    append_events(tx, [*batch, _event("e9")])
                else:
                    append_events(tx, [*batch, _event("e3")])

        with pytest.raises(RelcrmError) as caught:
            append()
        if isinstance(caught.value, AlreadyExists):
            assert caught.value.id == {"committed": "e1", "same transaction": "e9"}.get(where, "e3")
        assert store.get("person", "p1") is None
        assert [(e.id, e.payload) for e in store.events()] == [("e1", {"first": True})]

    def test_add_outbox_many(self, store: Store) -> None:
        rows = [_outbox(f"n{n:04}", event_id=f"e{n % 7}") for n in range(1200)]
        with store.transaction() as tx:
            add_outbox_many(tx, [])
            tx.add_outbox(_outbox("first"))
            add_outbox_many(tx, rows[::-1])
        assert sorted(r.id for r in store.outbox()) == ["first", *(r.id for r in rows)]
        assert store.outbox(event_ids=["e3"]) == [r for r in rows if r.event_id == "e3"]

    @pytest.mark.parametrize("where", ["committed", "same transaction", "same batch"])
    def test_add_outbox_many_refuses_a_taken_id(self, store: Store, where: str) -> None:
        with store.transaction() as tx:
            tx.add_outbox(_outbox("n1"))
        batch = [_outbox("n2"), _outbox("n3")]

        def add() -> None:
            with store.transaction() as tx:
                tx.put("person", "p1", {}, expected_version=0)
                if where == "committed":
                    add_outbox_many(tx, [*batch, _outbox("n1", notifier="other")])
                elif where == "same transaction":
                    tx.add_outbox(_outbox("n9"))
                    add_outbox_many(tx, [*batch, _outbox("n9", notifier="other")])
                else:
                    add_outbox_many(tx, [*batch, _outbox("n2", notifier="other")])

        with pytest.raises(RelcrmError):
            add()
        assert store.get("person", "p1") is None
        assert [(r.id, r.notifier) for r in store.outbox()] == [("n1", "log")]

    @pytest.mark.parametrize("error", [_Boom, _Abort], ids=["exception", "base-exception"])
    def test_bulk_writes_roll_back_together(self, store: Store, error: type[BaseException]) -> None:
        self._seed(store)

        def write_then_raise() -> None:
            with store.transaction() as tx:
                insert_many(tx, [Record("person", f"new{n}", 1, {}) for n in range(5)])
                append_events(tx, [_event(f"e{n}") for n in range(1, 4)])
                add_outbox_many(tx, [_outbox(f"n{n}", event_id="e1") for n in range(1, 4)])
                raise error

        with pytest.raises(error):
            write_then_raise()
        self._assert_seed_unchanged(store)
        with store.transaction() as tx:  # the ids are free again
            insert_many(tx, [Record("person", "new0", 1, {})])
            append_events(tx, [_event("e1")])
            add_outbox_many(tx, [_outbox("n1", event_id="e1")])
        assert store.get("person", "new0") is not None

    def test_existing_ids(self, store: Store) -> None:
        ids = [f"p{n:04}" for n in range(0, 2400, 2)]
        with store.transaction() as tx:
            for id in ids:
                tx.put("person", id, {}, expected_version=0)
            tx.put("opening", "p0001", {}, expected_version=0)
            for text in AWKWARD_STRINGS:
                tx.put("person", text, {}, expected_version=0)
        asked = [f"p{n:04}" for n in range(2400)] + ["p0002", "nobody", *AWKWARD_STRINGS]
        assert existing_ids(store, "person", asked) == {*ids, *AWKWARD_STRINGS}
        assert existing_ids(store, "person", ("p0001", "p0003")) == set()
        assert existing_ids(store, "opening", asked) == {"p0001"}
        assert existing_ids(store, "person", []) == set()
        assert existing_ids(store, "nothing", ids) == set()

    def test_existing_ids_sees_only_committed_records(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "old", {}, expected_version=0)
        with store.transaction() as tx:
            tx.put("person", "new", {}, expected_version=0)
            tx.delete("person", "old", expected_version=1)
            seen = _run_in_thread(lambda: existing_ids(store, "person", ["old", "new"]))
            assert seen == {"old"}
        assert existing_ids(store, "person", ["old", "new"]) == {"new"}

    # -- scans ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("batch_size", [1, 4, 5, 1000])
    def test_iter_records_in_batches(self, store: Store, batch_size: int) -> None:
        ids = [f"p{n:03}" for n in range(20)]
        with store.transaction() as tx:
            for id in reversed(ids):
                tx.put("person", id, {"id": id}, expected_version=0)
            tx.put("opening", "o1", {}, expected_version=0)
        records = list(store.iter_records("person", batch_size=batch_size))
        assert _ids(records) == ids
        assert [r.data for r in records] == [{"id": id} for id in ids]
        assert all(r.kind == "person" and r.version == 1 for r in records)
        assert list(store.iter_records("nothing", batch_size=batch_size)) == []

    def test_iter_records_refuses_empty_batches(self, store: Store) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            list(store.iter_records("person", batch_size=0))

    # -- lifecycle and threads -----------------------------------------------------------------

    def test_close(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
        store.close()
        store.close()  # closing twice is harmless
        with pytest.raises(StorageError):
            store.get("person", "p1")
        with pytest.raises(StorageError):
            store.events()
        with pytest.raises(StorageError), store.transaction():
            pass

    def test_threads_never_lose_an_update(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.put("counter", "c", {"count": 0, "writers": []}, expected_version=0)
        start = threading.Barrier(self.thread_count)
        lock = threading.Lock()
        successes: list[str] = []
        failures: list[BaseException] = []

        def worker(name: str) -> None:
            start.wait(timeout=30)
            for attempt in range(self.writes_per_thread):
                try:
                    current = store.get("counter", "c")
                    assert current is not None
                    time.sleep(0.0005)  # think time: let other threads read the same version
                    data = {
                        "count": current.data["count"] + 1,
                        "writers": [*current.data["writers"], name],
                    }
                    with store.transaction() as tx:
                        tx.put("counter", "c", data, expected_version=current.version)
                        tx.append_event(_event(f"{name}-{attempt}"))
                except BaseException as exc:
                    with lock:
                        failures.append(exc)
                else:
                    with lock:
                        successes.append(name)

        threads = [
            threading.Thread(target=worker, args=(f"t{n}",)) for n in range(self.thread_count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        unexpected = [exc for exc in failures if not isinstance(exc, ConcurrencyConflict)]
        assert unexpected == [], f"failures other than ConcurrencyConflict: {unexpected!r}"
        assert len(successes) + len(failures) == self.thread_count * self.writes_per_thread
        final = store.get("counter", "c")
        assert final is not None
        assert final.version == 1 + len(successes), (
            f"{len(successes)} writes succeeded but the record is at version {final.version}"
        )
        assert final.data["count"] == len(successes), (
            f"lost updates: {len(successes)} writes succeeded, count is {final.data['count']}"
        )
        assert sorted(final.data["writers"]) == sorted(successes)
        events = store.events()
        assert len(events) == len(successes), "an event was kept for a failed write, or lost"
        seqs = [event.seq for event in events]
        assert seqs == sorted(set(seqs)), f"seq is not strictly increasing: {seqs}"
