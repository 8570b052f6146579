"""The ``relcrm`` command: ``demo``, ``plugins``, ``timeline``, ``import`` and ``migrate``.

Every error relcrm raises on purpose (and file-system errors, and usage errors) ends the command
with one line on standard error, ``relcrm: error: ...``, and exit status 1 (2 for usage errors);
never a traceback. This is the only module of relcrm that imports click.
"""

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Literal, NoReturn, cast
from urllib.parse import unquote

import click

from . import __version__
from . import _demo as demo_story
from .crm import CRM
from .crm import open as open_crm
from .events import describe_event
from .exceptions import RelcrmError, ValidationError
from .model import Actor, ActorRole, Person
from .plugins import collect_registrations, make_plugin_manager, plugin_infos
from .storage._migrations import MigrationReport

__all__ = ["cli", "main"]

PROG = "relcrm"


# ------------------------------------------------------------------------------------------------
# Errors: one line, no traceback
# ------------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = [e.removesuffix(" @ $") for e in exc.errors]
        return _one_line(f"invalid {exc.type_name}: {'; '.join(problems)}")
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return _one_line(f"{exc.strerror}{where}")
    return _one_line(str(exc)) or type(exc).__name__


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """A group whose ``main`` turns every expected error into one line on stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        options = dict(extra, windows_expand_args=windows_expand_args)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **options)
        try:
            rv = super().main(
                args, prog_name or PROG, complete_var, standalone_mode=False, **options
            )
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(_one_line(exc.format_message()) + hint, exc.exit_code)
        except click.ClickException as exc:
            _fail(_one_line(exc.format_message()), exc.exit_code)
        except click.Abort:
            _fail("interrupted", 130)
        except (RelcrmError, OSError) as exc:
            _fail(_describe_error(exc), 1)
        sys.exit(rv if isinstance(rv, int) else 0)


# ------------------------------------------------------------------------------------------------
# Locating a database
# ------------------------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    return Path(unquote(url[len(prefix) :].partition("?")[0]))


def _existing_db(value: str) -> str:
    """The storage URL for ``value`` (a path or a URL), refusing a SQLite file that does not
    exist or is not a relcrm database, so that reading never creates a database by mistake."""
    if "://" in value:
        url = value
        path = _sqlite_path(value)
    else:
        path = Path(value).expanduser()
        url = demo_story.sqlite_url(path)
    if path is not None:
        if not path.exists():
            hint = (
                " (run 'relcrm demo' to make one)"
                if path.name == demo_story.DEFAULT_DB_NAME
                else ""
            )
            raise click.ClickException(f"no database at {path}{hint}")
        if path.is_dir():
            raise click.ClickException(f"{path} is a directory, not a database")
        if not demo_story.is_relcrm_database(path):
            raise click.ClickException(f"{path} is not a relcrm database")
    return url


def _find_person(crm: CRM, query: str) -> Person:
    """The person whose id, exact name or email is ``query``."""
    people = crm.people()
    for p in people:
        if p.id == query:
            return p
    wanted = " ".join(query.split()).casefold()
    matches = [
        p
        for p in people
        if " ".join(p.name.split()).casefold() == wanted
        or any(c.value.casefold() == wanted for c in p.contacts)
    ]
    if not matches:
        raise click.ClickException(
            f"no person with the id, name or email {query!r} in {crm.store.url}"
        )
    if len(matches) > 1:
        found = ", ".join(f"{p.id} ({p.email or p.name})" for p in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise click.ClickException(
            f"{query!r} matches {len(matches)} people: {found}{more}; give the id instead"
        )
    return matches[0]


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------


@click.group(name=PROG, cls=_Group, invoke_without_command=True)
@click.version_option(
    __version__, "--version", "-V", prog_name=PROG, message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """relcrm: candidate relationship management for recruiting.

    Start with 'relcrm demo', then read a timeline with 'relcrm timeline'.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command()
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"SQLite file to write [default: ./{demo_story.DEFAULT_DB_NAME}, or a temporary "
    "directory if the current one is not writable].",
)
@click.option(
    "--fresh/--keep",
    default=True,
    show_default=True,
    help="Replace an earlier demo database at that path, or add the story to it.",
)
def demo(db: Path | None, fresh: bool) -> None:
    """Build a small talent pool and walk through relcrm's four ideas."""
    path = Path(os.path.abspath(db if db is not None else demo_story.default_demo_path()))
    note = demo_story.prepare_demo_path(path, fresh=fresh)
    result = demo_story.run_demo(
        path, echo=click.echo, strong=lambda s: click.style(s, bold=True), note=note
    )
    priya = result.people["priya"]
    db_arg = _quote_arg(str(path))
    click.echo("")
    click.echo("Next, read Priya's timeline from both sides:")
    click.echo(f"  {PROG} timeline {priya} --db {db_arg} --as candidate")
    click.echo(f"  {PROG} timeline {priya} --db {db_arg} --as recruiter")


def _quote_arg(value: str) -> str:
    if value and all(c.isalnum() or c in "/._-+:@%=," for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


@cli.command()
@click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help="Also say which plugin serves this storage URL (or SQLite path).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def plugins(db: str | None, as_json: bool) -> None:
    """List the loaded plugins and the hooks each implements."""
    pm = make_plugin_manager()
    infos = plugin_infos(pm)
    backend: dict[str, str] | None = None
    if db is not None:
        url = db if "://" in db else demo_story.sqlite_url(Path(db).expanduser())
        scheme = url.split(":", 1)[0].lower()
        backends = collect_registrations(pm, "relcrm_register_storage_backends", "storage backend")
        if scheme not in backends:
            known = ", ".join(sorted(backends))
            raise click.ClickException(
                f"no plugin serves {url!r}: no storage backend for {scheme!r} (registered: {known})"
            )
        backend = {"url": url, "scheme": scheme, "plugin": backends[scheme][0]}
    if as_json:
        payload: dict[str, Any] = {
            "plugins": [{"name": i.name, "hooks": i.hooks, "dist": i.dist} for i in infos]
        }
        if backend is not None:
            payload["backend"] = backend
        click.echo(json.dumps(payload, indent=2))
        return
    width = max((len(i.name) for i in infos), default=0)
    for info in infos:
        hooks = ", ".join(info.hooks) or "(no hooks)"
        dist = f"  [{info.dist}]" if info.dist else ""
        click.echo(f"{info.name:<{width}}  {hooks}{dist}")
    if backend is not None:
        click.echo(f"{backend['url']} is served by {backend['plugin']} ({backend['scheme']})")


@cli.command()
@click.argument("person")
@click.option(
    "--db",
    "db",
    metavar="PATH_OR_URL",
    default=demo_story.DEFAULT_DB_NAME,
    show_default=True,
    envvar="RELCRM_DB",
    help="SQLite file or storage URL (also from $RELCRM_DB).",
)
@click.option(
    "--as",
    "viewer",
    type=click.Choice(["candidate", "recruiter"]),
    default="recruiter",
    show_default=True,
    help="Whose view: the candidate's own, or a recruiter's (everything).",
)
def timeline(person: str, db: str, viewer: str) -> None:
    """Print a person's timeline as the candidate or a recruiter sees it.

    PERSON is a person id, or an exact name or email address.
    """
    url = _existing_db(db)
    with open_crm(url, notifiers=[]) as crm:
        p = _find_person(crm, person)
        who = (
            Actor(ActorRole.CANDIDATE, p.id)
            if viewer == "candidate"
            else Actor(ActorRole.RECRUITER, "recruiter")
        )
        events = crm.timeline(p.id, who)
    side = "the candidate sees it" if viewer == "candidate" else "recruiters see it"
    click.echo(f"{p.name} ({p.id}): timeline as {side}, {len(events)} events, times in UTC")
    if not events:
        click.echo("  (no events)")
    for e in events:
        when = e.occurred_at.astimezone(UTC)
        click.echo(f"{when:%Y-%m-%d %H:%M}  {describe_event(e, who)}")


def _import_db(value: str) -> str:
    """The storage URL to import into: an existing relcrm database, or a new SQLite file."""
    path = _sqlite_path(value) if "://" in value else Path(value).expanduser()
    if path is not None and not path.exists():
        if not path.parent.is_dir():
            raise click.ClickException(f"no directory {path.parent} to create {path.name} in")
        return value if "://" in value else demo_story.sqlite_url(path)
    return _existing_db(value)


#: Bad records printed by ``relcrm import`` before "... and N more".
SHOWN_ERRORS = 20


@cli.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--db",
    "db",
    metavar="PATH_OR_URL",
    required=True,
    envvar="RELCRM_DB",
    help="SQLite file (created if missing) or storage URL (also from $RELCRM_DB).",
)
@click.option(
    "--kind",
    type=click.Choice(["people", "openings"]),
    default="people",
    show_default=True,
    help="JSON Resume documents (people) or JSON Resume job documents (openings).",
)
@click.option(
    "--on-error",
    "on_error",
    type=click.Choice(["reject", "skip"]),
    default="reject",
    show_default=True,
    help="A bad record rejects the whole file (nothing written), or is skipped and reported.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Records written per transaction.",
)
@click.option(
    "--workers",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help="Worker processes that read and encode a .jsonl file of people while this one writes"
    " (0 for none; auto: one per CPU, at most four, for files of 16 MiB or more).",
)
def import_(file: Path, db: str, kind: str, on_error: str, batch_size: int, workers: str) -> None:
    """Import JSON Resume documents from FILE (.json, .jsonl or .jsonl.gz).

    Re-importing is safe: people are keyed by email and openings by meta.canonical, and those
    already present are counted as duplicates. Exits with status 1 if the file is rejected.
    """
    from .interchange import ImportRejected, ImportReport, import_openings, import_people
    from .interchange.bulk import OnError

    url = _import_db(db)
    pool = _workers(workers)
    actor = Actor(ActorRole.SYSTEM, "import")
    mode = cast(OnError, on_error)
    with (
        open_crm(url) as crm,
        click.progressbar(
            length=0, label=f"Importing {kind}", file=sys.stderr, show_pos=True
        ) as bar,
    ):
        shown = [0]

        def progress(done: int, total: int | None) -> None:
            if total is not None:
                bar.length = total
            bar.update(done - shown[0])
            shown[0] = done

        try:
            if kind == "people":
                report: ImportReport = import_people(
                    crm,
                    file,
                    actor=actor,
                    on_error=mode,
                    batch_size=batch_size,
                    progress=progress,
                    workers=pool,
                )
            else:
                report = import_openings(
                    crm, file, actor=actor, on_error=mode, batch_size=batch_size, progress=progress
                )
        except ImportRejected as exc:
            report = exc.report
    click.echo(report.summary())
    for line, message in report.errors[:SHOWN_ERRORS]:
        click.echo(f"{file}:{line}: {_one_line(message)}", err=True)
    if len(report.errors) > SHOWN_ERRORS:
        click.echo(f"... and {len(report.errors) - SHOWN_ERRORS} more bad records", err=True)
    if report.rejected:
        _fail(f"{file} rejected: {len(report.errors)} bad record(s), nothing written", 1)


def _workers(value: str) -> int | Literal["auto"]:
    if value == "auto":
        return "auto"
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise click.BadParameter(
            f"expected 'auto' or a whole number from 0, got {value!r}", param_hint="'--workers'"
        )
    return number


def _migrate_schema(url: str, *, dry_run: bool) -> MigrationReport:
    """Run the ``migrate()`` of the built-in SQL backend that serves ``url``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from .storage.sqlite import migrate as migrate_sqlite

        return migrate_sqlite(url, dry_run=dry_run)
    if scheme in ("postgresql", "postgres"):
        try:
            from .storage.postgres import migrate as migrate_postgres
        except ImportError as exc:
            if exc.name not in ("psycopg", "psycopg_pool"):
                raise
            raise click.ClickException(
                f"the PostgreSQL backend needs {exc.name}, which is not installed; "
                "install relcrm[postgres]"
            ) from exc
        return migrate_postgres(url, dry_run=dry_run)
    if scheme == "memory":
        raise click.ClickException(
            "a memory:// store lives only as long as its process, so it has no schema to migrate"
        )
    raise click.ClickException(
        f"relcrm migrate knows the sqlite and postgresql backends, not {scheme!r}; a backend "
        "from a plugin keeps its own schema"
    )


def _version_text(version: int) -> str:
    return f"{version}" if version else "0 (no relcrm schema)"


@cli.command()
@click.argument("url", metavar="URL")
@click.option(
    "--dry-run", is_flag=True, help="Show the version and the pending steps; change nothing."
)
def migrate(url: str, dry_run: bool) -> None:
    """Bring the schema of the database at URL to this relcrm's version.

    URL is a sqlite:/// or postgresql:// URL, or the path of a SQLite file (created if missing).
    The pending steps are applied in order, each in a transaction of its own; other processes
    may use or migrate the database meanwhile. Running it again does nothing.
    """
    target = url if "://" in url else demo_story.sqlite_url(Path(url).expanduser())
    report = _migrate_schema(target, dry_run=dry_run)
    where = report.database
    start, end = _version_text(report.from_version), _version_text(report.to_version)
    if report.from_version == report.to_version:
        click.echo(f"{where}: schema version {end}, up to date; nothing to do")
        return
    if report.dry_run:
        count = len(report.steps)
        click.echo(f"{where}: schema version {start} -> {end} in {count} step(s) (dry run)")
        for step in report.steps:
            click.echo(f"  pending step {step.version}: {step.description}")
        click.echo("Nothing was changed; run without --dry-run to apply them.")
        return
    click.echo(f"{where}: schema version {start} -> {end}")
    for step in report.steps:
        click.echo(f"  applied step {step.version}: {step.description}")
    others = report.to_version - report.from_version - len(report.steps)
    if others:
        click.echo(f"  {others} step(s) applied at the same time by another process")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``relcrm`` command (the console-script entry point)."""
    cli.main(args=argv, prog_name=PROG)
    raise SystemExit(0)  # pragma: no cover - cli.main always exits


if __name__ == "__main__":
    main()
