"""Shared test configuration, and fixtures for tests that need the local PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

# Show full assertion details from the shipped contract suite.
pytest.register_assert_rewrite("relcrm.testing")

#: Where the PostgreSQL tests find a server they may create and drop schemas in.
POSTGRES_URL_ENV = "RELCRM_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` option set to ``schema``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    query.append(("schema", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _server_url(url: str) -> str:
    """``url`` without relcrm's own options, as libpq understands it."""
    parts = urlsplit(url)
    own = {"schema", "pool_min", "pool_max", "pool_timeout"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in own]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, which must run every PostgreSQL test."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


def _drop_schema(server: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True, connect_timeout=10) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def _create_schema(server: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True, connect_timeout=10) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the test PostgreSQL server (``$RELCRM_TEST_POSTGRES_URL``, by default
    ``postgresql://postgres@127.0.0.1:5432/test``), checked to accept connections.

    Skips the test when psycopg is missing or the server cannot be reached, except when the
    environment variable ``CI`` is ``true``: then it fails.
    """
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (the backend needs both)
    except ImportError as exc:
        _unavailable(f"PostgreSQL tests need psycopg and psycopg_pool (relcrm[postgres]): {exc}")
    try:
        with psycopg.connect(_server_url(url), autocommit=True, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"no PostgreSQL server at {POSTGRES_URL_ENV}={url!r}: {exc}")
    return url


def _fresh_schema(server: str) -> Iterator[str]:
    schema = f"relcrm_test_{uuid.uuid4().hex[:16]}"
    _create_schema(_server_url(server), schema)
    try:
        yield _with_schema(server, schema)
    finally:
        _drop_schema(_server_url(server), schema)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A ``postgresql://...?schema=NAME`` URL of a new, empty schema with a unique name, dropped
    (``CASCADE``) after the test. Skips or fails as :func:`postgres_server` does."""
    yield from _fresh_schema(postgres_server)


@pytest.fixture(scope="session")
def postgres_session_url(postgres_server: str) -> Iterator[str]:
    """Like :func:`postgres_url`, but one schema for the whole session: faster, and shared, so
    tests using it must not expect it to be empty."""
    yield from _fresh_schema(postgres_server)
