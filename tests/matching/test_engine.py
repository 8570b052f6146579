"""The matching engine: signals, explanations, filters, incremental updates, both directions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from relcrm.matching import (
    CandidateContext,
    CandidateProfile,
    MatchEngine,
    RoleProfile,
)
from relcrm.model import (
    ArchiveReasonType,
    Availability,
    Experience,
    Location,
    Milestone,
    Opening,
    Person,
    Preferences,
    RemotePolicy,
    Seniority,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TODAY = NOW.date()


def person(pid: str, title: str, tasks: list[str], **kw: object) -> Person:
    return Person(
        id=pid,
        name=pid,
        headline=title,
        experience=(
            Experience(title=title, start=date(2021, 1, 1), highlights=tuple(tasks)),
            Experience(
                title="Barista",
                start=date(2015, 1, 1),
                end=date(2017, 1, 1),
                highlights=("Prepared espresso drinks and served customers.",),
            ),
        ),
        **kw,  # type: ignore[arg-type]
    )


def profile(p: Person, **ctx: object) -> CandidateProfile:
    return CandidateProfile.from_person(p, CandidateContext(**ctx), today=TODAY)  # type: ignore[arg-type]


POOL = [
    person(
        "ada",
        "Data Engineer",
        ["Built batch data pipelines in Python and SQL.", "Ran Spark jobs on Kubernetes."],
        skills=("python", "sql", "spark"),
    ),
    person("bob", "Pastry Chef", ["Baked bread and pastries.", "Managed the kitchen team."]),
    person(
        "cy",
        "Backend Developer",
        ["Wrote Python web services.", "Designed SQL schemas."],
        skills=("python", "postgresql"),
    ),
    person("dee", "Nurse", ["Cared for patients on the ward.", "Administered medication."]),
]

ROLE = RoleProfile(
    id="role-1",
    title="Senior Data Engineer",
    description="Build and run data pipelines.",
    responsibilities=("Design batch pipelines with Spark and Python",),
    required_skills=("Python", "Spark", "Airflow"),
    seniority=Seniority.SENIOR,
)


def engine(pool: list[CandidateProfile] | None = None) -> MatchEngine:
    e = MatchEngine()
    e.index(pool if pool is not None else [profile(p) for p in POOL])
    return e


def test_the_obviously_right_person_wins() -> None:
    results = engine().match(ROLE, now=NOW)
    assert [m.person_id for m in results.matches][:2] == ["ada", "cy"]
    assert "bob" not in [m.person_id for m in results.matches[:2]]


def test_signals_in_unit_range_and_contributions_sum_to_score() -> None:
    results = engine().match(ROLE, now=NOW)
    assert results.matches
    for m in results.matches:
        contributions = m.explanation.contributions
        assert all(0.0 <= c.value <= 1.0 for c in contributions)
        assert sum(c.contribution for c in contributions) == m.score
        assert 0.0 <= m.score <= 1.0
        assert sum(c.weight for c in contributions) == pytest.approx(1.0)


def test_skills_explained_matched_and_missing() -> None:
    top = engine().match(ROLE, now=NOW).matches[0]
    exact = {s.skill: s.matched_as for s in top.explanation.matched_skills if not s.partial}
    assert exact == {"python": "python", "spark": "spark"}  # as the person wrote them
    partial = {s.skill for s in top.explanation.matched_skills if s.partial}
    # With the taxonomy, a related skill may give partial credit; without, it is missing.
    assert ("airflow" in partial) != (top.explanation.missing_skills == ("airflow",))
    names = [c.signal for c in top.explanation.contributions]
    assert "required_skills" in names
    assert "nice_to_have_skills" not in names  # the role asks for none: not applicable


def test_hard_filters_with_counts() -> None:
    pool = [
        profile(POOL[0]),
        profile(evolve_prefs(POOL[2], Availability.DO_NOT_CONTACT)),
        profile(evolve_prefs(POOL[1], Availability.NOT_LOOKING)),
        profile(evolve_prefs(POOL[3], Availability.NOT_NOW, check_back_on=date(2026, 1, 1))),
        profile(
            person("eve", "Data Engineer", ["Built data pipelines."]), in_process_for={"role-1"}
        ),
        profile(
            person("fay", "Data Engineer", ["Built data pipelines."]),
            hired_at=datetime(2025, 5, 1, tzinfo=UTC),
        ),
        profile(
            person("gus", "Data Engineer", ["Built data pipelines."]),
            availability=Availability.NOT_NOW,
            check_back_on=date(2025, 1, 1),  # the date has passed: fair game again
        ),
    ]
    results = engine(pool).match(ROLE, now=NOW)
    assert dict(results.filtered) == {
        "do_not_contact": 1,
        "not_looking": 1,
        "check_back_later": 1,
        "in_process": 1,
        "recently_hired": 1,
    }
    assert {m.person_id for m in results.matches} == {"ada", "gus"}


def test_consent_purpose_and_predicate() -> None:
    pool = [profile(POOL[0], consents={"sourcing"}), profile(POOL[2])]
    e = engine(pool)
    results = e.match(ROLE, now=NOW, purpose="sourcing")
    assert [m.person_id for m in results.matches] == ["ada"]
    assert results.filtered == {"no_consent": 1}
    results = e.match(ROLE, now=NOW, consent=lambda pid: pid != "ada")
    assert [m.person_id for m in results.matches] == ["cy"]
    assert results.filtered == {"no_consent": 1}


def evolve_prefs(p: Person, availability: Availability, **kw: object) -> Person:
    import attrs

    return attrs.evolve(p, preferences=Preferences(availability=availability, **kw))  # type: ignore[arg-type]


def _ranking(e: MatchEngine, role: RoleProfile) -> list[tuple[str, float]]:
    return [(m.person_id, m.score) for m in e.match(role, now=NOW, limit=5000).matches]


def test_incremental_add_remove_equals_rebuild() -> None:
    many = [
        profile(person(f"p{i}", f"{t} Engineer", [f"Worked on {t} systems and data {i % 7}."]))
        for i, t in enumerate(["Data", "Backend", "Platform", "Data", "ML", "Data"] * 300)
    ]
    inc = MatchEngine(shortlist=5000)
    for p in many[:900]:
        inc.add(p)
    for p in many[:600:2]:
        assert inc.remove(p.person_id)
    assert not inc.remove("nobody")
    for p in many[900:]:
        inc.add(p)
    updated = profile(person("p1", "Data Engineer", ["Spark pipelines."]))
    inc.add(updated)  # replaces the earlier p1
    survivors = [p for i, p in enumerate(many) if not (i < 600 and i % 2 == 0)]
    survivors = [updated if p.person_id == "p1" else p for p in survivors]
    rebuilt = MatchEngine(shortlist=5000)
    rebuilt.index(survivors)
    assert len(inc) == len(rebuilt) == len(survivors)
    # Ties are broken by row, so compare scores per person over the whole ranking.
    got, want = dict(_ranking(inc, ROLE)), dict(_ranking(rebuilt, ROLE))
    assert got.keys() == want.keys()
    assert got == pytest.approx(want, rel=1e-6)


def test_role_profile_without_opening_and_from_opening_agree() -> None:
    opening = Opening(
        id="role-1",
        title=ROLE.title,
        description=ROLE.description,
        responsibilities=ROLE.responsibilities,
        required_skills=ROLE.required_skills,
        seniority=Seniority.SENIOR,
    )
    e = engine()
    assert _ranking(e, ROLE) == _ranking(e, RoleProfile.from_opening(opening))
    # A role that exists nowhere yet.
    results = e.match(RoleProfile(id="new", title="Clinical Nurse", description="Patients"))
    assert results.matches[0].person_id == "dee"


def test_reverse_direction_openings_for_a_candidate() -> None:
    e = MatchEngine()
    e.index_roles(
        [
            ROLE,
            RoleProfile(id="chef", title="Head Pastry Chef", description="Bake bread and cakes"),
            RoleProfile(id="ward", title="Ward Nurse", description="Care for patients"),
        ]
    )
    results = e.openings_for(profile(POOL[1]), now=NOW)
    assert results.matches[0].role_id == "chef"
    m = results.matches[0]
    assert sum(c.contribution for c in m.explanation.contributions) == m.score
    busy = e.openings_for(profile(POOL[1], in_process_for={"chef"}), now=NOW)
    assert "chef" not in [x.role_id for x in busy.matches]
    assert busy.filtered == {"in_process": 1}
    dnc = e.openings_for(profile(evolve_prefs(POOL[1], Availability.DO_NOT_CONTACT)), now=NOW)
    assert dnc.matches == ()
    assert dnc.filtered == {"do_not_contact": 3}
    assert e.remove_role("chef")
    assert "chef" not in [x.role_id for x in e.openings_for(profile(POOL[1])).matches]


def test_hired_elsewhere_finalist_above_not_eligible() -> None:
    twin = ["Built batch data pipelines in Python and SQL."]
    pool = [
        profile(
            person("finalist", "Data Engineer", twin),
            furthest_milestone=Milestone.OFFER,
            archive_reason=ArchiveReasonType.HIRED_ELSEWHERE,
        ),
        profile(
            person("ineligible", "Data Engineer", twin),
            furthest_milestone=Milestone.OFFER,
            archive_reason=ArchiveReasonType.NOT_ELIGIBLE,
        ),
    ]
    ids = [m.person_id for m in engine(pool).match(ROLE, now=NOW).matches]
    assert ids == ["finalist", "ineligible"]


def test_location_remote_and_structured_signals() -> None:
    berlin = Location(city="Berlin", country_code="DE")
    pool = [
        profile(person("near", "Data Engineer", ["Data pipelines."], location=berlin)),
        profile(
            person(
                "far", "Data Engineer", ["Data pipelines."], location=Location(country_code="US")
            )
        ),
    ]
    role = RoleProfile(id="r", title="Data Engineer", location=berlin, remote=RemotePolicy.ONSITE)
    results = engine(pool).match(role, now=NOW)
    assert [m.person_id for m in results.matches] == ["near", "far"]
    loc = {
        m.person_id: next(c.value for c in m.explanation.contributions if c.signal == "location")
        for m in results.matches
    }
    assert loc == {"near": 1.0, "far": 0.0}


def test_custom_signal_and_weights() -> None:
    class Referred:
        name = "referred"

        def score(self, batch: object) -> list[float]:
            return [1.0 if p.person_id == "cy" else 0.0 for p in batch.profiles]  # type: ignore[attr-defined]

    e = MatchEngine(signals=[Referred()], weights={"referred": 5.0})
    e.index([profile(p) for p in POOL])
    top = e.match(ROLE, now=NOW).matches[0]
    assert top.person_id == "cy"
    assert "referred" in [c.signal for c in top.explanation.contributions]


def test_no_demographic_input() -> None:
    import attrs

    assert not {"gender", "age", "ethnicity", "birth_date"} & {
        f.name for f in attrs.fields(CandidateProfile)
    }


def test_removing_the_only_holder_of_a_skill_equals_rebuild() -> None:
    # A skill nobody live has any more must weigh what it weighs in a rebuild (where it is
    # unknown), not the idf of a term with no documents.
    pool = [profile(p) for p in POOL]
    extra = profile(person("zed", "Workflow Engineer", ["Ran Airflow DAGs."], skills=("airflow",)))
    inc = engine([*pool, extra])
    assert inc.remove("zed")
    got, want = _ranking(inc, ROLE), _ranking(engine(pool), ROLE)
    assert [pid for pid, _ in got] == [pid for pid, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)


def _index_state(ix: object) -> tuple[dict[int, tuple[list[str], list[float]]], float, list[str]]:
    from relcrm.matching._index import TextIndex

    assert isinstance(ix, TextIndex)
    rows = [int(r) for r in range(len(ix._live)) if ix._live[r]]
    vectors = {}
    for r in rows:
        ids, tf = ix.vector(r)
        order = sorted(range(len(ids)), key=lambda i: ix.terms[int(ids[i])])
        vectors[r] = ([ix.terms[int(ids[i])] for i in order], [float(tf[i]) for i in order])
    return vectors, ix.self_score({"data": 1.0, "spark": 2.0}), sorted(ix.term_idf(["data"]))


def test_text_index_pending_rows_compaction_and_renumbering_equal_a_rebuild() -> None:
    import numpy as np

    from relcrm.matching._index import TextIndex

    docs = {r: {"data": 1.0 + r % 3, f"t{r % 5}": 2.0, "spark": float(r % 2)} for r in range(60)}
    ix = TextIndex(max_segments=2)
    for r in range(0, 60, 2):  # even rows first, then odd ones: rows out of order
        ix.add(r, docs[r])
    ix.flush()
    assert ix.vector(4)[1].tolist() == [2.0, 2.0]  # from a segment ("spark" 0 is not kept)
    for r in range(1, 60, 2):
        ix.add(r, docs[r])
    assert ix.vector(5)[1].tolist() == [3.0, 2.0, 1.0]  # still buffered
    assert ix.remove(7)  # a buffered row
    assert not ix.remove(7)
    assert ix.remove(8)  # a flushed row
    ix.add(10, {"data": 9.0})  # replaces a flushed row
    ix.add(11, {"spark": 4.0})  # replaces a buffered row
    docs[10], docs[11] = {"data": 9.0}, {"spark": 4.0}
    del docs[7], docs[8]
    for _ in range(3):  # more segments than max_segments: merged on the way
        ix.flush()
        ix.add(99, {"data": 1.0})
        ix.flush()
        assert ix.remove(99)
    rebuilt = TextIndex()
    for r in sorted(docs):
        rebuilt.add(r, docs[r])
    assert _index_state(ix) == _index_state(rebuilt)
    q = {"data": 1.0, "spark": 1.0, "t3": 0.5}
    assert ix.scores(q, 100).tolist() == pytest.approx(rebuilt.scores(q, 100).tolist(), rel=1e-6)
    # renumbering drops rows and keeps every vector with its row
    row_map = np.full(100, -1, dtype=np.int32)
    keep = sorted(docs)[::3]
    row_map[keep] = np.arange(len(keep), dtype=np.int32)[::-1]  # reversed: out of order again
    ix.compact(row_map)
    again = TextIndex()
    for new in range(len(keep)):
        again.add(new, docs[keep[len(keep) - 1 - new]])
    assert ix.size == again.size == len(keep)
    assert _index_state(ix) == _index_state(again)


def test_taxonomy_mentions_agree_with_extract() -> None:
    from relcrm.matching import taxonomy

    text = (
        "Machine learning engineer: Python, k8s and Docker; relational databases. Go, go, "
        "React and react. \n Data analysis and project management"
    )
    found = taxonomy.extract(text)
    assert found
    assert taxonomy.mentions(text) == [(m.id, m.alias) for m in found]
    assert taxonomy.mentions("") == []
    assert taxonomy.mentions("... !!") == []


def test_a_signal_reads_whole_profiles_though_the_engine_keeps_them_slim() -> None:
    seen: dict[str, CandidateProfile] = {}

    class Spy:
        name = "spy"

        def score(self, batch: object) -> list[float]:
            for p in batch.profiles:  # type: ignore[attr-defined]
                seen[p.person_id] = p
            return [0.0] * len(batch.profiles)  # type: ignore[attr-defined]

    pool = [profile(p) for p in POOL]
    dup = attrs_evolve(pool[0], person_id="dup", skills=("python", "python", "sql"))
    e = MatchEngine(signals=[Spy()], weights={"spy": 1.0})
    e.index([*pool, dup])
    e.match(ROLE, now=NOW, limit=10)
    assert seen
    for want in [*pool, dup]:
        if want.person_id in seen:
            got = seen[want.person_id]
            assert got.titles == want.titles
            assert got.skills == want.skills
            assert got.skill_aliases == want.skill_aliases
            assert dict(got.terms) == pytest.approx(dict(want.terms), rel=1e-3)  # half precision


def attrs_evolve(p: CandidateProfile, **changes: object) -> CandidateProfile:
    import attrs

    return attrs.evolve(p, **changes)  # type: ignore[arg-type]


def test_the_engine_rebuilds_every_field_of_an_indexed_profile() -> None:
    rich = person(
        "rich",
        "Senior Data Engineer",
        ["Built pipelines in Python on k8s."],
        skills=("python", "K8s", "python"),
        location=Location(city="Lisbon", region="Lisboa", country_code="PT"),
        preferences=Preferences(
            remote=RemotePolicy.HYBRID,
            availability=Availability.NOT_NOW,
            check_back_on=date(2025, 9, 1),
        ),
    )
    want = profile(
        rich,
        warmth=0.7,
        furthest_milestone=Milestone.INTERVIEW,
        archive_reason=ArchiveReasonType.HIRED_ELSEWHERE,
        availability=Availability.OPEN,
        check_back_on=date(2025, 7, 15),
        last_activity_at=datetime(2025, 5, 2, 13, 30, 15, tzinfo=UTC),
        segment="silver_medalist",
        consents=frozenset({"recruiting", "job_alerts"}),
        in_process_for=frozenset({"o-1"}),
        hired_at=datetime(2020, 1, 3, 9, 0, tzinfo=UTC),
    )
    plain = profile(POOL[1])
    e = MatchEngine()
    e.index([plain, want, profile(POOL[0])])
    e.remove(POOL[0].id)
    got = e.profile(e._row_of["rich"])
    assert dict(got.terms) == pytest.approx(dict(want.terms), rel=1e-3)  # half precision
    assert attrs_evolve(got, terms=()) == attrs_evolve(want, terms=())
    assert attrs_evolve(e.profile(e._row_of[plain.person_id]), terms=()) == attrs_evolve(
        plain, terms=()
    )
    e._compact()  # renumbered rows keep their sparse fields
    assert attrs_evolve(e.profile(e._row_of["rich"]), terms=()) == attrs_evolve(want, terms=())


def test_a_posting_budget_changes_who_is_considered_not_how_they_are_scored() -> None:
    crowd = [
        profile(person(f"p{i:03d}", "Team Member", ["Worked with the team on daily work."]))
        for i in range(300)
    ]
    rare = profile(
        person(
            "rare",
            "Hydrographic Surveyor",
            ["Ran multibeam bathymetry surveys for the team."],
            skills=("hydrography",),
        )
    )
    role = RoleProfile(
        id="r",
        title="Hydrographic Surveyor",
        description="Multibeam bathymetry surveys with a friendly team; daily work on boats.",
    )
    full = MatchEngine(budget=None)
    full.index([*crowd, rare])
    tight = MatchEngine(budget=20)
    tight.index([*crowd, rare])
    # the common words ("team", "work", "daily") have 300 postings each: over the budget
    assert sum(len(sp.sizes) for sp in tight._text.spans(role.terms())) > 3
    got, want = tight.match(role, now=NOW, limit=5), full.match(role, now=NOW, limit=5)
    assert got.matches[0].person_id == want.matches[0].person_id == "rare"
    assert got.considered < want.considered
    # the same person gets the same score and explanation either way
    assert got.matches[0].score == pytest.approx(want.matches[0].score, rel=1e-9)
    assert got.matches[0].explanation == want.matches[0].explanation
    assert MatchEngine().budget == 200_000


@pytest.mark.parametrize("kind", ["bm25", "cosine", "flat"])
def test_posting_values_read_by_runs_or_by_positions_agree(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from relcrm.matching import _index
    from relcrm.matching._index import TextIndex

    ix = TextIndex()
    for r in range(400):  # "common" in every row, "mid" in a third, "rare" in a few
        doc = {"common": 1.0 + r % 4, f"w{r % 7}": 2.0}
        if r % 3 == 0:
            doc["mid"] = 3.0
        if r % 97 == 0:
            doc["rare"] = 1.0
        ix.add(r, doc)
    ix.flush()
    query = {"common": 1.0, "mid": 0.5, "rare": 2.0, "w3": 1.0, "unknown": 1.0}
    (spans,) = ix.spans(query, kind)
    take = np.ones(len(spans.sizes), dtype=bool)
    take[1] = False  # one list left out
    read = {}
    for run in (0, 10**9):  # every span read as a run of slices / gathered by position
        monkeypatch.setattr(_index, "_RUN", run)
        read[run] = ix.posting_values(spans, take, kind)
    (rows_a, values_a), (rows_b, values_b) = read.values()
    assert rows_a.tolist() == rows_b.tolist()
    assert values_a.tolist() == values_b.tolist()
    # the postings of "common", "rare" and "w3" ("mid" left out, "unknown" has none)
    holders = [*range(400), *range(0, 400, 97), *range(3, 400, 7)]
    assert sorted(rows_a.tolist()) == sorted(holders)
    if kind == "cosine":  # the query weight over the root of the row's length
        lengths = np.maximum(ix._length[rows_a], 1.0)
        want = np.repeat(spans.scales[take], spans.sizes[take]) / np.sqrt(lengths)
        assert values_a.tolist() == pytest.approx(want.tolist(), rel=1e-6)
