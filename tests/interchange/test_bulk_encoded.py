"""The encoded bulk path: ``CRM.add_encoded_people`` writes what ``CRM.add_people`` writes, the
importer's direct encoding of JSON Resume documents is what ``unstructure`` gives for the person
``person_from_resume`` makes, and an import gives the same outcome in this process, with worker
processes, and with its first pass spilled to a temporary file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm import Actor, ActorRole, Person
from relcrm.interchange import ImportRejected, bulk, import_people, person_from_resume
from relcrm.interchange.jsonresume import _fast_record
from relcrm.serialization import unstructure
from relcrm.storage._checks import dump_mapping, encode_json
from relcrm.storage.base import JSONText

from .conftest import ACTOR, ONET_DEV, need
from .test_bulk_writes import NOW, RECRUITER, Recorder, open_crm, people, shape, snapshot, with_ids


def encoded(person: Person) -> tuple[str, str, str | None, tuple[str, ...], str]:
    return (
        person.id,
        person.name,
        person.email,
        person.sources,
        encode_json(unstructure(person)),
    )


@pytest.mark.parametrize("backend", ["memory", "sqlite", "one-row"])
@pytest.mark.parametrize(
    "actor", [RECRUITER, Actor(ActorRole.SYSTEM, "import")], ids=["recruiter", "system"]
)
@pytest.mark.parametrize("autodispatch", [True, False], ids=["dispatch", "no-dispatch"])
def test_encoded_people_write_what_add_people_writes(
    tmp_path: Path, backend: str, actor: Actor, autodispatch: bool
) -> None:
    # every person of the varied batch that has no owner and no creation time of its own
    batch = [
        p
        for p in (
            relcrm.serialization.structure(item, Person) if isinstance(item, dict) else item
            for item in with_ids(people())
        )
        if p.owner_id is None and p.created_at is None
    ]
    assert len(batch) == 7
    one = Recorder()
    many = Recorder()
    with (
        open_crm(backend, tmp_path, "one", plugins=[one], autodispatch=autodispatch) as plain,
        open_crm(backend, tmp_path, "many", plugins=[many], autodispatch=autodispatch) as coded,
    ):
        plain.add_people(batch, actor=actor)
        assert coded.add_encoded_people([encoded(p) for p in batch], actor=actor) == len(batch)
        expected, got = snapshot(plain), snapshot(coded)
        assert got == expected
        assert [p.created_at for p in coded.people()] == [NOW] * len(batch)
        assert [e.id for e in many.events] == [e.id for e in coded.store.events()]
        assert [shape(e) for e in many.events] == [shape(e) for e in one.events]


def test_encoded_people_are_checked(tmp_path: Path) -> None:
    with open_crm("memory", tmp_path, "x") as crm:
        ada = encoded(Person(id="per_ada", name="Ada"))
        with pytest.raises(relcrm.ValidationError, match="must end with"):
            crm.add_encoded_people(
                [(*ada[:4], ada[4].replace('"created_at":null', '"x":1'))], actor=ACTOR
            )
        owned = encoded(Person(id="per_own", name="Own", owner_id="rec_x"))
        with pytest.raises(relcrm.ValidationError, match="must end with"):
            crm.add_encoded_people([owned], actor=ACTOR)
        with pytest.raises(relcrm.AlreadyExists, match="given twice"):
            crm.add_encoded_people([ada, ada], actor=ACTOR)
        with pytest.raises(relcrm.PermissionDenied):
            crm.add_encoded_people([ada], actor=Actor(ActorRole.CANDIDATE, "per_other"))
        assert crm.add_encoded_people([], actor=ACTOR) == 0
        assert crm.add_encoded_people([ada], actor=ACTOR) == 1
        with pytest.raises(relcrm.AlreadyExists):
            crm.add_encoded_people([encoded(Person(id="per_bo", name="Bo")), ada], actor=ACTOR)
        assert [p.id for p in crm.people()] == ["per_ada"]
        bad = encoded(Person(id="per_bad", name="Lone \ud800 surrogate"))
        with pytest.raises(relcrm.StorageError, match="JSON-compatible"):
            crm.add_encoded_people([bad], actor=ACTOR)
        assert [p.id for p in crm.people()] == ["per_ada"]


def test_json_text_is_a_mapping_stored_as_it_is() -> None:
    text = JSONText('{"b":[1,"é"],"a":null}')
    assert dict(text) == {"b": [1, "é"], "a": None}
    assert text == {"b": [1, "é"], "a": None}
    assert list(text) == ["b", "a"]
    assert len(text) == 2
    assert text["a"] is None
    assert dump_mapping("x", text) == '{"b":[1,"é"],"a":null}'
    assert json.loads(encode_json({"inner": text})) == {"inner": {"b": [1, "é"], "a": None}}
    with pytest.raises(TypeError):
        len(JSONText("[1]"))


def test_other_backends_are_given_plain_dicts(tmp_path: Path) -> None:
    """Only transactions that say they take JSONText get it; any other gets dicts."""
    from .test_bulk_writes import OneRowTransaction

    seen: list[type] = []

    class Watching(OneRowTransaction):
        def put(self, *a: Any, **k: Any) -> Any:
            seen.append(type(a[2]))
            return super().put(*a, **k)

        def append_event(self, event: Any) -> Any:
            seen.append(type(event.payload))
            return super().append_event(event)

        def add_outbox(self, row: Any) -> Any:
            seen.extend((type(row.recipient), type(row.payload)))
            return super().add_outbox(row)

    with open_crm("one-row", tmp_path, "x") as crm:
        store = crm.store
        original = store.transaction

        def transaction() -> Any:
            from contextlib import contextmanager

            @contextmanager
            def watched() -> Any:
                with original() as tx:
                    yield Watching(tx._tx)

            return watched()

        store.transaction = transaction  # type: ignore[method-assign]
        crm.add_encoded_people(
            [encoded(Person(id=f"per_{n}", name=f"P {n}")) for n in range(3)], actor=RECRUITER
        )
        assert len(crm.people()) == 3
    assert seen
    assert set(seen) == {dict}


DOCUMENTS = [
    {"basics": {"name": "Ann", "email": "ann@example.org"}, "skills": [{"name": " Big  Data"}]},
    {"basics": {"name": "No Email", "location": {"city": "Leeds"}}},
    {"basics": {"email": "nameless@example.org"}},
    {"basics": {"name": "Bad Date"}, "work": [{"startDate": "2020-13"}]},
    {"basics": {"name": "Ann Again", "email": " ANN@example.org "}},
    {"basics": {"name": "Tuple", "email": "t@example.org"}, "awards": [{"title": 1}]},
    {
        "basics": {"name": "Full", "email": "full@example.org", "phone": "1", "url": "u"},
        "work": [{"name": "W", "startDate": "2019", "endDate": "2020-02-29", "highlights": ["h"]}],
        "education": [{"institution": "I", "courses": ["c"], "startDate": "2001-02"}],
        "volunteer": [{"organization": "V"}],
        "meta": {"canonical": "x"},
    },
    {"basics": {"name": "Ann Twin", "email": "ann@example.org"}},
]


def test_the_direct_encoding_is_what_unstructure_gives() -> None:
    for doc in DOCUMENTS:
        made = _fast_record(doc, "per_fixed", ("jsonresume", "x", "jsonresume"))
        try:
            person = person_from_resume(
                doc, id="per_fixed", sources=("jsonresume", "x", "jsonresume")
            )
        except relcrm.ValidationError:
            assert made is None
            continue
        assert made is not None
        assert made[:3] == (person.id, person.name, person.email)
        assert encode_json(made[3]) == encode_json(unstructure(person))


def test_the_text_encoder_gives_what_encode_json_gives() -> None:
    encode = bulk._plain_text_encoder()
    values: list[Any] = [
        {"s": "".join(chr(c) for c in range(0x800)), "l": [None, True, False, [], {}]},
        {"lone": "\ud800 \udfff"},
        {"emoji": "\U0001f389\u2028\u2029\x7f"},
    ]
    for doc in DOCUMENTS:
        made = _fast_record(doc, None, ("jsonresume",))
        if made is not None:
            values.append(made[3])
    for value in values:
        assert encode(value) == encode_json(value)


def write_lines(path: Path, docs: list[Any], extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    lines = [json.dumps(d) for d in docs] + list(extra)
    text = "\n".join(lines[:3]) + "\n\n   \n" + "\n".join(lines[3:]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def outcome(crm: relcrm.CRM, report: Any) -> tuple[Any, ...]:
    # (without the id of the person who has no email: a new one each time)
    people = sorted((p.name, p.skills, p.email and p.id) for p in crm.people())
    return (report.read, report.imported, report.duplicates, report.skipped, report.errors, people)


@pytest.mark.parametrize("name", ["people.jsonl", "people.jsonl.gz"])
def test_an_import_is_the_same_with_workers_and_with_a_spill(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [*DOCUMENTS, *({"basics": {"name": f"P{n}", "email": f"p{n}@x.org"}} for n in range(40))]
    path = write_lines(tmp_path / name, docs, ["{not json", "[1, 2]"])
    monkeypatch.setattr(bulk, "_BLOCK_LINES", 7)  # several blocks, in the workers too
    results = []
    for run, (workers, spill) in enumerate([(0, None), (2, None), (0, 100), (1, 100)]):
        if spill is not None:
            monkeypatch.setattr(bulk, "_SPILL_BYTES", spill)
        with relcrm.open(f"sqlite:///{tmp_path / f'{run}.db'}", notifiers=["log"]) as crm:
            with pytest.raises(ImportRejected) as rejected:
                import_people(crm, path, actor=ACTOR, workers=workers, batch_size=5)
            assert crm.people() == []
            assert crm.store.events() == []
            done: list[tuple[int, int | None]] = []
            report = import_people(
                crm,
                path,
                actor=ACTOR,
                on_error="skip",
                workers=workers,
                batch_size=5,
                progress=lambda d, t, done=done: done.append((d, t)),
            )
            again = import_people(
                crm, path, actor=ACTOR, on_error="skip", workers=workers, batch_size=5
            )
            # everyone again, but the person without an email (a new id each time)
            assert (again.imported, again.duplicates) == (
                1,
                report.imported + report.duplicates - 1,
            )
            results.append((rejected.value.report.errors, outcome(crm, report), done[-1]))
    assert all(r == results[0] for r in results[1:])
    errors, (read, imported, duplicates, skipped, _, _), last = results[0]
    assert [line for line, _ in errors] == [3, 6, 7, 8, 51, 52]
    assert (read, imported, duplicates, skipped) == (50, 43, 1, 6)
    assert last == (50, None)


def test_a_rejecting_import_spills_and_writes_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [{"basics": {"name": f"P{n}", "email": f"p{n}@x.org"}} for n in range(30)]
    path = write_lines(tmp_path / "p.jsonl", docs)
    monkeypatch.setattr(bulk, "_BLOCK_LINES", 4)
    runs = []
    for run, spill in enumerate((None, 1)):
        if spill is not None:
            monkeypatch.setattr(bulk, "_SPILL_BYTES", spill)
        with relcrm.open(f"sqlite:///{tmp_path / f'{run}.db'}", notifiers=["log"]) as crm:
            done: list[tuple[int, int | None]] = []
            report = import_people(
                crm,
                path,
                actor=ACTOR,
                batch_size=8,
                progress=lambda d, t, done=done: done.append((d, t)),
            )
            runs.append((outcome(crm, report), done))
    assert runs[0] == runs[1]
    assert runs[0][1] == [(8, 30), (16, 30), (24, 30), (30, 30)]


def test_workers_are_used_for_big_jsonl_files_only(tmp_path: Path) -> None:
    small = write_lines(tmp_path / "small.jsonl", DOCUMENTS)
    assert bulk._pool_size(small, "auto") == 0
    assert bulk._pool_size(small, 3) == 3
    assert bulk._pool_size(small, 0) == 0
    assert bulk._pool_size([{"basics": {"name": "x"}}], 3) == 0
    one = tmp_path / "one.json"
    one.write_text("{}")
    assert bulk._pool_size(one, 3) == 0
    for wrong in (-1, "many", 1.5):
        with pytest.raises(relcrm.ValidationError, match="workers"):
            bulk._pool_size(small, wrong)  # type: ignore[arg-type]


def test_auto_workers_are_one_per_cpu_for_big_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = write_lines(tmp_path / "big.jsonl", DOCUMENTS)
    monkeypatch.setattr(bulk, "_POOL_MIN_BYTES", 1)
    monkeypatch.setattr(bulk, "_available_cpus", lambda: 8)
    assert bulk._pool_size(big, "auto") == bulk._MAX_AUTO_WORKERS
    assert bulk._pool_size(big, 0) == 0  # the default: none unless asked for
    monkeypatch.setattr(bulk, "_available_cpus", lambda: 1)
    assert bulk._pool_size(big, "auto") == 0


def test_the_onet_sample_imports_the_same_with_workers(tmp_path: Path) -> None:
    with gzip.open(need(ONET_DEV) / "candidates.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(next(f)) for _ in range(200)]
    path = write_lines(tmp_path / "onet.jsonl", docs)
    results = []
    for run, workers in enumerate((0, 2)):
        with relcrm.open(f"sqlite:///{tmp_path / f'{run}.db'}", notifiers=[]) as crm:
            report = import_people(crm, path, actor=ACTOR, workers=workers, batch_size=64)
            results.append(outcome(crm, report))
    assert results[0] == results[1]


def test_sqlite_bulk_writers_checkpoint_in_the_background(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "c.db"
    sizes = []
    with relcrm.open(f"sqlite:///{path}", notifiers=[]) as crm:
        store = crm.store
        for round in range(3):
            crm.add_people(
                [{"name": f"P{round}.{n}", "summary": "x" * 500} for n in range(2000)],
                actor=RECRUITER,
            )
            checkpointer = store._checkpointer  # type: ignore[attr-defined]
            assert checkpointer is not None
            checkpointer.wait()
            with sqlite3.connect(path) as other:
                _, logged, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert logged == copied  # everything committed is in the database file
            sizes.append(path.with_name("c.db-wal").stat().st_size)
        assert len(crm.people()) == 6000
    # the WAL starts over after each checkpoint instead of growing with the import
    assert sizes[2] <= sizes[0] * 1.5
    assert not checkpointer._thread.is_alive()
