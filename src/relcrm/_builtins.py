"""relcrm's own plugins: the built-in backends, notifiers, pipeline and skills taxonomy.

They are registered through the same hooks a third-party plugin uses; each factory imports its
adapter only when called, so opening a CRM loads only what it uses.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .lifecycle import Pipeline
    from .matching.taxonomy import SkillTaxonomy
    from .notify.base import Notifier, NotifierFactory
    from .storage.base import Store, StoreFactory


class MemoryStoragePlugin:
    """``memory://``: everything in this process, gone when it exits."""

    @hookimpl
    def relcrm_register_storage_backends(
        self, register: "Callable[[str, StoreFactory], None]"
    ) -> None:
        def factory(url: str) -> "Store":
            from .storage.memory import MemoryStore

            return MemoryStore(url)

        register("memory", factory)


class SQLiteStoragePlugin:
    """``sqlite:///path.db``: the embedded default (stdlib sqlite3, WAL)."""

    @hookimpl
    def relcrm_register_storage_backends(
        self, register: "Callable[[str, StoreFactory], None]"
    ) -> None:
        def factory(url: str) -> "Store":
            from .storage.sqlite import SQLiteStore

            return SQLiteStore(url)

        register("sqlite", factory)


class PostgresStoragePlugin:
    """``postgresql://...`` (and ``postgres://...``): PostgreSQL through psycopg 3 and a
    connection pool, installed with the ``relcrm[postgres]`` extra."""

    @hookimpl
    def relcrm_register_storage_backends(
        self, register: "Callable[[str, StoreFactory], None]"
    ) -> None:
        def factory(url: str) -> "Store":
            try:
                from .storage.postgres import PostgresStore
            except ImportError as exc:
                if exc.name not in ("psycopg", "psycopg_pool"):
                    raise
                from .exceptions import BackendUnavailable

                raise BackendUnavailable(
                    f"the PostgreSQL backend needs {exc.name}, which is not installed; "
                    "install relcrm[postgres]"
                ) from exc
            return PostgresStore(url)

        register("postgresql", factory)
        register("postgres", factory)


class BuiltinNotifiersPlugin:
    """``memory`` (collects in a list) and ``log`` (one log line each) notifiers."""

    @hookimpl
    def relcrm_register_notifiers(self, register: "Callable[[str, NotifierFactory], None]") -> None:
        def memory() -> "Notifier":
            from .notify.memory import MemoryNotifier

            return MemoryNotifier()

        def log() -> "Notifier":
            from .notify.log import LogNotifier

            return LogNotifier()

        register("memory", memory)
        register("log", log)


class DefaultPipelinePlugin:
    """The ``default`` pipeline: lead, applied, screening, interview, offer, hired, archived."""

    @hookimpl
    def relcrm_register_pipelines(self, register: "Callable[[Pipeline], None]") -> None:
        from .lifecycle import DEFAULT_PIPELINE

        register(DEFAULT_PIPELINE)


class EscoSkillsPlugin:
    """The ``esco`` skills taxonomy: ESCO v1.1.1 plus relcrm's technology synonyms, read from the
    package data only when first queried."""

    @hookimpl
    def relcrm_register_skill_taxonomies(self, register: "Callable[[SkillTaxonomy], None]") -> None:
        from .matching.taxonomy import esco_taxonomy

        register(esco_taxonomy())


BUILTIN_PLUGINS: list[tuple[str, object]] = [
    ("relcrm.storage.memory", MemoryStoragePlugin()),
    ("relcrm.storage.sqlite", SQLiteStoragePlugin()),
    ("relcrm.storage.postgres", PostgresStoragePlugin()),
    ("relcrm.notifiers", BuiltinNotifiersPlugin()),
    ("relcrm.pipelines", DefaultPipelinePlugin()),
    ("relcrm.skills.esco", EscoSkillsPlugin()),
]
