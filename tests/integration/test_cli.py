"""The ``relcrm`` command: the demo, ``plugins`` and ``timeline``, and its one-line errors.

Most tests drive the click command in-process with ``CliRunner``; a few run the real entry point
(``python -m relcrm.cli``) in a subprocess, as a user would.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import relcrm
from relcrm import ActorRole, ArchiveReasonType, Milestone, ReferralStatus, RelationshipStage
from relcrm import _demo as demo_module
from relcrm.cli import cli

IDEAS = (
    "1. Relationships are not disposable",
    "2. Relationships are participatory",
    "3. Relationships require relevance",
    "4. Relationships go beyond any single opening",
)
NOTE_FRAGMENT = "Off the record: would move for a staff-level role"
SRC = str(Path(relcrm.__file__).resolve().parents[1])


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def run_real(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real console entry, in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "relcrm.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("relcrm: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run shared by the read-only tests: the database path and the output."""
    path = tmp_path_factory.mktemp("demo") / "pool.db"
    result = run("demo", "--db", str(path))
    assert result.exit_code == 0, result.output
    return path, result.stdout


def person_id(path: Path, name: str) -> str:
    with relcrm.open(f"sqlite:///{path}", notifiers=[]) as crm:
        (match,) = [p.id for p in crm.people() if p.name == name]
        return match


# ------------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------------


def test_demo_runs_as_a_real_command_in_the_current_directory(tmp_path: Path) -> None:
    done = run_real("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    db = tmp_path / "relcrm-demo.db"
    assert db.is_file()
    out = done.stdout
    assert out.count(f"Database: {db}") == 2  # at the start and at the end
    for idea in IDEAS:
        assert idea in out
    assert f"--db {db} --as candidate" in out.splitlines()[-2]
    with relcrm.open(f"sqlite:///{db}", notifiers=[]) as crm:
        assert len(crm.people()) == 9


def test_demo_output_mentions_the_four_ideas_and_the_preview(demo_db: tuple[Path, str]) -> None:
    path, out = demo_db
    positions = [out.index(idea) for idea in IDEAS]
    assert positions == sorted(positions)
    assert "simple skill overlap" in out
    assert "matching engine is coming" in out
    lines = out.splitlines()
    assert lines[1] == f"Database: {path}"
    assert lines.count(f"Database: {path}") == 2
    assert (
        lines[-2]
        == f"  relcrm timeline {person_id(path, 'Priya Raman')} --db {path} --as candidate"
    )
    assert "Traceback" not in out
    story = [line for line in out.splitlines() if str(path) not in line]
    assert max(len(line) for line in story) <= 90


def test_demo_database_holds_the_whole_story(demo_db: tuple[Path, str]) -> None:
    path, out = demo_db
    with relcrm.open(f"sqlite:///{path}", notifiers=[]) as crm:
        people = {p.name: p for p in crm.people()}
        assert set(people) >= {
            "Priya Raman",
            "Mei Chen",
            "Jonas Lindqvist",
            "Hannah Weber",
            "Lena Novak",
        }
        priya, jonas, hannah, lena = (
            people[n].id for n in ("Priya Raman", "Jonas Lindqvist", "Hannah Weber", "Lena Novak")
        )

        # 1. the silver medalist stays in the pool, warm, with a follow-up
        (pool,) = [p for p in crm.pools() if p.name == "Silver medalists"]
        assert pool.id in crm.relationship(priya).pools
        assert pool.id in crm.relationship(people["Mei Chen"].id).pools
        first = min(crm.candidacies(person_id=priya), key=lambda c: c.created_at or crm.now())
        assert first.stage == "archived"
        assert first.furthest_milestone is Milestone.INTERVIEW
        assert first.archive_reason is not None
        assert first.archive_reason.type is ArchiveReasonType.HIRED_ELSEWHERE
        assert crm.relationship(priya).touchpoint_count == 4
        assert crm.relationship(priya).next_follow_up is not None

        # 2. participatory: availability changes by the candidate, and an internal note
        changes = [e for e in crm.timeline(priya) if e.type == "relationship.availability_changed"]
        assert [e.data["availability"] for e in changes] == ["not_now", "open"]
        assert all(e.actor.role is ActorRole.CANDIDATE for e in changes)
        assert any(NOTE_FRAGMENT in n.text for n in crm.notes(priya))

        # 4. hire -> employee, referral, leaver -> alumni
        assert crm.relationship(jonas).stage is RelationshipStage.EMPLOYEE
        (episode,) = crm.employment(jonas)
        assert episode.current
        assert episode.title == "Platform Engineer"
        (referral,) = crm.referrals_by(jonas)
        assert referral.person_id == lena
        assert referral.status is ReferralStatus.IN_PROCESS
        assert crm.relationship(hannah).stage is RelationshipStage.ALUMNI
        (left,) = crm.employment(hannah)
        assert not left.current

        # the closing counts are read from the store
        events = len(crm.store.events())
        notifications = len(crm.outbox(status=None))
        assert f"people: {len(people)}   events: {events}   notifications: {notifications}" in out
        assert notifications > 0
        assert crm.outbox(status="pending") == []


def test_demo_starts_fresh_by_default_and_keep_adds(tmp_path: Path) -> None:
    db = tmp_path / "pool.db"
    assert run("demo", "--db", str(db)).exit_code == 0
    kept = run("demo", "--db", str(db), "--keep")
    assert kept.exit_code == 0, kept.output
    with relcrm.open(f"sqlite:///{db}", notifiers=[]) as crm:
        assert len(crm.people()) == 18
    fresh = run("demo", "--db", str(db))
    assert fresh.exit_code == 0, fresh.output
    assert "Replaced the earlier demo database" in fresh.stdout
    with relcrm.open(f"sqlite:///{db}", notifiers=[]) as crm:
        assert len(crm.people()) == 9
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


def test_demo_refuses_to_replace_a_file_that_is_not_a_relcrm_database(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.db"
    precious.write_text("not a database, but important")
    result = run("demo", "--db", str(precious))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "not a relcrm database")
    assert precious.read_text() == "not a database, but important"


def test_demo_falls_back_to_a_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo_module.os, "access", lambda *args, **kwargs: False)
    result = run("demo")
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[1]
    path = Path(line.removeprefix("Database: "))
    try:
        assert path.is_file()
        assert path.parent != tmp_path
        assert not (tmp_path / "relcrm-demo.db").exists()
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def test_import_relcrm_does_not_import_click() -> None:
    code = "import sys, relcrm, relcrm._demo; print('click' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# timeline
# ------------------------------------------------------------------------------------------------


def test_candidate_timeline_hides_what_is_internal(demo_db: tuple[Path, str]) -> None:
    path, _ = demo_db
    priya = person_id(path, "Priya Raman")
    mine = run("timeline", priya, "--db", str(path), "--as", "candidate")
    theirs = run("timeline", priya, "--db", str(path), "--as", "recruiter")
    assert mine.exit_code == 0, mine.output
    assert theirs.exit_code == 0, theirs.output
    assert NOTE_FRAGMENT not in mine.stdout
    assert "hired elsewhere" not in mine.stdout
    assert "logged" not in mine.stdout
    assert NOTE_FRAGMENT in theirs.stdout
    assert "hired elsewhere" in theirs.stdout
    assert "You set availability to not now" in mine.stdout
    assert "The candidate set availability to not now" in theirs.stdout
    assert len(mine.stdout.splitlines()) < len(theirs.stdout.splitlines())
    header = mine.stdout.splitlines()[0]
    assert header.startswith(f"Priya Raman ({priya})")


def test_timeline_finds_people_by_name_email_and_url(demo_db: tuple[Path, str]) -> None:
    path, _ = demo_db
    by_id = run("timeline", person_id(path, "Lena Novak"), "--db", str(path))
    by_name = run("timeline", "lena novak", "--db", str(path))
    by_email = run("timeline", "lena.novak@example.com", "--db", f"sqlite:///{path}")
    assert by_id.exit_code == by_name.exit_code == by_email.exit_code == 0
    assert by_id.stdout == by_name.stdout == by_email.stdout
    assert "referred the person for Analytics Engineer" in by_id.stdout


def test_timeline_default_database_is_the_demo_in_the_current_directory(
    demo_db: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = demo_db
    monkeypatch.chdir(tmp_path)
    missing = run("timeline", "Mei Chen")
    assert missing.exit_code == 1
    assert_one_line_error(missing.stderr, "no database at", "relcrm demo")
    shutil.copy(path, tmp_path / "relcrm-demo.db")
    found = run("timeline", "Mei Chen", "--as", "candidate")
    assert found.exit_code == 0, found.output
    assert "Mei Chen" in found.stdout


def test_ambiguous_person_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "pool.db"
    assert run("demo", "--db", str(db)).exit_code == 0
    assert run("demo", "--db", str(db), "--keep").exit_code == 0
    result = run("timeline", "Priya Raman", "--db", str(db))
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "matches 2 people", "give the id")


# ------------------------------------------------------------------------------------------------
# plugins
# ------------------------------------------------------------------------------------------------


def test_plugins_lists_the_builtins_with_their_hooks() -> None:
    result = run("plugins")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "relcrm_register_storage_backends" in lines["relcrm.storage.sqlite"]
    assert "relcrm_register_storage_backends" in lines["relcrm.storage.memory"]
    assert "relcrm_register_notifiers" in lines["relcrm.notifiers"]
    assert "relcrm_register_pipelines" in lines["relcrm.pipelines"]


def test_plugins_json() -> None:
    result = run("plugins", "--json", "--db", "memory://")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    by_name = {p["name"]: p for p in payload["plugins"]}
    assert by_name["relcrm.storage.sqlite"]["hooks"] == ["relcrm_register_storage_backends"]
    assert payload["backend"] == {
        "url": "memory://",
        "scheme": "memory",
        "plugin": "relcrm.storage.memory",
    }


# ------------------------------------------------------------------------------------------------
# errors and version
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("timeline", "Nobody Atall", "--db", "{db}"), 1, "no person"),
        (("timeline", "Priya Raman", "--db", "{missing}"), 1, "no database at"),
        (("timeline", "Priya Raman", "--db", "sqlite:///{missing}"), 1, "no database at"),
        (("timeline", "Priya Raman", "--db", "{db}", "--as", "boss"), 2, "'--as'"),
        (("timeline", "Priya Raman", "--db", "{not_relcrm}"), 1, "not a relcrm database"),
        (("timeline", "Priya Raman", "--db", "nosuch://x"), 1, "no storage backend"),
        (("timeline",), 2, "PERSON"),
        (("frobnicate",), 2, "frobnicate"),
        (("plugins", "--db", "nosuch://x"), 1, "no storage backend"),
        (("demo", "--db", "{missing_dir}"), 1, "does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(
    demo_db: tuple[Path, str], tmp_path: Path, args: tuple[str, ...], code: int, fragment: str
) -> None:
    not_relcrm = tmp_path / "other.db"
    not_relcrm.write_text("hello")
    values = {
        "db": str(demo_db[0]),
        "missing": str(tmp_path / "missing.db"),
        "missing_dir": str(tmp_path / "no" / "such" / "dir.db"),
        "not_relcrm": str(not_relcrm),
    }
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert_one_line_error(result.stderr, fragment)
    assert result.stdout == ""
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database


def test_real_command_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    done = run_real("timeline", "Priya Raman", "--db", str(missing), cwd=tmp_path)
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "no database at", str(missing))
    assert not missing.exists()
    bad = run_real("timeline", "x", "--as", "boss", cwd=tmp_path)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "'--as'", "relcrm timeline --help")


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"relcrm {relcrm.__version__}"


def test_no_arguments_prints_help() -> None:
    result = run()
    assert result.exit_code == 0
    assert "demo" in result.stdout
    assert "timeline" in result.stdout
