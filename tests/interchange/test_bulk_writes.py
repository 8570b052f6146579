"""``CRM.add_people`` writes a batch with the storage port's bulk methods, and what it writes is
exactly what adding the same people one by one writes: records, events, outbox rows, delivered
notifications and the events plugins are told about."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm import Actor, ActorRole, Person
from relcrm.ids import _encode, new_id, new_ids
from relcrm.storage.base import BulkStore, BulkTransaction
from relcrm.storage.memory import MemoryStore

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
RECRUITER = Actor(ActorRole.RECRUITER, "rita")


def people() -> list[Person | dict[str, Any]]:
    """A batch with every case routing and encoding care about."""
    return [
        {"name": "Ada Lovelace", "contacts": [{"value": "ada@example.org", "kind": "email"}]},
        {"name": "No Email"},
        Person(
            id="per_owned",
            name="Owned",
            owner_id="rec_bob",
            contacts=(relcrm.ContactPoint("owned@example.org", relcrm.ContactKind.EMAIL),),
        ),
        {
            "name": "Do Not Contact",
            "contacts": [{"value": "dnc@example.org", "kind": "email"}],
            "preferences": {"availability": "do_not_contact"},
        },
        {"name": "Braces {name} 'quotes' \"double\" %s \\ \u00e9\U0001f389", "tags": ["X"]},
        Person(id="per_dated", name="Dated", created_at=NOW - timedelta(days=3)),
        {
            "name": "Grace Hopper",
            "sources": ["referral", "jsonresume"],
            "skills": [" Big  Data", "COBOL"],
            "experience": [{"title": "Admiral", "organisation": "US Navy", "start": "1943-01-01"}],
            "preferences": {"availability": "not_now", "check_back_on": "2025-01-01"},
        },
        {
            "name": "Everything Twice",
            "contacts": [
                {"value": "+44 20 7946 0000", "kind": "phone"},
                {"value": "twice@example.org", "kind": "email"},
            ],
            "location": {"city": "Leeds", "country_code": "GB"},
            "experience": [
                {"title": "Engineer", "start": "2020-01-01", "highlights": ["a", "b"]},
                {"title": "Intern", "start": "2019-06-01", "end": "2019-09-01"},
            ],
            "education": [
                {"institution": "Leeds", "start": "2015-09-01", "end": "2019-06-30"},
                {"institution": "School"},
            ],
            "links": [{"url": "https://example.org"}, {"url": "https://example.com", "label": "x"}],
            "preferences": {"roles": ["a", "b"], "remote": "hybrid", "hear_about_openings": True},
        },
        {"name": "Last One", "contacts": [{"value": "last@example.org", "kind": "email"}]},
    ]


def with_ids(batch: list[Person | dict[str, Any]]) -> list[Person | dict[str, Any]]:
    out: list[Person | dict[str, Any]] = []
    for n, item in enumerate(batch):
        out.append({"id": f"per_{n:02}", **item} if isinstance(item, dict) else item)
    return out


class Recorder:
    """A plugin that keeps every committed event."""

    def __init__(self) -> None:
        self.events: list[relcrm.Event] = []

    @relcrm.hookimpl
    def relcrm_event_committed(self, event: relcrm.Event) -> None:
        self.events.append(event)


class OneRowStore(MemoryStore):
    """A memory store without the bulk capability, as a third-party backend may be."""

    existing_ids = None  # type: ignore[assignment]

    @contextmanager
    def transaction(self) -> Iterator[Any]:  # type: ignore[override]
        with super().transaction() as tx:
            yield OneRowTransaction(tx)


class OneRowTransaction:
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def get(self, *a: Any, **k: Any) -> Any:
        return self._tx.get(*a, **k)

    def find(self, *a: Any, **k: Any) -> Any:
        return self._tx.find(*a, **k)

    def put(self, *a: Any, **k: Any) -> Any:
        return self._tx.put(*a, **k)

    def delete(self, *a: Any, **k: Any) -> Any:
        return self._tx.delete(*a, **k)

    def append_event(self, *a: Any, **k: Any) -> Any:
        return self._tx.append_event(*a, **k)

    def add_outbox(self, *a: Any, **k: Any) -> Any:
        return self._tx.add_outbox(*a, **k)

    def replace_event_payload(self, *a: Any, **k: Any) -> Any:
        return self._tx.replace_event_payload(*a, **k)


def open_crm(backend: str, tmp_path: Path, name: str, **kwargs: Any) -> relcrm.CRM:
    kwargs.setdefault("notifiers", ["memory", "log"])
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("load_entrypoints", False)
    if backend == "one-row":
        return relcrm.CRM(
            OneRowStore(),
            notifiers=kwargs["notifiers"],
            clock=kwargs["clock"],
            autodispatch=kwargs.get("autodispatch", True),
            plugin_manager=relcrm.plugins.make_plugin_manager(
                kwargs.get("plugins", ()), load_entrypoints=False
            ),
        )
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / f'{name}.db'}"
    return relcrm.open(url, **kwargs)


def snapshot(crm: relcrm.CRM) -> dict[str, Any]:
    """Everything a batch wrote, with generated ids replaced by their rank (so two runs compare);
    ranks follow the ids' sort order, so this also checks that ids grow in event order."""
    events = crm.store.events()
    rows = crm.store.outbox(status=None)
    rank: dict[str, str] = {}
    for prefix, ids in (
        ("E", sorted(e.id for e in events)),
        ("N", sorted(r.id for r in rows)),
        ("C", sorted({e.payload["correlation_id"] for e in events})),
    ):
        rank.update({id: f"{prefix}{n}" for n, id in enumerate(ids)})

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return rank.get(value, value) if isinstance(value, str) else value

    records = {
        kind: [(r.id, r.version, r.data, r.person_id, r.opening_id) for r in crm.store.find(kind)]
        for kind in ("person", "relationship")
    }
    return {
        "records": records,
        "events": [norm((e.id, e.type, e.occurred_at, e.person_id, e.payload)) for e in events],
        "seq increasing": [e.seq for e in events] == sorted({e.seq for e in events}),
        "outbox": [
            norm((r.id, r.event_id, r.notifier, r.recipient, r.payload, r.status, r.attempts))
            for r in sorted(rows, key=lambda r: r.id)
        ],
        "sent": [norm(relcrm.serialization.unstructure(n)) for n in crm.notifier("memory").sent],
    }


@pytest.mark.parametrize("backend", ["memory", "sqlite", "one-row"])
@pytest.mark.parametrize(
    "actor", [RECRUITER, Actor(ActorRole.SYSTEM, "import")], ids=["recruiter", "system"]
)
@pytest.mark.parametrize("autodispatch", [True, False], ids=["dispatch", "no-dispatch"])
def test_a_batch_writes_what_one_by_one_writes(
    tmp_path: Path, backend: str, actor: Actor, autodispatch: bool
) -> None:
    batch = with_ids(people())
    one = Recorder()
    many = Recorder()
    with (
        open_crm(backend, tmp_path, "one", plugins=[one], autodispatch=autodispatch) as by_one,
        open_crm(backend, tmp_path, "many", plugins=[many], autodispatch=autodispatch) as bulk,
    ):
        singles = [by_one.add_person(p, actor=actor) for p in batch]
        added = bulk.add_people(batch, actor=actor)
        assert added == singles
        assert [p.created_at for p in added] == [NOW] * 5 + [NOW - timedelta(days=3)] + [NOW] * 3
        expected, got = snapshot(by_one), snapshot(bulk)
        # one command, so one correlation id for the batch
        assert {e[4]["correlation_id"] for e in got["events"]} == {"C0"}
        for event in expected["events"]:
            event[4]["correlation_id"] = "C0"
        assert got == expected
        assert got["seq increasing"]
        assert len(got["outbox"]) == 2 * 8  # everyone but "do not contact", by two notifiers
        assert len(got["sent"]) == (8 if autodispatch else 0)
        # plugins are told about the same events, with the ids the log has
        assert [e.id for e in many.events] == [e.id for e in bulk.store.events()]
        assert [shape(e) for e in many.events] == [shape(e) for e in one.events]
        assert len({e.correlation_id for e in many.events}) == 1


def shape(event: relcrm.Event) -> tuple[Any, ...]:
    """An event without its generated ids."""
    return (
        event.type,
        event.occurred_at,
        event.actor,
        event.visibility,
        event.subjects,
        event.data,
    )


def test_the_bulk_path_is_used_by_the_built_in_backends(tmp_path: Path) -> None:
    for url in ("memory://", f"sqlite:///{tmp_path / 'b.db'}"):
        with relcrm.open(url, notifiers=[]) as crm:
            assert isinstance(crm.store, BulkStore)
            with crm.store.transaction() as tx:
                assert isinstance(tx, BulkTransaction)
    store = OneRowStore()
    assert not isinstance(store, BulkStore)
    with store.transaction() as tx:
        assert not isinstance(tx, BulkTransaction)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "one-row"])
def test_a_refused_batch_writes_nothing(tmp_path: Path, backend: str) -> None:
    with open_crm(backend, tmp_path, "x") as crm:
        crm.add_people(
            [{"id": "per_a", "name": "A"}, {"id": "per_b", "name": "B"}], actor=RECRUITER
        )
        before = snapshot(crm)
        with pytest.raises(relcrm.AlreadyExists) as taken:
            crm.add_people(
                [{"id": "per_c", "name": "C"}, {"id": "per_b", "name": "B"}], actor=RECRUITER
            )
        assert (taken.value.kind, taken.value.id) == ("person", "per_b")
        with pytest.raises(relcrm.AlreadyExists, match="given twice"):
            crm.add_people(
                [
                    {"id": "per_d", "name": "D"},
                    {"id": "per_e", "name": "E"},
                    {"id": "per_d", "name": "D"},
                ],
                actor=RECRUITER,
            )
        with pytest.raises(relcrm.ValidationError, match=r"@ \$\.contacts\[0\]\.kind"):
            crm.add_people(
                [{"name": "F"}, {"name": "G", "contacts": [{"value": "x", "kind": "pigeon"}]}],
                actor=RECRUITER,
            )
        # a relationship left without its person is refused too, naming it
        with crm.store.transaction() as tx:
            tx.put("relationship", "per_h", {}, expected_version=0, person_id="per_h")
        with pytest.raises(relcrm.AlreadyExists) as leftover:
            crm.add_people(
                [{"id": "per_g", "name": "G"}, {"id": "per_h", "name": "H"}], actor=RECRUITER
            )
        assert (leftover.value.kind, leftover.value.id) == ("relationship", "per_h")
        with crm.store.transaction() as tx:
            tx.delete("relationship", "per_h", expected_version=1)
        assert snapshot(crm) == before


def test_a_candidate_adds_only_themselves(tmp_path: Path) -> None:
    ada = Actor(ActorRole.CANDIDATE, "per_ada")
    with open_crm("memory", tmp_path, "x") as crm:
        with pytest.raises(relcrm.PermissionDenied):
            crm.add_people(
                [{"id": "per_ada", "name": "Ada"}, {"id": "per_bo", "name": "Bo"}], actor=ada
            )
        [added] = crm.add_people([{"id": "per_ada", "name": "Ada", "owner_id": "rec_x"}], actor=ada)
        assert added.created_at == NOW
        # the owner hears about it, the candidate does not
        assert [r.recipient["id"] for r in crm.outbox(status=None)] == ["rec_x", "rec_x"]


def test_people_added_in_bulk_are_matchable_at_once(tmp_path: Path) -> None:
    with open_crm("sqlite", tmp_path, "x", notifiers=[]) as crm:
        crm.add_people([{"name": "Seed", "skills": ["cobol"]}, {"name": "Other"}], actor=RECRUITER)
        from relcrm.matching import RoleProfile

        role = RoleProfile(id="role", title="COBOL programmer", required_skills=("cobol",))
        assert crm.match(role).matches  # builds the index
        added = crm.add_people(
            [{"name": "Grace", "skills": ["COBOL"]}, {"name": "Alan", "skills": ["logic"]}],
            actor=RECRUITER,
        )
        assert added[0].id in {m.person_id for m in crm.match(role).matches}


def test_new_ids_continue_new_id() -> None:
    ids = [new_id("evt"), *new_ids("evt", 1500), new_id("evt"), *new_ids("evt", 3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {30}
    assert new_ids("evt", 0) == []
    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def number(id: str) -> int:
        value = 0
        for c in id[4:]:
            value = value * 32 + digits.index(c)
        return value

    numbers = [number(i) for i in ids]
    assert all(b > a for a, b in itertools.pairwise(numbers))
    # one millisecond, consecutive random parts: they count up by one, carrying into the
    # digits that are encoded once per run
    run = new_ids("evt", 2**11)
    steps = {number(b) - number(a) for a, b in itertools.pairwise(run)}
    assert steps <= {1} or run[0][4:14] != run[-1][4:14]
    assert _encode(2**80 - 1, 16) == "Z" * 16


def test_unstructuring_gives_what_stock_cattrs_gives(tmp_path: Path) -> None:
    """The converter's quicker unstructure hooks change no output (checked on what a CRM writes:
    every record, event and outbox row of a varied batch and of a few other commands)."""
    import enum
    from datetime import date

    from cattrs.preconf.json import make_converter

    stock = make_converter()
    stock.register_unstructure_hook(datetime, lambda v: v.isoformat())
    stock.register_unstructure_hook(date, lambda v: v.isoformat())
    for base in (enum.StrEnum, enum.Enum):
        stock.register_unstructure_hook(base, lambda v: v.value)
    seen = 0
    with open_crm("memory", tmp_path, "x") as crm:
        added = crm.add_people(with_ids(people()), actor=RECRUITER)
        opening = crm.add_opening({"title": "Nurse", "owner_id": "rec_x"}, actor=RECRUITER)
        made = [
            *added,
            opening,
            crm.add_candidacy(added[0].id, opening.id, actor=RECRUITER),
            crm.log_touchpoint(
                added[1].id, channel="email", direction="inbound", summary="hi", actor=RECRUITER
            ),
            crm.grant_consent(
                added[0].id, "job_alerts", actor=Actor(ActorRole.CANDIDATE, added[0].id)
            ),
            crm.relationship(added[0].id),
        ]
        for value in made:
            assert relcrm.serialization.unstructure(value) == stock.unstructure(value)
            record = crm.store.get(relcrm.crm.KINDS[type(value)], relcrm.crm._key(value))
            assert record is not None
            if not isinstance(value, relcrm.Relationship):
                assert record.data == stock.unstructure(value)
            seen += 1
        for cls, kind in relcrm.crm.KINDS.items():
            for record in crm.store.find(kind):
                value = relcrm.serialization.structure(record.data, cls)
                assert relcrm.serialization.unstructure(value) == stock.unstructure(value)
                seen += 1
        for record in crm.store.events():
            event = relcrm.serialization.structure(record.payload, relcrm.Event)
            assert relcrm.serialization.unstructure(event) == stock.unstructure(event)
            seen += 1
    assert seen > 30


def test_a_batch_bigger_than_a_chunk(tmp_path: Path) -> None:
    """Rows are written a chunk at a time; the first person routed like the rest may come in a
    later chunk, and people routed differently may come between them."""
    chunk = relcrm.crm._CHUNK
    batch: list[Person | dict[str, Any]] = []
    for n in range(2 * chunk + 7):
        item: dict[str, Any] = {"id": f"per_{n:04}", "name": f"Person {n}"}
        if n < chunk + 3 or n % 97 == 0:
            item["owner_id"] = f"rec_{n % 3}"
        if n % 89 == 0:
            item["preferences"] = {"availability": "do_not_contact"}
        if n % 2:
            item["contacts"] = [{"value": f"p{n}@example.org", "kind": "email"}]
        batch.append(item)
    with (
        open_crm("sqlite", tmp_path, "one", autodispatch=False) as by_one,
        open_crm("sqlite", tmp_path, "many", autodispatch=False) as bulk,
    ):
        for p in batch:
            by_one.add_person(p, actor=RECRUITER)
        bulk.add_people(batch, actor=RECRUITER)
        expected, got = snapshot(by_one), snapshot(bulk)
        for event in expected["events"]:
            event[4]["correlation_id"] = "C0"
        assert got == expected
        assert len(got["outbox"]) > 2 * chunk
