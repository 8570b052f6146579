"""Bulk import from files and iterables: line numbers, reject vs skip, duplicates, progress."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm.interchange import ImportRejected, import_openings, import_people
from relcrm.interchange.jsonresume import person_id_for_email

from .conftest import ACTOR, ONET_DEV, need


def resume(n: int) -> dict[str, Any]:
    return {"basics": {"name": f"Person {n}", "email": f"p{n}@example.org"}}


GOOD = [resume(n) for n in range(5)]
BAD_NAME = {"basics": {"email": "nameless@example.org"}}
BAD_DATE = {"basics": {"name": "D"}, "work": [{"startDate": "2020-13"}]}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def state(crm: relcrm.CRM) -> tuple[int, int]:
    """People and events in the store."""
    return len(crm.people()), len(crm.store.events())


@pytest.mark.parametrize("name", ["people.jsonl", "people.jsonl.gz", "people.ndjson"])
def test_jsonl_files(crm: relcrm.CRM, tmp_path: Path, name: str) -> None:
    path = write_jsonl(tmp_path / name, [json.dumps(d) for d in GOOD])
    report = import_people(crm, path, actor=ACTOR)
    assert (report.read, report.imported, report.duplicates, report.skipped) == (5, 5, 0, 0)
    assert report.errors == []
    assert report.seconds > 0
    assert crm.get_person(person_id_for_email("p3@example.org")).name == "Person 3"
    assert crm.get_person(person_id_for_email("p3@example.org")).sources == ("jsonresume",)


def test_json_files_one_document_or_a_list(crm: relcrm.CRM, tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(resume(9)))
    assert import_people(crm, one, actor=ACTOR).imported == 1
    many = tmp_path / "many.json"
    many.write_text(json.dumps(GOOD, indent=2))
    assert import_people(crm, str(many), actor=ACTOR).imported == 5
    assert len(crm.people()) == 6


def test_json_list_errors_give_the_line_where_the_document_starts(
    crm: relcrm.CRM, tmp_path: Path
) -> None:
    path = tmp_path / "list.json"
    path.write_text("[\n" + ",\n".join(json.dumps(d) for d in [*GOOD[:2], BAD_NAME]) + "\n]\n")
    report = import_people(crm, path, actor=ACTOR, on_error="skip")
    assert report.errors == [(4, "a person needs a name @ $.basics.name")]


def test_iterables(crm: relcrm.CRM) -> None:
    report = import_people(crm, iter(GOOD), actor=ACTOR)
    assert report.imported == 5
    report = import_people(crm, [resume(7), BAD_DATE], actor=ACTOR, on_error="skip")
    assert report.imported == 1
    assert report.errors == [(2, "no such date: '2020-13' @ $.work[0].startDate")]


def test_reject_writes_nothing_and_lists_every_bad_line(crm: relcrm.CRM, tmp_path: Path) -> None:
    import_people(crm, GOOD[:1], actor=ACTOR)
    before = state(crm)
    lines = [json.dumps(d) for d in GOOD[1:3]] + [json.dumps(BAD_NAME), "", "{not json"]
    lines += [json.dumps(d) for d in GOOD[3:]] + [json.dumps(BAD_DATE), "[1]"]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    with pytest.raises(ImportRejected) as info:
        import_people(crm, path, actor=ACTOR, batch_size=1)
    assert state(crm) == before
    report = info.value.report
    assert report.rejected
    assert report.imported == 0
    assert [line for line, _ in report.errors] == [3, 5, 8, 9]
    assert "invalid JSON" in report.errors[1][1]
    assert "expected an object, got list @ $" in report.errors[3][1]
    assert isinstance(info.value, relcrm.RelcrmError)
    assert "line 3: a person needs a name @ $.basics.name" in str(info.value)


def test_skip_imports_the_good_and_reports_the_bad(crm: relcrm.CRM, tmp_path: Path) -> None:
    lines = [json.dumps(GOOD[0]), json.dumps(BAD_NAME), json.dumps(GOOD[1]), "nope"]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    report = import_people(crm, path, actor=ACTOR, on_error="skip")
    assert (report.read, report.imported, report.skipped) == (4, 2, 2)
    assert [line for line, _ in report.errors] == [2, 4]
    assert len(crm.people()) == 2


def test_duplicates_are_counted_not_raised(crm: relcrm.CRM, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [json.dumps(d) for d in GOOD])
    import_people(crm, path, actor=ACTOR)
    before = state(crm)
    again = import_people(crm, path, actor=ACTOR, batch_size=2)
    assert (again.imported, again.duplicates) == (0, 5)
    assert state(crm) == before
    # the same person twice in one input, and one new person among known ones
    report = import_people(crm, [resume(1), resume(8), resume(8)], actor=ACTOR)
    assert (report.imported, report.duplicates) == (1, 2)


def test_progress_is_called_after_every_batch(crm: relcrm.CRM, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    import_people(crm, GOOD, actor=ACTOR, batch_size=2, progress=lambda *a: calls.append(a))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    calls.clear()
    path = write_jsonl(tmp_path / "p.jsonl", [json.dumps(resume(n)) for n in range(10, 13)])
    import_people(
        crm, path, actor=ACTOR, on_error="skip", batch_size=2, progress=lambda *a: calls.append(a)
    )
    assert calls == [(2, None), (3, None)]


def test_bad_options_and_sources(crm: relcrm.CRM, tmp_path: Path) -> None:
    with pytest.raises(relcrm.ValidationError, match="on_error"):
        import_people(crm, GOOD, actor=ACTOR, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(relcrm.ValidationError, match="batch_size"):
        import_people(crm, GOOD, actor=ACTOR, batch_size=0)
    (tmp_path / "p.csv").write_text("x")
    with pytest.raises(relcrm.ValidationError, match=r"\.json, \.jsonl"):
        import_people(crm, tmp_path / "p.csv", actor=ACTOR)
    with pytest.raises(FileNotFoundError):
        import_people(crm, tmp_path / "missing.jsonl", actor=ACTOR)


def test_openings(crm: relcrm.CRM, tmp_path: Path) -> None:
    jobs = [
        {"title": "Data engineer", "meta": {"canonical": "https://example.org/jobs/1"}},
        {"title": "Nurse", "remote": "None", "meta": {"canonical": "https://example.org/jobs/2"}},
        {"remote": "Sometimes"},
    ]
    path = write_jsonl(tmp_path / "jobs.jsonl.gz", [json.dumps(j) for j in jobs])
    with pytest.raises(ImportRejected):
        import_openings(crm, path, actor=ACTOR)
    assert crm.openings() == []
    report = import_openings(crm, path, actor=ACTOR, on_error="skip")
    assert (report.imported, report.skipped) == (2, 1)
    assert (
        "expected one of 'Full', 'Hybrid', 'None', got 'Sometimes' @ $.remote"
        in report.errors[0][1]
    )
    assert crm.get_opening("https://example.org/jobs/1").title == "Data engineer"
    again = import_openings(crm, jobs[:2], actor=ACTOR)
    assert (again.imported, again.duplicates) == (0, 2)


def test_onet_dev_sample(crm: relcrm.CRM, tmp_path: Path) -> None:
    """The first 500 candidates and every opening of the shared onet-eval dev split."""
    folder = need(ONET_DEV)
    with gzip.open(folder / "candidates.jsonl.gz", "rt", encoding="utf-8") as f:
        first = [next(f) for _ in range(500)]
    path = write_jsonl(tmp_path / "first500.jsonl", [line.rstrip("\n") for line in first])
    people = import_people(crm, path, actor=ACTOR, batch_size=128)
    assert (people.read, people.imported, people.errors) == (500, 500, [])
    openings = import_openings(crm, folder / "openings.jsonl.gz", actor=ACTOR)
    assert openings.errors == []
    assert openings.imported == openings.read == 456
    p = crm.get_person(person_id_for_email("person-dev-00001@example.org"))
    assert p.experience
    assert p.experience[0].highlights
    assert crm.get_opening("https://example.org/openings/11-1011.00").responsibilities
