"""JSON Resume documents <-> relcrm people and openings, and the round trip."""

import gzip
import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relcrm
from relcrm import ContactKind, RemotePolicy, Seniority
from relcrm.interchange.jsonresume import (
    _check_person_document,
    _fast_person,
    _fast_record,
    job_from_opening,
    opening_from_job,
    person_from_resume,
    person_id_for_email,
    resume_from_person,
    structure_job,
    structure_resume,
)
from relcrm.serialization import unstructure
from relcrm.storage._checks import encode_json

from .conftest import FIXTURES, JSONRESUME, ONET_DEV, need


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((need(JSONRESUME) / name).read_text(encoding="utf-8"))
    return data


def test_a_resume_maps_onto_a_person() -> None:
    doc = sample("sample.resume.json")
    p = person_from_resume(doc)
    assert p.id == person_id_for_email("Richard.Hendriks@mail.com ")
    assert p.name == "Richard Hendriks"
    assert (p.headline, p.summary[:20]) == ("Programmer", "Richard hails from T")
    assert [(c.kind, c.value) for c in p.contacts] == [
        (ContactKind.EMAIL, "richard.hendriks@mail.com"),
        (ContactKind.PHONE, "(912) 555-4321"),
    ]
    assert p.location == relcrm.Location("San Francisco", "California", "US")
    assert [(lk.label, lk.url) for lk in p.links][:2] == [
        ("website", "http://richardhendricks.example.com"),
        ("Twitter", "https://www.twitter.com"),
    ]
    (job,) = p.experience
    assert (job.title, job.organisation) == ("CEO/President", "Pied Piper")
    assert (job.start, job.end) == (date(2013, 12, 1), date(2014, 12, 1))
    assert len(job.highlights) == 3
    (school,) = p.education
    assert (school.institution, school.study_type) == ("University of Oklahoma", "Bachelor")
    assert p.skills[:4] == ("web development", "html", "css", "javascript")


def test_partial_dates_map_to_the_first_day() -> None:
    p = person_from_resume(
        {"basics": {"name": "A"}, "work": [{"startDate": "2013", "endDate": "2014-06"}]}
    )
    assert (p.experience[0].start, p.experience[0].end) == (date(2013, 1, 1), date(2014, 6, 1))


def test_a_person_needs_a_name() -> None:
    with pytest.raises(relcrm.ValidationError, match=r"needs a name @ \$\.basics\.name"):
        person_from_resume({"basics": {"email": "a@example.org"}})
    with pytest.raises(relcrm.ValidationError, match=r"basics\.name"):
        person_from_resume({"basics": {"name": "   "}})


def test_ids_come_from_the_email_or_are_new() -> None:
    a = person_from_resume({"basics": {"name": "A", "email": "a@example.org"}})
    b = person_from_resume({"basics": {"name": "B", "email": "A@Example.org"}})
    assert a.id == b.id == person_id_for_email("a@example.org")
    assert a.id.startswith("per_")
    x = person_from_resume({"basics": {"name": "X"}})
    y = person_from_resume({"basics": {"name": "X"}})
    assert x.id != y.id


def test_a_job_maps_onto_an_opening() -> None:
    o = opening_from_job(sample("sample.job.json"))
    assert o.id == "http://example.com/jobs/web-developer"
    assert o.title == "Web Developer"
    assert o.remote is RemotePolicy.HYBRID
    assert o.seniority is Seniority.MID
    assert o.location == relcrm.Location("Berlin", "Berlin", "DE")
    assert len(o.responsibilities) == 4
    assert len(o.qualifications) == 3
    assert "web development" in o.required_skills
    assert "mongodb" in o.required_skills


@pytest.mark.parametrize(
    ("remote", "policy"),
    [("Full", RemotePolicy.REMOTE), ("Hybrid", RemotePolicy.HYBRID), ("None", RemotePolicy.ONSITE)],
)
def test_remote_values(remote: str, policy: RemotePolicy) -> None:
    o = opening_from_job({"title": "T", "remote": remote})
    assert o.remote is policy
    assert job_from_opening(o)["remote"] == remote


def test_nice_to_have_skills_and_seniority_words() -> None:
    o = opening_from_job(
        {
            "title": "T",
            "experience": "Entry-level",
            "skills": [{"name": "Go"}, {"name": "Rust", "level": "Nice to have"}],
        }
    )
    assert (o.required_skills, o.nice_to_have_skills) == (("go",), ("rust",))
    assert o.seniority is Seniority.JUNIOR
    assert opening_from_job({"title": "T", "experience": "3+ years"}).seniority is None


def test_an_opening_needs_a_title_and_a_usable_canonical() -> None:
    with pytest.raises(relcrm.ValidationError) as info:
        opening_from_job({"meta": {"canonical": "has space"}})
    assert info.value.errors == (
        "an opening needs a title @ $.title",
        "expected a URI without spaces, got 'has space' @ $.meta.canonical",
    )


def test_an_opening_made_in_relcrm_keeps_its_id_through_a_job_document() -> None:
    o = relcrm.Opening(id="opn_01ABC", title="Data engineer")
    job = job_from_opening(o)
    assert job["meta"] == {"canonical": "urn:relcrm:opening:opn_01ABC"}
    assert opening_from_job(job) == o


def test_the_samples_round_trip() -> None:
    for name in ("sample.resume.json",):
        p = person_from_resume(sample(name))
        exported = resume_from_person(p)
        structure_resume(exported)
        assert person_from_resume(exported) == p
    o = opening_from_job(sample("sample.job.json"))
    exported_job = job_from_opening(o)
    structure_job(exported_job)
    assert opening_from_job(exported_job) == o
    assert exported_job["meta"]["canonical"] == "http://example.com/jobs/web-developer"


# ------------------------------------------------------------------------------------------------
# Hypothesis: generated documents
# ------------------------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
words = st.text("abcXYZ -._", max_size=10)
dates = st.builds(
    lambda y, m, d, p: f"{y:04d}" + (f"-{m:02d}" if p > 0 else "") + (f"-{d:02d}" if p > 1 else ""),
    st.integers(1000, 2999),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 2),
)
emails = st.builds(
    "{}@{}.org".format,
    st.text("abc.xyz_+1", min_size=1, max_size=8),
    words.filter(lambda w: w.strip(" .") == w and w and " " not in w and "." not in w),
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


places = optional(address=text, postalCode=text, city=text, countryCode=words, region=text)
resumes = optional(
    basics=st.fixed_dictionaries(
        {"name": text.filter(str.strip)},
        optional={
            "label": text,
            "email": emails,
            "phone": text,
            "url": words,
            "summary": text,
            "location": places,
            "profiles": st.lists(optional(network=text, username=text, url=words), max_size=3),
            "image": text,
        },
    ),
    work=st.lists(
        optional(
            name=text,
            position=text,
            location=text,
            startDate=dates,
            endDate=dates,
            summary=text,
            highlights=st.lists(text, max_size=3),
        ),
        max_size=3,
    ),
    education=st.lists(
        optional(institution=text, area=text, studyType=text, startDate=dates, endDate=dates),
        max_size=2,
    ),
    skills=st.lists(
        optional(name=text, level=text, keywords=st.lists(text, max_size=3)), max_size=3
    ),
    languages=st.lists(optional(language=text), max_size=2),
    meta=optional(canonical=words, version=text),
).filter(lambda d: "basics" in d)

jobs = st.fixed_dictionaries(
    {"title": text.filter(str.strip)},
    optional={
        "company": text,
        "description": text,
        "date": dates,
        "location": places,
        "remote": st.sampled_from(["Full", "Hybrid", "None"]),
        "experience": st.sampled_from(["Senior", "junior", "Lead", "Intern", "Mid", "CEO", ""]),
        "responsibilities": st.lists(text, max_size=3),
        "qualifications": st.lists(text, max_size=3),
        "skills": st.lists(
            optional(
                name=text,
                level=st.sampled_from(["Master", "nice to have", "Optional"]),
                keywords=st.lists(text, max_size=2),
            ),
            max_size=3,
        ),
        "meta": optional(
            canonical=st.builds(
                "https://example.org/jobs/{}".format, st.text("abc-._~", max_size=8)
            )
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(resumes)
def test_export_of_an_imported_resume_keeps_every_modelled_field(doc: dict[str, Any]) -> None:
    person = person_from_resume(doc)
    exported = resume_from_person(person)
    structure_resume(json.loads(json.dumps(exported)))
    assert person_from_resume(exported, id=person.id) == person
    basics = doc["basics"]
    if basics.get("email"):
        assert exported["basics"]["email"] == basics["email"]
    assert exported["basics"]["name"] == basics["name"]
    assert len(exported.get("work", [])) == len(doc.get("work", []))
    for original, written in zip(doc.get("work", []), exported.get("work", []), strict=True):
        if "startDate" in original:
            assert written["startDate"].startswith(original["startDate"])


@settings(max_examples=300, deadline=None)
@given(jobs)
def test_export_of_an_imported_job_keeps_every_modelled_field(doc: dict[str, Any]) -> None:
    opening = opening_from_job(doc)
    exported = job_from_opening(opening)
    structure_job(json.loads(json.dumps(exported)))
    assert opening_from_job(exported) == opening
    if "meta" in doc and "canonical" in doc["meta"]:
        assert exported["meta"]["canonical"] == doc["meta"]["canonical"]


# ------------------------------------------------------------------------------------------------
# The fast path for parsed documents agrees with the converter
# ------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text | dates | emails,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += _paths(item, (*path, n))
    return found


@st.composite
def damaged_resumes(draw: st.DrawFn) -> dict[str, Any]:
    """A generated resume with one value replaced, or one key added, anywhere in it."""
    doc = json.loads(json.dumps(draw(resumes)))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and draw(st.booleans()):
        key = draw(
            st.sampled_from(["name", "email", "startDate", "endDate", "highlights", "keywords"])
            | words
        )
        parent[key] = draw(json_values)
    else:
        parent[path[-1]] = draw(json_values)
    return doc


def _converted(doc: Any) -> relcrm.Person | str:
    """What the converter path gives: the person, or the errors it reports."""
    try:
        return person_from_resume(structure_resume(doc), id="per_fixed", sources=("s",))
    except relcrm.ValidationError as exc:
        return "; ".join(exc.errors)


def _agrees(doc: Any) -> bool:
    """``person_from_resume`` on a parsed document is what the converter path gives; returns
    whether the fast path took it."""
    fast = _fast_person(doc, "per_fixed", ("s",)) if type(doc) is dict else None
    expected = _converted(doc)
    try:
        got: relcrm.Person | str = person_from_resume(doc, id="per_fixed", sources=("s",))
    except relcrm.ValidationError as exc:
        got = "; ".join(exc.errors)
    assert got == expected
    if fast is not None:
        assert fast == expected
    # the importer's direct encoding: taken exactly when the fast path is, and the same text
    record = _fast_record(doc, "per_fixed", ("s",)) if type(doc) is dict else None
    assert (record is None) == (fast is None)
    if record is not None:
        assert isinstance(expected, relcrm.Person)
        assert record[:3] == (expected.id, expected.name, expected.email)
        assert encode_json(record[3]) == encode_json(unstructure(expected))
    if isinstance(expected, str):
        with pytest.raises(relcrm.ValidationError) as refused:
            _check_person_document(doc)
        assert "; ".join(refused.value.errors) == expected
    else:
        _check_person_document(doc)
    return fast is not None


@settings(max_examples=400, deadline=None)
@given(resumes)
def test_the_fast_path_takes_good_documents(doc: dict[str, Any]) -> None:
    assert _agrees(json.loads(json.dumps(doc)))


@settings(max_examples=800, deadline=None)
@given(damaged_resumes())
def test_the_fast_path_never_accepts_what_the_converter_refuses(doc: dict[str, Any]) -> None:
    _agrees(doc)


def test_the_fast_path_on_the_standards_fixtures() -> None:
    """Every fixture as it is, and (most have no name, which relcrm needs) with a name."""
    taken = 0
    for path in sorted(need(FIXTURES).glob("*.json")):
        if path.name == "dates.json":
            continue
        for doc in json.loads(path.read_text(encoding="utf-8")).values():
            _agrees(doc)
            basics = doc.get("basics", {}) if isinstance(doc, dict) else None
            if isinstance(basics, dict):
                taken += _agrees({**doc, "basics": {**basics, "name": "Someone"}})
    assert taken > 50


def test_the_fast_path_takes_the_onet_candidates() -> None:
    with gzip.open(need(ONET_DEV) / "candidates.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(next(f)) for _ in range(300)]
    assert all(_agrees(doc) for doc in docs)


def test_the_fast_path_refuses_other_containers() -> None:
    doc = {"basics": {"name": "A", "email": "a@example.org"}, "work": [{"highlights": ("x",)}]}
    assert _fast_person(doc, None, ()) is None
    assert person_from_resume(doc).experience[0].highlights == ("x",)
    assert _fast_person({"basics": {"name": "A", "email": " "}}, None, ()) is None
    with pytest.raises(relcrm.ValidationError, match=r"@ \$\.basics\.email"):
        person_from_resume({"basics": {"name": "A", "email": " "}})
