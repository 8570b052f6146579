"""Bulk import speed: JSON Resume profiles into SQLite (and PostgreSQL), against a naive baseline.

    PYTHONPATH=src python benchmarks/ingest.py [--people 1000000] [--backends sqlite,postgresql]
        [--postgres-url URL] [--batch-size 10000] [--naive-people 20000] [--index-people 100000]

``--people`` JSON Resume profiles (default 1,000,000) are generated deterministically (``--seed``)
into a temporary ``.jsonl`` file: name, email, label, summary, location, two to four work entries
with highlights, skills with keywords, sometimes an education entry. Work entries, labels and
summaries come from the onet-eval candidates (``--data``) when that file is there, else from a
small built-in vocabulary; names, emails, dates, places and skills are drawn for each profile.
Generating the file is not timed.

For each backend the script measures, each on a fresh database:

- **bulk**: ``relcrm.interchange.import_people`` of the whole file, end to end (reading, JSON
  parsing, the validation pass of ``on_error="reject"``, conversion, and the committed writes:
  person and relationship records, ``person.created`` events, one outbox row per notifier).
- **naive**: the first ``--naive-people`` profiles, read from the same file and added with one
  ``CRM.add_person`` each (one transaction per person, through the same backend, with the same
  validation and the same records, events and outbox rows), and the bulk import of that same
  subset, so the speed-up is reported both against the full bulk run and at the same size.
- **index**: building the match index (``CRM.talent_index()``, what the first ``CRM.match`` does)
  from a database holding the first ``--index-people`` profiles (all of them when it is at least
  ``--people``), in a fresh process, which loads the skills taxonomy first (not timed): its
  seconds, and the peak resident memory of that process (``*_index_peak_rss_mb``).

The CRM is opened with the ``--notifiers`` given (default ``log``) and ``autodispatch=False``:
outbox rows are written in the same transactions, delivering them is left to
``CRM.dispatch_pending``. PostgreSQL runs on ``--postgres-url`` in fresh schemas
(``?schema=...``) that are dropped afterwards; it is skipped, with a message, when psycopg or the
backend or the server is not available. The script ends by printing one JSON line of figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import gzip
import json
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import relcrm
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import relcrm

from relcrm.interchange import import_people, person_from_resume

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "onet-eval" / "dev" / "candidates.jsonl.gz"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ACTOR = relcrm.Actor(relcrm.ActorRole.SYSTEM, "import")
ALL_BACKENDS = ("sqlite", "postgresql")

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Katherine", "Tim",
    "Radia", "Ken", "Margaret", "Dennis", "Sophie", "Linus", "Hedy", "Guido", "Anita", "Bjarne",
    "Priya", "Sam", "Chen", "Fatima", "Olu", "Mateo", "Ingrid", "Yuki", "Zoë", "Łukasz",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Johnson",
    "Berners-Lee", "Perlman", "Thompson", "Hamilton", "Ritchie", "Wilson", "Torvalds", "Lamarr",
    "van Rossum", "Borg", "Stroustrup", "Natarajan", "Okafor", "Wei", "Haddad", "Adeyemi",
    "García", "Larsen", "Tanaka", "Müller", "Kowalski",
)  # fmt: skip
PLACES = (
    ("London", "GB"), ("Leeds", "GB"), ("Berlin", "DE"), ("Munich", "DE"), ("Paris", "FR"),
    ("Lyon", "FR"), ("Madrid", "ES"), ("Amsterdam", "NL"), ("Dublin", "IE"), ("Warsaw", "PL"),
    ("Lisbon", "PT"), ("Milan", "IT"), ("Stockholm", "SE"), ("Vienna", "AT"), ("Prague", "CZ"),
    ("New York", "US"), ("Austin", "US"), ("Toronto", "CA"), ("Sydney", "AU"), ("Nairobi", "KE"),
)  # fmt: skip
SKILLS = (
    ("Python", ("pandas", "NumPy", "Django")), ("SQL", ("PostgreSQL", "SQLite")),
    ("Project management", ("Scrum", "Kanban")), ("Data analysis", ("Excel", "Tableau")),
    ("Customer service", ()), ("Accounting", ("IFRS", "Payroll")), ("Nursing", ("Triage",)),
    ("Welding", ("TIG", "MIG")), ("Leadership", ()), ("JavaScript", ("React", "Node.js")),
    ("Machine learning", ("scikit-learn", "PyTorch")), ("Sales", ("CRM", "Negotiation")),
    ("Teaching", ("Curriculum design",)), ("Logistics", ("Forklift", "Inventory")),
    ("Graphic design", ("Figma", "Illustrator")), ("Electrical wiring", ()),
    ("Cloud", ("AWS", "Kubernetes", "Terraform")), ("Recruiting", ("Sourcing", "ATS")),
)  # fmt: skip
EMPLOYERS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Soylent",
    "Cyberdyne", "Aperture", "Vandelay", "Wonka", "Oscorp", "Monarch", "Gringotts",
)  # fmt: skip
FALLBACK_TITLES = (
    "Data engineer", "Registered nurse", "Accountant", "Sales manager", "Welder",
    "Teacher", "Logistics coordinator", "Software developer", "Graphic designer", "Electrician",
)  # fmt: skip
FALLBACK_HIGHLIGHTS = (
    "Built and ran the nightly data pipelines that feed the finance reports.",
    "Triaged patients in a busy emergency department and kept records up to date.",
    "Closed the books every month and prepared the statutory accounts.",
    "Grew regional sales by a fifth while keeping the team together.",
    "Welded structural steel to the drawings, checked by ultrasonic tests.",
    "Planned lessons for three classes and ran the after-school science club.",
    "Scheduled deliveries for forty trucks and cut empty miles by a tenth.",
    "Wrote and reviewed the code of the customer portal, with its tests.",
    "Designed the brand guidelines and every campaign of the year.",
    "Wired new houses and found faults in old ones, safely and to code.",
)


# ------------------------------------------------------------------------------------ profiles


def load_templates(data: Path | None) -> tuple[list[dict[str, Any]], str]:
    """Work entries, labels and summaries to draw from, and where they came from."""
    if data is not None and data.is_file():
        with gzip.open(data, "rt", encoding="utf-8") as f:
            docs = [json.loads(line) for line in f if line.strip()]
        return docs, f"{len(docs):,} onet-eval candidates ({data.name})"
    docs = []
    for n, title in enumerate(FALLBACK_TITLES):
        highlights = [FALLBACK_HIGHLIGHTS[(n + k) % len(FALLBACK_HIGHLIGHTS)] for k in range(3)]
        docs.append(
            {
                "basics": {"label": title, "summary": highlights[0]},
                "work": [{"name": "Employer", "position": title, "highlights": highlights}],
            }
        )
    return docs, f"the built-in vocabulary ({len(docs)} templates)"


def make_profile(n: int, rng: random.Random, templates: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``n``-th generated JSON Resume document."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    template = templates[rng.randrange(len(templates))]
    basics = template.get("basics", {})
    city, country = rng.choice(PLACES)
    work = []
    year = 2025
    for k in range(rng.randint(2, 4)):
        source = templates[rng.randrange(len(templates))] if k else template
        entry = rng.choice(source.get("work") or [{}])
        start = year - rng.randint(1, 5)
        item: dict[str, Any] = {
            "name": f"{rng.choice(EMPLOYERS)} {rng.randint(1, 999)}",
            "position": entry.get("position") or basics.get("label") or "Specialist",
            "startDate": f"{start}-{rng.randint(1, 12):02d}",
            "highlights": list(entry.get("highlights") or [])[: rng.randint(1, 4)],
        }
        if k:
            item["endDate"] = f"{year}-{rng.randint(1, 12):02d}"
        work.append(item)
        year = start
    skills = []
    for name, keywords in rng.sample(SKILLS, rng.randint(2, 5)):
        skill: dict[str, Any] = {"name": name, "level": rng.choice(("Beginner", "Advanced"))}
        if keywords:
            skill["keywords"] = list(keywords[: rng.randint(1, len(keywords))])
        skills.append(skill)
    doc: dict[str, Any] = {
        "basics": {
            "name": f"{first} {last}",
            "label": basics.get("label") or "Specialist",
            "email": f"{first}.{last}.{n}@example.org".replace(" ", "").lower(),
            "summary": basics.get("summary") or "",
            "location": {"city": city, "countryCode": country},
        },
        "work": work,
        "skills": skills,
    }
    if rng.random() < 0.4:
        end = rng.randint(1995, 2022)
        doc["education"] = [
            {
                "institution": f"University of {city}",
                "area": rng.choice(SKILLS)[0],
                "studyType": rng.choice(("Bachelor", "Master", "Diploma")),
                "startDate": str(end - 3),
                "endDate": str(end),
            }
        ]
    return doc


def write_profiles(path: Path, count: int, seed: int, templates: list[dict[str, Any]]) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for n in range(count):
            f.write(json.dumps(make_profile(n, rng, templates), ensure_ascii=False) + "\n")


def head(path: Path, count: int, into: Path) -> Path:
    """The first ``count`` lines of ``path``, written to ``into``."""
    with path.open(encoding="utf-8") as src, into.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            if n >= count:
                break
            dst.write(line)
    return into


# ------------------------------------------------------------------------------------ backends


class Backend:
    """Fresh databases of one backend, cleaned up on :meth:`close`."""

    name = "backend"

    def url(self, role: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Remove what the runs created."""


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def url(self, role: str) -> str:
        return f"sqlite:///{self.folder / f'{role}.db'}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, server: str) -> None:
        import psycopg  # noqa: F401  (checked here so that a missing driver skips the backend)

        self.server = server
        self.run = uuid.uuid4().hex[:8]
        self.schemas: list[str] = []
        with relcrm.open(self.url("probe"), notifiers=[], load_entrypoints=False):
            pass

    def url(self, role: str) -> str:
        schema = f"relcrm_bench_{self.run}_{role}"
        if schema not in self.schemas:
            self.schemas.append(schema)
        joiner = "&" if "?" in self.server else "?"
        return f"{self.server}{joiner}schema={schema}"

    def close(self) -> None:
        import psycopg
        from psycopg import sql

        plain = self.server.split("?", 1)[0]
        try:
            with psycopg.connect(plain, autocommit=True, connect_timeout=10) as connection:
                for schema in self.schemas:
                    connection.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )
        except psycopg.Error as exc:
            left = ", ".join(self.schemas)
            print(f"postgresql: could not drop the schemas {left}: {exc}", flush=True)


def open_backend(name: str, folder: Path, postgres_url: str) -> Backend:
    if name == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        return SQLiteBackend(folder)
    return PostgresBackend(postgres_url)


# ------------------------------------------------------------------------------------ measuring


@contextmanager
def opened(url: str, notifiers: list[str]) -> Iterator[relcrm.CRM]:
    with relcrm.open(url, notifiers=notifiers, autodispatch=False, load_entrypoints=False) as crm:
        yield crm


class GCClock:
    """Seconds the cyclic garbage collector ran while in the ``with`` block (all generations)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> GCClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def bulk(
    url: str,
    path: Path,
    people: int,
    args: argparse.Namespace,
    *,
    report_every: int = 0,
    gc_clock: GCClock | None = None,
) -> float:
    """Seconds to import ``path`` (``people`` profiles) with ``import_people``."""
    marks = [report_every]

    def progress(done: int, total: int | None) -> None:
        if report_every and done >= marks[0]:
            print(f"    {done:,} people written", flush=True)
            marks[0] += report_every

    with opened(url, args.notifier_names) as crm, gc_clock or GCClock():
        started = time.perf_counter()
        report = import_people(
            crm,
            path,
            actor=ACTOR,
            on_error=args.on_error,
            batch_size=args.batch_size,
            progress=progress,
            workers=args.workers if args.workers == "auto" else int(args.workers),
        )
        seconds = time.perf_counter() - started
        if (report.imported, report.errors) != (people, []):
            raise SystemExit(f"import went wrong: {report.summary()}")
    return seconds


def naive(url: str, path: Path, people: int, notifiers: list[str]) -> float:
    """Seconds to add the first ``people`` profiles of ``path`` with one ``add_person`` each."""
    with opened(url, notifiers) as crm, path.open(encoding="utf-8") as f:
        started = time.perf_counter()
        for n, line in enumerate(f):
            if n >= people:
                break
            crm.add_person(
                person_from_resume(json.loads(line), sources=("jsonresume",)), actor=ACTOR
            )
        return time.perf_counter() - started


def warm_up_matching() -> None:
    """Load what matching loads once per process (the skills taxonomy), so that no backend's
    index build pays for it."""
    with opened("memory://", []) as crm:
        crm.add_person({"name": "Warm Up", "skills": ["python", "nursing"]}, actor=ACTOR)
        crm.talent_index()


def _build_index(url: str) -> tuple[float, float]:
    warm_up_matching()
    with opened(url, []) as crm:
        started = time.perf_counter()
        crm.talent_index()
        return time.perf_counter() - started, peak_rss_mb()


def index_build(url: str) -> tuple[float, float]:
    """Seconds to build the match index of the CRM at ``url`` from its store, and the peak
    resident memory of the process that built it: a fresh process (spawned), which loads the
    skills taxonomy first (not timed) and then builds the index, so that neither the import
    before it nor anything else this script did counts in its memory."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_build_index, url).result()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    backend: Backend, files: dict[str, Path], args: argparse.Namespace
) -> dict[str, float | int | None]:
    name = backend.name
    out: dict[str, float | int | None] = {}
    load = os.getloadavg()[0]
    cpu = time.process_time()
    collector = GCClock()
    seconds = bulk(
        backend.url("bulk"),
        files["all"],
        args.people,
        args,
        report_every=args.every,
        gc_clock=collector,
    )
    cpu = time.process_time() - cpu
    rate = args.people / seconds
    out[f"{name}_people_per_s"] = round(rate)
    out[f"{name}_seconds"] = round(seconds, 2)
    out[f"{name}_us_per_person"] = round(seconds / args.people * 1e6, 1)
    out[f"{name}_cpu_us_per_person"] = round(cpu / args.people * 1e6, 1)
    out[f"{name}_gc_us_per_person"] = round(collector.seconds / args.people * 1e6, 1)
    print(
        f"{name}: bulk import of {args.people:,} people in {seconds:.1f} s: {rate:,.0f} people/s "
        f"({seconds / args.people * 1e6:.1f} us a person, {cpu / args.people * 1e6:.1f} us of "
        f"CPU in this process, {collector.seconds / args.people * 1e6:.1f} us of it in the "
        f"garbage collector; load average {load:.1f} before)",
        flush=True,
    )

    subset = files["naive"]
    naive_people = min(args.naive_people, args.people)
    if naive_people:
        slow = naive(backend.url("naive"), subset, naive_people, args.notifier_names)
        same = bulk(backend.url("subset"), subset, naive_people, args)
        naive_rate, same_rate = naive_people / slow, naive_people / same
        out[f"{name}_naive_people_per_s"] = round(naive_rate)
        out[f"{name}_subset_people_per_s"] = round(same_rate)
        out[f"{name}_speedup"] = round(rate / naive_rate, 1)
        out[f"{name}_speedup_same_size"] = round(same_rate / naive_rate, 1)
        print(
            f"{name}: naive baseline (one CRM.add_person each, on the first {naive_people:,}): "
            f"{naive_rate:,.0f} people/s; bulk on that same subset {same_rate:,.0f} people/s; "
            f"speed-up {rate / naive_rate:.1f}x (full bulk run), "
            f"{same_rate / naive_rate:.1f}x (same size)",
            flush=True,
        )

    index_people = min(args.index_people, args.people)
    if index_people:
        if index_people < args.people:
            bulk(backend.url("index"), files["index"], index_people, args)
            built, peak = index_build(backend.url("index"))
        else:
            built, peak = index_build(backend.url("bulk"))
        out[f"{name}_index_build_s"] = round(built, 2)
        out[f"{name}_index_peak_rss_mb"] = round(peak, 1)
        print(
            f"{name}: match index built from {index_people:,} people in {built:.1f} s "
            f"({index_people / built:,.0f} people/s), peak resident memory of the building "
            f"process {peak:,.0f} MB",
            flush=True,
        )
    return out


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument(
        "--backends",
        default=",".join(ALL_BACKENDS),
        help=f"comma-separated, of {','.join(ALL_BACKENDS)}",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--on-error", choices=("reject", "skip"), default="reject")
    parser.add_argument(
        "--notifiers", default="log", help="comma-separated notifier names ('' for none)"
    )
    parser.add_argument(
        "--workers", default="auto", help="import_people(workers=...): a number, or auto"
    )
    parser.add_argument("--naive-people", type=int, default=20_000)
    parser.add_argument("--index-people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="onet-eval candidates")
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--every", type=int, default=0, help="print progress every N people")
    args = parser.parse_args(argv)
    backends = [b for b in (x.strip() for x in args.backends.split(",")) if b]
    unknown = sorted(set(backends) - set(ALL_BACKENDS))
    if unknown:
        parser.error(f"unknown backends: {', '.join(unknown)}")
    if args.people < 1 or args.batch_size < 1:
        parser.error("--people and --batch-size must be at least 1")
    args.notifier_names = [n for n in (x.strip() for x in args.notifiers.split(",")) if n]
    if not args.every:
        args.every = max(args.people // 10, 1) if args.people >= 100_000 else 0

    own = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="relcrm-ingest-")) if own else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "people": args.people,
        "batch_size": args.batch_size,
        "on_error": args.on_error,
        "notifiers": args.notifier_names,
        "naive_people": min(args.naive_people, args.people),
        "naive": "one CRM.add_person per person (one transaction each), same backend",
        "index_people": min(args.index_people, args.people),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        templates, source = load_templates(args.data)
        started = time.perf_counter()
        files = {"all": work / "people.jsonl"}
        write_profiles(files["all"], args.people, args.seed, templates)
        del templates
        files["naive"] = head(files["all"], args.naive_people, work / "naive.jsonl")
        files["index"] = head(files["all"], args.index_people, work / "index.jsonl")
        size = files["all"].stat().st_size
        print(
            f"ingest benchmark: {args.people:,} JSON Resume profiles ({size / 2**20:,.0f} MiB, "
            f"{size / args.people:,.0f} bytes each) from {source}, seed {args.seed}, written in "
            f"{time.perf_counter() - started:.1f} s; batch size {args.batch_size:,}, on_error="
            f"{args.on_error!r}, notifiers {args.notifier_names}; {os.cpu_count()} cpus, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for name in backends:
            try:
                backend = open_backend(name, work / name, args.postgres_url)
            except (ImportError, relcrm.RelcrmError) as exc:
                reason = str(exc).splitlines()[0]
                print(f"{name}: skipped, not available ({type(exc).__name__}: {reason})")
                results[f"{name}_note"] = f"skipped: {type(exc).__name__}: {reason}"
                continue
            try:
                results.update(measure(backend, files, args))
            except relcrm.RelcrmError as exc:  # e.g. the server went away mid-run
                reason = str(exc).splitlines()[0]
                print(f"{name}: failed ({type(exc).__name__}: {reason})", flush=True)
                results[f"{name}_error"] = f"{type(exc).__name__}: {reason}"
            finally:
                backend.close()
        results["peak_rss_mb"] = round(peak_rss_mb(), 1)
        results["load_average"] = round(os.getloadavg()[0], 2)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
