"""Forward-only schema migrations, shared by the SQL backends.

Each SQL backend keeps the history of its schema as a tuple of :class:`Migration` steps, numbered
1, 2, 3... Version 1 is the schema as relcrm first created it; every later step changes a database
at the version before it into one at its own version. A database records one number, its schema
version (0 when it has no relcrm schema yet), and :func:`upgrade` brings it from there to the
version of the code by applying the missing steps in order.

How a backend takes part: it adapts its connection to :class:`SchemaDatabase`, which takes the
backend's schema lock in a transaction (:meth:`SchemaDatabase.locked`), reads the version
(:meth:`SchemaDatabase.version`) and runs one step together with its version bump
(:meth:`SchemaDatabase.apply`). This module decides what to run; it never sees SQL dialects.

The rules:

* Every step runs in a transaction of its own, together with the version bump, so a database is
  always at one whole version: a step that fails leaves it at the version before, unchanged.
* Before each step the version is read again under the lock, so several processes migrating one
  database at once apply every step exactly once, and each of them ends at the current version.
* Migrations only go forward. A database at a newer version than the code (written by a newer
  relcrm) is refused with :class:`relcrm.BackendUnavailable`, naming both versions.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import attrs

from relcrm.exceptions import BackendUnavailable

__all__ = [
    "Migration",
    "MigrationReport",
    "SchemaDatabase",
    "check_history",
    "migrate_option",
    "no_schema",
    "plan",
    "require_current",
    "upgrade",
]

log = logging.getLogger("relcrm.storage")


@attrs.frozen
class Migration:
    """One step of a backend's schema history.

    ``version`` is the schema version the step leads to; ``description`` says in a sentence what
    it changes and why; ``statements`` are the SQL statements that make the change, run in order
    in one transaction (a backend may give them placeholders of its own, such as a schema name).
    """

    version: int
    description: str
    statements: tuple[str, ...]


@attrs.frozen
class MigrationReport:
    """What :func:`upgrade` found and did.

    ``database`` names the database (a file, or a schema of a server), ``from_version`` is the
    version it was at (0: no relcrm schema yet) and ``to_version`` the version it is at now, or
    would be at after a dry run. ``steps`` are the steps this call applied, in order, or in a dry
    run (``dry_run`` true) the steps it would apply. Steps that another process applied at the
    same time are not listed, so ``steps`` may be empty while the version went up.
    """

    database: str
    from_version: int
    to_version: int
    steps: tuple[Migration, ...]
    dry_run: bool = False


class SchemaDatabase(Protocol):
    """A database as the migrations see it; each SQL backend adapts its connection to this."""

    @property
    def name(self) -> str:
        """The database in words, for messages: ``'/srv/talent.db'``, ``schema 'acme' of ...``."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """A transaction holding the backend's schema lock (waiting for it as long as the backend
        waits for locks), committed on normal exit and rolled back on an exception."""
        ...

    def version(self) -> int:
        """The schema version, 0 when there is no relcrm schema yet (read inside
        :meth:`locked`). Raises :class:`relcrm.BackendUnavailable` for a database that has
        tables of relcrm's names but no schema version: it belongs to something else."""
        ...

    def apply(self, step: Migration) -> None:
        """Run ``step``'s statements and set the schema version to ``step.version`` (inside
        :meth:`locked`, on a database at ``step.version - 1``)."""
        ...


def check_history(*steps: Migration) -> tuple[Migration, ...]:
    """``steps`` as a tuple, after checking that their versions are 1, 2, 3... in order."""
    versions = [step.version for step in steps]
    if versions != list(range(1, len(steps) + 1)):
        raise ValueError(f"schema steps must be numbered 1, 2, 3... in order, not {versions}")
    return steps


def migrate_option(value: str, url: str) -> bool:
    """The value of a ``migrate=true|false`` URL option."""
    answer = {"true": True, "false": False}.get(value.strip().lower())
    if answer is None:
        raise BackendUnavailable(f"migrate in {url!r} must be true or false, not {value!r}")
    return answer


def _newer(database: SchemaDatabase, found: int, latest: int) -> BackendUnavailable:
    return BackendUnavailable(
        f"{database.name} has relcrm schema version {found}, newer than version {latest} that "
        "this relcrm understands; upgrade relcrm (schema migrations only go forward)"
    )


def _steps_text(steps: Sequence[Migration]) -> str:
    return "; ".join(f"{step.version}: {step.description}" for step in steps)


def no_schema(name: str, steps: Sequence[Migration], *, url: str) -> BackendUnavailable:
    """The error for opening ``name``, which has no relcrm schema, with ``migrate=false``."""
    return BackendUnavailable(
        f"{name} has no relcrm schema yet, and the URL says migrate=false, so opening it creates "
        f"none; create it (version {steps[-1].version}) with 'relcrm migrate {shlex.quote(url)}'"
    )


def require_current(database: SchemaDatabase, steps: Sequence[Migration], *, url: str) -> int:
    """Check, changing nothing, that ``database`` is at the latest version of ``steps``; returns
    that version.

    An older database (or one without a relcrm schema) raises :class:`relcrm.BackendUnavailable`
    saying which steps are pending and to run ``relcrm migrate URL``; so does a newer one.
    """
    latest = steps[-1].version
    with database.locked():
        found = database.version()
    if found > latest:
        raise _newer(database, found, latest)
    if found < latest:
        if found == 0:
            raise no_schema(database.name, steps, url=url)
        command = f"relcrm migrate {shlex.quote(url)}"
        raise BackendUnavailable(
            f"{database.name} has relcrm schema version {found}, older than version {latest} "
            f"that this relcrm needs, and the URL says migrate=false, so opening it changes "
            f"nothing; run '{command}' to apply the pending steps "
            f"({_steps_text(steps[found:latest])})"
        )
    return found


def plan(
    name: str, steps: Sequence[Migration], current: int, target: int | None = None
) -> MigrationReport:
    """The dry-run report for the database ``name`` at version ``current``: the steps that would
    bring it to ``target`` (by default the latest of ``steps``)."""
    latest = steps[-1].version
    goal = latest if target is None else target
    if not 1 <= goal <= latest:
        raise ValueError(f"target must be a schema version from 1 to {latest}, not {goal}")
    pending = tuple(steps[current:goal])
    return MigrationReport(name, current, max(current, goal), pending, dry_run=True)


def upgrade(
    database: SchemaDatabase,
    steps: Sequence[Migration],
    *,
    target: int | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Bring ``database`` to version ``target`` (default: the latest of ``steps``) by applying
    the missing steps in order, each in a transaction of its own; see the module docs.

    A database already at ``target`` or past it (but not past the latest version) is left alone.
    With ``dry_run`` nothing is changed, and the report lists the steps that would be applied.
    """
    latest = steps[-1].version
    goal = plan(database.name, steps, 0, target).to_version  # checks the target first
    with database.locked():
        start = database.version()
    if start > latest:
        raise _newer(database, start, latest)
    if dry_run:
        return plan(database.name, steps, start, target)
    applied: list[Migration] = []
    reached = start
    while reached < goal:
        with database.locked():
            # Read again under the lock: another process may have applied steps meanwhile.
            reached = database.version()
            if reached > latest:
                raise _newer(database, reached, latest)
            if reached >= goal:
                break
            step = steps[reached]
            database.apply(step)
        log.info(
            "%s: applied relcrm schema step %d (%s)", database.name, step.version, step.description
        )
        applied.append(step)
        reached = step.version
    return MigrationReport(database.name, start, reached, tuple(applied))
