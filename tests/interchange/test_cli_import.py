"""``relcrm import``: progress, a summary line, bad records one per line, exit 1 on reject."""

import json
from pathlib import Path

from click.testing import CliRunner, Result

import relcrm
from relcrm.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write(path: Path, docs: list[object]) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs))
    return path


def people(db: Path) -> int:
    with relcrm.open(f"sqlite:///{db}", notifiers=[]) as crm:
        return len(crm.people())


def test_import_people_into_a_new_database(tmp_path: Path) -> None:
    src = write(
        tmp_path / "p.jsonl",
        [{"basics": {"name": f"P{i}", "email": f"p{i}@x.org"}} for i in range(3)],
    )
    db = tmp_path / "pool.db"
    result = run("import", str(src), "--db", str(db), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "people: read 3, imported 3, duplicates 0" in result.stdout
    assert people(db) == 3
    again = run("import", str(src), "--db", str(db))
    assert "imported 0, duplicates 3" in again.stdout


def test_workers_option(tmp_path: Path) -> None:
    src = write(
        tmp_path / "p.jsonl",
        [{"basics": {"name": f"P{i}", "email": f"p{i}@x.org"}} for i in range(5)],
    )
    db = tmp_path / "pool.db"
    result = run("import", str(src), "--db", str(db), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert people(db) == 5
    bad = run("import", str(src), "--db", str(db), "--workers", "some")
    assert bad.exit_code == 2
    assert "--workers" in bad.output
    assert "'auto' or a whole number" in bad.output


def test_reject_exits_1_and_lists_bad_lines(tmp_path: Path) -> None:
    bad = [{"basics": {"name": "Ok", "email": "ok@x.org"}}]
    bad += [{"basics": {}} for _ in range(25)]
    src = write(tmp_path / "bad.jsonl", bad)
    db = tmp_path / "pool.db"
    result = run("import", str(src), "--db", str(db))
    assert result.exit_code == 1
    assert "REJECTED, nothing written" in result.stdout
    err = result.stderr.splitlines()
    assert f"{src}:2: a person needs a name @ $.basics.name" in err
    assert "... and 5 more bad records" in err
    assert err[-1] == f"relcrm: error: {src} rejected: 25 bad record(s), nothing written"
    assert sum(line.startswith(str(src)) for line in err) == 20
    assert people(db) == 0


def test_skip_imports_the_good_ones(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.jsonl", [{"basics": {"name": "Ok"}}, "{oops"])
    db = tmp_path / "pool.db"
    result = run("import", str(src), "--db", str(db), "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.stdout
    assert f"{src}:2: invalid JSON" in result.stderr


def test_import_openings(tmp_path: Path) -> None:
    src = write(
        tmp_path / "jobs.jsonl", [{"title": "Nurse", "meta": {"canonical": "https://x.org/1"}}]
    )
    db = tmp_path / "pool.db"
    result = run("import", str(src), "--db", str(db), "--kind", "openings")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("openings: read 1, imported 1")


def test_refuses_a_file_that_is_not_a_relcrm_database(tmp_path: Path) -> None:
    src = write(tmp_path / "p.jsonl", [{"basics": {"name": "A"}}])
    other = tmp_path / "other.db"
    other.write_text("not sqlite")
    result = run("import", str(src), "--db", str(other))
    assert result.exit_code == 1
    assert "is not a relcrm database" in result.stderr
