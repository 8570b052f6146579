"""Development tasks for relcrm.

Run ``nox`` for the default sessions (tests, lint, typecheck), ``nox --list`` to see them all,
and ``nox -s NAME -- ARGS`` to pass arguments through (to pytest, or to the benchmark runner).

Every session runs on the interpreter that runs nox itself, so the file works wherever a single
Python 3.11+ is installed. Virtual environments are made with uv when it is installed and with the
standard library's venv otherwise.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True

ROOT = pathlib.Path(__file__).parent
SRC = ROOT / "src"
BENCHMARKS = ROOT / "benchmarks"


def _build_wheel(session: nox.Session) -> pathlib.Path:
    """Build a wheel of the working tree into the session's tmp dir and return its path."""
    out = pathlib.Path(session.create_tmp()) / "dist"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if session.venv_backend == "uv":
        session.run("uv", "build", "--wheel", "--out-dir", str(out), str(ROOT), external=True)
    else:
        session.run(
            "python",
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(out),
            str(ROOT),
        )
    wheels = sorted(out.glob("relcrm-*.whl"))
    if len(wheels) != 1:
        session.error(f"expected one relcrm wheel in {out}, found {[w.name for w in wheels]}")
    return wheels[0]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the built and installed wheel (arguments go to pytest).

    The ``tests`` extra includes the PostgreSQL driver, so the PostgreSQL backend is tested too,
    against the server at ``$RELCRM_TEST_POSTGRES_URL`` (by default
    ``postgresql://postgres@127.0.0.1:5432/test``). Without a server those tests are skipped, or
    fail when ``CI=true``.
    """
    wheel = _build_wheel(session)
    session.install(f"{wheel}[tests]")
    # The version rarely changes between builds, so make sure this build's files are the ones
    # installed, even in a reused environment.
    session.install("--force-reinstall", "--no-deps", str(wheel))

    # Never let the source tree shadow the installed wheel.
    env = {"PYTHONPATH": None}
    installed = session.run(
        "python",
        "-c",
        "import relcrm; print(next(iter(relcrm.__path__)))",
        env=env,
        silent=True,
    )
    if not isinstance(installed, str) or pathlib.Path(installed.strip()).is_relative_to(SRC):
        session.error(f"relcrm is imported from the source tree, not the wheel: {installed!r}")
    session.log(f"testing the installed wheel {wheel.name}: {installed.strip()}")

    # With no paths given, pytest runs tests/ (testpaths in pyproject.toml).
    session.run("pytest", "--rootdir", str(ROOT), *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy (strict; configured in pyproject.toml)."""
    session.install("-e", ".[tests]", "mypy")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs; any warning fails the build."""
    session.install("mkdocs")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmark scripts: the names given (``nox -s bench -- NAME ...``) or all of them."""
    # The peers benchmarks/matching.py measures relcrm against, in the same run.
    session.install(".[tests]", "bm25s", "tantivy", "scikit-learn", "rank_bm25", "psutil")
    if session.posargs:
        scripts = [BENCHMARKS / f"{pathlib.Path(name).stem}.py" for name in session.posargs]
    else:
        scripts = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    missing = [str(p.relative_to(ROOT)) for p in scripts if not p.is_file()]
    if missing:
        session.error(f"no such benchmark: {', '.join(missing)}")
    if not scripts:
        session.skip("benchmarks/ holds no scripts yet")
    for script in scripts:
        session.run("python", str(script.relative_to(ROOT)), env={"PYTHONPATH": None})


#: Iterations of ``nox -s crash`` (each can be overridden by setting it in the environment).
CRASH_ITERATIONS = {
    "RELCRM_CRASH_ITERATIONS": "500",  # SIGKILL during a SQLite import
    "RELCRM_CRASH_ITERATIONS_POSTGRES": "50",  # SIGKILL during a PostgreSQL import
    "RELCRM_CRASH_SHUTDOWNS": "10",  # immediate shutdown of the PostgreSQL server
}


@nox.session
def crash(session: nox.Session) -> None:
    """Crash-test bulk import many more times than ``tests`` does (arguments go to pytest).

    Runs ``tests/integration/test_crash_import.py`` against the built wheel with the iteration
    counts of ``CRASH_ITERATIONS``. The immediate-shutdown test stops and restarts the local
    PostgreSQL cluster, so it needs ``pg_ctlcluster`` and the rights to use it.
    """
    wheel = _build_wheel(session)
    session.install(f"{wheel}[tests]")
    session.install("--force-reinstall", "--no-deps", str(wheel))
    env: dict[str, str | None] = {"PYTHONPATH": None}
    env.update({name: os.environ.get(name, count) for name, count in CRASH_ITERATIONS.items()})
    session.run(
        "pytest",
        "--rootdir",
        str(ROOT),
        "tests/integration/test_crash_import.py",
        *session.posargs,
        env=env,
    )
