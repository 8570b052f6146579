"""Matching speed at scale: relcrm's engine against text retrieval libraries on the same pool.

A pool of ``--profiles`` synthetic people (default 1,000,000) is generated deterministically from
the packaged skills taxonomy with Zipf-like skill popularity (see ``_pool.py``), and ``--openings``
openings (default 200) are drawn the same way. For relcrm and for each peer the script measures:

- ``build_s``: seconds from raw records to a queryable index. For relcrm that is
  ``MatchEngine.index`` of ``(Person, CandidateContext)`` pairs (profiling: text analysis, skill
  normalisation and extraction; then indexing) and the first query; generating the synthetic
  records is not counted. For the peers it is
  their tokenising and indexing of each profile's text.
- ``rss_mb``: resident memory the built index holds (RSS after the build minus before, after a
  garbage collection), and ``peak_mb``: the process's peak RSS during the build.
- ``p50_ms`` / ``p95_ms``: latency of one query over the openings. relcrm's query is the full
  ``MatchEngine.match(role, limit=20)``: hard filters, every signal, explanations of the top 20.
  A peer's query is a text-only top-20 retrieval for the opening's words (title, description,
  responsibilities, skills), including the peer's own query parsing.

Peers run one after another and are freed before the next: bm25s, tantivy, scikit-learn TF-IDF
(query-column slicing of a CSC matrix), SQLite FTS5 ``bm25()``, and rank_bm25 on a 100k subset.
A peer that is not installed is skipped and reported as such. The script ends by printing one JSON
line: ``p50_ms``, ``p95_ms``, ``build_s``, ``rss_mb`` (relcrm's) and ``peers``.

relcrm's first stage reads at most ``MatchEngine.budget`` postings per query (``--budget N`` or
``none`` to change it); ``relcrm_detail.agreement_at_20`` says what share of each top 20 an
unbounded first stage also returns, measured on the same engine.

numpy on some processors here runs with ``OPENBLAS_CORETYPE`` set; unset it (and
``OPENBLAS_L2_SIZE``) for the run to measure a current numpy at its usual speed; the header line
says which BLAS kernel ran.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import math
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pool import Opening, Profile, Taxonomy, iter_profiles, load_taxonomy, make_openings

try:
    import relcrm  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ALL_PEERS = ("bm25s", "tantivy", "sklearn", "fts5", "rank_bm25")
#: A fixed "today" so the pool (check-back dates, recency, hires) is the same on every run.
TODAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
WARMUP = 5
LIMIT = 20

# English function words dropped from the peers' queries (a query of every word would be an OR of
# "and", "to", "the", ... and measure nothing useful).
_STOP = """a about after all also an and any are as at be been but by can for from has have in into
is it its of on or our than that the their them then there these they this to up was we were what
when which while who will with within you your day"""
STOPWORDS = frozenset(_STOP.split())
_WORD = re.compile(r"[a-z0-9]+")


def query_words(text: str) -> list[str]:
    """Distinct lower-case words of ``text`` without stopwords, in order."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS))


# ------------------------------------------------------------------------------------- memory


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------ results


@dataclass
class Figures:
    name: str
    build_s: float = float("nan")
    rss_mb: float = float("nan")
    peak_mb: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))

    @property
    def p50_ms(self) -> float:
        return self.pct(50)

    @property
    def p95_ms(self) -> float:
        return self.pct(95)

    def as_json(self) -> dict[str, Any]:
        def r(x: float, nd: int = 3) -> float | None:
            return None if math.isnan(x) else round(x, nd)

        return {
            "p50_ms": r(self.p50_ms),
            "p95_ms": r(self.p95_ms),
            "build_s": r(self.build_s, 2),
            "rss_mb": r(self.rss_mb, 1),
            "peak_mb": r(self.peak_mb, 1),
            "queries": len(self.latencies_ms),
            "note": self.note,
        }


def time_queries(
    run: Callable[[Any], object], queries: list[Any], budget_s: float
) -> tuple[list[float], str]:
    """Per-query latencies in ms after a short warm-up; stops early past ``budget_s``."""
    for q in queries[:WARMUP]:
        run(q)
    out: list[float] = []
    started = time.perf_counter()
    for q in queries:
        t0 = time.perf_counter()
        run(q)
        out.append((time.perf_counter() - t0) * 1000)
        if time.perf_counter() - started > budget_s and len(out) < len(queries):
            return out, f"stopped after {len(out)}/{len(queries)} queries ({budget_s:.0f} s budget)"
    return out, ""


def measure(
    name: str,
    build: Callable[[], Any],
    query: Callable[[Any, Any], object],
    queries: list[Any],
    budget_s: float,
    note: str = "",
    after: Callable[[Any], dict[str, Any]] | None = None,
) -> Figures:
    """Build with ``build()``, then time ``query(index, q)`` over ``queries``; ``after(index)``
    adds figures to the details; frees the index."""
    gc.collect()
    before = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t0
    gc.collect()
    fig = Figures(name, build_s=build_s, rss_mb=rss_mb() - before, peak_mb=peak_mb(), note=note)
    if isinstance(index, tuple) and len(index) == 2 and isinstance(index[1], dict):
        index, fig.detail = index
        fig.build_s = fig.detail.pop("build_s", build_s)
    fig.latencies_ms, stopped = time_queries(functools.partial(query, index), queries, budget_s)
    fig.note = "; ".join(x for x in (fig.note, stopped) if x)
    if after is not None:
        fig.detail.update(after(index))
    del index
    gc.collect()
    return fig


# ------------------------------------------------------------------------------------- relcrm


def _person(p: Profile) -> Any:
    """relcrm's Person and CandidateContext for a synthetic profile."""
    from relcrm.matching import CandidateContext
    from relcrm.model import (
        ArchiveReasonType,
        Availability,
        Experience,
        Location,
        Milestone,
        Person,
        Preferences,
        RemotePolicy,
    )

    def ago(years: float | None) -> date | None:
        return None if years is None else TODAY - timedelta(days=int(years * 365.25))

    person = Person(
        id=p.id,
        name=f"Person {p.row}",
        headline=p.headline,
        summary=p.summary,
        skills=p.skills,
        experience=tuple(
            Experience(
                title=e.title,
                organisation=e.organisation,
                start=ago(e.started_years_ago),
                end=ago(e.ended_years_ago),
                summary=e.summary,
                highlights=e.highlights,
            )
            for e in p.experience
        ),
        location=Location(city=p.city, country_code=p.country),
        preferences=Preferences(
            remote=RemotePolicy(p.remote) if p.remote else None,
            availability=Availability(p.availability),
            check_back_on=TODAY + timedelta(days=p.check_back_days)
            if p.check_back_days is not None
            else None,
        ),
    )
    context = CandidateContext(
        warmth=p.warmth,
        furthest_milestone=Milestone(p.milestone) if p.milestone else None,
        archive_reason=ArchiveReasonType(p.archive_reason) if p.archive_reason else None,
        last_activity_at=NOW - timedelta(days=p.last_activity_days),
        consents=frozenset({"recruiting"}) if p.consent_marketing else frozenset(),
        # 1% of people are already in process for one of the first openings.
        in_process_for=frozenset({f"o{p.row % 200:05d}"}) if p.row % 100 == 7 else frozenset(),
        hired_at=NOW - timedelta(days=p.hired_days_ago) if p.hired_days_ago is not None else None,
        segment=("silver_medalists", "past_applicants", "prospects", "employees", "alumni")[
            p.row % 5
        ],
    )
    return person, context


def _role(o: Opening) -> Any:
    from relcrm.matching import RoleProfile
    from relcrm.model import Location, RemotePolicy, Seniority

    return RoleProfile(
        id=o.id,
        title=o.title,
        description=o.description,
        responsibilities=o.responsibilities,
        required_skills=o.required_skills,
        nice_to_have_skills=o.nice_to_have_skills,
        seniority=Seniority(o.seniority) if o.seniority else None,
        location=Location(city=o.city, country_code=o.country),
        remote=RemotePolicy(o.remote),
    )


def relcrm_agreement(engine: Any, roles: list[Any], purpose: str | None) -> dict[str, Any]:
    """How far the first stage's posting budget changes the results: the share of each query's
    top 20 that an unbounded first stage (every posting list read) also returns, and the p50 of
    that unbounded query."""
    budget = getattr(engine, "budget", None)
    if budget is None:
        return {}
    bounded = [{m.person_id for m in query_relcrm(engine, r, purpose)} for r in roles]
    engine.budget = None
    try:
        unbounded: list[set[str]] = []
        times: list[float] = []
        for r in roles:
            t0 = time.perf_counter()
            unbounded.append({m.person_id for m in query_relcrm(engine, r, purpose)})
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        engine.budget = budget
    pairs = list(zip(bounded, unbounded, strict=True))
    shares = [len(a & b) / max(len(b), 1) for a, b in pairs]
    return {
        "budget": budget,
        "agreement_at_20": round(float(np.mean(shares)), 4),
        "identical_top20_share": round(float(np.mean([a == b for a, b in pairs])), 4),
        "unbounded_p50_ms": round(float(np.percentile(times, 50)), 2),
    }


def relcrm_api() -> str:
    """What the harness calls, for the report."""
    return (
        "MatchEngine().index(iterable of (Person, CandidateContext), today=...); "
        "MatchEngine.match(RoleProfile, limit=20, now=..., purpose=...) -> MatchResults.matches"
    )


def build_relcrm(
    tax: Taxonomy, n: int, seed: int, options: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    from relcrm.matching import MatchEngine

    spent = {"generate": 0.0}

    def stream() -> Iterator[Any]:
        it = iter(iter_profiles(tax, n, seed))
        clock = time.perf_counter
        while True:
            t0 = clock()
            p = next(it, None)
            if p is None:
                spent["generate"] += clock() - t0
                return
            pair = _person(p)
            spent["generate"] += clock() - t0
            yield pair

    engine = MatchEngine(**(options or {}))
    t0 = time.perf_counter()
    engine.index(stream(), today=TODAY)
    # The engine may defer work to the first query (buffered segments): count it in the build.
    t1 = time.perf_counter()
    engine.match(_role_warm(tax, seed), limit=LIMIT, now=NOW)
    warm_s = time.perf_counter() - t1
    total = t1 - t0 - spent["generate"] + warm_s
    detail = {
        "build_s": total,
        "first_query_s": round(warm_s, 3),
        "generate_s": round(spent["generate"], 2),
    }
    return engine, detail


def _role_warm(tax: Taxonomy, seed: int) -> Any:
    return _role(make_openings(tax, 1, seed + 1)[0])


def query_relcrm(engine: Any, role: Any, purpose: str | None) -> Any:
    res = engine.match(role, limit=LIMIT, now=NOW, purpose=purpose)
    matches = getattr(res, "matches", res)
    # Touch what a caller would read: ids, scores, every explanation.
    for m in matches:
        _ = (m.person_id, m.score, m.explanation)
    return matches


# -------------------------------------------------------------------------------------- peers


def build_bm25s(texts: list[str]) -> Any:
    import bm25s

    tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    return retriever


def query_bm25s(retriever: Any, text: str) -> Any:
    import bm25s

    q = bm25s.tokenize([text], stopwords="en", show_progress=False, return_ids=False)
    q = [[t for t in q[0] if t in retriever.vocab_dict]]
    docs, _ = retriever.retrieve(q, k=LIMIT, show_progress=False, n_threads=1)
    return docs


def build_tantivy(texts: list[str]) -> Any:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", stored=False)
    sb.add_unsigned_field("row", stored=True)
    index = tantivy.Index(sb.build())  # in memory
    writer = index.writer(heap_size=512_000_000, num_threads=2)
    for i, t in enumerate(texts):
        writer.add_document(tantivy.Document(body=t, row=i))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index, index.searcher()


def query_tantivy(state: Any, text: str) -> Any:
    index, searcher = state
    q = index.parse_query(" ".join(query_words(text)), ["body"])
    hits = searcher.search(q, LIMIT).hits
    return [searcher.doc(addr)["row"][0] for _, addr in hits]


def build_sklearn(texts: list[str]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", dtype=np.float32)
    x = vec.fit_transform(texts).tocsc()
    return vec, x


def query_sklearn(state: Any, text: str) -> Any:
    vec, x = state
    q = vec.transform([text])
    if q.nnz == 0:
        return []
    scores = np.asarray(x[:, q.indices] @ q.data).ravel()
    k = min(LIMIT, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def build_fts5(texts: list[str]) -> Any:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    with db:
        db.executemany("INSERT INTO docs(rowid, body) VALUES (?, ?)", enumerate(texts))
    db.execute("INSERT INTO docs(docs) VALUES ('optimize')")
    return db


def query_fts5(db: sqlite3.Connection, text: str) -> Any:
    expr = " OR ".join(f'"{w}"' for w in query_words(text))
    return db.execute(
        "SELECT rowid, bm25(docs) FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 20",
        (expr,),
    ).fetchall()


def build_rank_bm25(texts: list[str]) -> Any:
    from rank_bm25 import BM25Okapi

    return BM25Okapi([query_words(t) for t in texts])


def query_rank_bm25(bm: Any, text: str) -> Any:
    scores = bm.get_scores(query_words(text))
    top = np.argpartition(-scores, LIMIT - 1)[:LIMIT]
    return top[np.argsort(-scores[top])]


PEERS: dict[str, tuple[str, Callable[[list[str]], Any], Callable[[Any, str], Any]]] = {
    "bm25s": ("bm25s", build_bm25s, query_bm25s),
    "tantivy": ("tantivy", build_tantivy, query_tantivy),
    "sklearn": ("sklearn", build_sklearn, query_sklearn),
    "fts5": ("sqlite3", build_fts5, query_fts5),
    "rank_bm25": ("rank_bm25", build_rank_bm25, query_rank_bm25),
}


def peer_available(name: str) -> bool:
    module = PEERS[name][0]
    if name == "fts5":
        try:
            sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        except sqlite3.OperationalError:
            return False
        return True
    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------------------- run


def blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    info = [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return ", ".join(info) or "no BLAS"


def table(figs: list[Figures], base: Figures) -> str:
    head = (
        f"{'engine':<22}{'build s':>9}{'index MB':>10}{'peak MB':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p50 x':>8}{'build x':>8}  note"
    )
    lines = [head, "-" * len(head)]
    for f in figs:
        ratio = f.p50_ms / base.p50_ms if base.latencies_ms else float("nan")
        bratio = f.build_s / base.build_s if not math.isnan(base.build_s) else float("nan")
        lines.append(
            f"{f.name:<22}{f.build_s:>9.2f}{f.rss_mb:>10.0f}{f.peak_mb:>9.0f}{f.p50_ms:>9.2f}"
            f"{f.p95_ms:>9.2f}{ratio:>8.2f}{bratio:>8.2f}  {f.note}"
        )
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--openings", type=int, default=200)
    parser.add_argument(
        "--peers", default=",".join(ALL_PEERS), help=f"comma-separated, of {','.join(ALL_PEERS)}"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taxonomy", help="skills CSV (default: relcrm's packaged taxonomy)")
    parser.add_argument("--purpose", default="recruiting", help="consent purpose filtered on")
    parser.add_argument("--rank-bm25-subset", type=int, default=100_000)
    parser.add_argument(
        "--budget",
        help="MatchEngine(budget=N): postings the first stage reads ('none': all of them; "
        "default: the engine's default)",
    )
    parser.add_argument(
        "--no-relcrm", action="store_true", help="measure the peers only (relcrm figures null)"
    )
    parser.add_argument(
        "--peer-budget-s", type=float, default=180.0, help="stop timing a slow peer's queries"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    peers = [p for p in (x.strip() for x in args.peers.split(",")) if p and p != "none"]
    unknown = sorted(set(peers) - set(ALL_PEERS))
    if unknown:
        parser.error(f"unknown peers: {', '.join(unknown)}")
    options: dict[str, Any] = {}
    if args.budget is not None:
        if args.budget != "none" and not args.budget.isdigit():
            parser.error("--budget takes a number of postings or 'none'")
        options["budget"] = None if args.budget == "none" else int(args.budget)

    blas_env = {
        k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
    }
    tax = load_taxonomy(args.taxonomy)
    openings = make_openings(tax, args.openings, args.seed)
    print(
        f"matching benchmark: {args.profiles:,} profiles, {len(openings)} openings, "
        f"seed {args.seed}; skills from {tax.source} ({len(tax.labels):,} skills, "
        f"{len(tax.families)} families); BLAS: {blas_kernel()}"
        + (f"; env {blas_env}" if blas_env else "")
        + f"; {os.cpu_count()} cpus",
        flush=True,
    )

    # relcrm first, streaming the pool (the text corpus for the peers is made afterwards).
    if args.no_relcrm:
        rel = Figures("relcrm", note="not run (--no-relcrm)")
    else:
        roles = [_role(o) for o in openings]
        rel = measure(
            "relcrm",
            lambda: build_relcrm(tax, args.profiles, args.seed, options),
            lambda engine, role: query_relcrm(engine, role, args.purpose),
            roles,
            budget_s=1e9,
            note="full match: filters + all signals + explanations",
            after=lambda engine: relcrm_agreement(engine, roles, args.purpose),
        )
        del roles
        print(f"relcrm: built in {rel.build_s:.1f} s {rel.detail}; api: {relcrm_api()}", flush=True)
    figs = [rel]

    peers = [p for p in peers if p in PEERS]
    if peers:
        t0 = time.perf_counter()
        texts = [p.text() for p in iter_profiles(tax, args.profiles, args.seed)]
        queries = [o.text() for o in openings]
        print(f"peer corpus: {len(texts):,} texts in {time.perf_counter() - t0:.1f} s", flush=True)
        for name in peers:
            if not peer_available(name):
                figs.append(Figures(name, note="not installed: skipped"))
                print(f"{name}: not installed, skipped", flush=True)
                continue
            _, build, query = PEERS[name]
            corpus, note = texts, "text only"
            if name == "rank_bm25" and len(texts) > args.rank_bm25_subset:
                corpus = texts[: args.rank_bm25_subset]
                note = f"text only, on a {len(corpus):,}-profile subset"
            fig = measure(
                name,
                lambda build=build, corpus=corpus: build(corpus),
                query,
                queries,
                budget_s=args.peer_budget_s,
                note=note,
            )
            del corpus
            figs.append(fig)
            print(
                f"{name}: build {fig.build_s:.1f} s, index {fig.rss_mb:.0f} MB, "
                f"p50 {fig.p50_ms:.2f} ms, p95 {fig.p95_ms:.2f} ms",
                flush=True,
            )
        del texts
        gc.collect()

    print()
    print(table(figs, rel))
    process_peak = max([peak_mb(), *(f.peak_mb for f in figs if not math.isnan(f.peak_mb))])
    print(f"process peak RSS: {process_peak:.0f} MB")
    if rel.latencies_ms:
        faster = [f.name for f in figs[1:] if f.latencies_ms and f.p50_ms <= rel.p50_ms]
        print(f"at or under relcrm's p50: {faster}" if faster else "relcrm is fastest at p50")
    out = rel.as_json()
    out.update(
        process_peak_mb=round(process_peak, 1),
        profiles=args.profiles,
        openings=len(openings),
        relcrm_detail=rel.detail,
        peers={f.name: f.as_json() for f in figs[1:]},
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
