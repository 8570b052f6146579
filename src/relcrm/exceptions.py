"""The relcrm exception tree.

Every error relcrm raises on purpose is a :class:`RelcrmError`, so callers can catch the library's
errors with one ``except`` clause and let everything else propagate. Each error carries the context
that explains it as attributes (which field, which transition, which aggregate, which plugin).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExists",
    "BackendUnavailable",
    "ConcurrencyConflict",
    "InvalidTransition",
    "NotFound",
    "PermissionDenied",
    "PluginError",
    "RelcrmError",
    "StorageError",
    "TransactionAborted",
    "TransitionVetoed",
    "UnknownBackend",
    "ValidationError",
]


class RelcrmError(Exception):
    """Root of every error relcrm raises on purpose."""


class ValidationError(RelcrmError, ValueError):
    """Input did not match the expected shape.

    ``errors`` lists each problem as ``"message @ $.path"``; ``type_name`` names the type that was
    being built.
    """

    def __init__(self, type_name: str, errors: Sequence[str]) -> None:
        self.type_name = type_name
        self.errors: tuple[str, ...] = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid {type_name} ({len(self.errors)} problem(s)):\n{lines}")


class NotFound(RelcrmError, LookupError):
    """No aggregate of that kind with that id."""

    def __init__(self, kind: str, id: str) -> None:
        self.kind = kind
        self.id = id
        super().__init__(f"no {kind} with id {id!r}")


class InvalidTransition(RelcrmError):
    """A lifecycle transition was refused.

    ``stage`` is where the candidacy stood, ``target`` what was asked for, ``actor`` who asked,
    and ``reason`` why it was refused.
    """

    def __init__(self, *, stage: str, target: str, actor: str, reason: str) -> None:
        self.stage = stage
        self.target = target
        self.actor = actor
        self.reason = reason
        super().__init__(f"cannot go from {stage!r} to {target!r} as {actor}: {reason}")


class TransitionVetoed(InvalidTransition):
    """A ``relcrm_before_transition`` plugin refused the transition; ``plugin`` names it."""

    def __init__(self, *, stage: str, target: str, actor: str, reason: str, plugin: str) -> None:
        self.plugin = plugin
        super().__init__(
            stage=stage, target=target, actor=actor, reason=f"vetoed by plugin {plugin!r}: {reason}"
        )


class PermissionDenied(RelcrmError):
    """The actor may not take this action (e.g. a candidate acting for someone else)."""

    def __init__(self, *, action: str, actor: str, reason: str) -> None:
        self.action = action
        self.actor = actor
        self.reason = reason
        super().__init__(f"{actor} may not {action}: {reason}")


class ConcurrencyConflict(RelcrmError):
    """A write was based on a stale version of an aggregate (optimistic locking).

    Re-read the aggregate and retry the command.
    """

    def __init__(self, kind: str, id: str, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.id = id
        self.expected = expected
        self.actual = actual
        found = "it does not exist" if actual is None else f"it is at version {actual}"
        super().__init__(
            f"{kind} {id!r} changed concurrently: expected version {expected}, {found}"
        )


class StorageError(RelcrmError):
    """The storage backend failed (I/O error, database locked past its timeout, ...)."""


class BackendUnavailable(StorageError):
    """A storage backend could not be reached or opened."""


class TransactionAborted(ConcurrencyConflict, StorageError):
    """The database aborted a transaction to settle a conflict with a concurrent one (a deadlock
    or a serialization failure). Nothing of the transaction was written; run the command again.

    It is a :class:`ConcurrencyConflict`, so one retry loop handles both, and a
    :class:`StorageError`, since the backend raised it. ``sqlstate`` is the database's error code
    (``40P01`` deadlock detected, ``40001`` serialization failure) and ``action`` says what relcrm
    was doing. ``kind``, ``id`` and ``expected`` name the record being written and the version it
    was expected at when the database gave up (``""``, ``""`` and ``0`` when no record was being
    written); ``actual`` is ``None``, because the stored version is not known.
    """

    def __init__(
        self,
        action: str,
        sqlstate: str,
        reason: str,
        *,
        kind: str = "",
        id: str = "",
        expected: int = 0,
    ) -> None:
        self.action = action
        self.sqlstate = sqlstate
        self.reason = reason
        self.kind = kind
        self.id = id
        self.expected = expected
        self.actual = None
        StorageError.__init__(
            self,
            f"the database aborted the transaction while trying to {action} "
            f"({sqlstate}: {reason}); nothing was written, run the command again",
        )


class UnknownBackend(RelcrmError):
    """No storage backend is registered for the URL's scheme."""

    def __init__(self, scheme: str, known: Sequence[str]) -> None:
        self.scheme = scheme
        self.known = tuple(known)
        super().__init__(
            f"no storage backend for {scheme!r}; registered schemes: {', '.join(sorted(known))}"
        )


class PluginError(RelcrmError):
    """A plugin misbehaved: unknown hook, duplicate registration, or an unexpected exception."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class AlreadyExists(RelcrmError):
    """An aggregate with that identity already exists (a second candidacy for the same opening,
    a person id used twice...)."""

    def __init__(self, kind: str, id: str, detail: str = "") -> None:
        self.kind = kind
        self.id = id
        super().__init__(f"{kind} {id!r} already exists" + (f": {detail}" if detail else ""))
