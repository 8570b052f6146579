"""Hostile input in every text field and lookup argument, on every storage backend.

Each hostile value (SQL metacharacters, format and placeholder markers, backslashes and quotes,
NUL, blank text, a lone surrogate, bytes where text is expected, JSON nested 10,000 levels deep,
1 MiB of text) goes into:

* every text field of the documents a CRM accepts (``Person``, ``Opening``, and the
  ``RoleProfile`` a match takes), found by walking the attrs classes, nested ones included, so a
  new field is covered without editing this file;
* every text argument of every CRM command and read, found by introspecting :class:`relcrm.CRM`
  (a new one without a case here fails :func:`test_every_text_argument_has_a_case`);
* the free-form mappings: self-identification answers, profile changes, event data.

Each must be stored verbatim (read back equal, and seen unchanged in the timeline, the
candidate's view and the notifications) or refused with a :class:`relcrm.RelcrmError`, never a
raw driver, recursion or Unicode error. After every attempt the database schema is the one the
backend made, and a refused command has written nothing: no record, no event, no outbox row.

One test runs per backend and case; it tries every hostile value, each on fresh data in the same
store, and reports every value that went wrong. Known bugs are listed in :data:`KNOWN_BUGS` and
run as strict expected failures of their own.
"""

from __future__ import annotations

import copy
import enum
import inspect
import itertools
import sqlite3
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import pytest

import relcrm
from relcrm import (
    CRM,
    Actor,
    ActorRole,
    Opening,
    Person,
    RelcrmError,
    SelfIdentification,
    TalentPool,
    ValidationError,
)
from relcrm._validators import non_empty
from relcrm.crm import KINDS
from relcrm.matching import RoleProfile
from relcrm.model import normalise_tag
from relcrm.storage._checks import encode_json

RITA = Actor(ActorRole.RECRUITER, "rita")

# --------------------------------------------------------------------------------------------
# The hostile values
# --------------------------------------------------------------------------------------------


class Kind(enum.Enum):
    """How a hostile value must be treated."""

    TEXT = "valid text every backend must store verbatim"
    LONG = "valid text a backend may store, or refuse for its size"
    BLANK = "valid text; where it must not be empty, refused with a ValidationError"
    UNENCODABLE = "not storable as UTF-8: must be refused"
    WRONG_TYPE = "not text at all: must be refused"


def nested(levels: int, shape: str = "object") -> Any:
    """JSON nested ``levels`` deep: ``{"k": {"k": ...}}`` or ``[[...]]``."""
    value: Any = {} if shape == "object" else []
    for _ in range(levels):
        value = {"k": value} if shape == "object" else [value]
    return value


@attrs.frozen
class Hostile:
    name: str
    value: Any
    kind: Kind
    #: Only where a document or a mapping is accepted (a nested mapping replaces a string).
    documents_only: bool = False


ONE_MIB = 1 << 20
HOSTILE = (
    Hostile("sql_drop", "'; DROP TABLE records; --", Kind.TEXT),
    Hostile("sql_quotes", 'Robert"); DROP TABLE events;-- \'\' "" `x`', Kind.TEXT),
    Hostile("placeholders", "%s %(name)s %% ? ?1 :name $1 {0} {name}", Kind.TEXT),
    Hostile("backslashes", "C:\\temp\\new \\' \\\" \\\\ \\x00 \\u0000 \\N", Kind.TEXT),
    Hostile("nul", "before\x00after", Kind.TEXT),
    Hostile("blank", " \t\n ", Kind.BLANK),
    Hostile("lone_surrogate", "bad \udcff half", Kind.UNENCODABLE),
    Hostile("bytes", b"bytes \xff\xfe", Kind.WRONG_TYPE),
    Hostile("nested_10000", nested(10_000), Kind.WRONG_TYPE, documents_only=True),
    # Last, so that the values tried after it in a store do not read it back again and again.
    Hostile("one_mib", "x" * (ONE_MIB - 3) + "end", Kind.LONG),
)
BY_NAME = {h.name: h for h in HOSTILE}
ARGUMENT_VALUES = tuple(h for h in HOSTILE if not h.documents_only)


@attrs.frozen
class Expect:
    """What must happen: ``stored`` True (stored verbatim), False (refused) or None (either);
    a refusal must be a ``refusal``."""

    stored: bool | None
    refusal: type[RelcrmError] = RelcrmError


STORED = Expect(stored=True)
REFUSED = Expect(stored=False)
EITHER = Expect(stored=None)


def expectation(hostile: Hostile, *, required: bool) -> Expect:
    """What must happen to ``hostile`` in a text field (``required``: must not be empty)."""
    if hostile.kind is Kind.TEXT:
        return STORED
    if hostile.kind is Kind.LONG:
        return EITHER
    if hostile.kind is Kind.BLANK:
        return Expect(stored=False if required else None, refusal=ValidationError)
    return REFUSED


# --------------------------------------------------------------------------------------------
# Backends: a CRM, its schema, and what it holds
# --------------------------------------------------------------------------------------------

BACKENDS = ("memory", "sqlite", "postgresql")

Fingerprint = tuple[frozenset[tuple[str, str, int]], tuple[str, ...], frozenset[str]]


def _server_url(url: str) -> str:
    """A ``postgresql://`` URL without relcrm's own options, as libpq understands it."""
    parts = urlsplit(url)
    own = {"schema", "pool_min", "pool_max", "pool_timeout"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in own]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


#: Every relation of a schema with its columns (type, nullability, default) and, for an index,
#: its definition: reading information_schema instead takes several times longer.
_PG_CATALOG = """
SELECT c.relname, c.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
       CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) ELSE '' END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = %s
ORDER BY 1, 3
"""


class Backend:
    """A CRM on a fresh store, and a side connection that looks at the database directly.

    ``baseline`` is the schema the backend made; it must never change.
    """

    def __init__(
        self, name: str, url: str, crm: CRM, postgres: Any = None, schema_name: str = ""
    ) -> None:
        self.name = name
        self.url = url
        self.crm = crm
        self._worlds = itertools.count()
        self._sqlite: sqlite3.Connection | None = None
        self._postgres = postgres  # a psycopg connection in autocommit mode
        self._schema_name = schema_name
        if name == "sqlite":
            self._sqlite = sqlite3.connect(url.removeprefix("sqlite:///"))
        self.baseline = self.schema()

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return [tuple(r) for r in self._sqlite.execute(sql.format(s="main")).fetchall()]
        s = '"' + self._schema_name.replace('"', '""') + '"'
        return [tuple(r) for r in self._postgres.execute(sql.format(s=s)).fetchall()]

    def schema(self) -> list[tuple[Any, ...]]:
        """Tables, columns, indexes and sequences as the database's catalog describes them
        (nothing for ``memory://``)."""
        if self._sqlite is not None:
            return self._rows("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 1, 2")
        if self._postgres is None:
            return []
        return [tuple(r) for r in self._postgres.execute(_PG_CATALOG, (self._schema_name,))]

    def fingerprint(self) -> Fingerprint:
        """Every record (kind, id, version), every event id in order, every outbox row id."""
        if self._sqlite is None and self._postgres is None:
            store = self.crm.store
            records = frozenset(
                (r.kind, r.id, r.version)
                for kind in KINDS.values()
                for r in store.iter_records(kind)
            )
            events = tuple(e.id for e in store.events())
            outbox = frozenset(row.id for row in store.outbox(status=None))
            return records, events, outbox
        # Ids as stored (the PostgreSQL backend escapes NUL): compared only with each other.
        return (
            frozenset(
                (str(k), str(i), int(v))
                for k, i, v in self._rows("SELECT kind, id, version FROM {s}.records")
            ),
            tuple(str(i) for (i,) in self._rows("SELECT id FROM {s}.events ORDER BY seq")),
            frozenset(str(i) for (i,) in self._rows("SELECT id FROM {s}.outbox")),
        )

    def world(self) -> World:
        """Fresh data for one attempt: a person with an email and a lead candidacy for one
        opening, a second opening, and a talent pool, under ids no other attempt uses."""
        n = next(self._worlds)
        crm = self.crm
        person = crm.add_person(
            {"id": f"per_ada{n}", "name": "Ada", "contacts": [{"value": "ada@example.org"}]},
            actor=RITA,
        )
        opening = crm.add_opening(
            {"id": f"opn_data{n}", "title": "Data Engineer", "owner_id": "rita"}, actor=RITA
        )
        other = crm.add_opening({"id": f"opn_ml{n}", "title": "ML Engineer"}, actor=RITA)
        candidacy = crm.add_candidacy(person.id, opening.id, actor=RITA)
        pool = crm.create_pool(f"Silver medalists {n}", actor=RITA)
        return World(self, person.id, opening.id, other.id, candidacy.id, pool.id)


@attrs.frozen
class World:
    backend: Backend
    person: str
    opening: str
    other_opening: str
    candidacy: str
    pool: str

    @property
    def crm(self) -> CRM:
        return self.backend.crm

    @property
    def me(self) -> Actor:
        """The person, acting for themselves."""
        return Actor(ActorRole.CANDIDATE, self.person)

    def logged(self, *types: str) -> Mapping[str, Any]:
        """The data of the person's latest event of one of ``types``, as a recruiter sees it."""
        return [e for e in self.crm.timeline(self.person) if e.type in types][-1].data


@pytest.fixture(scope="module")
def postgres_side(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """The test server's URL and a connection to it (skips or fails as ``postgres_server``)."""
    try:
        server = str(request.getfixturevalue("postgres_server"))
    except pytest.FixtureLookupError:
        pytest.skip("no postgres_server fixture: the PostgreSQL backend is not available yet")
    import psycopg

    with psycopg.connect(_server_url(server), autocommit=True) as connection:
        yield server, connection


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A CRM on a fresh, empty store (for PostgreSQL: a new schema, dropped afterwards)."""
    name = request.param
    options: dict[str, Any] = {}
    if name == "memory":
        url = "memory://"
    elif name == "sqlite":
        url = f"sqlite:///{tmp_path / 'hostile.db'}"
    else:
        server, connection = request.getfixturevalue("postgres_side")
        schema = f"relcrm_hostile_{uuid.uuid4().hex[:16]}"
        url = _with_schema(server, schema)
        options = {"postgres": connection, "schema_name": schema}
    try:
        crm = relcrm.open(url, notifiers=["memory"], load_entrypoints=False)
    except relcrm.UnknownBackend:
        pytest.skip(f"no storage backend is registered for {url.split(':')[0]}://")
    try:
        with crm:
            backend = Backend(name, url, crm, **options)
            yield backend
            backend.close()
    finally:
        if name == "postgresql":
            from psycopg import sql

            options["postgres"].execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


# --------------------------------------------------------------------------------------------
# Trying a value
# --------------------------------------------------------------------------------------------


def attempt(action: Callable[[], Any]) -> Any:
    """What ``action`` returned, or the relcrm error it raised; any other error fails."""
    try:
        return action()
    except RelcrmError as exc:
        return exc
    except Exception as exc:  # the failure these tests exist to find
        pytest.fail(f"raw {type(exc).__name__} escaped instead of a RelcrmError: {exc!r:.300}")


def attempt_checked(world: World, action: Callable[[], Any], expect: Expect) -> Any:
    """Run ``action`` and check its outcome against ``expect``, the schema and, after a
    refusal, that nothing was written. Returns what it returned, or None when refused."""
    backend = world.backend
    before = backend.fingerprint()
    outcome = attempt(action)
    assert backend.schema() == backend.baseline, "the database schema changed"
    if isinstance(outcome, RelcrmError):
        assert expect.stored is not True, f"refused: {outcome!s:.300}"
        assert isinstance(outcome, expect.refusal), f"refused with {outcome!r:.300}"
        assert backend.fingerprint() == before, "a refused command left something behind"
        return None
    assert expect.stored is not False, f"accepted: {outcome!r:.300}"
    return outcome


Check = Callable[[World, Hostile], None]


@attrs.frozen
class Case:
    """One place hostile input can go: the values it gets, and how to try one."""

    check: Check
    values: tuple[Hostile, ...] = ARGUMENT_VALUES


CASES: dict[str, Case] = {}


def _failures(backend: Backend, case: Case, values: Iterable[Hostile]) -> list[str]:
    """Try each value, on fresh data whenever the one before wrote something; what went wrong."""
    problems = []
    world: World | None = None
    for hostile in values:
        world = world or backend.world()
        before = backend.fingerprint()
        try:
            case.check(world, hostile)
        except (AssertionError, pytest.fail.Exception) as exc:
            problems.append(f"{hostile.name}: {str(exc)[:2000]}")
            world = None
            continue
        if backend.fingerprint() != before:
            world = None
    return problems


# --------------------------------------------------------------------------------------------
# Text fields of documents, found by walking the attrs classes
# --------------------------------------------------------------------------------------------

PERSON_BASE: dict[str, Any] = {
    "id": "per_hostile",
    "name": "Hostile Input",
    "contacts": [{"value": "hostile@example.org"}],
    "experience": [{"title": "Engineer"}],
    "education": [{"institution": "University"}],
    "links": [{"url": "https://example.org"}],
}
OPENING_BASE: dict[str, Any] = {
    "id": "opn_hostile",
    "title": "Hostile Opening",
    "hiring_team": [{"user_id": "hm_1", "role": "hiring_manager"}],
}
ROLE_BASE: dict[str, Any] = {"id": "role_hostile", "title": "Hostile Role"}

#: Text fields whose value must come from a fixed vocabulary.
CONSTRAINED = {(Opening, "pipeline")}

FieldPath = tuple[str | int, ...]


@attrs.frozen
class Site:
    """One text field inside a document: where it is, and what the model does with it."""

    owner: type
    path: FieldPath
    attribute: attrs.Attribute[Any]
    item: bool  # one item of a ``tuple[str, ...]`` field

    @property
    def label(self) -> str:
        text = self.owner.__name__
        for step in self.path:
            text += f"[{step}]" if isinstance(step, int) else f".{step}"
        return text + ("[0]" if self.item else "")

    def expect(self, hostile: Hostile) -> Expect:
        if (self.owner, self.attribute.name) in CONSTRAINED:
            return Expect(stored=False, refusal=ValidationError)
        required = self.attribute.validator is non_empty and not self.item
        return expectation(hostile, required=required)

    def document(self, base: Mapping[str, Any], value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(dict(base))
        node: Any = doc
        for step in self.path[:-1]:
            node = node[step] if isinstance(step, int) else node.setdefault(step, {})
        node[self.path[-1]] = [value] if self.item else value
        return doc

    def read(self, obj: Any) -> Any:
        for step in self.path:
            obj = obj[step] if isinstance(step, int) else getattr(obj, step)
        return obj

    def expected(self, value: str) -> Any:
        """The value the model keeps for ``value`` (tags and skills are normalised)."""
        if not self.item:
            return value
        convert = self.attribute.converter
        return convert((value,)) if callable(convert) else (value,)


def _optional_args(t: Any) -> tuple[Any, ...]:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(t) if a is not type(None))
    return (t,)


def text_sites(
    cls: type, base: Mapping[str, Any], path: FieldPath = (), owner: type | None = None
) -> list[Site]:
    """Every ``str`` and ``tuple[str, ...]`` field of ``cls`` and of the attrs classes in it.

    Nested classes in a tuple are reached through the first item of that list in ``base``, which
    must hold one (so a new nested list fails here until the base document has an example).
    """
    root = owner or cls
    hints = typing.get_type_hints(cls)
    found: list[Site] = []
    for a in attrs.fields(cls):
        t = hints[a.name]
        inner = _optional_args(t)
        if inner == (str,):
            found.append(Site(root, (*path, a.name), a, item=False))
        elif t == tuple[str, ...]:
            found.append(Site(root, (*path, a.name), a, item=True))
        elif len(inner) == 1 and attrs.has(inner[0]):
            found += text_sites(inner[0], base.get(a.name, {}), (*path, a.name), root)
        elif typing.get_origin(t) is tuple and attrs.has(typing.get_args(t)[0]):
            items = base.get(a.name)
            assert items, f"add an example {a.name!r} item to the base document of {root}"
            found += text_sites(typing.get_args(t)[0], items[0], (*path, a.name, 0), root)
    return found


PERSON_SITES = text_sites(Person, PERSON_BASE)
OPENING_SITES = text_sites(Opening, OPENING_BASE)
ROLE_SITES = text_sites(RoleProfile, ROLE_BASE)


def test_the_walk_finds_nested_fields() -> None:
    labels = {s.label for s in PERSON_SITES + OPENING_SITES + ROLE_SITES}
    assert {
        "Person.id",
        "Person.name",
        "Person.contacts[0].value",
        "Person.location.city",
        "Person.experience[0].highlights[0]",
        "Person.preferences.roles[0]",
        "Person.tags[0]",
        "Person.skills[0]",
        "Opening.hiring_team[0].role",
        "Opening.required_skills[0]",
        "Opening.pipeline",
        "RoleProfile.title",
    } <= labels
    assert len(PERSON_SITES) >= 20
    assert len(OPENING_SITES) >= 12


def document_case(
    sites: list[Site],
    base: Mapping[str, Any],
    add: Callable[[World, dict[str, Any]], Any],
    follow: Callable[[World, Any], None],
) -> Case:
    """Hostile text in every field of a document: first in all the fields that may keep it at
    once, then one field at a time in those that must refuse it (and in all of them if the
    document was refused, to tell which). Every stored document is read back field by field,
    then followed through ``follow`` (events, views, notifications)."""
    ids = itertools.count()

    def try_fields(w: World, hostile: Hostile, chosen: list[Site], expect: Expect) -> bool:
        doc = dict(base)
        for site in chosen:
            doc = site.document(doc, hostile.value)
        if all(site.path != ("id",) for site in chosen):
            doc["id"] = f"{doc['id']}_{next(ids)}"  # new in the store
        stored = attempt_checked(w, lambda: add(w, doc), expect)
        if stored is None:
            return False
        for site in chosen:
            assert site.read(stored) == site.expected(hostile.value), f"{site.label} altered"
        follow(w, stored)
        return True

    def check(w: World, hostile: Hostile) -> None:
        problems = []
        expects = {site.label: site.expect(hostile) for site in sites}
        alone = [site for site in sites if expects[site.label].stored is False]
        together = [site for site in sites if expects[site.label].stored is not False]
        if together:
            expect = expects[together[0].label]  # the same for every field that may keep it
            try:
                if not try_fields(w, hostile, together, expect):
                    alone += together
            except (AssertionError, pytest.fail.Exception) as exc:
                problems.append(f"all fields at once: {exc}")
                alone += together
        for site in alone:
            try:
                try_fields(w, hostile, [site], expects[site.label])
            except (AssertionError, pytest.fail.Exception) as exc:
                problems.append(f"{site.label}: {exc}")
        assert not problems, "\n".join(problems)

    return Case(check, HOSTILE)


def _add_person(w: World, doc: dict[str, Any]) -> Person:
    return w.crm.add_person(doc, actor=RITA)


def _follow_person(w: World, person: Person) -> None:
    crm = w.crm
    assert crm.get_person(person.id) == person
    assert crm.load(Person, person.id).version == 1
    [created] = crm.timeline(person.id)
    assert (created.type, created.data["name"]) == ("person.created", person.name)
    [seen] = crm.timeline(person.id, "candidate")
    assert seen.data == {"name": person.name}
    assert crm.candidate_view(person.id).name == person.name
    assert crm.relationship(person.id).person_id == person.id
    candidacy = crm.add_candidacy(person.id, w.opening, actor=RITA)
    assert crm.candidacies(person_id=person.id) == [candidacy]
    if person.email is not None:
        told = crm.notifier("memory").for_recipient(person.id)[-1]
        assert (told.recipient.address, told.data["opening_id"]) == (person.email, w.opening)


def _add_opening(w: World, doc: dict[str, Any]) -> Opening:
    return w.crm.add_opening(doc, actor=RITA)


def _follow_opening(w: World, opening: Opening) -> None:
    crm = w.crm
    assert crm.get_opening(opening.id) == opening
    assert opening in crm.openings()
    candidacy = crm.add_candidacy(w.person, opening.id, actor=RITA)
    assert crm.candidacies(opening_id=opening.id) == [candidacy]
    titles = {v.opening_id: v.opening_title for v in crm.candidate_view(w.person).candidacies}
    assert titles[opening.id] == opening.title
    seen = crm.timeline(w.person, "candidate")[-1]
    assert seen.data["opening_title"] == opening.title
    told = crm.notifier("memory").for_recipient(w.person)[-1]
    assert (told.event_type, told.data["opening_title"]) == ("candidacy.created", opening.title)


def _role_case(w: World, hostile: Hostile) -> None:
    """A role written directly (no opening) is a search: answered, or refused if not text."""
    if hostile.kind is Kind.WRONG_TYPE:
        for site in ROLE_SITES:
            refused = attempt(
                lambda site=site: relcrm.structure(
                    site.document(ROLE_BASE, hostile.value), RoleProfile
                )
            )
            assert isinstance(refused, ValidationError), f"{site.label}: {refused!r:.300}"
        return
    doc = dict(ROLE_BASE)
    for site in ROLE_SITES:
        doc = site.document(doc, hostile.value)
    profile = relcrm.structure(doc, RoleProfile)
    results = attempt_checked(w, lambda: w.crm.match(profile), EITHER)
    if results is not None:
        assert {m.person_id for m in results.matches} <= {p.id for p in w.crm.people()}


def _person_document(command: str) -> Case:
    """``add_people``, ``add_encoded_people`` (encoded as the importer encodes) and ``refer``
    take person documents too (checked on the name)."""

    def add(w: World, doc: dict[str, Any]) -> Person:
        if command == "add_people":
            [person] = w.crm.add_people([doc], actor=RITA)
            return person
        if command == "add_encoded_people":
            made = relcrm.structure(doc, Person)
            text = encode_json(relcrm.serialization.unstructure(made))
            w.crm.add_encoded_people(
                [(made.id, made.name, made.email, made.sources, text)], actor=RITA
            )
            return w.crm.get_person(made.id)
        referral = w.crm.refer(doc, referrer_id="per_bo", opening_id=w.other_opening, actor=RITA)
        return w.crm.get_person(referral.person_id)

    def follow(w: World, person: Person) -> None:
        assert w.crm.get_person(person.id) == person
        assert w.crm.timeline(person.id, "candidate")[0].data == {"name": person.name}

    [name] = [site for site in PERSON_SITES if site.label == "Person.name"]
    return document_case([name], PERSON_BASE, add, follow)


CASES |= {
    "add_person.person": document_case(PERSON_SITES, PERSON_BASE, _add_person, _follow_person),
    "add_opening.opening": document_case(
        OPENING_SITES, OPENING_BASE, _add_opening, _follow_opening
    ),
    "match.role[RoleProfile]": Case(_role_case, HOSTILE),
    "add_people.people[Person.name]": _person_document("add_people"),
    "add_encoded_people.people[Person.name]": _person_document("add_encoded_people"),
    "refer.person[Person.name]": _person_document("refer"),
}


# --------------------------------------------------------------------------------------------
# Text arguments of commands: stored verbatim or refused
# --------------------------------------------------------------------------------------------

Run = Callable[[World, Any], Any]
Read = Callable[[World, Any], list[Any]]


def _archive_note(w: World, _: Any) -> list[Any]:
    reason = w.crm.get_candidacy(w.candidacy).archive_reason
    assert reason is not None
    return [reason.note, w.logged("candidacy.archived", "candidacy.withdrawn")["archive_note"]]


def _follow_up(w: World) -> Any:
    follow_up = w.crm.relationship(w.person).next_follow_up
    assert follow_up is not None
    return follow_up


def _tags(value: str) -> tuple[str, ...]:
    tag = normalise_tag(value)
    return (tag,) if tag else ()


def _stored_as_given(value: str) -> str:
    return value


def text_argument(
    run: Run,
    read: Read,
    *,
    required: bool = False,
    expected: Callable[[str], Any] = _stored_as_given,
    employed: bool = False,
) -> Case:
    """A command argument whose text is stored: how to pass it and where to read it back
    (``employed``: the person must be an employee first)."""

    def check(w: World, hostile: Hostile) -> None:
        if employed:
            w.crm.start_employment(w.person, "Data Engineer", actor=RITA)
        expect = expectation(hostile, required=required)
        outcome = attempt_checked(w, lambda: run(w, hostile.value), expect)
        if outcome is not None:
            want = expected(hostile.value)
            for seen in read(w, outcome):
                assert seen == want, "read back altered"

    return Case(check)


CASES |= {
    "log_touchpoint.summary": text_argument(
        lambda w, v: w.crm.log_touchpoint(w.person, "email", "inbound", v, actor=RITA),
        lambda w, _: [
            w.crm.touchpoints(w.person)[-1].summary,
            w.logged("relationship.touchpoint_logged")["summary"],
        ],
    ),
    "add_note.text": text_argument(
        lambda w, v: w.crm.add_note(w.person, v, actor=RITA),
        lambda w, _: [
            w.crm.notes(w.person)[-1].text,
            w.logged("relationship.note_added")["text"],
        ],
        required=True,
    ),
    "tag.tags": text_argument(
        lambda w, v: w.crm.tag(w.person, v, actor=RITA),
        lambda w, _: [w.crm.get_person(w.person).tags],
        expected=_tags,
    ),
    "assign_owner.owner_id": text_argument(
        lambda w, v: w.crm.assign_owner(w.person, v, actor=RITA),
        lambda w, _: [
            w.crm.get_person(w.person).owner_id,
            w.crm.relationship(w.person).owner_ids[0],
        ],
    ),
    "create_pool.name": text_argument(
        lambda w, v: w.crm.create_pool(v, actor=RITA),
        lambda w, pool: [w.crm.load(TalentPool, pool.id).value.name],
        required=True,
    ),
    "create_pool.description": text_argument(
        lambda w, v: w.crm.create_pool("Pool", description=v, actor=RITA),
        lambda w, pool: [w.crm.load(TalentPool, pool.id).value.description],
    ),
    "grant_consent.purpose": text_argument(
        lambda w, v: w.crm.grant_consent(w.person, v, actor=RITA),
        lambda w, _: [
            w.crm.consent_ledger(w.person)[-1].purpose,
            *w.crm.consents(w.person),
            w.logged("consent.granted")["purpose"],
        ],
        required=True,
    ),
    "withdraw_consent.purpose": text_argument(
        lambda w, v: w.crm.withdraw_consent(w.person, v, actor=RITA),
        lambda w, _: [
            w.crm.consent_ledger(w.person)[-1].purpose,
            w.logged("consent.withdrawn")["purpose"],
        ],
        required=True,
    ),
    "schedule_follow_up.note": text_argument(
        lambda w, v: w.crm.schedule_follow_up(w.person, w.crm.now(), note=v, actor=RITA),
        lambda w, _: [
            _follow_up(w).note,
            w.logged("relationship.follow_up_scheduled")["note"],
        ],
    ),
    "schedule_follow_up.owner_id": text_argument(
        lambda w, v: w.crm.schedule_follow_up(w.person, w.crm.now(), owner_id=v, actor=RITA),
        lambda w, _: [
            _follow_up(w).owner_id,
            w.logged("relationship.follow_up_scheduled")["owner_id"],
        ],
        required=True,
    ),
    "refer.referrer_id": text_argument(
        lambda w, v: w.crm.refer(w.person, referrer_id=v, actor=RITA),
        lambda w, referral: [
            w.crm.referrals(person_id=w.person)[-1].referrer_id,
            *(r.referrer_id for r in w.crm.referrals_by(referral.referrer_id)),
            w.logged("referral.submitted")["referrer_id"],
        ],
        required=True,
    ),
    "refer.note": text_argument(
        lambda w, v: w.crm.refer(w.person, referrer_id="per_bo", note=v, actor=RITA),
        lambda w, _: [
            w.crm.referrals(person_id=w.person)[-1].note,
            w.logged("referral.submitted")["note"],
        ],
    ),
    "start_employment.title": text_argument(
        lambda w, v: w.crm.start_employment(w.person, v, actor=RITA),
        lambda w, _: [
            w.crm.employment(w.person)[-1].title,
            w.logged("employment.started")["title"],
        ],
        required=True,
    ),
    "end_employment.reason": text_argument(
        lambda w, v: w.crm.end_employment(w.person, reason=v, actor=RITA),
        lambda w, _: [
            w.crm.employment(w.person)[-1].departure_reason,
            w.logged("employment.ended")["departure_reason"],
        ],
        employed=True,
    ),
    "add_candidacy.source": text_argument(
        lambda w, v: w.crm.add_candidacy(w.person, w.other_opening, source=v, actor=RITA),
        lambda w, c: [w.crm.get_candidacy(c.id).source, w.logged("candidacy.created")["source"]],
    ),
    "add_candidacy.referrer_id": text_argument(
        lambda w, v: w.crm.add_candidacy(w.person, w.other_opening, referrer_id=v, actor=RITA),
        lambda w, c: [
            w.crm.get_candidacy(c.id).referrer_id,
            w.logged("candidacy.created")["referrer_id"],
        ],
    ),
    "archive.note": text_argument(
        lambda w, v: w.crm.archive(w.candidacy, "we_declined", note=v, actor=RITA),
        _archive_note,
    ),
    "withdraw.note": text_argument(
        lambda w, v: w.crm.withdraw(w.candidacy, note=v, actor=w.me),
        _archive_note,
    ),
    "update_profile.changes[headline]": text_argument(
        lambda w, v: w.crm.update_profile(w.person, {"headline": v}, actor=w.me),
        lambda w, _: [
            w.crm.get_person(w.person).headline,
            w.logged("person.profile_updated")["changes"]["headline"],
        ],
    ),
    "record_self_identification.answers[value]": text_argument(
        lambda w, v: w.crm.record_self_identification(w.person, {"pronouns": v}, actor=w.me),
        lambda w, _: [w.crm.load(SelfIdentification, w.person).value.answers["pronouns"]],
    ),
    "record_self_identification.answers[key]": text_argument(
        lambda w, v: w.crm.record_self_identification(w.person, {v: "yes"}, actor=w.me),
        lambda w, _: [*w.crm.load(SelfIdentification, w.person).value.answers],
    ),
    "Actor.id": text_argument(
        lambda w, v: w.crm.add_note(
            w.person, "Met at a meetup", actor=Actor(ActorRole.RECRUITER, v)
        ),
        lambda w, _: [w.crm.notes(w.person)[-1].author.id, w.crm.timeline(w.person)[-1].actor.id],
        required=True,
    ),
}


# --------------------------------------------------------------------------------------------
# Ids and choices: a command on something that does not exist is refused, a read answers
# --------------------------------------------------------------------------------------------


def refused_command(run: Run) -> Case:
    """A command given a hostile id (of nothing stored) or choice: it must be refused."""

    def check(w: World, hostile: Hostile) -> None:
        attempt_checked(w, lambda: run(w, hostile.value), REFUSED)

    return Case(check)


def answered_read(run: Run, *, empty: bool = True) -> Case:
    """A read given a hostile id or filter: it answers (``empty``: with nothing) or refuses."""

    def check(w: World, hostile: Hostile) -> None:
        answer = attempt_checked(w, lambda: run(w, hostile.value), EITHER)
        if empty and answer is not None:
            assert not answer, f"found something for a hostile value: {answer!r:.300}"

    return Case(check)


CASES |= {
    "add_candidacy.person_id": refused_command(
        lambda w, v: w.crm.add_candidacy(v, w.other_opening, actor=RITA)
    ),
    "add_candidacy.opening_id": refused_command(
        lambda w, v: w.crm.add_candidacy(w.person, v, actor=RITA)
    ),
    "add_candidacy.stage": refused_command(
        lambda w, v: w.crm.add_candidacy(w.person, w.other_opening, stage=v, actor=RITA)
    ),
    "add_note.person_id": refused_command(lambda w, v: w.crm.add_note(v, "SQL", actor=RITA)),
    "add_to_pool.person_id": refused_command(lambda w, v: w.crm.add_to_pool(v, w.pool, actor=RITA)),
    "add_to_pool.pool_id": refused_command(lambda w, v: w.crm.add_to_pool(w.person, v, actor=RITA)),
    "archive.candidacy_id": refused_command(
        lambda w, v: w.crm.archive(v, "we_declined", actor=RITA)
    ),
    "archive.reason": refused_command(lambda w, v: w.crm.archive(w.candidacy, v, actor=RITA)),
    "assign_owner.person_id": refused_command(
        lambda w, v: w.crm.assign_owner(v, "rita", actor=RITA)
    ),
    "confirm_interest.candidacy_id": refused_command(
        lambda w, v: w.crm.confirm_interest(v, actor=w.me)
    ),
    "end_employment.person_id": refused_command(lambda w, v: w.crm.end_employment(v, actor=RITA)),
    "grant_consent.person_id": refused_command(
        lambda w, v: w.crm.grant_consent(v, "news", actor=RITA)
    ),
    "grant_consent.lawful_basis": refused_command(
        lambda w, v: w.crm.grant_consent(w.person, "news", lawful_basis=v, actor=RITA)
    ),
    "log_touchpoint.person_id": refused_command(
        lambda w, v: w.crm.log_touchpoint(v, "email", "inbound", actor=RITA)
    ),
    "log_touchpoint.channel": refused_command(
        lambda w, v: w.crm.log_touchpoint(w.person, v, "inbound", actor=RITA)
    ),
    "log_touchpoint.direction": refused_command(
        lambda w, v: w.crm.log_touchpoint(w.person, "email", v, actor=RITA)
    ),
    "move.candidacy_id": refused_command(lambda w, v: w.crm.move(v, "applied", actor=RITA)),
    "move.to_stage": refused_command(lambda w, v: w.crm.move(w.candidacy, v, actor=RITA)),
    "record_self_identification.person_id": refused_command(
        lambda w, v: w.crm.record_self_identification(
            v, {"pronouns": "she/her"}, actor=Actor(ActorRole.CANDIDATE, v)
        )
    ),
    "refer.person": refused_command(lambda w, v: w.crm.refer(v, referrer_id="per_bo", actor=RITA)),
    "refer.opening_id": refused_command(
        lambda w, v: w.crm.refer(w.person, referrer_id="per_bo", opening_id=v, actor=RITA)
    ),
    "rediscover.opening_id": refused_command(lambda w, v: w.crm.rediscover(v, actor=RITA)),
    "schedule_follow_up.person_id": refused_command(
        lambda w, v: w.crm.schedule_follow_up(v, w.crm.now(), actor=RITA)
    ),
    "set_availability.person_id": refused_command(
        lambda w, v: w.crm.set_availability(v, "open", actor=RITA)
    ),
    "set_availability.availability": refused_command(
        lambda w, v: w.crm.set_availability(w.person, v, actor=RITA)
    ),
    "set_internal_moves.person_id": refused_command(
        lambda w, v: w.crm.set_internal_moves(v, True, actor=RITA)
    ),
    "set_opening_status.opening_id": refused_command(
        lambda w, v: w.crm.set_opening_status(v, "closed", actor=RITA)
    ),
    "set_opening_status.status": refused_command(
        lambda w, v: w.crm.set_opening_status(w.opening, v, actor=RITA)
    ),
    "start_employment.person_id": refused_command(
        lambda w, v: w.crm.start_employment(v, "Analyst", actor=RITA)
    ),
    "tag.person_id": refused_command(lambda w, v: w.crm.tag(v, "silver medalist", actor=RITA)),
    "transition.candidacy_id": refused_command(
        lambda w, v: w.crm.transition(v, "apply", actor=RITA)
    ),
    "transition.name": refused_command(lambda w, v: w.crm.transition(w.candidacy, v, actor=RITA)),
    "update_profile.person_id": refused_command(
        lambda w, v: w.crm.update_profile(v, {"headline": "Engineer"}, actor=RITA)
    ),
    "update_profile.changes[key]": refused_command(
        lambda w, v: w.crm.update_profile(w.person, {v: "x"}, actor=RITA)
    ),
    "withdraw.candidacy_id": refused_command(lambda w, v: w.crm.withdraw(v, actor=w.me)),
    "withdraw_consent.person_id": refused_command(
        lambda w, v: w.crm.withdraw_consent(v, "news", actor=RITA)
    ),
    # Reads
    "candidacies.person_id": answered_read(lambda w, v: w.crm.candidacies(person_id=v)),
    "candidacies.opening_id": answered_read(lambda w, v: w.crm.candidacies(opening_id=v)),
    "candidate_view.person_id": answered_read(lambda w, v: w.crm.candidate_view(v)),
    "consent_ledger.person_id": answered_read(lambda w, v: w.crm.consent_ledger(v)),
    "consents.person_id": answered_read(lambda w, v: w.crm.consents(v)),
    "employment.person_id": answered_read(lambda w, v: w.crm.employment(v)),
    "get_candidacy.candidacy_id": answered_read(lambda w, v: w.crm.get_candidacy(v)),
    "get_opening.opening_id": answered_read(lambda w, v: w.crm.get_opening(v)),
    "get_person.person_id": answered_read(lambda w, v: w.crm.get_person(v)),
    "has_consent.person_id": answered_read(lambda w, v: w.crm.has_consent(v, "news")),
    "has_consent.purpose": answered_read(lambda w, v: w.crm.has_consent(w.person, v)),
    "load.id": answered_read(lambda w, v: w.crm.load(Person, v)),
    "match.role": answered_read(lambda w, v: w.crm.match(v)),
    "match.purpose": answered_read(
        lambda w, v: w.crm.match(w.opening, purpose=v).matches, empty=False
    ),
    "notes.person_id": answered_read(lambda w, v: w.crm.notes(v)),
    "notifier.name": answered_read(lambda w, v: w.crm.notifier(v)),
    "openings.status": answered_read(lambda w, v: w.crm.openings(v)),
    "openings_for.person_id": answered_read(lambda w, v: w.crm.openings_for(v)),
    "outbox.status": answered_read(lambda w, v: w.crm.outbox(v)),
    "pipeline.name": answered_read(lambda w, v: w.crm.pipeline(v)),
    "referrals.person_id": answered_read(lambda w, v: w.crm.referrals(person_id=v)),
    "referrals_by.referrer_id": answered_read(lambda w, v: w.crm.referrals_by(v)),
    "relationship.person_id": answered_read(lambda w, v: w.crm.relationship(v)),
    "timeline.person_id": answered_read(lambda w, v: w.crm.timeline(v)),
    "timeline.viewer": answered_read(lambda w, v: w.crm.timeline(w.person, v)),
    "touchpoints.person_id": answered_read(lambda w, v: w.crm.touchpoints(v)),
    "warmth.person_id": answered_read(lambda w, v: w.crm.warmth(v)),
}


def _text_parameters() -> set[str]:
    """``method.parameter`` for every parameter of a public CRM method that accepts text."""
    import relcrm.matching

    found = set()
    for name, method in inspect.getmembers(CRM, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(method, localns=vars(relcrm.matching))
        for param, hint in hints.items():
            if param != "return" and "str" in str(hint).replace("relcrm.", ""):
                found.add(f"{name}.{param}")
    return found


def test_every_text_argument_has_a_case() -> None:
    covered = {name.split("[")[0] for name in CASES}
    found = _text_parameters()
    assert "log_touchpoint.summary" in found  # the introspection sees through the annotations
    missing = found - covered
    assert not missing, f"add hostile-input cases for {sorted(missing)}"


# --------------------------------------------------------------------------------------------
# Free-form mappings and deeply nested JSON
# --------------------------------------------------------------------------------------------


def deep_mapping(run: Run) -> Case:
    """A command given a mapping nested 10,000 levels deep: refused with a ValidationError."""

    def check(w: World, hostile: Hostile) -> None:
        refused = Expect(stored=False, refusal=ValidationError)
        attempt_checked(w, lambda: run(w, hostile.value), refused)

    shapes = (
        Hostile("nested_object", nested(10_000), Kind.WRONG_TYPE),
        Hostile("nested_array", {"k": nested(10_000, "array")}, Kind.WRONG_TYPE),
    )
    return Case(check, shapes)


CASES |= {
    "record_self_identification.answers[nested value]": deep_mapping(
        lambda w, deep: w.crm.record_self_identification(w.person, {"q": deep}, actor=w.me)
    ),
    "record_self_identification.answers[nested]": deep_mapping(
        lambda w, deep: w.crm.record_self_identification(w.person, deep, actor=w.me)
    ),
    "update_profile.changes[nested]": deep_mapping(
        lambda w, deep: w.crm.update_profile(w.person, deep, actor=RITA)
    ),
    "update_profile.changes[preferences nested]": deep_mapping(
        lambda w, deep: w.crm.update_profile(w.person, {"preferences": deep}, actor=RITA)
    ),
    "update_profile.changes[skills nested]": deep_mapping(
        lambda w, deep: w.crm.update_profile(w.person, {"skills": [deep]}, actor=RITA)
    ),
    "add_person.person[nested]": deep_mapping(lambda w, deep: w.crm.add_person(deep, actor=RITA)),
    "add_opening.opening[nested]": deep_mapping(
        lambda w, deep: w.crm.add_opening(deep, actor=RITA)
    ),
}


def _event_document(data: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "type": "person.created",
        "occurred_at": "2024-03-04T09:30:00+00:00",
        "actor": {"role": "system", "id": "importer"},
        "visibility": "internal",
        "data": data,
    }


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(
            lambda: relcrm.structure(_event_document({"x": nested(10_000)}), relcrm.Event),
            id="event data object",
        ),
        pytest.param(
            lambda: relcrm.structure(_event_document({"x": nested(10_000, "array")}), relcrm.Event),
            id="event data array",
        ),
        pytest.param(lambda: relcrm.structure(nested(10_000), Person), id="person"),
        pytest.param(
            lambda: relcrm.structure(
                {"id": "p", "name": "n", "tags": nested(10_000, "array")}, Person
            ),
            id="person tags",
        ),
        pytest.param(lambda: relcrm.unstructure(nested(10_000)), id="unstructure object"),
        pytest.param(lambda: relcrm.unstructure(nested(10_000, "array")), id="unstructure array"),
    ],
)
def test_deeply_nested_json_at_the_boundary(convert: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError):
        convert()


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_bulk_import_of_deeply_nested_json_files(tmp_path: Path, suffix: str) -> None:
    from relcrm.interchange.bulk import import_people

    path = tmp_path / f"people{suffix}"
    path.write_text('{"basics": ' + "[" * 10_000 + "]" * 10_000 + "}\n", encoding="utf-8")
    with relcrm.open("memory://", notifiers=[], load_entrypoints=False) as crm:
        outcome = attempt(lambda: import_people(crm, path, actor=RITA))
        assert isinstance(outcome, RelcrmError)
        assert "nested too deeply" in str(outcome)
        assert crm.people() == []


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


@attrs.frozen
class KnownBug:
    case: str
    value: str
    reason: str
    backends: tuple[str, ...] = BACKENDS


#: Known bugs: these (case, value, backend) triples must fail until the bug is fixed.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


def _known(case: str, value: str, backend: str) -> bool:
    return any((b.case, b.value) == (case, value) and backend in b.backends for b in KNOWN_BUGS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input(backend: Backend, case: str) -> None:
    values = [h for h in CASES[case].values if not _known(case, h.name, backend.name)]
    problems = _failures(backend, CASES[case], values)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("backend", "case", "value"),
    [
        pytest.param(
            b, bug.case, bug.value, marks=pytest.mark.xfail(strict=True, reason=bug.reason)
        )
        for bug in KNOWN_BUGS
        for b in bug.backends
    ],
    indirect=["backend"],
)
def test_known_bug(backend: Backend, case: str, value: str) -> None:
    problems = _failures(backend, CASES[case], [BY_NAME[value]])
    assert not problems, "\n".join(problems)
