"""The JSON Resume standard's own conformance fixtures: every valid one is accepted, every invalid
one raises :class:`relcrm.ValidationError` naming a path."""

import json
from pathlib import Path
from typing import Any

import pytest

import relcrm
from relcrm.interchange.jsonresume import PartialDate, structure_resume

from .conftest import FIXTURES, need

VALID_KEYS = {"valid", "yearMonthDay", "yearMonth", "year"}
VALID_SUFFIXES = ("Valid", "Valid2", "Valid3")
INVALID_SUFFIXES = ("Invalid", "invalid")


def expectation(key: str) -> bool:
    if key in VALID_KEYS or key.endswith(VALID_SUFFIXES):
        return True
    if key.endswith(INVALID_SUFFIXES):
        return False
    raise AssertionError(f"fixture key {key!r} is neither valid nor invalid")


def load_cases(kind: str) -> list[Any]:
    """``(file, key, document, valid)`` for every document fixture (``dates.json`` apart)."""
    if not FIXTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="shared data absent"))]
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        if (path.name == "dates.json") != (kind == "dates"):
            continue
        for key, doc in json.loads(path.read_text(encoding="utf-8")).items():
            cases.append(pytest.param((path.name, key, doc), id=f"{path.stem}:{key}"))
    return cases


def check(case: tuple[str, str, Any] | None) -> None:
    assert case is not None
    _, key, doc = case
    if expectation(key):
        structure_resume(doc)
        return
    with pytest.raises(relcrm.ValidationError) as info:
        structure_resume(doc)
    assert info.value.errors
    for problem in info.value.errors:
        assert " @ $" in problem, problem
    assert any(" @ $." in p for p in info.value.errors), info.value.errors


@pytest.mark.parametrize("case", load_cases("documents"))
def test_fixture(case: tuple[str, str, Any] | None) -> None:
    check(case)


@pytest.mark.parametrize("case", load_cases("dates"))
def test_date_fixture(case: tuple[str, str, str] | None) -> None:
    assert case is not None
    _, key, text = case
    if expectation(key):
        assert str(PartialDate.parse(text)) == text
    else:
        with pytest.raises(ValueError, match="YYYY"):
            PartialDate.parse(text)


def test_every_fixture_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """All at once, with the counts printed (shown even under ``-q``)."""
    need(FIXTURES)
    counts = {"valid accepted": 0, "invalid rejected": 0, "dates": 0}
    for param in load_cases("documents"):
        (case,) = param.values
        check(case)
        counts["valid accepted" if expectation(case[1]) else "invalid rejected"] += 1
    counts["dates"] = len(load_cases("dates"))
    assert counts["valid accepted"] >= 100
    assert counts["invalid rejected"] >= 90
    with capsys.disabled():
        print(f"\nJSON Resume fixtures: {counts} (100% each)")


def test_the_null_end_date_is_refused_and_an_absent_one_is_ongoing() -> None:
    """The standard's ``endDateInvalid`` fixture is ``"endDate": null``: null is refused; an
    ongoing position leaves ``endDate`` out."""
    with pytest.raises(relcrm.ValidationError, match=r"got null @ \$\.work\[0\]\.endDate"):
        structure_resume({"work": [{"endDate": None}]})
    resume = structure_resume({"work": [{"startDate": "2020-01"}]})
    assert resume.work is not None
    assert resume.work[0].end_date is None


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"work": [{"startDate": "2013-13"}]}, "no such date: '2013-13' @ $.work[0].startDate"),
        ({"work": [{"startDate": "2013-02-30"}]}, "no such date"),
        ({"awards": [{"date": "13-02"}]}, "YYYY, YYYY-MM or YYYY-MM-DD"),
        ({"projects": [{"endDate": "2013-1"}]}, "@ $.projects[0].endDate"),
        ({"publications": [{"releaseDate": 2014}]}, "got int @ $.publications[0].releaseDate"),
        ({"basics": {"email": "not an email"}}, "expected an email address"),
        ({"basics": {"profiles": {}}}, "expected a list, got dict @ $.basics.profiles"),
        ({"skills": [{"keywords": "x"}]}, "@ $.skills[0].keywords"),
        ({"$schema": 1}, "@ $.$schema"),
        ([], "expected an object, got list @ $"),
    ],
)
def test_bad_documents_name_the_path(doc: Any, problem: str) -> None:
    with pytest.raises(relcrm.ValidationError) as info:
        structure_resume(doc)
    assert any(problem in e for e in info.value.errors), info.value.errors


def test_unknown_keys_are_accepted_as_the_schema_allows() -> None:
    structure_resume({"basics": {"name": "A", "pronouns": "they"}, "x-custom": [1]})


def test_partial_dates_keep_their_precision() -> None:
    for text, precision in [("2013", "year"), ("2013-12", "month"), ("2013-12-02", "day")]:
        d = PartialDate.parse(text)
        assert (str(d), d.precision) == (text, precision)
    assert PartialDate.parse("2013-12").first_day().isoformat() == "2013-12-01"
    with pytest.raises(ValueError, match="YYYY"):
        PartialDate.parse("\uff12\uff10\uff11\uff13")  # full-width digits are not ASCII digits
    with pytest.raises(ValueError, match="YYYY"):
        PartialDate.parse("2013\n")


def test_the_samples_structure_and_unstructure_losslessly() -> None:
    from relcrm.interchange.jsonresume import structure_job, unstructure_document

    folder = need(FIXTURES.parent)
    resume = json.loads(Path(folder / "sample.resume.json").read_text(encoding="utf-8"))
    job = json.loads(Path(folder / "sample.job.json").read_text(encoding="utf-8"))
    assert unstructure_document(structure_resume(resume)) == resume
    assert unstructure_document(structure_job(job)) == job
