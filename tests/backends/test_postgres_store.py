"""``postgresql://`` passes the storage contract on the local server, plus PostgreSQL-specific
behaviour: URLs and options, schemas, the stored form, error translation, locking, the order of
the event log under concurrent writers, server-side scans, bulk ``COPY``, threads and processes.

Every test runs against a real server (see the ``postgres_url`` fixture in ``conftest.py``); the
URL tests that need no server run everywhere.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import relcrm
from relcrm.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    ConcurrencyConflict,
    NotFound,
    RelcrmError,
    StorageError,
    TransactionAborted,
)
from relcrm.storage.base import (
    BulkStore,
    BulkTransaction,
    EventRecord,
    OutboxRecord,
    Record,
    Store,
    add_outbox_many,
    append_events,
    existing_ids,
    insert_many,
)
from relcrm.testing import AWKWARD_STRINGS, StoreContract, increment_counter

try:
    import psycopg
    from psycopg import sql

    from relcrm.storage.postgres import SCHEMA_VERSION, PostgresStore
except ImportError as exc:  # CI must run these tests; elsewhere the driver is optional
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"the PostgreSQL backend needs relcrm[postgres]: {exc}", allow_module_level=True)


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Store]:
        store = PostgresStore(postgres_url)
        yield store
        store.close()


# -- helpers --------------------------------------------------------------------------------------


def with_options(url: str, **options: str) -> str:
    """``url`` with these query options set (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in options]
    query.extend(options.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def raw(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An independent autocommit connection to the server, as another program would open it."""
    own = {"schema", "pool_min", "pool_max", "pool_timeout"}
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in own]
    server = urlunsplit(parts._replace(query=urlencode(query)))
    return psycopg.connect(server, autocommit=True, connect_timeout=10)


def app_url(url: str) -> tuple[str, str]:
    """``url`` with a unique ``application_name``, and that name (to find the store's sessions)."""
    name = f"relcrm-test-{uuid.uuid4().hex[:12]}"
    return with_options(url, application_name=name), name


def terminate_sessions(url: str, application_name: str) -> int:
    """End every server session of that application, as a server restart would."""
    with raw(url) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def event(
    id: str, *, person_id: str | None = None, payload: dict[str, Any] | None = None
) -> EventRecord:
    return EventRecord(
        id=id,
        type="test.happened",
        occurred_at="2024-05-01T12:00:00+00:00",
        payload={"n": id} if payload is None else payload,
        person_id=person_id,
    )


def outbox_row(id: str, *, event_id: str = "e1") -> OutboxRecord:
    return OutboxRecord(
        id=id,
        event_id=event_id,
        notifier="log",
        recipient={"email": f"{id}@example.org"},
        payload={"subject": f"about {id}"},
        next_attempt_at="2024-05-01T12:00:00Z",
    )


def in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``function`` in a thread; the list gets its result or the exception it raised."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _append(store: PostgresStore, id: str) -> EventRecord:
    with store.transaction() as tx:
        return tx.append_event(event(id))


def _put(
    store: PostgresStore, kind: str, id: str, data: dict[str, Any], *, expected_version: int
) -> Record:
    with store.transaction() as tx:
        return tx.put(kind, id, data, expected_version=expected_version)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_url)
    yield store
    store.close()


# -- URLs and registration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///talent.db", "not a PostgreSQL URL"),
        ("postgresql:/no-slashes", "not a PostgreSQL URL"),
        ("postgresql://h/db?schema=", "schema"),
        ("postgresql://h/db?schema=" + "x" * 64, "63 bytes"),
        ("postgresql://h/db?pool_max=0", "pool_max"),
        ("postgresql://h/db?pool_max=many", "pool_max"),
        ("postgresql://h/db?pool_min=-1", "pool_min"),
        ("postgresql://h/db?pool_min=5&pool_max=2", "larger than pool_max"),
        ("postgresql://h/db?pool_timeout=0", "pool_timeout"),
        ("postgresql://h/db?pool_timeout=nan", "pool_timeout"),
        ("postgresql://h/db?journal=off", "journal"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        PostgresStore(url)


def test_passwords_never_appear_in_errors() -> None:
    url = "postgresql://ada:s3cret-pw@127.0.0.1:1/test?schema=x&connect_timeout=2"
    with pytest.raises(BackendUnavailable) as caught:
        PostgresStore(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "ada:***@127.0.0.1:1" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    with pytest.raises(BackendUnavailable) as unknown:
        PostgresStore("postgresql://h/db?password=s3cret-pw&bogus=1")
    assert "s3cret-pw" not in str(unknown.value)
    assert "bogus" in str(unknown.value)


def test_options_and_defaults(postgres_url: str) -> None:
    with PostgresStore(postgres_url) as store:
        assert (store.pool_min, store.pool_max, store.pool_timeout) == (1, 10, 30.0)
        assert store.schema == schema_of(postgres_url)
        assert store.url == postgres_url
        assert store.schema in repr(store)
    url = with_options(postgres_url, pool_min="0", pool_max="3", pool_timeout="2.5")
    with PostgresStore(url) as store:
        assert (store.pool_min, store.pool_max, store.pool_timeout) == (0, 3, 2.5)
        assert "closed" not in repr(store)
    assert "closed" in repr(store)


def test_libpq_options_pass_through(postgres_url: str) -> None:
    url, name = app_url(postgres_url)
    with PostgresStore(url) as store, store.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0)
        with raw(postgres_url) as other:
            sessions = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert sessions is not None
        assert sessions[0] >= 1


def test_default_application_name(postgres_url: str) -> None:
    with PostgresStore(postgres_url) as store, store.transaction() as tx:
        row = tx._connection.execute("SHOW application_name").fetchone()  # type: ignore[attr-defined]
    assert row == ("relcrm",)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_relcrm_open_uses_the_backend(postgres_url: str, scheme: str) -> None:
    url = scheme + postgres_url[len("postgresql") :]
    rita = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")
    with relcrm.open(url, notifiers=[], load_entrypoints=False) as crm:
        assert isinstance(crm.store, PostgresStore)
        ada = crm.add_person({"name": "Ada", "headline": "Data Engineer"}, actor=rita)
        assert crm.get_person(ada.id).name == "Ada"
        assert [e.type for e in crm.store.events()][:1] == ["person.created"]
    with relcrm.open(url, notifiers=[], load_entrypoints=False) as crm:
        assert crm.get_person(ada.id).headline == "Data Engineer"


def test_missing_driver_is_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; import relcrm\n"
        "try:\n"
        "    relcrm.open('postgresql://127.0.0.1/test', notifiers=[], load_entrypoints=False)\n"
        "except relcrm.BackendUnavailable as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "relcrm[postgres]" in out.stdout


# -- schema ---------------------------------------------------------------------------------------


def test_schema_and_tables_are_created(postgres_server: str) -> None:
    schema = f"relcrm_test_new_{uuid.uuid4().hex[:8]}"
    url = with_options(postgres_server, schema=schema)
    try:
        with PostgresStore(url) as store:
            assert store.schema == schema
        with raw(url) as other:
            tables = {
                name
                for (name,) in other.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
                )
            }
            assert tables == {"relcrm_schema", "records", "events", "outbox"}
            indexes = {
                name
                for (name,) in other.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)
                )
            }
            assert {
                "records_by_person",
                "records_by_opening",
                "events_by_person",
                "outbox_due",
                "outbox_by_event",
            } <= indexes
            columns = dict(
                other.execute(
                    "SELECT table_name || '.' || column_name, data_type || coalesce("
                    "' ' || collation_name, '') FROM information_schema.columns "
                    "WHERE table_schema = %s",
                    (schema,),
                ).fetchall()
            )
            assert columns["records.data"] == "json"
            assert columns["records.id"] == "text C"
            assert columns["events.seq"] == "bigint"
            assert columns["outbox.next_attempt_at"] == "text C"
            version = other.execute(
                sql.SQL("SELECT version FROM {}.relcrm_schema").format(sql.Identifier(schema))
            ).fetchall()
            assert version == [(SCHEMA_VERSION,)]
    finally:
        with raw(postgres_server) as other:
            other.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


def test_awkward_schema_names_are_quoted(postgres_server: str) -> None:
    schema = f'Talent "Pool" {uuid.uuid4().hex[:6]}; DROP'
    url = with_options(postgres_server, schema=schema)
    try:
        with PostgresStore(url) as store:
            with store.transaction() as tx:
                tx.put("person", "p1", {"n": 1}, expected_version=0)
                tx.append_event(event("e1"))
            assert store.get("person", "p1") is not None
            assert [e.id for e in store.events()] == ["e1"]
    finally:
        with raw(postgres_server) as other:
            other.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


def test_schemas_keep_talent_pools_apart(postgres_url: str, postgres_server: str) -> None:
    other_schema = f"relcrm_test_other_{uuid.uuid4().hex[:8]}"
    other_url = with_options(postgres_server, schema=other_schema)
    try:
        with PostgresStore(postgres_url) as one, PostgresStore(other_url) as two:
            with one.transaction() as tx:
                tx.put("person", "p1", {"pool": 1}, expected_version=0)
                tx.append_event(event("e1"))
            assert two.get("person", "p1") is None
            assert two.events() == []
            # Each schema's event log has its own lock: a writer holding one does not block the
            # other.
            with one.transaction() as tx1:
                tx1.append_event(event("e2"))
                thread, outcome = in_thread(lambda: _append(two, "e1"))
                thread.join(10)
                assert not thread.is_alive()
                assert [o.id for o in outcome] == ["e1"]
    finally:
        with raw(postgres_server) as other:
            other.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other_schema))
            )


def test_reopening_keeps_data(postgres_url: str) -> None:
    with PostgresStore(postgres_url) as store, store.transaction() as tx:
        tx.put("person", "p1", {"name": "Ada"}, expected_version=0)
        first = tx.append_event(event("e1"))
    with PostgresStore(postgres_url) as store:
        stored = store.get("person", "p1")
        assert stored is not None
        assert stored.data == {"name": "Ada"}
        assert _append(store, "e2").seq > first.seq
    with raw(postgres_url) as other:
        count = other.execute(
            sql.SQL("SELECT count(*) FROM {}.relcrm_schema").format(
                sql.Identifier(schema_of(postgres_url))
            )
        ).fetchone()
    assert count == (1,)


def test_newer_schema_is_refused(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    with raw(postgres_url) as other:
        other.execute(
            sql.SQL("UPDATE {}.relcrm_schema SET version = %s").format(
                sql.Identifier(schema_of(postgres_url))
            ),
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(StorageError, match="newer"):
        PostgresStore(postgres_url)


def test_foreign_schema_is_refused(postgres_url: str) -> None:
    with raw(postgres_url) as other:
        other.execute(
            sql.SQL("CREATE TABLE {}.records (whatever text)").format(
                sql.Identifier(schema_of(postgres_url))
            )
        )
    with pytest.raises(BackendUnavailable, match="not a relcrm schema"):
        PostgresStore(postgres_url)


def test_default_schema_is_the_search_path(postgres_url: str) -> None:
    schema = schema_of(postgres_url)
    url = with_options(postgres_url, options=f"-c search_path={schema}")
    url = urlunsplit(
        urlsplit(url)._replace(
            query=urlencode([(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "schema"])
        )
    )
    with PostgresStore(url) as store:
        assert store.schema == schema
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
    with PostgresStore(postgres_url) as store:
        assert store.get("person", "p1") is not None


def test_a_role_without_create_rights_can_use_a_prepared_schema(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    schema = sql.Identifier(schema_of(postgres_url))
    role = f"relcrm_test_app_{uuid.uuid4().hex[:8]}"
    with raw(postgres_url) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            admin.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(role))
            )
            admin.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
                ).format(schema, sql.Identifier(role))
            )
            url = urlunsplit(
                urlsplit(postgres_url)._replace(
                    netloc=f"{role}@" + urlsplit(postgres_url).netloc.rpartition("@")[2]
                )
            )
            with PostgresStore(url) as store:
                with store.transaction() as tx:
                    tx.put("person", "p1", {}, expected_version=0)
                    tx.append_event(event("e1"))
                assert [e.id for e in store.events()] == ["e1"]
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- stored form ----------------------------------------------------------------------------------


def test_json_is_stored_verbatim(pg: PostgresStore, postgres_url: str) -> None:
    data = {"z": 1, "a": [2**64, 0.1], "nul": "a\x00b", "name": "Zoë", "": {}}
    with pg.transaction() as tx:
        tx.put("person", "p'1", data, expected_version=0, person_id="p1")
    with raw(postgres_url) as other:
        row = other.execute(
            sql.SQL("SELECT kind, id, version, person_id, data::text FROM {}.records").format(
                sql.Identifier(pg.schema)
            )
        ).fetchone()
    assert row is not None
    assert row[:4] == ("person", "p'1", 1, "p1")
    assert row[4] == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    stored = pg.get("person", "p'1")
    assert stored is not None
    assert list(stored.data) == list(data)  # key order kept, unlike jsonb


def test_nul_in_text_is_escaped_in_order(pg: PostgresStore, postgres_url: str) -> None:
    ids = ["a", "a\x00", "a\x00b", "a\x01", "a\x01\x00", "a\x02", "ab", "\x00", "\x01\x01"]
    with pg.transaction() as tx:
        for id in ids:
            tx.put("person", id, {}, expected_version=0, person_id=id)
    assert [r.id for r in pg.find("person")] == sorted(ids)
    assert [r.id for r in pg.iter_records("person", batch_size=2)] == sorted(ids)
    for id in ids:
        assert [r.id for r in pg.find("person", person_id=id)] == [id]
    assert existing_ids(pg, "person", [*ids, "a\x00c"]) == set(ids)
    with raw(postgres_url) as other:
        stored = {
            id
            for (id,) in other.execute(
                sql.SQL("SELECT id FROM {}.records").format(sql.Identifier(pg.schema))
            )
        }
    assert "a\x01\x01b" in stored  # readable to other programs, without the NUL


def test_json_parser_is_the_standard_one(pg: PostgresStore) -> None:
    """An application's global psycopg JSON settings do not change what relcrm reads back."""
    import psycopg.types.json

    with pg.transaction() as tx:
        tx.put("person", "p1", {"big": 2**70, "f": 0.1}, expected_version=0)
    psycopg.types.json.set_json_loads(lambda _: {"hijacked": True})
    try:
        with PostgresStore(pg.url) as store:
            stored = store.get("person", "p1")
    finally:
        psycopg.types.json.set_json_loads(json.loads)
    assert stored is not None
    assert stored.data == {"big": 2**70, "f": 0.1}


def test_lone_surrogates_are_a_storage_error(pg: PostgresStore) -> None:
    with pytest.raises(StorageError), pg.transaction() as tx:
        tx.put("person", "p1", {"name": "\ud800"}, expected_version=0)
    with pytest.raises(StorageError), pg.transaction() as tx:
        tx.put("person", "\udfff", {}, expected_version=0)
    with pytest.raises(StorageError):
        pg.get("person", "\udfff")
    assert pg.find("person") == []


def test_keys_that_are_not_text_match_nothing_and_cannot_be_written(pg: PostgresStore) -> None:
    key: Any = b"p1 \xff"
    with pg.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0, person_id="p1")
        tx.append_event(event("e1", person_id="p1"))
        tx.add_outbox(outbox_row("n1"))
        assert tx.get("person", key) is None
        assert tx.find("person", person_id=key) == []
    assert pg.get("person", key) is None
    assert pg.get(key, "p1") is None
    assert pg.find("person", opening_id=key) == []
    assert list(pg.iter_records(key)) == []
    assert pg.events(person_id=key) == []
    assert [r.id for r in pg.outbox(event_ids=[key, "e1"])] == ["n1"]
    assert existing_ids(pg, "person", [key, "p1"]) == {"p1"}
    with pytest.raises(NotFound):
        pg.update_outbox(key, status="dead", attempts=1, next_attempt_at="", last_error=None)
    with pytest.raises(StorageError, match="not text"), pg.transaction() as tx:
        tx.put("person", key, {}, expected_version=0)
    with pytest.raises(StorageError, match="not text"), pg.transaction() as tx:
        insert_many(tx, [Record("person", key, 1, {})])
    assert [r.id for r in pg.find("person")] == ["p1"]


# -- errors ---------------------------------------------------------------------------------------


def test_unreachable_server_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="cannot connect") as caught:
        PostgresStore("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


def test_missing_database_is_backend_unavailable(postgres_server: str) -> None:
    url = urlunsplit(urlsplit(postgres_server)._replace(path=f"/no_such_db_{uuid.uuid4().hex[:6]}"))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        PostgresStore(url)


def test_driver_errors_never_escape_raw(pg: PostgresStore, postgres_url: str) -> None:
    with raw(postgres_url) as other:
        other.execute(sql.SQL("DROP TABLE {}.events").format(sql.Identifier(pg.schema)))
    with pytest.raises(StorageError) as caught:
        pg.events()
    assert not isinstance(caught.value, BackendUnavailable)
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedTable)
    assert pg.schema in str(caught.value)
    with pytest.raises(StorageError) as appending, pg.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0)
        tx.append_event(event("e1"))
    assert isinstance(appending.value.__cause__, psycopg.errors.UndefinedTable)
    assert pg.find("person") == []  # rolled back, and the rest still works


def test_a_failed_statement_cannot_be_committed_by_swallowing_its_error(
    pg: PostgresStore, postgres_url: str
) -> None:
    with raw(postgres_url) as other:
        other.execute(sql.SQL("DROP TABLE {}.outbox").format(sql.Identifier(pg.schema)))
    with pytest.raises(StorageError, match="cannot commit"), pg.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0)
        with pytest.raises(StorageError):
            tx.add_outbox(outbox_row("n1"))
    assert pg.get("person", "p1") is None


def test_serialization_failure_is_transaction_aborted(pg: PostgresStore, postgres_url: str) -> None:
    schema = sql.Identifier(pg.schema)
    with raw(postgres_url) as other:
        other.execute(
            sql.SQL(
                "CREATE FUNCTION {}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not serialize access' USING ERRCODE = "
                "'serialization_failure'; END $$"
            ).format(schema)
        )
        other.execute(
            sql.SQL(
                "CREATE TRIGGER refuse BEFORE UPDATE ON {}.records FOR EACH ROW "
                "WHEN (NEW.kind = 'contended') EXECUTE FUNCTION {}.refuse()"
            ).format(schema, schema)
        )
    with pg.transaction() as tx:
        tx.put("contended", "c1", {}, expected_version=0)
    with pytest.raises(ConcurrencyConflict) as caught, pg.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0)
        tx.put("contended", "c1", {"n": 2}, expected_version=1)
    aborted = caught.value
    assert isinstance(aborted, TransactionAborted)
    assert isinstance(aborted, StorageError)
    assert (aborted.sqlstate, aborted.kind, aborted.id, aborted.expected) == (
        "40001",
        "contended",
        "c1",
        1,
    )
    assert aborted.actual is None
    assert "run the command again" in str(aborted)
    assert isinstance(aborted.__cause__, psycopg.errors.SerializationFailure)
    assert pg.get("person", "p1") is None


def test_deadlock_is_transaction_aborted(pg: PostgresStore) -> None:
    with pg.transaction() as tx:
        tx.put("person", "a", {"n": 0}, expected_version=0)
        tx.put("person", "b", {"n": 0}, expected_version=0)
    both_hold_one = threading.Barrier(2)

    def write(first: str, second: str) -> str:
        with pg.transaction() as tx:
            tx.put("person", first, {"by": first}, expected_version=1)
            both_hold_one.wait(10)
            tx.put("person", second, {"by": first}, expected_version=1)
        return first

    threads = [in_thread(lambda: write("a", "b")), in_thread(lambda: write("b", "a"))]
    for thread, _ in threads:
        thread.join(30)
    outcomes = [outcome[0] for _, outcome in threads]
    aborted = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(aborted) == 1, outcomes
    assert isinstance(aborted[0], TransactionAborted)
    assert aborted[0].sqlstate == "40P01"
    assert isinstance(aborted[0].__cause__, psycopg.errors.DeadlockDetected)
    [winner] = [o for o in outcomes if isinstance(o, str)]
    for id in ("a", "b"):
        stored = pg.get("person", id)
        assert stored is not None
        assert (stored.version, stored.data) == (2, {"by": winner})


def test_lost_connection_mid_transaction_is_backend_unavailable(postgres_url: str) -> None:
    url, name = app_url(postgres_url)
    with PostgresStore(url) as store:
        with pytest.raises(BackendUnavailable) as caught, store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
            assert terminate_sessions(postgres_url, name) >= 1
            tx.put("person", "p2", {}, expected_version=0)
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        # The broken connection was dropped; the store carries on with a new one.
        with store.transaction() as tx:
            tx.put("person", "p3", {}, expected_version=0)
        assert [r.id for r in store.find("person")] == ["p3"]


def test_idle_connections_lost_to_a_restart_are_replaced(postgres_url: str) -> None:
    url, name = app_url(with_options(postgres_url, pool_min="3"))
    with PostgresStore(url) as store:
        with store.transaction() as tx:
            tx.put("person", "p1", {}, expected_version=0)
            tx.add_outbox(outbox_row("n1"))
        time.sleep(0.2)  # let the pool open its minimum
        assert terminate_sessions(postgres_url, name) >= 1
        # Each kind of call finds dead connections first, drops them and carries on.
        assert store.get("person", "p1") is not None
        assert terminate_sessions(postgres_url, name) >= 1
        with store.transaction() as tx:
            tx.put("person", "p2", {}, expected_version=0)
        assert terminate_sessions(postgres_url, name) >= 1
        assert [r.id for r in store.iter_records("person")] == ["p1", "p2"]
        assert terminate_sessions(postgres_url, name) >= 1
        store.update_outbox("n1", status="dead", attempts=1, next_attempt_at="", last_error=None)
        assert [r.id for r in store.outbox(status=None)] == ["n1"]


def test_no_free_connection_is_backend_unavailable(postgres_url: str) -> None:
    url = with_options(postgres_url, pool_max="1", pool_timeout="0.3")
    with PostgresStore(url) as store:
        with (
            store.transaction(),
            pytest.raises(BackendUnavailable, match="pool_max=1") as caught,
        ):
            store.get("person", "p1")  # a read outside the transaction needs a second one
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        assert store.get("person", "p1") is None


def test_nested_transaction_and_update_outbox_inside_one(pg: PostgresStore) -> None:
    with pg.transaction():
        with pytest.raises(StorageError, match="do not nest"):
            pg.transaction().__enter__()
        with pytest.raises(StorageError, match="after the transaction"):
            pg.update_outbox("n1", status="dead", attempts=1, next_attempt_at="", last_error=None)
    with pytest.raises(NotFound):
        pg.update_outbox("n1", status="dead", attempts=1, next_attempt_at="", last_error=None)


# -- optimistic locking ---------------------------------------------------------------------------


def test_a_writer_waiting_on_a_row_lock_gets_a_conflict(pg: PostgresStore) -> None:
    """Under READ COMMITTED the waiting ``UPDATE ... WHERE version = 1`` re-checks the row after
    the first writer commits, finds version 2, and writes nothing."""
    with pg.transaction() as tx:
        tx.put("person", "p1", {"v": 1}, expected_version=0)
    with pg.transaction() as first:
        first.put("person", "p1", {"v": "first"}, expected_version=1)
        thread, outcome = in_thread(
            lambda: _put(pg, "person", "p1", {"v": "second"}, expected_version=1)
        )
        thread.join(0.5)
        assert thread.is_alive(), "the second writer should wait for the first one's row lock"
    thread.join(10)
    [conflict] = outcome
    assert isinstance(conflict, ConcurrencyConflict)
    assert not isinstance(conflict, TransactionAborted)
    assert (conflict.expected, conflict.actual) == (1, 2)
    stored = pg.get("person", "p1")
    assert stored is not None
    assert (stored.version, stored.data) == (2, {"v": "first"})


def test_a_concurrent_insert_of_the_same_id_conflicts(pg: PostgresStore) -> None:
    with pg.transaction() as first:
        first.put("person", "p1", {"v": "first"}, expected_version=0)
        thread, outcome = in_thread(
            lambda: _put(pg, "person", "p1", {"v": "x"}, expected_version=0)
        )
        thread.join(0.5)
        assert thread.is_alive()
    thread.join(10)
    [conflict] = outcome
    assert isinstance(conflict, ConcurrencyConflict)
    assert (conflict.expected, conflict.actual) == (0, 1)


# -- the event log's order ------------------------------------------------------------------------


def test_appenders_wait_for_each_other_so_seq_order_is_commit_order(pg: PostgresStore) -> None:
    appended = threading.Event()
    release = threading.Event()

    def slow_writer() -> EventRecord:
        with pg.transaction() as tx:
            first = tx.append_event(event("first"))
            appended.set()
            release.wait(10)
        return first

    slow, slow_outcome = in_thread(slow_writer)
    assert appended.wait(10)
    fast, fast_outcome = in_thread(lambda: _append(pg, "second"))
    fast.join(0.5)
    assert fast.is_alive(), "a second appender must wait for the first to commit"
    assert pg.events() == []  # and readers see neither
    # A transaction that appends nothing does not wait.
    assert _put(pg, "person", "p1", {}, expected_version=0).version == 1
    release.set()
    slow.join(10)
    fast.join(10)
    [first], [second] = slow_outcome, fast_outcome
    assert first.seq < second.seq
    assert [e.id for e in pg.events()] == ["first", "second"]


def test_the_event_log_lock_is_released_on_rollback(pg: PostgresStore) -> None:
    with pytest.raises(ZeroDivisionError), pg.transaction() as tx:
        tx.append_event(event("lost"))
        _ = 1 / 0
    thread, outcome = in_thread(lambda: _append(pg, "kept"))
    thread.join(10)
    assert [e.id for e in outcome] == ["kept"]


def test_without_the_lock_a_tailing_reader_would_miss_events(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the lock exists: with a plain sequence, an earlier ``seq`` can commit after a later
    one, and a reader that asks for ``events(after=last_seen)`` never sees it."""
    from relcrm.storage import postgres

    monkeypatch.setattr(postgres._PostgresTransaction, "_lock_event_log", lambda self, c: None)
    appended = threading.Event()
    release = threading.Event()

    def slow_writer() -> EventRecord:
        with pg.transaction() as tx:
            first = tx.append_event(event("first"))
            appended.set()
            release.wait(10)
        return first

    slow, _ = in_thread(slow_writer)
    assert appended.wait(10)
    _append(pg, "second")  # not held up: commits before "first"
    seen = pg.events()
    assert [e.id for e in seen] == ["second"]
    release.set()
    slow.join(10)
    assert pg.events(after=seen[-1].seq) == []  # "first" is never seen by this reader
    assert [e.id for e in pg.events()] == ["first", "second"]


def _tail(store: PostgresStore, done: threading.Event) -> list[EventRecord]:
    """Read the log as a consumer would, ``after`` the last seq seen, until ``done``."""
    seen: list[EventRecord] = []
    last = 0
    while True:
        finished = done.is_set()
        batch = store.events(after=last)
        seen.extend(batch)
        if batch:
            last = batch[-1].seq
        if finished:
            return seen
        time.sleep(0.001)


def test_a_tailing_reader_never_misses_an_event_from_threads(pg: PostgresStore) -> None:
    import random

    writers, appends = 6, 15
    done = threading.Event()
    tail_thread, tail = in_thread(lambda: _tail(pg, done))
    start = threading.Barrier(writers)

    def writer(w: int) -> None:
        rng = random.Random(w)
        start.wait(10)
        for n in range(appends):
            with pg.transaction() as tx:
                tx.put("person", f"w{w}-{n}", {}, expected_version=0)  # work before the append
                tx.append_event(event(f"w{w}-{n}"))
                time.sleep(rng.uniform(0, 0.004))  # and after it, before the commit

    threads = [in_thread(lambda w=w: writer(w)) for w in range(writers)]
    for thread, outcome in threads:
        thread.join(60)
        assert outcome == [None]
    done.set()
    tail_thread.join(30)
    [seen] = tail
    logged = pg.events()
    assert len(logged) == writers * appends
    assert [e.id for e in seen] == [e.id for e in logged], "an event appeared behind the reader"


_APPENDING_WORKER = """
import random, sys, time
from relcrm.storage.base import EventRecord
from relcrm.storage.postgres import PostgresStore

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(name)
with PostgresStore(url) as store:
    for n in range(count):
        with store.transaction() as tx:
            tx.append_event(EventRecord(f"{name}-{n}", "test.happened", "2024-05-01", {"n": n}))
            time.sleep(rng.uniform(0, 0.005))
"""


@pytest.mark.slow
def test_a_tailing_reader_never_misses_an_event_from_processes(pg: PostgresStore) -> None:
    workers, appends = 4, 30
    done = threading.Event()
    tail_thread, tail = in_thread(lambda: _tail(pg, done))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDING_WORKER, pg.url, f"p{w}", str(appends)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    done.set()
    tail_thread.join(30)
    [seen] = tail
    logged = pg.events()
    assert len(logged) == workers * appends
    assert [e.id for e in seen] == [e.id for e in logged], "an event appeared behind the reader"


# -- scans ----------------------------------------------------------------------------------------


def test_iter_records_streams_through_a_server_side_cursor(postgres_url: str) -> None:
    url, name = app_url(postgres_url)
    with PostgresStore(url) as store:
        with store.transaction() as tx:
            for n in range(10):
                tx.put("person", f"p{n}", {}, expected_version=0)
        scan = store.iter_records("person", batch_size=3)
        assert next(scan).id == "p0"
        with raw(postgres_url) as other:
            queries = [
                q
                for (q,) in other.execute(
                    "SELECT query FROM pg_stat_activity WHERE application_name = %s "
                    "AND state = 'idle in transaction'",
                    (name,),
                )
            ]
        assert any(q.startswith("FETCH FORWARD 3") for q in queries), queries
        assert [r.id for r in scan] == [f"p{n}" for n in range(1, 10)]


def test_iter_records_reads_one_snapshot(pg: PostgresStore) -> None:
    """Records deleted or added after the scan began do not change what it returns."""
    ids = [f"p{n:02}" for n in range(10)]
    with pg.transaction() as tx:
        for id in ids:
            tx.put("person", id, {}, expected_version=0)
    scan = pg.iter_records("person", batch_size=2)
    seen = [next(scan).id, next(scan).id]
    with pg.transaction() as tx:
        tx.delete("person", "p00", expected_version=1)
        tx.delete("person", "p05", expected_version=1)
        tx.put("person", "p99", {}, expected_version=0)
    seen.extend(record.id for record in scan)
    assert seen == ids


def test_an_abandoned_scan_gives_its_connection_back(postgres_url: str) -> None:
    with PostgresStore(with_options(postgres_url, pool_max="1", pool_timeout="2")) as store:
        with store.transaction() as tx:
            for n in range(5):
                tx.put("person", f"p{n}", {}, expected_version=0)
        for _ in range(3):
            scan = store.iter_records("person", batch_size=2)
            assert next(scan).id == "p0"
            scan.close()
        assert store.get("person", "p4") is not None


def test_closing_the_store_stops_a_scan(pg: PostgresStore) -> None:
    with pg.transaction() as tx:
        for n in range(5):
            tx.put("person", f"p{n}", {}, expected_version=0)
    scan = pg.iter_records("person", batch_size=2)
    assert [next(scan).id, next(scan).id] == ["p0", "p1"]
    pg.close()
    with pytest.raises(StorageError, match="closed"):
        list(scan)


# -- bulk -----------------------------------------------------------------------------------------


def _records(count: int, prefix: str = "p") -> list[Record]:
    return [
        Record(
            "person",
            f"{prefix}{n:05}",
            1,
            {"n": n, "text": AWKWARD_STRINGS[n % len(AWKWARD_STRINGS)]},
            person_id=f"{prefix}{n:05}",
            opening_id=None if n % 2 else f"o{n % 7}",
        )
        for n in range(count)
    ]


def test_bulk_capability_is_offered(pg: PostgresStore) -> None:
    assert isinstance(pg, BulkStore)
    with pg.transaction() as tx:
        assert isinstance(tx, BulkTransaction)


def test_insert_many(pg: PostgresStore) -> None:
    records = _records(3000)
    awkward = [
        Record("awkward" + text, text, 1, {text: text}, person_id=text, opening_id=text[::-1])
        for text in AWKWARD_STRINGS
    ]
    with pg.transaction() as tx:
        insert_many(tx, [*records, *awkward])
        assert tx.get("person", "p00007") == records[7]  # visible inside at once
    assert list(pg.iter_records("person", batch_size=500)) == records
    assert pg.find("person", opening_id="o3") == [r for r in records if r.opening_id == "o3"]
    for record in awkward:
        assert pg.get(record.kind, record.id) == record
        assert pg.find(record.kind, person_id=record.person_id) == [record]
    with pg.transaction() as tx:  # they are ordinary records afterwards
        assert tx.put("person", "p00001", {}, expected_version=1).version == 2
        insert_many(tx, [])


def test_insert_many_refuses_a_stored_id_and_keeps_the_transaction_usable(
    pg: PostgresStore,
) -> None:
    with pg.transaction() as tx:
        tx.put("person", "p00002", {"old": True}, expected_version=0)
        tx.put("person", "p00004", {"old": True}, expected_version=0)
    with pg.transaction() as tx:
        with pytest.raises(AlreadyExists) as caught:
            insert_many(tx, _records(6))
        assert (caught.value.kind, caught.value.id) == ("person", "p00002")  # the first one
        assert tx.get("person", "p00000") is None  # nothing of the batch was written
        tx.put("person", "after", {}, expected_version=0)
    assert [r.id for r in pg.find("person")] == ["after", "p00002", "p00004"]
    stored = pg.get("person", "p00002")
    assert stored is not None
    assert stored.data == {"old": True}


def test_insert_many_refuses_ids_given_twice(pg: PostgresStore) -> None:
    records = _records(5)
    with pytest.raises(AlreadyExists) as caught, pg.transaction() as tx:
        insert_many(tx, [*records, records[3]])
    assert caught.value.id == "p00003"
    with pg.transaction() as tx:
        tx.put("person", "p00004", {}, expected_version=0)
    with pytest.raises(AlreadyExists) as stored_first, pg.transaction() as tx:
        insert_many(tx, [*records, records[0]])  # p00004 is stored, and comes first
    assert stored_first.value.id == "p00004"
    # the same id under another kind is a different record
    with pg.transaction() as tx:
        insert_many(tx, [Record("opening", "p00004", 1, {})])
    assert pg.find("person") != []


def test_insert_many_sees_records_of_its_own_transaction(pg: PostgresStore) -> None:
    with pytest.raises(AlreadyExists) as caught, pg.transaction() as tx:
        tx.put("person", "p00001", {}, expected_version=0)
        insert_many(tx, _records(3))
    assert caught.value.id == "p00001"
    assert pg.find("person") == []


def test_insert_many_waits_for_a_concurrent_insert_of_the_same_id(pg: PostgresStore) -> None:
    with pg.transaction() as first:
        first.put("person", "p00001", {"first": True}, expected_version=0)

        def bulk() -> None:
            with pg.transaction() as tx:
                insert_many(tx, _records(3))

        thread, outcome = in_thread(bulk)
        thread.join(0.5)
        assert thread.is_alive()
    thread.join(10)
    [refused] = outcome
    assert isinstance(refused, AlreadyExists)
    assert refused.id == "p00001"
    assert [r.id for r in pg.find("person")] == ["p00001"]


def test_insert_many_refuses_data_that_is_not_json(pg: PostgresStore) -> None:
    with pytest.raises(RelcrmError), pg.transaction() as tx:
        insert_many(tx, [Record("person", "p1", 1, {"nan": float("nan")})])
    assert pg.find("person") == []


def test_append_events(pg: PostgresStore) -> None:
    with pg.transaction() as tx:
        single = tx.append_event(event("e0"))
    batch = [
        event(f"e{n}", person_id=AWKWARD_STRINGS[n % len(AWKWARD_STRINGS)], payload={"n": n})
        for n in range(1, 2001)
    ]
    with pg.transaction() as tx:
        appended = append_events(tx, batch)
        assert append_events(tx, []) == []
    seqs = [e.seq for e in appended]
    assert seqs[0] > single.seq
    assert seqs == sorted(set(seqs))
    assert [(e.id, e.person_id, e.payload) for e in appended] == [
        (e.id, e.person_id, e.payload) for e in batch
    ]
    assert pg.events(after=single.seq) == appended
    assert _append(pg, "last").seq > seqs[-1]
    person = AWKWARD_STRINGS[3]
    assert pg.events(person_id=person) == [e for e in appended if e.person_id == person]


def test_append_events_refuses_logged_or_repeated_ids(pg: PostgresStore) -> None:
    _append(pg, "e3")
    with pg.transaction() as tx:
        with pytest.raises(AlreadyExists) as caught:
            append_events(tx, [event(f"e{n}") for n in range(6)])
        assert (caught.value.kind, caught.value.id) == ("event", "e3")
        with pytest.raises(AlreadyExists) as twice:
            append_events(tx, [event("x1"), event("x2"), event("x1")])
        assert twice.value.id == "x1"
        kept = tx.append_event(event("kept"))  # the transaction is still usable
    assert [e.id for e in pg.events()] == ["e3", "kept"]
    assert kept.seq > pg.events()[0].seq


def test_add_outbox_many(pg: PostgresStore) -> None:
    rows = [outbox_row(f"n{n:04}", event_id=f"e{n % 3}") for n in range(1500)]
    awkward = [
        OutboxRecord(
            id="x" + text,
            event_id=text,
            notifier=text,
            recipient={text: text},
            payload={"text": text},
            next_attempt_at=text,
            last_error=text,
        )
        for text in AWKWARD_STRINGS
    ]
    with pg.transaction() as tx:
        add_outbox_many(tx, [*rows, *awkward])
        add_outbox_many(tx, [])
    assert pg.outbox(event_ids=["e1"]) == [r for r in rows if r.event_id == "e1"]
    for row in awkward:
        assert pg.outbox(event_ids=[row.event_id]) == [row]
    with pg.transaction() as tx:
        with pytest.raises(AlreadyExists) as caught:
            add_outbox_many(tx, [outbox_row("new"), outbox_row("n0007"), outbox_row("n0001")])
        assert (caught.value.kind, caught.value.id) == ("outbox row", "n0007")
        with pytest.raises(ValueError, match="status"):
            add_outbox_many(tx, [OutboxRecord("bad", "e1", "log", {}, {}, status="lost")])  # type: ignore[arg-type]
    assert len(pg.outbox(status=None)) == len(rows) + len(awkward)


def test_existing_ids(pg: PostgresStore) -> None:
    records = _records(2000)
    with pg.transaction() as tx:
        insert_many(tx, records)
        tx.put("opening", "p00001", {}, expected_version=0)
        tx.delete("person", "p00010", expected_version=1)
        # committed ids only: what this transaction writes is not there yet
        assert existing_ids(pg, "person", ["p00001"]) == set()
    asked = [r.id for r in records[::3]] + ["nobody", "p00010", "p00001"]
    expected = {r.id for r in records[::3]} | {"p00001"}
    assert existing_ids(pg, "person", asked) == expected - {"p00010"}
    assert existing_ids(pg, "opening", asked) == {"p00001"}
    assert existing_ids(pg, "person", []) == set()


def test_bulk_and_one_at_a_time_agree(postgres_url: str, postgres_server: str) -> None:
    other_schema = f"relcrm_test_agree_{uuid.uuid4().hex[:8]}"
    records = _records(50)
    events = [event(f"e{n}", person_id=f"p{n % 4}") for n in range(50)]
    rows = [outbox_row(f"n{n}", event_id=f"e{n}") for n in range(50)]
    try:
        with (
            PostgresStore(postgres_url) as bulk,
            PostgresStore(with_options(postgres_server, schema=other_schema)) as single,
        ):
            with bulk.transaction() as tx:
                insert_many(tx, records)
                from_bulk = append_events(tx, events)
                add_outbox_many(tx, rows)
            with single.transaction() as tx:
                for r in records:
                    tx.put(
                        r.kind,
                        r.id,
                        r.data,
                        expected_version=0,
                        person_id=r.person_id,
                        opening_id=r.opening_id,
                    )
                one_by_one = [tx.append_event(e) for e in events]
                for row in rows:
                    tx.add_outbox(row)
            assert bulk.find("person") == single.find("person")
            assert [(e.id, e.payload) for e in from_bulk] == [(e.id, e.payload) for e in one_by_one]
            assert [(e.id, e.person_id) for e in bulk.events()] == [
                (e.id, e.person_id) for e in single.events()
            ]
            assert bulk.outbox(status=None) == single.outbox(status=None)
    finally:
        with raw(postgres_server) as other:
            other.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other_schema))
            )


# -- threads and processes ------------------------------------------------------------------------


def test_more_threads_than_connections(postgres_url: str) -> None:
    with PostgresStore(with_options(postgres_url, pool_max="2")) as store:
        outcomes: list[Any] = []

        def work(n: int) -> None:
            try:
                with store.transaction() as tx:
                    tx.put("person", f"p{n:02}", {}, expected_version=0)
                    tx.append_event(event(f"e{n:02}"))
                outcomes.append(store.get("person", f"p{n:02}") is not None)
            except BaseException as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes == [True] * 12
        assert len(store.events()) == 12


def test_close_closes_the_pool(postgres_url: str) -> None:
    url, name = app_url(postgres_url)
    store = PostgresStore(url)
    with store.transaction() as tx:
        tx.put("person", "p1", {}, expected_version=0)
    store.close()
    time.sleep(0.1)
    with raw(postgres_url) as other:
        left = other.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    assert left == (0,)
    with pytest.raises(StorageError, match="closed"):
        existing_ids(store, "person", ["p1"])


def _run_processes(count: int, url: str, times: int) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(count)
    processes = [
        context.Process(target=increment_counter, args=(PostgresStore, url, times, start))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * count


@pytest.mark.slow
def test_processes_never_lose_an_update(postgres_url: str) -> None:
    _run_processes(3, postgres_url, 25)
    with PostgresStore(postgres_url) as store:
        assert store.get("counter", "c") == Record("counter", "c", 75, {"count": 75})


@pytest.mark.slow
def test_processes_initialise_a_new_schema_at_once(postgres_server: str) -> None:
    schema = f"relcrm_test_race_{uuid.uuid4().hex[:8]}"
    url = with_options(postgres_server, schema=schema)
    try:
        _run_processes(4, url, 1)
        with PostgresStore(url) as store:
            assert store.get("counter", "c") == Record("counter", "c", 4, {"count": 4})
    finally:
        with raw(postgres_server) as other:
            other.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_opens_its_own_pool(pg: PostgresStore) -> None:
    with pg.transaction() as tx:
        tx.put("person", "parent", {}, expected_version=0)
    pid = os.fork()
    if pid == 0:  # the child: use the store, then leave without running any finaliser
        code = 1
        try:
            with pg.transaction() as tx:
                tx.put("person", "child", {}, expected_version=0)
            code = 0 if pg.get("person", "parent") is not None else 2
            pg.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connections were not touched by the child.
    assert [r.id for r in pg.find("person")] == ["child", "parent"]
    with pg.transaction() as tx:
        tx.put("person", "after", {}, expected_version=0)
