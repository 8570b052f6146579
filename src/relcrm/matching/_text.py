"""Text analysis for matching: tokenising, English stopwords and a small suffix stemmer.

The stemmer is deliberately light (a conflation stemmer in the spirit of Porter's step 1 and the
most common derivational suffixes): it must merge ``manage``/``manages``/``managing``/``managed``
and ``analysis``/``analyses`` without the over-stemming that hurts short job titles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import chain

__all__ = ["STOPWORDS", "analyse", "analyse_chunks", "stem", "tokens"]

#: English function words and the boilerplate of job adverts, removed before indexing.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "etc",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "others",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "thus",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "e",
        "g",
        "i",
        "e",
        "eg",
        "ie",
    ]
)

_TOKEN = re.compile(r"[a-z0-9]+(?:[+#]+|(?:\.[a-z0-9]+)+)?")
_VOWEL = re.compile(r"[aeiouy]")

# (suffix, replacement, minimum stem length left) tried in order; the first that applies wins.
_DERIVATIONAL = (
    ("ational", "ate", 2),
    ("ization", "ize", 2),
    ("isation", "ize", 2),
    ("fulness", "ful", 2),
    ("iveness", "ive", 2),
    ("ousness", "ous", 2),
    ("ation", "ate", 3),
    ("ition", "it", 3),
    ("ement", "", 4),
    ("ment", "", 4),
    ("ness", "", 3),
    ("ance", "", 4),
    ("ence", "", 4),
    ("ities", "", 3),
    ("ity", "", 3),
    ("izer", "ize", 3),
    ("iser", "ize", 3),
    ("ise", "ize", 3),
    ("ally", "al", 3),
    ("ly", "", 4),
    ("ive", "", 4),
    ("al", "", 4),
)

_cache: dict[str, str] = {}


def _has_vowel(s: str) -> bool:
    return _VOWEL.search(s) is not None


def _stem(word: str) -> str:
    if len(word) <= 3 or not word.isalpha():
        return word
    w = word
    # Plurals and third person.
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ses") and len(w) > 5 and w[-4] in "aeiou":  # analyses -> analys(is)
        w = w[:-2] + "is"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    # Participles and past tense.
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and _has_vowel(w[: -len(suffix)]):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # planned -> plan
            elif w.endswith(("at", "bl", "iz", "iv", "ur", "rv", "uc", "ag", "ul", "ov")):
                w += "e"  # rated -> rate, managing -> manage
            break
    # Common derivational suffixes.
    for suffix, replacement, keep in _DERIVATIONAL:
        if w.endswith(suffix) and len(w) - len(suffix) >= keep:
            w = w[: -len(suffix)] + replacement
            break
    # A final "e" carries no meaning: manage/manag, create/creat.
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    if w.endswith("y") and len(w) > 4:
        w = w[:-1] + "i"
    return w


def stem(word: str) -> str:
    """The stem of a lower-case word (memoised)."""
    s = _cache.get(word)
    if s is None:
        s = _stem(word)
        if len(_cache) < 500_000:
            _cache[word] = s
    return s


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (keeps ``c++``, ``c#``, ``node.js``)."""
    return _TOKEN.findall(text.casefold())


# token -> its stem, or _STOP for a stopword: what :func:`analyse` does to a token, memoised.
_STOP = "\x00"
_analysed: dict[str, str] = dict.fromkeys(STOPWORDS, _STOP)


def _analyse_token(token: str) -> str:
    s = _STOP if token in STOPWORDS else stem(token)
    if len(_analysed) < 500_000:
        _analysed[token] = s
    return s


def analyse(text: str | Iterable[str]) -> list[str]:
    """Stemmed tokens without stopwords, in order; the form indexed and queried."""
    if not isinstance(text, str):
        text = " \n ".join(text)
    get = _analysed.get
    return [
        s
        for t in _TOKEN.findall(text.casefold())
        if (s := get(t) or _analyse_token(t)) is not _STOP
    ]


class _ChunkStems(dict[str, tuple[str, ...]]):
    """Whitespace-separated chunk -> the analysed terms it yields (none for a stopword). No
    token spans whitespace, so :func:`analyse` of a text is the terms of its chunks."""

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        found = tuple(analyse(chunk))
        if len(self) < 1_000_000:
            self[chunk] = found
        return found


_chunk_stems = _ChunkStems()


def analyse_chunks(chunks: Iterable[str]) -> list[str]:
    """:func:`analyse` of a text given as its whitespace-separated chunks (``text.split()``):
    the same terms, memoised per chunk."""
    return list(chain.from_iterable(map(_chunk_stems.__getitem__, chunks)))
