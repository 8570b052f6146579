"""The batch build (``MatchEngine.index`` of people) gives the index that building each profile
gives, and the batch skill scanner finds what per-text extraction finds."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relcrm.matching import CandidateContext, CandidateProfile, MatchEngine, RoleProfile, taxonomy
from relcrm.model import (
    ArchiveReasonType,
    Availability,
    Experience,
    Location,
    Milestone,
    Person,
    Preferences,
    RemotePolicy,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TODAY = NOW.date()

_WORDS = (
    "Python SQL k8s Kubernetes Docker React react.js Node.js C++ C# .NET Go go GO machine learning "
    "engineer data science analysis project management relational databases PostgreSQL postgres "
    "the and of with for team customers patients baked bread pastry chef nurse ward Spark Airflow "
    "café naïve 東京 x y z 2019 -- ... , ; : (lead) senior junior Manager"
)
WORDS = _WORDS.split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + rng.choice(["", ".", " ,", "!"])


def _people(seed: int, n: int) -> list[tuple[Person, CandidateContext | None]]:
    rng = random.Random(seed)
    out: list[tuple[Person, CandidateContext | None]] = []
    for i in range(n):
        jobs = []
        for j in range(rng.randrange(0, 4)):
            ended = None if j == 0 and rng.random() < 0.7 else date(2024 - 3 * j, 1, 1)
            jobs.append(
                Experience(
                    title=_text(rng, rng.randrange(0, 4)),
                    start=date(2010 + j, 1, 1),
                    end=ended,
                    summary=_text(rng, rng.randrange(0, 12)),
                    highlights=tuple(_text(rng, rng.randrange(1, 10)) for _ in range(2)),
                )
            )
        person = Person(
            id=f"p{i}",
            name=f"Person {i}",
            headline=_text(rng, rng.randrange(0, 4)) if rng.random() < 0.8 else "",
            summary=_text(rng, rng.randrange(0, 20)),
            skills=tuple(rng.sample(["python", "SQL", "k8s", "baking", "nursing", "Go"], 2)),
            experience=tuple(jobs),
            location=Location(city=rng.choice(["Berlin", "Lyon", ""]), country_code="DE")
            if rng.random() < 0.8
            else None,
            preferences=Preferences(
                remote=rng.choice([None, RemotePolicy.REMOTE, RemotePolicy.HYBRID]),
                availability=rng.choice(list(Availability)),
                check_back_on=date(2025, 9, 1) if rng.random() < 0.2 else None,
            ),
        )
        context = (
            None
            if rng.random() < 0.2
            else CandidateContext(
                warmth=rng.random(),
                furthest_milestone=rng.choice([None, Milestone.INTERVIEW, Milestone.OFFER]),
                archive_reason=rng.choice([None, ArchiveReasonType.HIRED_ELSEWHERE]),
                last_activity_at=NOW,
                segment=rng.choice([None, "prospect", "alumni"]),
                consents=frozenset(rng.sample(["recruiting", "job_alerts"], rng.randrange(3))),
                in_process_for=frozenset({"o1"}) if rng.random() < 0.1 else frozenset(),
            )
        )
        out.append((person, context))
    return out


def _same_profile(a: CandidateProfile, b: CandidateProfile) -> None:
    assert [t for t, _ in a.terms] == [t for t, _ in b.terms]
    for (_, x), (_, y) in zip(a.terms, b.terms, strict=True):
        assert math.isclose(x, y, rel_tol=1e-3)  # stored in half precision
    assert attrs.evolve(a, terms=()) == attrs.evolve(b, terms=())


def _profiles(e: MatchEngine) -> dict[str, CandidateProfile]:
    return {pid: e.profile(row) for pid, row in e._row_of.items()}


ROLES = [
    RoleProfile(
        id="r1",
        title="Senior Data Engineer",
        description="Python, SQL and Spark pipelines on Kubernetes",
        required_skills=("Python", "Spark"),
    ),
    RoleProfile(id="r2", title="Pastry Chef", description="bread and pastry for customers"),
    RoleProfile(id="r3", title="Nurse", required_skills=("nursing",), remote=RemotePolicy.REMOTE),
]


def _ranking(e: MatchEngine, role: RoleProfile) -> list[tuple[str, float]]:
    return [(m.person_id, m.score) for m in e.match(role, limit=50, now=NOW).matches]


def same_index(one: MatchEngine, other: MatchEngine) -> None:
    """Both engines hold the same profiles and rank every role in :data:`ROLES` alike."""
    a, b = _profiles(one), _profiles(other)
    assert a.keys() == b.keys()
    for pid in a:
        _same_profile(a[pid], b[pid])
    for role in ROLES:
        ra, rb = _ranking(one, role), _ranking(other, role)
        assert [p for p, _ in ra] == [p for p, _ in rb]
        assert all(math.isclose(x, y, rel_tol=1e-6) for (_, x), (_, y) in zip(ra, rb, strict=True))


@pytest.mark.parametrize(("seed", "batch_size"), [(1, None), (2, 64), (3, 7)])
def test_batch_build_equals_one_profile_at_a_time(
    seed: int, batch_size: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if batch_size is not None:  # many batches: the chunk table and scanner grow between them
        monkeypatch.setattr("relcrm.matching._engine._BATCH", batch_size)
    people = _people(seed, 300)
    one = MatchEngine()
    one.index([CandidateProfile.from_person(p, c, today=TODAY) for p, c in people])
    batch = MatchEngine()
    batch.index(people, today=TODAY)
    same_index(one, batch)


def test_batch_build_takes_people_pairs_and_profiles_mixed_and_later_versions_win() -> None:
    people = _people(7, 40)
    renamed = attrs.evolve(people[3][0], headline="Pastry Chef", summary="Baked bread daily.")
    stream: list[object] = [
        people[0][0],  # a bare person
        *people[1:20],
        CandidateProfile.from_person(people[20][0], people[20][1], today=TODAY),
        *people[21:],
        (renamed, None),  # the same id again, later: replaces the first version
    ]
    e = MatchEngine()
    e.index(stream, today=TODAY)  # type: ignore[arg-type]
    assert len(e) == 40
    got = e.profile(e._row_of["p3"])
    _same_profile(got, CandidateProfile.from_person(renamed, None, today=TODAY))
    _same_profile(
        e.profile(e._row_of["p0"]), CandidateProfile.from_person(people[0][0], today=TODAY)
    )
    ref = MatchEngine()
    ref.index(
        [CandidateProfile.from_person(p, c, today=TODAY) for p, c in people[:3]]
        + [CandidateProfile.from_person(renamed, None, today=TODAY)]
        + [CandidateProfile.from_person(p, c, today=TODAY) for p, c in people[4:]]
    )
    for role in ROLES:
        assert [p for p, _ in _ranking(e, role)] == [p for p, _ in _ranking(ref, role)]


def test_a_mention_never_spans_two_people() -> None:
    first = Person(id="a", name="A", summary="I know machine")
    second = Person(id="b", name="B", summary="learning every day")
    e = MatchEngine()
    e.index([first, second], today=TODAY)
    for pid in ("a", "b"):
        profile = e.profile(e._row_of[pid])
        alone = CandidateProfile.from_person(first if pid == "a" else second, today=TODAY)
        assert profile.skills == alone.skills
        assert "machine learning" not in {alias for _, alias in profile.skill_aliases}


# ---------------------------------------------------------------------------------- the scanner

_INDEX = taxonomy.esco_taxonomy()._idx()
#: Multi-word aliases allowed in free text, longest first (runs of three to six words).
LONG_ALIASES = sorted(
    (k for k, a in _INDEX.aliases.items() if a[2] != "-" and k.count(" ") >= 2),
    key=lambda k: (-k.count(" "), k),
)[:2000]
#: Their proper prefixes: runs that start like an alias and stop short.
PREFIXES = sorted(p for p in _INDEX.prefixes if p.count(" ") >= 1)[:2000]
ALIAS_WORDS = sorted({w for key in LONG_ALIASES[:500] for w in key.split()})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(ALIAS_WORDS),
                st.sampled_from(LONG_ALIASES),
                st.sampled_from(PREFIXES),
                st.sampled_from(WORDS),
                st.sampled_from(ALIAS_WORDS).map(str.upper),
                st.sampled_from(ALIAS_WORDS).map(lambda w: w + "s"),
                st.text(alphabet="abc.+# ", max_size=4),
            ),
            max_size=30,
        ).map(" ".join),
        min_size=1,
        max_size=6,
    )
)
def test_scanner_finds_what_extraction_finds_in_each_text(texts: list[str]) -> None:
    scanner = taxonomy.scanner()
    ids: list[int] = []
    starts: list[int] = []
    for text in texts:
        starts.append(len(ids))
        for chunk in text.split():
            ids.extend(scanner.chunk_ids(chunk))
        ids.extend(scanner.chunk_ids(""))
    positions, found = scanner.scan(ids)
    got: list[list[tuple[str, str]]] = [[] for _ in texts]
    for pos, pair in zip(positions, found, strict=True):
        owner = max(i for i, s in enumerate(starts) if s <= pos)
        got[owner].append(pair)
    expected = [taxonomy.mentions_in_tokens(taxonomy.split_tokens(t)) for t in texts]
    assert got == expected


def test_scanner_on_known_phrases() -> None:
    scanner = taxonomy.scanner()
    text = (
        "Machine learning engineer with k8s, Node.js and relational databases; Go and go. "
        "Apply health and safety standards"
    )
    ids = [t for chunk in text.split() for t in scanner.chunk_ids(chunk)]
    positions, found = scanner.scan(ids)
    assert found == taxonomy.mentions(text)
    aliases = [alias for _, alias in found]
    assert aliases[:2] == ["machine learning", "k8s"]
    assert "apply health and safety standards" in aliases
    assert positions == sorted(positions)
    assert scanner.scan([]) == ([], [])


@given(
    st.lists(st.integers(0, 2**40), max_size=300),
    st.lists(st.integers(-5, 2**40), max_size=300),
)
@settings(max_examples=60, deadline=None)
def test_scanner_int_map_finds_what_a_dict_finds(keys: list[int], probes: list[int]) -> None:
    import numpy as np

    from relcrm.matching.taxonomy import _IntMap

    values = list(range(len(keys)))
    table = _IntMap(np, keys, values)
    expected: dict[int, int] = {}
    for k, v in zip(keys, values, strict=True):
        expected.setdefault(k, v)  # the first of equal keys wins
    wanted = np.asarray(probes + keys, dtype=np.int64)
    valid = wanted >= 0
    got = table.get(wanted, valid).tolist()
    assert got == [expected.get(w, -1) if w >= 0 else -1 for w in wanted.tolist()]


def test_scanner_int_map_survives_keys_that_share_a_slot() -> None:
    import numpy as np

    from relcrm.matching.taxonomy import _IntMap

    table = _IntMap(np, [], [])
    assert table.get(np.asarray([1, 2], dtype=np.int64), np.ones(2, bool)).tolist() == [-1, -1]
    # keys that hash to one slot must probe past each other
    small = _IntMap(np, list(range(7)), list(range(7)))
    slots = small._slots(np.arange(5000, dtype=np.int64)).tolist()
    keys = [k for k in range(5000) if slots[k] == slots[0]][:7]
    table = _IntMap(np, keys, [10 + i for i in range(7)])
    assert len(set(table._slots(np.asarray(keys, dtype=np.int64)).tolist())) == 1
    absent = next(k for k in range(5000) if slots[k] == slots[0] and k not in keys)
    wanted = np.asarray([*keys, absent], dtype=np.int64)
    assert table.get(wanted, np.ones(len(wanted), bool)).tolist() == [*range(10, 17), -1]
