"""Matching quality on a relevance set in the onet-eval format, against plain BM25 in the same run.

    PYTHONPATH=src python benchmarks/quality.py --data ../shared/data/onet-eval/dev [--ablation]
        [--embeddings [--embeddings-cache DIR] [--semantic-weight W] [--semantic-sweep W,W,...]]

DIR holds ``candidates.jsonl.gz`` (JSON Resume documents, key ``basics.email``),
``openings.jsonl.gz`` (JSON Resume job documents, key ``meta.canonical``) and ``qrels.tsv``
(``opening``, ``candidate``, ``gain``). Prints a table and ends with one JSON line.
NDCG@10 uses gains 2^g - 1 and a log2 discount, the ideal DCG from every qrel of the opening; MRR is
the reciprocal rank of the first gain-3 candidate. Both are averaged over all openings.

``--embeddings`` (needs ``relcrm[embeddings]``) also runs the engine with the optional ``semantic``
signal (:mod:`relcrm.matching.embeddings`) and, on the same vectors, the dense model alone
(brute-force cosine of the role text against every candidate). ``--embeddings-cache DIR`` keeps
the vectors in DIR between runs, keyed by a hash of each text.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from relcrm.matching import MatchEngine, RoleProfile, _profiles
from relcrm.matching._index import TextIndex
from relcrm.matching._text import analyse
from relcrm.model import Experience, Opening, Person

#: The evaluation data is dated: profiles are built as of this day, whatever the clock says.
TODAY = date(2025, 1, 1)


def _read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# TEMPORARY: a private JSON Resume mapping used only while ``relcrm.interchange`` is not
# importable; remove once the importer has landed.
def _month(value: str | None) -> date | None:
    if not value:
        return None
    parts = [int(p) for p in value.split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, 1)


def _fallback_person(doc: Mapping[str, Any], key: str) -> Person:
    basics = doc.get("basics", {})
    return Person(
        id=key,
        name=basics.get("name") or key,
        headline=basics.get("label", ""),
        summary=basics.get("summary", ""),
        skills=[s.get("name", "") for s in doc.get("skills", [])],
        experience=tuple(
            Experience(
                title=w.get("position", ""),
                organisation=w.get("name", ""),
                start=_month(w.get("startDate")),
                end=_month(w.get("endDate")),
                highlights=tuple(w.get("highlights", [])),
            )
            for w in doc.get("work", [])
        ),
    )


def _fallback_opening(doc: Mapping[str, Any], key: str) -> Opening:
    return Opening(
        id=key,
        title=doc["title"],
        description=doc.get("description", ""),
        responsibilities=tuple(doc.get("responsibilities", [])),
        qualifications=tuple(doc.get("qualifications", [])),
        required_skills=[s.get("name", "") for s in doc.get("skills", [])],
    )


def _importers() -> tuple[Callable[..., Person], Callable[..., Opening], str]:
    try:
        from relcrm.interchange import opening_from_job, person_from_resume
    except ImportError:
        return _fallback_person, _fallback_opening, "fallback"

    def person(doc: Mapping[str, Any], key: str) -> Person:
        return person_from_resume(doc, id=key)

    def opening(doc: Mapping[str, Any], key: str) -> Opening:
        return opening_from_job(doc, id=key)

    return person, opening, "relcrm.interchange"


def load(
    data: Path, openings_limit: int | None = None
) -> tuple[list[Person], list[Opening], dict[str, dict[str, int]], str]:
    person_of, opening_of, via = _importers()
    people = [person_of(d, d["basics"]["email"]) for d in _read(data / "candidates.jsonl.gz")]
    openings = [opening_of(d, d["meta"]["canonical"]) for d in _read(data / "openings.jsonl.gz")]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(data / "qrels.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            o, c, g = line.rstrip("\n").split("\t")
            qrels[o][c] = int(g)
    if openings_limit is not None:
        step = max(1, len(openings) // openings_limit)
        openings = openings[::step][:openings_limit]
    return people, openings, dict(qrels), via


# ------------------------------------------------------------------------------------ metrics


def score_run(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> tuple[float, float]:
    """Mean NDCG@10 and MRR (first gain-3 candidate) over the openings in ``ranked``."""
    ndcgs, rrs = [], []
    for opening, people in ranked.items():
        gains = qrels.get(opening, {})
        dcg = sum((2 ** gains.get(p, 0) - 1) / math.log2(i + 2) for i, p in enumerate(people[:10]))
        ideal = sorted(gains.values(), reverse=True)[:10]
        idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcgs.append(dcg / idcg if idcg else 0.0)
        rr = next((1.0 / (i + 1) for i, p in enumerate(people) if gains.get(p, 0) == 3), 0.0)
        rrs.append(rr)
    return float(np.mean(ndcgs)), float(np.mean(rrs))


# ---------------------------------------------------------------------------------- baseline


def _flat_person(p: Person) -> str:
    parts = [p.headline, p.summary]
    for e in p.experience:
        parts += [e.title, e.summary, *e.highlights]
    return " ".join(parts)


def _flat_opening(o: Opening) -> str:
    return " ".join([o.title, o.description, *o.responsibilities, *o.qualifications])


def bm25_run(people: Sequence[Person], openings: Sequence[Opening], depth: int = 100) -> Any:
    """Plain BM25 (k1 1.2, b 0.75) over flattened text, tokenised with stopwords and stemming."""
    index = TextIndex(k1=1.2, b=0.75)
    for row, p in enumerate(people):
        index.add(row, Counter(analyse(_flat_person(p))))
    ranked = {}
    for o in openings:
        s = index.scores(Counter(analyse(_flat_opening(o))), len(people))
        top = np.argpartition(-s, depth)[:depth]
        top = top[np.argsort(-s[top], kind="stable")]
        ranked[o.id] = [people[i].id for i in top.tolist()]
    return ranked


# ------------------------------------------------------------------------------------ engine


def engine_run(
    people: Sequence[Person],
    openings: Sequence[Opening],
    depth: int = 100,
    **options: Any,
) -> tuple[dict[str, list[str]], float, list[float]]:
    """Rank every opening with the matching engine; returns the run, build seconds, latencies."""
    t0 = time.perf_counter()
    engine = MatchEngine(**options)
    engine.index(people, today=TODAY)
    build = time.perf_counter() - t0
    ranked, latencies = {}, []
    for o in openings:
        t = time.perf_counter()
        results = engine.match(RoleProfile.from_opening(o), limit=depth)
        latencies.append(time.perf_counter() - t)
        ranked[o.id] = [m.person_id for m in results.matches]
    return ranked, build, latencies


# -------------------------------------------------------------------------------- embeddings


class DiskCachedEncoder:
    """Wraps an encoder with a cache of vectors on disk (``DIR/<name>.npz``), keyed by a hash of
    each text: the benchmark's own, not the package's."""

    def __init__(self, inner: Any, directory: Path | None, name: str = "all-MiniLM-L6-v2") -> None:
        self.inner = inner
        self.path = directory / f"{name}.npz" if directory is not None else None
        self.cache: dict[str, np.ndarray[Any, Any]] = {}
        self.misses = 0
        if self.path is not None and self.path.exists():
            with np.load(self.path) as saved:
                self.cache = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        keys = [self._key(t) for t in texts]
        todo = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items()
        )
        if todo:
            vectors = np.asarray(self.inner.encode([t for _, t in todo]), dtype=np.float32)
            self.cache.update(zip([k for k, _ in todo], vectors, strict=True))
            self.misses += len(todo)
        return np.stack([self.cache[k] for k in keys])

    def save(self) -> None:
        if self.path is None or not self.misses:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.cache)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))
        tmp.replace(self.path)


def dense_run(
    signal: Any, people: Sequence[Person], openings: Sequence[Opening], depth: int = 100
) -> dict[str, list[str]]:
    """The dense model alone: cosine of the role vector against every candidate's vector."""
    matrix = np.stack([signal.vector(p.id) for p in people])
    ranked = {}
    for o in openings:
        query = signal.role_vector(RoleProfile.from_opening(o))
        s = matrix @ query
        top = np.argpartition(-s, depth)[:depth]
        top = top[np.argsort(-s[top], kind="stable")]
        ranked[o.id] = [people[i].id for i in top.tolist()]
    return ranked


def _with_profile_constants(**values: float) -> Callable[[], None]:
    """Temporarily change the profile field weights (ablation only); returns the undo."""
    old = {k: getattr(_profiles, k) for k in values}
    for k, v in values.items():
        setattr(_profiles, k, v)
    return lambda: [setattr(_profiles, k, v) for k, v in old.items()] and None


ABLATIONS: list[tuple[str, dict[str, float], dict[str, Any]]] = [
    (
        "engine, flat fields (title 1, past 1), text only",
        {"TITLE_WEIGHT": 1.0, "PAST_FLOOR": 1.0, "PAST_HALF_LIFE_YEARS": 1e9},
        {"weights": {"title": 0.0}},
    ),
    ("+ recency: past positions faded", {"TITLE_WEIGHT": 1.0}, {"weights": {"title": 0.0}}),
    ("+ titles weighted x3 in text", {}, {"weights": {"title": 0.0}}),
    ("+ title similarity signal (default)", {}, {}),
    ("default + pseudo-relevance feedback", {}, {"feedback_docs": 10}),
]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--openings", type=int, default=None, help="evaluate a subset")
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="the engine's first-stage posting budget (default: the engine's own)",
    )
    parser.add_argument(
        "--shortlist",
        type=int,
        default=None,
        help="how many rows the engine scores exactly (default: the engine's own)",
    )
    parser.add_argument("--ablation", action="store_true", help="also run the ablation table")
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="also run the engine with the semantic signal and the dense model alone",
    )
    parser.add_argument(
        "--embeddings-cache", type=Path, default=None, help="keep the vectors in this directory"
    )
    parser.add_argument(
        "--semantic-weight", type=float, default=None, help="weight of the semantic signal"
    )
    parser.add_argument(
        "--semantic-sweep",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[],
        help="also list these semantic weights in the table (comma-separated)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)

    t0 = time.perf_counter()
    people, openings, qrels, via = load(args.data, args.openings)
    load_s = time.perf_counter() - t0
    print(f"{len(people)} candidates, {len(openings)} openings from {args.data} (via {via})")

    t = time.perf_counter()
    bm25 = score_run(bm25_run(people, openings), qrels)
    bm25_s = time.perf_counter() - t

    rows = [("bm25 (flattened text)", *bm25)]
    if args.ablation:
        for name, constants, options in ABLATIONS:
            undo = _with_profile_constants(**constants)
            try:
                run, _, _ = engine_run(people, openings, **options)
            finally:
                undo()
            rows.append((name, *score_run(run, qrels)))
    main_options: dict[str, Any] = {}
    if args.budget is not None:
        main_options["budget"] = args.budget
    if args.shortlist is not None:
        main_options["shortlist"] = args.shortlist
    run, build_s, latencies = engine_run(people, openings, **main_options)
    ndcg, mrr = score_run(run, qrels)
    rows.append(("relcrm MatchEngine (defaults)", ndcg, mrr))

    extra: dict[str, Any] = {}
    if args.embeddings:
        from relcrm.matching.embeddings import EmbeddingSignal, MiniLMEncoder

        encoder = DiskCachedEncoder(MiniLMEncoder(), args.embeddings_cache)
        signal = EmbeddingSignal(encoder)
        weight = signal.weight if args.semantic_weight is None else args.semantic_weight
        t = time.perf_counter()
        signal.ingest(people)
        for o in openings:
            signal.role_vector(RoleProfile.from_opening(o))
        embed_s = time.perf_counter() - t
        encoder.save()
        dense = score_run(dense_run(signal, people, openings), qrels)
        rows.append(("dense all-MiniLM-L6-v2 alone (all candidates)", *dense))
        for w in args.semantic_sweep:
            swept, _, _ = engine_run(people, openings, signals=[signal], weights={"semantic": w})
            rows.append((f"engine + semantic, weight {w:g}", *score_run(swept, qrels)))
        run_e, _, lat_e = engine_run(
            people, openings, signals=[signal], weights={"semantic": weight}
        )
        emb = score_run(run_e, qrels)
        rows.append((f"relcrm MatchEngine + semantic (weight {weight:g})", *emb))
        lat_ms = np.array(lat_e) * 1000
        extra = {
            "dense_ndcg10": round(dense[0], 4),
            "dense_mrr": round(dense[1], 4),
            "embeddings_ndcg10": round(emb[0], 4),
            "embeddings_mrr": round(emb[1], 4),
            "semantic_weight": weight,
            "embed_s": round(embed_s, 2),
            "encoded": encoder.misses,
            "embeddings_p50_ms": round(float(np.percentile(lat_ms, 50)), 2),
            "embeddings_p95_ms": round(float(np.percentile(lat_ms, 95)), 2),
        }

    width = max(len(r[0]) for r in rows)
    print(f"{'system':<{width}}  NDCG@10     MRR")
    for name, n, m in rows:
        print(f"{name:<{width}}  {n:7.4f}  {m:7.4f}")
    lat = np.array(latencies) * 1000
    print(
        json.dumps(
            {
                "ndcg10": round(ndcg, 4),
                "mrr": round(mrr, 4),
                "bm25_ndcg10": round(bm25[0], 4),
                "bm25_mrr": round(bm25[1], 4),
                "openings": len(openings),
                "candidates": len(people),
                "importer": via,
                "load_s": round(load_s, 2),
                "build_s": round(build_s, 2),
                "bm25_s": round(bm25_s, 2),
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p95_ms": round(float(np.percentile(lat, 95)), 2),
                **extra,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
