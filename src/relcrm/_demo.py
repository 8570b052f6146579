"""The story behind ``relcrm demo``: a small talent pool that walks through the four ideas.

The demo writes a real SQLite talent pool (so ``relcrm timeline`` can read it afterwards) with an
injected clock that moves through about a year, so that warmth decays, check-back dates arrive and
people change stage. Output goes through an ``echo`` callable; this module does not import click
(only :mod:`relcrm.cli` does), so ``import relcrm`` stays light.
"""

import os
import sqlite3
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import attrs

from .crm import CRM
from .crm import open as open_crm
from .events import Event, describe_event
from .exceptions import RelcrmError
from .ids import new_id
from .model import (
    Actor,
    ActorRole,
    Availability,
    ContactPoint,
    Location,
    Opening,
    Person,
    RelationshipStage,
    RemotePolicy,
    Seniority,
)
from .notify.base import Notification
from .notify.memory import MemoryNotifier

__all__ = [
    "DEFAULT_DB_NAME",
    "DemoClock",
    "DemoResult",
    "default_demo_path",
    "is_relcrm_database",
    "prepare_demo_path",
    "run_demo",
    "sqlite_url",
]

DEFAULT_DB_NAME = "relcrm-demo.db"

#: How far back the story starts, so that it ends a little before today.
STORY_DAYS = 400

Echo = Callable[[str], None]
Style = Callable[[str], str]

_WIDTH = 88
_DATE_COLUMN = 14  # "  2025-11-03  "


# ------------------------------------------------------------------------------------------------
# Paths
# ------------------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    """The ``sqlite:///`` URL of a file (absolute, so the URL has four slashes on POSIX)."""
    return f"sqlite:///{quote(os.path.abspath(path))}"


def default_demo_path() -> Path:
    """``./relcrm-demo.db``, or a file in a new temporary directory if the current directory
    is not writable."""
    cwd = Path.cwd()
    if os.access(cwd, os.W_OK | os.X_OK):
        return cwd / DEFAULT_DB_NAME
    return Path(tempfile.mkdtemp(prefix="relcrm-demo-")) / DEFAULT_DB_NAME


def is_relcrm_database(path: Path) -> bool:
    """True if ``path`` is a SQLite file holding relcrm's tables (opened read-only)."""
    try:
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        with _closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except (sqlite3.Error, ValueError, OSError):
        return False
    return {"records", "events", "outbox"} <= {str(r[0]) for r in rows}


class _closing:
    """``contextlib.closing`` for a connection (whose own ``with`` only ends a transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def prepare_demo_path(path: Path, *, fresh: bool) -> str:
    """Check ``path`` can hold the demo; with ``fresh`` remove an earlier demo database there.

    Returns a short sentence saying what happened. Refuses to delete a file that is not a relcrm
    database, so a mistyped ``--db`` cannot destroy someone's data.
    """
    parent = path.parent
    if not parent.is_dir():
        raise RelcrmError(f"the directory {parent} does not exist")
    if path.is_dir():
        raise RelcrmError(
            f"{path} is a directory; give a file name such as {path / DEFAULT_DB_NAME}"
        )
    if not path.exists():
        return "Creating a new database."
    if not fresh:
        if path.stat().st_size and not is_relcrm_database(path):
            raise RelcrmError(f"{path} exists and is not a relcrm database")
        return "Keeping the existing data (--keep); the demo adds its story to it."
    if path.stat().st_size and not is_relcrm_database(path):
        raise RelcrmError(
            f"{path} exists and is not a relcrm database; refusing to replace it "
            "(choose another --db path)"
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        leftover = Path(f"{path}{suffix}")
        if leftover.exists():
            leftover.unlink()
    return "Replaced the earlier demo database (use --keep to add to it instead)."


# ------------------------------------------------------------------------------------------------
# The clock
# ------------------------------------------------------------------------------------------------


class DemoClock:
    """A clock the story moves forward by hand; pass it as ``clock=`` to :func:`relcrm.open`."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("the demo clock needs a timezone-aware start")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: float = 0, hours: float = 0) -> datetime:
        self.now += timedelta(days=days, hours=hours)
        return self.now

    @property
    def today(self) -> date:
        return self.now.date()


def _story_start() -> datetime:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today - timedelta(days=STORY_DAYS)


# ------------------------------------------------------------------------------------------------
# Output helpers
# ------------------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    return text


class _Printer:
    def __init__(self, echo: Echo, strong: Style, clock: DemoClock) -> None:
        self.echo = echo
        self.strong = strong
        self.clock = clock
        self._last_date: date | None = None

    def blank(self) -> None:
        self.echo("")

    def section(self, number: int, title: str, subtitle: str) -> None:
        self.blank()
        heading = f"{number}. {title}"
        self.echo(self.strong(heading))
        self.echo(self.strong("=" * len(heading)))
        for line in textwrap.wrap(subtitle, _WIDTH):
            self.echo(line)
        self.blank()
        self._last_date = None

    def step(self, text: str) -> None:
        """A dated story step; the date is shown when it differs from the previous step's."""
        today = self.clock.today
        label = today.isoformat() if today != self._last_date else ""
        self._last_date = today
        self.wrapped(text, f"  {label:<10}  ", " " * _DATE_COLUMN)

    def detail(self, text: str) -> None:
        """A fact indented under the steps."""
        self.wrapped(text, " " * _DATE_COLUMN, " " * _DATE_COLUMN)

    def line(self, text: str, indent: int = 2, hanging: int = 4) -> None:
        self.wrapped(text, " " * indent, " " * (indent + hanging))

    def wrapped(self, text: str, first: str, rest: str) -> None:
        lines = textwrap.wrap(
            text,
            _WIDTH,
            initial_indent=first,
            subsequent_indent=rest,
            break_on_hyphens=False,
        )
        for line in lines or [first.rstrip()]:
            self.echo(line)


def _bar(value: float) -> str:
    filled = round(value * 10)
    word = "warm" if value >= 0.66 else "cooling" if value >= 0.33 else "cold"
    return f"{value:.2f} [{'#' * filled}{'-' * (10 - filled)}] {word}"


def _humanise(value: str) -> str:
    return value.replace("_", " ")


# ------------------------------------------------------------------------------------------------
# The cast
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class _Someone:
    key: str
    name: str
    city: str
    headline: str
    skills: tuple[str, ...]
    source: str


_CAST = (
    _Someone(
        "priya",
        "Priya Raman",
        "Leeds",
        "Data Engineer at Quillon Retail",
        ("Python", "SQL", "Spark", "Airflow", "dbt", "Kafka"),
        "careers site",
    ),
    _Someone(
        "mei",
        "Mei Chen",
        "Manchester",
        "Data Analyst at Harbourline Insurance",
        ("SQL", "Python", "dbt", "Tableau", "Statistics"),
        "careers site",
    ),
    _Someone(
        "jonas",
        "Jonas Lindqvist",
        "Manchester",
        "Backend Engineer at Copperleaf Games",
        ("Go", "Kubernetes", "PostgreSQL", "Python", "Terraform"),
        "meetup: Manchester Gophers",
    ),
    _Someone(
        "tomas",
        "Tomas Herrera",
        "Sheffield",
        "BI Developer at Northmoor Health",
        ("SQL", "Looker", "Power BI", "Excel"),
        "sourced on LinkedIn",
    ),
    _Someone(
        "samuel",
        "Samuel Osei",
        "Leeds",
        "Software Engineer at Tessellate",
        ("Scala", "Spark", "Kafka", "Java"),
        "sourced on GitHub",
    ),
    _Someone(
        "aisha",
        "Aisha Bello",
        "Manchester",
        "Product Designer at Brightpath",
        ("Figma", "User Research", "Prototyping"),
        "careers site",
    ),
    _Someone(
        "rafael",
        "Rafael Souza",
        "Liverpool",
        "Frontend Engineer at Oakbridge",
        ("TypeScript", "React", "CSS", "Accessibility"),
        "event: Northern Frontend Day",
    ),
    _Someone(
        "hannah",
        "Hannah Weber",
        "Manchester",
        "Customer Success Lead at Larkspur Labs",
        ("Customer Success", "Onboarding", "SQL"),
        "employee",
    ),
)

_RECRUITER_NAMES = {"maya": "Maya Okafor"}


def _person(who: _Someone) -> Person:
    email = who.name.lower().replace(" ", ".") + "@example.com"
    return Person(
        id=new_id("per"),
        name=who.name,
        contacts=(ContactPoint(email),),
        location=Location(city=who.city, country_code="GB"),
        headline=who.headline,
        skills=who.skills,
        sources=(who.source,),
        owner_id="maya",
    )


def _opening(
    title: str,
    required: Sequence[str],
    *,
    nice: Sequence[str] = (),
    seniority: Seniority = Seniority.MID,
    description: str = "",
) -> Opening:
    return Opening(
        id=new_id("opn"),
        title=title,
        description=description,
        required_skills=tuple(required),
        nice_to_have_skills=tuple(nice),
        seniority=seniority,
        location=Location(city="Manchester", country_code="GB"),
        remote=RemotePolicy.HYBRID,
        owner_id="maya",
    )


# ------------------------------------------------------------------------------------------------
# The story
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class DemoResult:
    """What the demo left behind (used by the CLI's closing hint and by tests)."""

    path: Path
    url: str
    people: dict[str, str]  # cast key -> person id
    silver_pool_id: str
    people_count: int
    event_count: int
    notification_count: int


class _Story:
    def __init__(self, crm: CRM, clock: DemoClock, out: _Printer) -> None:
        self.crm = crm
        self.clock = clock
        self.out = out
        self.maya = Actor(ActorRole.RECRUITER, "maya")
        self.ids: dict[str, str] = {}
        self.names: dict[str, str] = {}
        notifier = crm.notifier("memory")
        if not isinstance(notifier, MemoryNotifier):  # pragma: no cover - configured below
            raise RelcrmError("the demo needs the memory notifier")
        self.notifier = notifier

    # -- helpers ---------------------------------------------------------------------------------

    def me(self, key: str) -> Actor:
        return Actor(ActorRole.CANDIDATE, self.ids[key])

    def stage(self, key: str) -> RelationshipStage:
        return self.crm.relationship(self.ids[key]).stage

    def warmth(self, key: str) -> float:
        return self.crm.warmth(self.ids[key])

    def display(self, role: ActorRole, id: str, address: str | None) -> str:
        if role is ActorRole.RECRUITER:
            return f"{_RECRUITER_NAMES.get(id, id)} (recruiter)"
        name = self.names.get(id, id)
        if role is ActorRole.REFERRER:
            return f"{name} (referrer)"
        return f"{name} <{address}> (candidate)" if address else f"{name} (candidate)"

    def show_notifications(self, sent: Sequence[Notification]) -> None:
        groups: dict[tuple[ActorRole, str], list[Notification]] = {}
        for n in sent:
            groups.setdefault((n.recipient.role, n.recipient.id), []).append(n)
        for items in groups.values():
            first = items[0].recipient
            self.out.line(self.display(first.role, first.id, first.address) + ":", indent=4)
            for n in items:
                self.out.line(f"- {n.subject}", indent=6, hanging=2)

    def pool_members(self, pool_id: str) -> list[str]:
        return [p.name for p in self.crm.people() if pool_id in self.crm.relationship(p.id).pools]

    # -- the scene -------------------------------------------------------------------------------

    def setting(self) -> None:
        crm, maya = self.crm, self.maya
        for who in _CAST:
            person = crm.add_person(_person(who), actor=maya)
            self.ids[who.key] = person.id
            self.names[person.id] = person.name
        crm.start_employment(
            self.ids["hannah"],
            "Customer Success Lead",
            actor=maya,
            started_on=self.clock.today - timedelta(days=4 * 365 + 200),
        )
        # Last year's Data Analyst search left one silver medalist: Mei.
        analyst = crm.add_opening(
            _opening("Data Analyst", ["SQL", "Python", "Tableau"]), actor=maya
        )
        self.clock.advance(days=1)
        mei = crm.add_candidacy(self.ids["mei"], analyst.id, actor=self.me("mei"))
        self.clock.advance(days=3)
        crm.move(mei.id, "screening", actor=maya)
        self.clock.advance(days=6)
        crm.move(mei.id, "interview", actor=maya)
        self.clock.advance(days=10)
        crm.archive(
            mei.id,
            "we_declined",
            actor=maya,
            note="Close second: excellent SQL, wants more stakeholder work. Call her for the "
            "next analytics role.",
        )
        crm.set_opening_status(analyst.id, "filled", actor=maya)
        self.silver = crm.create_pool(
            "Silver medalists",
            actor=maya,
            description="Finalists we would hire next time",
        )
        crm.add_to_pool(self.ids["mei"], self.silver.id, actor=maya)
        self.senior_de = crm.add_opening(
            _opening(
                "Senior Data Engineer",
                ["Python", "SQL", "Spark", "Airflow"],
                nice=["dbt", "Kafka"],
                seniority=Seniority.SENIOR,
            ),
            actor=maya,
        )
        self.out.line(
            "The scene: Larkspur Labs, a fictional analytics company. Recruiter "
            f"{_RECRUITER_NAMES['maya']} (user id 'maya') looks after a talent pool of "
            f"{len(_CAST)} people. The story runs on a simulated clock over about a year; "
            "the dates on the left are story dates.",
            indent=0,
            hanging=0,
        )

    # -- 1 ---------------------------------------------------------------------------------------

    def idea_one(self) -> None:
        crm, maya, out, clock = self.crm, self.maya, self.out, self.clock
        out.section(
            1,
            "Relationships are not disposable",
            "A finalist who does not get the job stays in the pool, and the relationship is "
            "kept warm until the timing is right.",
        )
        priya = self.ids["priya"]
        clock.advance(days=2)
        before = self.stage("priya")
        c = crm.add_candidacy(priya, self.senior_de.id, actor=self.me("priya"), source="careers")
        out.step("Priya Raman applies for Senior Data Engineer on the careers site.")
        out.detail(f"Relationship stage: {before.value} -> {self.stage('priya').value}")
        clock.advance(days=3)
        crm.move(c.id, "screening", actor=maya)
        crm.log_touchpoint(
            priya, "phone", "outbound", "Screening call: strong on Spark and Airflow", actor=maya
        )
        out.step("Maya moves her to screening and logs the screening call.")
        clock.advance(days=8)
        crm.move(c.id, "interview", actor=maya)
        crm.log_touchpoint(priya, "meeting", "outbound", "Final-round panel", actor=maya)
        out.step("She reaches the final round: a panel interview.")
        clock.advance(days=12)
        before = self.stage("priya")
        crm.archive(
            c.id,
            "hired_elsewhere",
            actor=maya,
            note="Accepted an offer from Fernhill Bank two days before our decision. "
            "Would have been our hire.",
        )
        out.step(
            "Priya accepts an offer elsewhere. Maya archives the candidacy with the reason "
            "'hired_elsewhere' and an internal note."
        )
        out.detail(f"Relationship stage: {before.value} -> {self.stage('priya').value}")
        out.detail(f"Warmth: {_bar(self.warmth('priya'))}")
        crm.update_profile(
            priya,
            {"headline": "Senior Data Engineer at Fernhill Bank"},
            actor=self.me("priya"),
        )
        out.step("Priya updates her own profile: 'Senior Data Engineer at Fernhill Bank'.")
        clock.advance(days=150)
        out.blank()
        out.line("... five months of silence ...")
        out.blank()
        cold = self.warmth("priya")
        out.step(f"Warmth has decayed with the silence: {_bar(cold)}")
        crm.log_touchpoint(
            priya,
            "email",
            "outbound",
            "Congratulations on the new role; happy to stay in touch",
            actor=maya,
        )
        clock.advance(hours=5)
        crm.log_touchpoint(
            priya,
            "email",
            "inbound",
            "Thanks! Settling in, let's talk later in the year",
            actor=maya,
        )
        out.step("Maya emails her; Priya replies the same day. Both touchpoints are logged.")
        out.detail(f"Warmth: {cold:.2f} -> {_bar(self.warmth('priya'))}")
        due = clock.now + timedelta(days=90)
        crm.schedule_follow_up(priya, due, actor=maya, note="Check in after six months at Fernhill")
        out.detail(f"Next follow-up: {due.date().isoformat()} (check in after six months)")
        crm.add_to_pool(priya, self.silver.id, actor=maya)
        members = self.pool_members(self.silver.id)
        out.detail(f"Pool 'Silver medalists': {', '.join(members)}")

    # -- 2 ---------------------------------------------------------------------------------------

    def idea_two(self) -> None:
        crm, maya, out, clock = self.crm, self.maya, self.out, self.clock
        out.section(
            2,
            "Relationships are participatory",
            "Candidates act on their own relationship too. Every change is an event with an "
            "actor; each side is told what the other did and sees only what is meant for it.",
        )
        priya = self.ids["priya"]
        mark = len(self.notifier.sent)
        clock.advance(days=1)
        back = clock.today + timedelta(days=120)
        crm.set_availability(priya, "not_now", check_back_on=back, actor=self.me("priya"))
        out.step(f'Priya, in the candidate portal: "not now, check back on {back.isoformat()}".')
        self.note = (
            "Off the record: would move for a staff-level role with streaming work; "
            "current team is being reorganised."
        )
        crm.add_note(priya, self.note, actor=maya)
        crm.schedule_follow_up(
            priya,
            datetime.combine(back, clock.now.timetz()),
            actor=maya,
            note="Priya's check-back date",
        )
        out.step("Maya adds an internal note and moves her follow-up to the check-back date.")
        clock.advance(days=120)
        crm.set_availability(priya, Availability.OPEN, actor=self.me("priya"))
        out.step('The check-back date arrives; Priya sets her availability to "open".')
        clock.advance(days=1)
        self.staff_de = crm.add_opening(
            _opening(
                "Staff Data Engineer",
                ["Python", "Kafka", "Spark", "Data Modelling"],
                seniority=Seniority.LEAD,
                description="Lead the streaming platform.",
            ),
            actor=maya,
        )
        c = crm.add_candidacy(priya, self.staff_de.id, actor=maya, source="silver medalists")
        out.step("Maya invites her to a new opening, Staff Data Engineer.")
        clock.advance(days=1)
        crm.confirm_interest(c.id, actor=self.me("priya"))
        out.step("Priya confirms her interest.")
        clock.advance(days=4)
        crm.move(c.id, "screening", actor=maya)
        out.step("Maya moves her to screening.")

        out.blank()
        out.line('Who was told what (crm.notifier("memory").sent):')
        self.show_notifications(self.notifier.sent[mark:])

        view = crm.candidate_view(priya)
        out.blank()
        out.line(
            "What Priya sees in her portal (crm.candidate_view): "
            f"availability {view.availability.value}"
        )
        for cv in view.candidacies:
            actions = ", ".join(_humanise(a) for a in cv.actions)
            can = f" (she can: {actions})" if actions else ""
            out.line(f"{cv.opening_title}: {cv.stage}{can}", indent=4)
        general = ", ".join(_humanise(a) for a in view.actions)
        out.line(f"She can also: {general}", indent=4)

        me = Actor(ActorRole.CANDIDATE, priya)
        mine = crm.timeline(priya, me)
        theirs = crm.timeline(priya, ActorRole.RECRUITER)
        out.blank()
        out.line(f"Priya's timeline as she sees it ({len(mine)} events):")
        self.show_timeline(mine, me)
        shared = {e.id for e in mine}
        out.blank()
        out.line(
            f"Priya's timeline as recruiters see it ({len(theirs)} events; * = internal only):"
        )
        self.show_timeline(theirs, Actor(ActorRole.RECRUITER, "recruiter"), shared)
        out.blank()
        out.line(
            "The internal note, the touchpoints and the archive reason (hired elsewhere) are "
            "only in the recruiters' view (*); Priya sees her first candidacy simply as 'Closed'.",
            hanging=0,
        )

    def show_timeline(
        self, events: Iterable[Event], viewer: Actor, shared: set[str] | None = None
    ) -> None:
        for e in events:
            mark = "*" if shared is not None and e.id not in shared else " "
            when = e.occurred_at.astimezone(UTC).date().isoformat()
            self.out.wrapped(describe_event(e, viewer), f"   {mark}{when}  ", " " * 16)

    # -- 3 ---------------------------------------------------------------------------------------

    def idea_three(self) -> None:
        crm, maya, out, clock = self.crm, self.maya, self.out, self.clock
        out.section(
            3,
            "Relationships require relevance",
            "People who did not make the cut are matched again to new openings, including "
            "roles that did not exist when they first met the organisation.",
        )
        clock.advance(days=3)
        opening = crm.add_opening(
            _opening("Analytics Engineer", ["SQL", "dbt", "Python", "Looker"]),
            actor=maya,
        )
        self.analytics = opening
        needs = ", ".join(opening.required_skills)
        out.step(f"A role that did not exist a year ago opens: Analytics Engineer ({needs}).")
        out.blank()
        out.line("Preview (simple skill overlap; the explainable matching engine is coming):")
        silver = set(self.pool_members_ids(self.silver.id))
        required = set(opening.required_skills)
        rows = []
        for p in crm.people():
            overlap = [s for s in opening.required_skills if s in set(p.skills)]
            if not overlap:
                continue
            rows.append((p.id not in silver, -len(overlap), p.name, p, overlap))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        for not_silver, _, name, p, overlap in rows[:5]:
            label = "silver medalist" if not not_silver else self.stage_of(p.id)
            out.line(
                f"{name:<16}  {label:<16}  {len(overlap)} of {len(required)}: "
                + ", ".join(overlap),
                indent=4,
            )
            busy = [
                crm.get_opening(c.opening_id).title
                for c in crm.candidacies(person_id=p.id)
                if c.stage not in ("archived", "hired")
            ]
            if busy:
                out.line(f"(already in process for {', '.join(busy)})", indent=22)

    def pool_members_ids(self, pool_id: str) -> list[str]:
        return [p.id for p in self.crm.people() if pool_id in self.crm.relationship(p.id).pools]

    def stage_of(self, person_id: str) -> str:
        return self.crm.relationship(person_id).stage.value

    # -- 4 ---------------------------------------------------------------------------------------

    def idea_four(self) -> None:
        crm, maya, out, clock = self.crm, self.maya, self.out, self.clock
        out.section(
            4,
            "Relationships go beyond any single opening",
            "One system for applicants and relationships: hires become employees, employees "
            "refer people, leavers become alumni. The pool is the asset.",
        )
        jonas = self.ids["jonas"]
        clock.advance(days=2)
        platform = crm.add_opening(
            _opening("Platform Engineer", ["Go", "Kubernetes", "Terraform"]), actor=maya
        )
        c = crm.add_candidacy(jonas, platform.id, actor=self.me("jonas"), source="careers")
        out.step("Jonas Lindqvist, met at a meetup last year, applies for Platform Engineer.")
        for days, stage in ((3, "screening"), (7, "interview"), (9, "offer")):
            clock.advance(days=days)
            crm.move(c.id, stage, actor=maya)
        out.step("Screening, interviews and an offer follow over three weeks.")
        before = self.stage("jonas")
        clock.advance(days=3)
        crm.move(c.id, "hired", actor=maya)
        (episode,) = crm.employment(jonas)
        out.step("Jonas accepts and is hired.")
        out.detail(
            f"His employment starts automatically: {episode.title}, "
            f"from {episode.started_on.isoformat()}"
        )
        out.detail(f"Relationship stage: {before.value} -> {self.stage('jonas').value}")

        clock.advance(days=14)
        referrer = Actor(ActorRole.REFERRER, jonas)
        lena = Person(
            id=new_id("per"),
            name="Lena Novak",
            contacts=(ContactPoint("lena.novak@example.com"),),
            location=Location(city="Manchester", country_code="GB"),
            headline="Analytics Engineer at Copperleaf Games",
            skills=("SQL", "dbt", "Python", "Looker", "Snowflake"),
            sources=("referral",),
            owner_id="maya",
        )
        referral = crm.refer(
            lena,
            referrer_id=jonas,
            actor=referrer,
            opening_id=self.analytics.id,
            note="Worked with her at Copperleaf; the best dbt person I know.",
        )
        self.ids["lena"] = lena.id
        self.names[lena.id] = lena.name
        out.step(
            "Jonas, now an employee, refers his former colleague Lena Novak for Analytics Engineer."
        )
        if referral.candidacy_id is None:  # pragma: no cover - refer() with an opening
            raise RelcrmError("the referral did not start a candidacy")
        mark = len(self.notifier.sent)
        for days, stage in ((1, "applied"), (3, "screening"), (6, "interview")):
            clock.advance(days=days)
            crm.move(referral.candidacy_id, stage, actor=maya)
        out.step("Maya moves Lena on: application, screening, interview.")
        status = crm.referrals_by(jonas)[0].status.value
        out.detail(f"Referral status: {_humanise(status)}")
        out.blank()
        out.line("Who was told what:")
        self.show_notifications(self.notifier.sent[mark:])
        out.blank()

        hannah = self.ids["hannah"]
        clock.advance(days=4)
        (job,) = crm.employment(hannah)
        before = self.stage("hannah")
        crm.end_employment(
            hannah, actor=maya, reason="Moving abroad with her family", rehire_eligible=True
        )
        out.step(f"Hannah Weber, {job.title} since {job.started_on.year}, leaves to move abroad.")
        out.detail(
            f"Relationship stage: {before.value} -> {self.stage('hannah').value} "
            "(departure reason and rehire eligibility stay internal)"
        )

    # -- the end ---------------------------------------------------------------------------------

    def summary(self) -> tuple[int, int, int]:
        crm, out = self.crm, self.out
        people = crm.people()
        stages: dict[str, int] = {}
        for p in people:
            s = crm.relationship(p.id).stage.value
            stages[s] = stages.get(s, 0) + 1
        events = len(crm.store.events())
        notifications = len(crm.outbox(status=None))
        out.blank()
        heading = "What is in the database now"
        out.echo(out.strong(heading))
        out.echo(out.strong("=" * len(heading)))
        out.line(f"people: {len(people)}   events: {events}   notifications: {notifications}")
        order = [s.value for s in RelationshipStage]
        out.line(
            "by relationship stage: " + ", ".join(f"{s} {stages[s]}" for s in order if s in stages)
        )
        return len(people), events, notifications


def run_demo(
    path: Path,
    *,
    echo: Echo,
    strong: Style = _plain,
    start: datetime | None = None,
    note: str = "",
) -> DemoResult:
    """Write the demo talent pool to ``path`` and tell its story through ``echo``.

    ``strong`` styles headings (the CLI makes them bold); ``start`` fixes the story's first
    day (default: about 400 days ago, so it ends before today); ``note`` is printed under the
    database path (what happened to an earlier file).
    """
    path = Path(os.path.abspath(path))
    url = sqlite_url(path)
    clock = DemoClock(start or _story_start())
    out = _Printer(echo, strong, clock)
    title = "relcrm demo: the four ideas, in a small talent pool"
    echo(strong(title))
    echo(f"Database: {path}")
    if note:
        echo(note)
    echo("")
    with open_crm(url, notifiers=["memory"], clock=clock) as crm:
        story = _Story(crm, clock, out)
        story.setting()
        story.idea_one()
        story.idea_two()
        story.idea_three()
        story.idea_four()
        people, events, notifications = story.summary()
        result = DemoResult(
            path=path,
            url=url,
            people=dict(story.ids),
            silver_pool_id=story.silver.id,
            people_count=people,
            event_count=events,
            notification_count=notifications,
        )
    out.blank()
    echo(f"Database: {path}")
    return result
