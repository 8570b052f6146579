"""Skills taxonomies: free-form skill strings to canonical ids, and skills found in free text.

The built-in taxonomy, ``esco``, is ESCO v1.1.1 (European Skills, Competences, Qualifications and
Occupations, (c) European Union, reused under CC BY 4.0) plus relcrm's technology synonyms; see
``docs/skills.md``. It is read from the package data on first use, never at ``import relcrm``, and
kept for the life of the process. Plugins add or replace vocabularies through the
``relcrm_register_skill_taxonomies`` hook; :func:`taxonomy_for` returns a CRM's merged taxonomy.

>>> from relcrm.matching import taxonomy
>>> taxonomy.normalise("k8s").label
'Kubernetes'
"""

from __future__ import annotations

import difflib
import gzip
import logging
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from importlib import resources
from itertools import chain
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import pluggy

__all__ = [
    "DATA_FILE",
    "NormalisedSkill",
    "Scanner",
    "Skill",
    "SkillGroup",
    "SkillMention",
    "SkillTaxonomy",
    "alias_key",
    "esco_taxonomy",
    "extract",
    "label",
    "labels",
    "mentions",
    "mentions_in_tokens",
    "normalise",
    "read_taxonomy_file",
    "related",
    "split_tokens",
    "taxonomy_for",
]

log = logging.getLogger("relcrm.matching")

#: The packaged taxonomy, relative to the ``relcrm.matching`` package.
DATA_FILE = "data/esco-skills.tsv.gz"

#: Longest alias, in tokens, that :meth:`SkillTaxonomy.extract` looks for in text.
MAX_TOKENS = 6

# A token: letters and digits, keeping "c++", "c#", "node.js", "asp.net" and ".net" whole.
_TOKEN = re.compile(r"(?:(?<![\w.])\.)?[^\W_][\w+#]*(?:\.[^\W_][\w+#]*)*")


class _ChunkTokens(dict[str, tuple[str, ...]]):
    """Whitespace-separated chunk -> its tokens (no token spans whitespace, so splitting on
    whitespace first and memoising the chunks, which repeat, gives the same tokens faster)."""

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        found = tuple(_TOKEN.findall(chunk))
        if len(self) < 1_000_000:
            self[chunk] = found
        return found


_chunk_tokens = _ChunkTokens()


def split_tokens(text: str | Iterable[str]) -> list[str]:
    """The tokens extraction reads, as written (``"Node.js"``, ``"C++"``, ``".NET"``), of a
    text or of its whitespace-separated chunks (``text.split()``)."""
    chunks = text.split() if isinstance(text, str) else text
    return list(chain.from_iterable(map(_chunk_tokens.__getitem__, chunks)))


_SIMPLE = re.compile(r"[a-z]+(?: [a-z]+)*")

#: Words that make an alias a fragment: one that starts or ends with one is not extracted.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "the",
        "their",
        "this",
        "to",
        "was",
        "we",
        "were",
        "will",
        "with",
        "you",
        "your",
        "i",
        "me",
        "my",
        "he",
        "she",
        "they",
        "them",
        "us",
        "etc",
        "e.g",
        "i.e",
    ]
)

#: Single-word aliases that are also ordinary words or names. In free text they count only when
#: written exactly as given here; ``None`` means never on their own (a longer alias still
#: counts: "Go" is not extracted, "golang" is). :meth:`SkillTaxonomy.normalise` ignores this.
BARE_WORDS: dict[str, str | None] = {
    "go": None, "c": None, "d": None, "py": None, "ts": None, "dl": None, "stats": None,
    "julia": None, "cassandra": None, "unity": None, "kube": None, "sketch": None,
    "r": "R", "ml": "ML", "ai": "AI", "bi": "BI", "ui": "UI", "ror": "RoR", "elk": "ELK",
    "sas": "SAS", "sap": "SAP", "apl": "APL", "rest": "REST", "swift": "Swift", "ruby": "Ruby",
    "rust": "Rust", "dart": "Dart", "flutter": "Flutter", "react": "React", "angular": "Angular",
    "node": "Node", "flask": "Flask", "rails": "Rails", "spark": "Spark", "chef": "Chef",
    "puppet": "Puppet", "salt": "Salt", "eclipse": "Eclipse", "scratch": "Scratch",
    "assembly": "Assembly", "groovy": "Groovy", "pascal": "Pascal", "confluence": "Confluence",
    "snowflake": "Snowflake", "latex": "LaTeX", "excel": "Excel", "oracle": "Oracle",
    "illustrator": "Illustrator", "maven": "Maven", "jenkins": "Jenkins", "vagrant": "Vagrant",
    "airflow": "Airflow", "cloud": "cloud", "programming": "programming", "agile": "Agile",
}  # fmt: skip

# Decorations people put around a skill: "experience with Python", "SQL skills".
_DECORATION = re.compile(
    r"^(?:(?:good|strong|solid|basic|advanced|excellent|working)\s+)?"
    r"(?:(?:knowledge|experience|expertise|proficiency|skills?|familiarity)\s+(?:of|in|with)\s+)?"
    r"(?P<core>.+?)"
    r"(?:\s+(?:skills?|experience|knowledge|programming|development|language|framework))?$",
    re.IGNORECASE,
)

#: Fuzzy matches below this similarity (difflib ratio of normalised forms) are not reported.
FUZZY_THRESHOLD = 0.86
_FUZZY_MIN_LENGTH = 5
_FUZZY_SHORTLIST = 40


# ------------------------------------------------------------------------------------------------
# Vocabulary
# ------------------------------------------------------------------------------------------------


@attrs.frozen
class Skill:
    """A concept of a taxonomy.

    ``aliases`` are alternative labels; ``synonyms`` are what people type for it ("k8s"). An alias
    or synonym may be claimed by several concepts; the winner is the synonym, then the preferred
    label, then the alternative label (ties: the concept listed first). One-word names are found
    in free text only if they are synonyms or ``technology`` is set: "Kubernetes" is specific
    enough, one-word general skills ("communication") are not.
    """

    id: str
    label: str
    aliases: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    kind: str = "skill"
    groups: tuple[str, ...] = ()
    technology: bool = False


@attrs.frozen
class SkillGroup:
    """A node of a taxonomy's hierarchy (ESCO's skill groups, such as ``esco:K0613``)."""

    id: str
    label: str
    parent: str | None = None


@attrs.frozen
class NormalisedSkill:
    """What :meth:`SkillTaxonomy.normalise` found: the concept, the alias that matched and a score
    in (0, 1] (1 for an exact alias, lower for a decorated or misspelt one)."""

    id: str
    label: str
    alias: str
    score: float


@attrs.frozen
class SkillMention:
    """A skill found in text: ``text[start:end]`` is what was written, ``alias`` the alias it
    matched."""

    id: str
    label: str
    alias: str
    start: int
    end: int


def _singular(token: str) -> str:
    """Undo a simple English plural: ``databases -> database``, ``technologies -> technology``."""
    if len(token) <= 3 or token[-1] != "s" or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token[-2] in "siu'":
        return token
    return token[:-1]


def alias_key(text: str) -> str:
    """The form aliases are compared in: lower case, punctuation and extra spaces gone, the last
    word singular (``"Relational  Databases"`` -> ``"relational database"``)."""
    low = text.lower()
    if _SIMPLE.fullmatch(low):  # the common case, without tokenising
        head, space, last = low.rpartition(" ")
        return low if last[-1] != "s" else head + space + _singular(last)
    tokens = _TOKEN.findall(low)
    if tokens:
        tokens[-1] = _singular(tokens[-1])
    return " ".join(tokens)


# (skill id, alias as written in the taxonomy, rule for free text: "" any case, "-" never,
# anything else: the exact spelling required)
_Alias = tuple[str, str, str]
# What extraction knows of a token as written: lower case, singular head, the alias the token
# is on its own in free text (or None), whether a longer alias may start with it, the most words
# an alias starting with it has (0: none), whether a mention may start at it at all, and the
# words that may follow it in a longer alias (see :meth:`_Index.follow`).
_Word = tuple[str, str, _Alias | None, bool, int, bool, frozenset[str]]


class _Index:
    """Everything the queries need, built once per taxonomy."""

    __slots__ = (
        "_follow",
        "_fuzzy",
        "aliases",
        "first",
        "groups",
        "members",
        "prefixes",
        "skills",
        "words",
    )

    def __init__(self, skills: dict[str, Skill], groups: dict[str, SkillGroup]) -> None:
        self.skills = skills
        self.groups = groups
        self.aliases: dict[str, _Alias] = {}
        self.first: dict[str, int] = {}
        # Every proper word prefix of a multi-word alias key ("machine" and "machine learning"
        # for "machine learning engineer"): extraction stops growing a run that is in none.
        self.prefixes: set[str] = set()
        self.members: dict[str, list[str]] | None = None
        self._fuzzy: tuple[list[str], list[int], dict[str, list[int]]] | None = None
        self.words: dict[str, _Word] = {}
        self._follow: dict[str, frozenset[str]] | None = None
        aliases, first = self.aliases, self.first
        ranked: dict[str, int] = {}
        for rank, field in enumerate(("synonyms", "label", "aliases")):
            for skill in skills.values():
                names = (skill.label,) if field == "label" else getattr(skill, field)
                for name in names:
                    key = alias_key(name)
                    if not key or ranked.setdefault(key, rank) != rank or key in aliases:
                        continue
                    rule = _rule(key, name, skill, rank == 0)
                    aliases[key] = (skill.id, name, rule)
                    if rule != "-":
                        size = key.count(" ") + 1
                        head = _singular(key.partition(" ")[0])
                        if first.get(head, 0) < size:
                            first[head] = size
                        if size > 1:
                            self.prefixes.update(_proper_prefixes(key))

    @classmethod
    def merge(cls, parts: list[_Index]) -> _Index:
        """The union of ``parts``; a later part wins an alias or id that an earlier one has."""
        merged = cls({}, {})
        for part in parts:
            merged.skills.update(part.skills)
            merged.groups.update(part.groups)
            merged.aliases.update(part.aliases)
            for head, n in part.first.items():
                merged.first[head] = max(n, merged.first.get(head, 0))
            merged.prefixes.update(part.prefixes)
        return merged

    def word(self, token: str) -> _Word:
        """What extraction needs of a token as written (memoised in :attr:`words`)."""
        low = token.lower()
        head = _SINGULAR.get(low) or _singular_cached(low)
        longest = self.first.get(head, 0)
        single = None
        if longest:
            hit = self.aliases.get(head)
            if hit is not None and (not hit[2] or (hit[2] != "-" and token == hit[2])):
                single = hit
        grows = longest > 1 and low in self.prefixes
        follow = self.follow().get(low, frozenset()) if grows else frozenset()
        value = (low, head, single, grows, longest, single is not None or grows, follow)
        if len(self.words) < 500_000:
            self.words[token] = value
        return value

    def follow(self) -> dict[str, frozenset[str]]:
        """First word -> every second word of a multi-word alias allowed in free text or of a
        longer prefix: a run that goes on with none of them ends at its first word."""
        if self._follow is None:
            found: dict[str, set[str]] = {}
            keys = [k for k, a in self.aliases.items() if a[2] != "-"]
            for key in chain(keys, self.prefixes):
                words = key.split(" ", 2)
                if len(words) > 1:
                    found.setdefault(words[0], set()).add(words[1])
            self._follow = {k: frozenset(v) for k, v in found.items()}
        return self._follow

    def group_members(self) -> dict[str, list[str]]:
        if self.members is None:
            members: dict[str, list[str]] = {}
            for skill in self.skills.values():
                for group in skill.groups:
                    members.setdefault(group, []).append(skill.id)
            self.members = members
        return self.members

    def fuzzy(self) -> tuple[list[str], list[int], dict[str, list[int]]]:
        """Alias keys of at most three words, their lengths, and trigram -> positions."""
        if self._fuzzy is None:
            keys = sorted(k for k in self.aliases if k.count(" ") < 3)
            postings: dict[str, list[int]] = {}
            for n, key in enumerate(keys):
                for gram in _trigrams(key):
                    postings.setdefault(gram, []).append(n)
            self._fuzzy = (keys, [len(k) for k in keys], postings)
        return self._fuzzy


class Scanner:
    """Extraction over many texts at once: for each, what
    :meth:`SkillTaxonomy.mentions_in_tokens` finds, with array operations instead of a loop per
    token.

    Tokens become small integers (:meth:`chunk_ids`, memoised per whitespace-separated chunk);
    the prefixes of multi-word aliases become integers too, and growing every run by one word is
    one sorted-array lookup for all positions at once. Only the final left-to-right choice among
    overlapping runs is a loop, over the runs found.
    """

    #: The token id that separates two texts: no run crosses it.
    SEPARATOR = 0

    def __init__(self, index: _Index) -> None:
        import numpy as np

        self._np = np
        self._index = index
        words: dict[str, int] = {}
        prefix_ids: dict[str, int] = {}
        for prefix in sorted(index.prefixes, key=lambda p: p.count(" ")):
            prefix_ids[prefix] = len(prefix_ids)
        self._alias_list: list[tuple[str, str]] = []
        alias_of: dict[tuple[str, str], int] = {}

        def word_id(word: str) -> int:
            return words.setdefault(word, len(words))

        # every word of a free-text alias or of a prefix gets an id first; keys use the count
        for key, alias in index.aliases.items():
            if alias[2] != "-" and " " in key:
                for w in key.split(" "):
                    word_id(w)
        for prefix in prefix_ids:
            for w in prefix.split(" "):
                word_id(w)
        self._words = words
        width = len(words) + 1
        self._width = width
        grow_keys: list[int] = []
        grow_values: list[int] = []
        for prefix, pid in prefix_ids.items():
            head, space, last = prefix.rpartition(" ")
            if space:  # "a b c" grows from "a b" by "c"
                grow_keys.append(prefix_ids[head] * width + words[last])
                grow_values.append(pid)
        alias_keys: list[int] = []
        alias_values: list[int] = []
        for key, alias in index.aliases.items():
            if alias[2] == "-" or " " not in key:
                continue
            head, _, last = key.rpartition(" ")
            # every free-text alias added its prefixes, so its head has an id
            alias_keys.append(prefix_ids[head] * width + words[last])
            alias_values.append(alias_of.setdefault((alias[0], alias[1]), len(alias_of)))
        self._alias_list = list(alias_of)
        self._prefix_ids = prefix_ids

        self._grow = _IntMap(np, grow_keys, grow_values)
        self._alias = _IntMap(np, alias_keys, alias_values)
        self._alias_of = alias_of
        # Per token id (as written): its lower-case word, its singular head (word ids, -1 when
        # in no alias), the prefix a run starting at it is (-1: none), and the one-word alias it
        # is in free text (-1: none). Id 0 is the separator.
        self._token_ids: dict[str, int] = {}
        self._low = [-1]
        self._head = [-1]
        self._start = [-1]
        self._single = [-1]
        self._table = np.empty((4, 1024), dtype=np.int64)  # the lists as arrays, see scan
        self._table_size = 0
        # "" is no chunk of a text (``str.split`` never yields it): it stands for the separator
        self._chunks: dict[str, tuple[int, ...]] = {"": (self.SEPARATOR,)}
        self._lock = threading.Lock()

    def _token_id(self, token: str) -> int:
        found = self._token_ids.get(token)
        if found is not None:
            return found
        low, head, single, grows, _, _, _ = self._index.words.get(token) or self._index.word(token)
        tid = self._token_ids[token] = len(self._low)
        self._low.append(self._words.get(low, -1))
        self._head.append(self._words.get(head, -1))
        self._start.append(self._prefix_ids[low] if grows else -1)
        alias_of = self._alias_of
        pair = None if single is None else (single[0], single[1])
        self._single.append(-1 if pair is None else alias_of.setdefault(pair, len(alias_of)))
        if len(self._alias_of) > len(self._alias_list):
            self._alias_list = list(self._alias_of)
        return tid

    def chunk_ids(self, chunk: str) -> tuple[int, ...]:
        """The token ids of a whitespace-free chunk of text (memoised); ``""`` is the
        separator."""
        found = self._chunks.get(chunk)
        if found is None:
            with self._lock:
                found = tuple([self._token_id(t) for t in _chunk_tokens[chunk]])
                if len(self._chunks) < 1_000_000:
                    self._chunks[chunk] = found
        return found

    def _token_table(self) -> Any:
        """The per-token lists as one int64 array (one row per list), converting only the
        tokens added since the last call: the lists grow by a few tokens per batch of texts."""
        np = self._np
        with self._lock:
            table, done, size = self._table, self._table_size, len(self._low)
            if done < size:
                if table.shape[1] < size:
                    grown = np.empty((4, max(size, 2 * table.shape[1])), dtype=np.int64)
                    grown[:, :done] = table[:, :done]
                    table = self._table = grown
                for row, values in enumerate((self._low, self._head, self._start, self._single)):
                    table[row, done:size] = values[done:size]
                self._table_size = size
        return table[:, :size]

    def scan(self, ids: Any) -> tuple[list[int], list[tuple[str, str]]]:
        """Mentions in a stream of token ids (texts separated by :attr:`SEPARATOR`): the position
        of each mention's first token and its ``(skill id, alias)``, in order, as
        :meth:`SkillTaxonomy.mentions_in_tokens` finds them in each text."""
        np = self._np
        low_of, head_of, start_of, single_of = self._token_table()
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        best = single_of[ids]
        size = (best >= 0).astype(np.int32)
        grow, alias = self._grow, self._alias
        width = self._width
        at = np.flatnonzero(start_of[ids] >= 0)
        prefix = start_of[ids[at]]
        step = 1
        while len(at):
            nxt = at + step
            inside = nxt < n
            at, prefix, nxt = at[inside], prefix[inside], nxt[inside]
            if not len(at):
                break
            heads = head_of[ids[nxt]]
            ok = heads >= 0
            hit = alias.get(prefix * width + heads, ok)
            found = hit >= 0
            best[at[found]] = hit[found]
            size[at[found]] = step + 1
            lows = low_of[ids[nxt]]
            longer = grow.get(prefix * width + lows, lows >= 0)
            keep = longer >= 0
            at, prefix = at[keep], longer[keep].astype(np.int64)
            step += 1
        starts = np.flatnonzero(size)
        positions: list[int] = []
        found_aliases: list[tuple[str, str]] = []
        aliases = self._alias_list
        free = 0
        for i, k, a in zip(
            starts.tolist(), size[starts].tolist(), best[starts].tolist(), strict=True
        ):
            if i >= free:
                positions.append(i)
                found_aliases.append(aliases[a])
                free = i + k
        return positions, found_aliases


class _IntMap:
    """A read-only map of non-negative int64 keys to int values, looked up for many keys at
    once: an open-addressing hash table (linear probing, at most half full), so a lookup costs
    a probe or two per key instead of a binary search. The first of equal keys wins."""

    _MULTIPLIER = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads nearby keys apart

    def __init__(self, np: Any, keys: Sequence[int], values: Sequence[int]) -> None:
        self._np = np
        bits = max(4, (2 * len(keys)).bit_length())
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.full(1 << bits, -1, dtype=np.int64)
        self._values = np.zeros(1 << bits, dtype=np.int64)
        key_array = np.asarray(keys, dtype=np.int64)
        value_array = np.asarray(values, dtype=np.int64)
        pending = np.arange(len(key_array))
        slot = self._slots(key_array)
        while len(pending):
            at = slot[pending]
            free = self._keys[at] == -1
            taken, first = np.unique(at[free], return_index=True)  # first claim of a slot wins
            winners = pending[free][first]
            self._keys[taken] = key_array[winners]
            self._values[taken] = value_array[winners]
            placed = np.zeros(len(key_array), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self._mask

    def _slots(self, keys: Any) -> Any:
        np = self._np
        hashed = keys.astype(np.uint64) * np.uint64(self._MULTIPLIER)
        return (hashed >> self._shift).astype(np.int64)

    def get(self, wanted: Any, valid: Any) -> Any:
        """The values at ``wanted`` (-1 where absent or not ``valid``)."""
        np = self._np
        out = np.full(len(wanted), -1, dtype=np.int64)
        todo = np.flatnonzero(valid)
        keys = wanted[todo]
        slot = self._slots(keys)
        table_keys, mask = self._keys, self._mask
        while len(todo):
            found = table_keys[slot]
            hit = found == keys
            out[todo[hit]] = self._values[slot[hit]]
            more = ~hit & (found != -1)
            todo, keys, slot = todo[more], keys[more], (slot[more] + 1) & mask
        return out


def _proper_prefixes(key: str) -> list[str]:
    words = key.split(" ")
    return [" ".join(words[:j]) for j in range(1, len(words))]


_SINGULAR: dict[str, str] = {}


def _singular_cached(token: str) -> str:
    found = _SINGULAR.get(token)
    if found is None:
        found = _singular(token)
        if len(_SINGULAR) < 200_000:
            _SINGULAR[token] = found
    return found


def _rule(key: str, name: str, skill: Skill, synonym: bool) -> str:
    size = key.count(" ") + 1
    if size > MAX_TOKENS:
        return "-"
    if size > 1:
        # "and procedures", "of the": fragments, not skills
        if key.partition(" ")[0] in STOPWORDS or key.rpartition(" ")[2] in STOPWORDS:
            return "-"
        return ""
    if not (skill.technology or synonym):
        return "-"  # "communication", "English": too general to find in running text
    bare = BARE_WORDS.get(name.lower(), "")
    return "-" if bare is None else bare


def _trigrams(key: str) -> set[str]:
    padded = f" {key} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


# ------------------------------------------------------------------------------------------------
# The taxonomy
# ------------------------------------------------------------------------------------------------

VocabularyLoader = Callable[[], tuple[Iterable[Skill], Iterable[SkillGroup]]]


@attrs.define(eq=False)
class SkillTaxonomy:
    """A named skills vocabulary, loaded on first use.

    Make one with :meth:`from_skills` (a list in memory), :meth:`lazy` (a loader called on first
    use) or :meth:`merged`. ``replaces`` names taxonomies this one supersedes when several are
    registered for a CRM (see :func:`taxonomy_for`). Queries are thread-safe.
    """

    name: str
    _loader: VocabularyLoader = attrs.field(repr=False)
    replaces: frozenset[str] = frozenset()
    load_seconds: float | None = attrs.field(default=None, init=False)
    _index: _Index | None = attrs.field(default=None, init=False, repr=False)
    _parts: tuple[SkillTaxonomy, ...] = attrs.field(default=(), init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _scanner: tuple[_Index, Scanner] | None = attrs.field(default=None, init=False, repr=False)

    @classmethod
    def from_skills(
        cls,
        name: str,
        skills: Iterable[Skill],
        groups: Iterable[SkillGroup] = (),
        *,
        replaces: Iterable[str] = (),
    ) -> SkillTaxonomy:
        """A taxonomy of these skills (and hierarchy groups)."""
        skills, groups = tuple(skills), tuple(groups)
        return cls(name, lambda: (skills, groups), frozenset(replaces))

    @classmethod
    def lazy(
        cls, name: str, loader: VocabularyLoader, *, replaces: Iterable[str] = ()
    ) -> SkillTaxonomy:
        """A taxonomy whose ``loader()`` returns ``(skills, groups)`` when it is first queried."""
        return cls(name, loader, frozenset(replaces))

    @classmethod
    def merged(cls, name: str, taxonomies: Iterable[SkillTaxonomy]) -> SkillTaxonomy:
        """One taxonomy answering for several: concepts of all, and where two define the same
        alias or id, the later one wins. Loads the parts when it is first queried."""
        parts = tuple(taxonomies)
        merged = cls(name, _no_loader, frozenset())
        merged._parts = parts
        return merged

    # -- loading ---------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the vocabulary has been read."""
        return self._index is not None

    def load(self) -> SkillTaxonomy:
        """Read the vocabulary now (queries do it on first use); returns ``self``."""
        self._idx()
        return self

    def _idx(self) -> _Index:
        index = self._index
        if index is not None:
            return index
        with self._lock:
            if self._index is None:
                started = time.perf_counter()
                if self._parts:
                    index = _Index.merge([p._idx() for p in self._parts])
                else:
                    skills, groups = self._loader()
                    index = _Index({s.id: s for s in skills}, {g.id: g for g in groups})
                self.load_seconds = time.perf_counter() - started
                self._index = index
                log.debug(
                    "skills taxonomy %r loaded in %.0f ms: %d skills, %d aliases",
                    self.name,
                    self.load_seconds * 1000,
                    len(index.skills),
                    len(index.aliases),
                )
            return self._index

    # -- lookups ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._idx().skills)

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._idx().skills

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._idx().skills.values())

    def skill(self, skill_id: str) -> Skill:
        """The concept with this id; :class:`KeyError` if there is none."""
        return self._idx().skills[skill_id]

    def group(self, group_id: str) -> SkillGroup:
        """The hierarchy group with this id; :class:`KeyError` if there is none."""
        return self._idx().groups[group_id]

    def label(self, skill_id: str) -> str:
        """The preferred label of a concept or group; :class:`KeyError` if unknown."""
        index = self._idx()
        found = index.skills.get(skill_id)
        return found.label if found is not None else index.groups[skill_id].label

    def labels(self, skill_id: str) -> tuple[str, ...]:
        """Every name of a concept: preferred label, alternative labels, synonyms (or a group's
        label); :class:`KeyError` if unknown."""
        index = self._idx()
        found = index.skills.get(skill_id)
        if found is None:
            return (index.groups[skill_id].label,)
        return (found.label, *found.aliases, *found.synonyms)

    def normalise(self, text: str) -> NormalisedSkill | None:
        """The concept a free-form skill string names, or ``None``.

        Tries, in order: the exact alias (compared case-, punctuation- and plural-insensitively:
        ``"PostgreSQL"``, ``"postgres"``, ``"Relational databases"``); the string without
        decorations such as "experience with" or "skills" (score 0.95); a fuzzy match on
        character trigrams confirmed by :mod:`difflib` (score = similarity, at least
        :data:`FUZZY_THRESHOLD`), for strings of five or more characters.
        """
        index = self._idx()
        key = alias_key(text)
        if not key:
            return None
        found = index.aliases.get(key)
        if found is not None:
            return self._normalised(found, 1.0)
        core = _DECORATION.match(text.strip())
        if core is not None:
            core_key = alias_key(core["core"])
            found = index.aliases.get(core_key) if core_key != key else None
            if found is not None:
                return self._normalised(found, 0.95)
        return self._fuzzy(index, key)

    def _normalised(self, found: _Alias, score: float) -> NormalisedSkill:
        skill_id, alias, _ = found
        return NormalisedSkill(skill_id, self._idx().skills[skill_id].label, alias, score)

    def _fuzzy(self, index: _Index, key: str) -> NormalisedSkill | None:
        if len(key) < _FUZZY_MIN_LENGTH:
            return None
        keys, lengths, postings = index.fuzzy()
        grams = _trigrams(key)
        counts = Counter(chain.from_iterable(postings.get(g, ()) for g in grams))
        low, high = len(key) * 0.7, len(key) / 0.7
        shortlist = [
            n for n, _ in counts.most_common(_FUZZY_SHORTLIST * 4) if low <= lengths[n] <= high
        ][:_FUZZY_SHORTLIST]
        best, best_score = None, FUZZY_THRESHOLD
        matcher = difflib.SequenceMatcher(b=key, autojunk=False)
        for n in shortlist:
            matcher.set_seq1(keys[n])
            if matcher.real_quick_ratio() < best_score or matcher.quick_ratio() < best_score:
                continue
            score = matcher.ratio()
            if score > best_score or (score == best_score and best is None):
                best, best_score = keys[n], score
        if best is None:
            return None
        return self._normalised(index.aliases[best], round(best_score, 3))

    def extract(self, text: str) -> list[SkillMention]:
        """The skills mentioned in ``text``, in order of appearance.

        Looks up every run of one to :data:`MAX_TOKENS` words, longest first, so "machine
        learning engineer" yields *machine learning* and not *machine*. A one-word alias counts
        only for technology concepts ("Kubernetes", "SQL"), and only in the spelling
        :data:`BARE_WORDS` gives for words that are also ordinary words ("Go", "React"); general
        one-word skills ("communication", "English") are left to :meth:`normalise`.
        """
        runs = self._runs(text)
        if not runs:
            return []
        skills = self._idx().skills
        spans = [m.span() for m in _TOKEN.finditer(text)]
        return [
            SkillMention(
                skill_id, skills[skill_id].label, alias, spans[i][0], spans[i + size - 1][1]
            )
            for i, size, (skill_id, alias, _) in runs
        ]

    def mentions(self, text: str) -> list[tuple[str, str]]:
        """``(id, alias)`` of each skill :meth:`extract` finds in ``text``, in order (cheaper: no
        positions, no labels)."""
        return [(hit[0], hit[1]) for _, _, hit in self._runs(text)]

    def mentions_in_tokens(self, raw: Sequence[str]) -> list[tuple[str, str]]:
        """:meth:`mentions` of a text already split by :func:`split_tokens`."""
        return [(hit[0], hit[1]) for _, _, hit in self._runs_of(raw)]

    def scanner(self) -> Scanner:
        """The batch form of :meth:`mentions_in_tokens` (one per loaded vocabulary)."""
        index = self._idx()
        found = self._scanner
        if found is None or found[0] is not index:
            with self._lock:
                found = self._scanner = (index, Scanner(index))
        return found[1]

    def _runs(self, text: str) -> list[tuple[int, int, _Alias]]:
        """``(first token, number of tokens, alias)`` of each mention in ``text``."""
        return self._runs_of(split_tokens(text))

    def _runs_of(self, raw: Sequence[str]) -> list[tuple[int, int, _Alias]]:
        index = self._idx()
        aliases, prefixes = index.aliases, index.prefixes
        if not raw:
            return []
        # Per distinct token, what it does on its own (see :meth:`_Index.word`); most tokens
        # repeat, so this is one dictionary lookup per token.
        known = index.words
        info = [known.get(w) or index.word(w) for w in raw]
        found: list[tuple[int, int, _Alias]] = []
        n, free = len(raw), 0
        for i in [i for i, x in enumerate(info) if x[5]]:
            if i < free:
                continue
            low, _, single, grows, longest, _, follow = info[i]
            best = (1, single) if single is not None else None
            if grows and i + 1 < n and (info[i + 1][0] in follow or info[i + 1][1] in follow):
                # Grow the run word by word while it is the start of some alias; keep the
                # longest run that is an alias allowed in free text.
                run = low
                for size in range(2, min(longest, n - i) + 1):
                    nxt = info[i + size - 1]
                    hit = aliases.get(run + " " + nxt[1])
                    if hit is not None and hit[2] != "-":
                        best = (size, hit)
                    run = run + " " + nxt[0]
                    if run not in prefixes:
                        break
            if best is not None:
                found.append((i, best[0], best[1]))
                free = i + best[0]
        return found

    def related(self, skill_id: str, *, max_group_size: int = 300) -> set[str]:
        """Ids related to a concept through the hierarchy: the groups it belongs to, their parent
        groups, and the concepts sharing one of its groups (siblings), leaving out groups with
        more than ``max_group_size`` members. Empty for an unknown id."""
        index = self._idx()
        skill = index.skills.get(skill_id)
        if skill is None:
            return set()
        members = index.group_members()
        out: set[str] = set()
        for group_id in skill.groups:
            out.add(group_id)
            group = index.groups.get(group_id)
            if group is not None and group.parent:
                out.add(group.parent)
            siblings = members.get(group_id, ())
            if len(siblings) <= max_group_size:
                out.update(siblings)
        out.discard(skill_id)
        return out


def _no_loader() -> tuple[Iterable[Skill], Iterable[SkillGroup]]:
    raise AssertionError("a merged taxonomy loads its parts")  # pragma: no cover


# ------------------------------------------------------------------------------------------------
# ESCO
# ------------------------------------------------------------------------------------------------

_TECHNOLOGY_GROUPS = ("esco:K06", "esco:S5")


def read_taxonomy_file(lines: Iterable[str]) -> tuple[list[Skill], list[SkillGroup]]:
    """Concepts and groups from the lines of a file written by
    ``scripts/build_skills_taxonomy.py``."""
    skills: list[Skill] = []
    groups: list[SkillGroup] = []
    for line in lines:
        if line.startswith("C\t"):
            _, skill_id, kind, group_ids, label_, alts, synonyms = line.rstrip("\n").split("\t")
            in_groups = tuple(group_ids.split(",")) if group_ids else ()
            skills.append(
                Skill(
                    skill_id,
                    label_,
                    tuple(alts.split("|")) if alts else (),
                    tuple(synonyms.split("|")) if synonyms else (),
                    kind,
                    in_groups,
                    skill_id.startswith("relcrm:")
                    or any(g.startswith(_TECHNOLOGY_GROUPS) for g in in_groups),
                )
            )
        elif line.startswith("G\t"):
            _, group_id, parent, label_ = line.rstrip("\n").split("\t")
            groups.append(SkillGroup(group_id, label_, parent or None))
    return skills, groups


def _read_esco() -> tuple[list[Skill], list[SkillGroup]]:
    data = resources.files("relcrm.matching").joinpath(DATA_FILE).read_bytes()
    return read_taxonomy_file(gzip.decompress(data).decode("utf-8").splitlines())


@cache
def esco_taxonomy() -> SkillTaxonomy:
    """The built-in ``esco`` taxonomy (one per process; the file is read on first query)."""
    return SkillTaxonomy.lazy("esco", _read_esco)


# ------------------------------------------------------------------------------------------------
# Per CRM, through the plugin hook
# ------------------------------------------------------------------------------------------------

_BY_MANAGER: weakref.WeakKeyDictionary[Any, tuple[tuple[str, ...], SkillTaxonomy]] = (
    weakref.WeakKeyDictionary()
)


def taxonomy_for(plugin_manager: pluggy.PluginManager) -> SkillTaxonomy:
    """The skills taxonomy of a CRM's plugin manager (``crm.plugin_manager``).

    Calls ``relcrm_register_skill_taxonomies`` on every plugin (registration order, built-ins
    first); taxonomies named in another's ``replaces`` are dropped, and the rest are merged, a
    later one winning the aliases and ids it shares with an earlier one. The result is cached
    per plugin manager until its plugins change, and loads nothing until it is queried.
    """
    from ..exceptions import PluginError
    from ..plugins import collect_registrations

    caller = plugin_manager.hook.relcrm_register_skill_taxonomies
    version = tuple(impl.plugin_name for impl in caller.get_hookimpls())
    cached = _BY_MANAGER.get(plugin_manager)
    if cached is not None and cached[0] == version:
        return cached[1]

    def name_of(value: object) -> str:
        if not isinstance(value, SkillTaxonomy):
            raise TypeError(f"expected a SkillTaxonomy, got {type(value).__name__}")
        return value.name

    found = collect_registrations(
        plugin_manager, "relcrm_register_skill_taxonomies", "skill taxonomy", key=name_of
    )
    replaced = {name for _, t in found.values() for name in t.replaces}
    kept: list[SkillTaxonomy] = [t for _, t in found.values() if t.name not in replaced]
    if not kept:
        raise PluginError("relcrm", "no skills taxonomy is registered (all were replaced)")
    result = (
        kept[0] if len(kept) == 1 else SkillTaxonomy.merged("+".join(t.name for t in kept), kept)
    )
    _BY_MANAGER[plugin_manager] = (version, result)
    return result


# ------------------------------------------------------------------------------------------------
# Shortcuts on the built-in taxonomy
# ------------------------------------------------------------------------------------------------


def normalise(text: str) -> NormalisedSkill | None:
    """:meth:`SkillTaxonomy.normalise` on the built-in taxonomy."""
    return esco_taxonomy().normalise(text)


def extract(text: str) -> list[SkillMention]:
    """:meth:`SkillTaxonomy.extract` on the built-in taxonomy."""
    return esco_taxonomy().extract(text)


def mentions(text: str) -> list[tuple[str, str]]:
    """:meth:`SkillTaxonomy.mentions` on the built-in taxonomy."""
    return esco_taxonomy().mentions(text)


def mentions_in_tokens(raw: Sequence[str]) -> list[tuple[str, str]]:
    """:meth:`SkillTaxonomy.mentions_in_tokens` on the built-in taxonomy."""
    return esco_taxonomy().mentions_in_tokens(raw)


def scanner() -> Scanner:
    """:meth:`SkillTaxonomy.scanner` on the built-in taxonomy."""
    return esco_taxonomy().scanner()


def related(skill_id: str) -> set[str]:
    """:meth:`SkillTaxonomy.related` on the built-in taxonomy."""
    return esco_taxonomy().related(skill_id)


def label(skill_id: str) -> str:
    """:meth:`SkillTaxonomy.label` on the built-in taxonomy."""
    return esco_taxonomy().label(skill_id)


def labels(skill_id: str) -> tuple[str, ...]:
    """:meth:`SkillTaxonomy.labels` on the built-in taxonomy."""
    return esco_taxonomy().labels(skill_id)
