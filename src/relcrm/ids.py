"""Identifiers: sortable, unique, with a readable prefix (``per_01JD...``)."""

import os
import threading
import time

__all__ = ["new_id", "new_ids"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
#: Two digits for every 10-bit value, so that a digit pair is one lookup.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RANDOM_BITS = 80
_RANDOM_MASK = (1 << _RANDOM_BITS) - 1
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def _encode_pairs(value: int, pairs: int) -> str:
    """``value`` as ``2 * pairs`` digits: what ``_encode(value, 2 * pairs)`` gives, faster."""
    return "".join([_PAIRS[(value >> (10 * n)) & 1023] for n in range(pairs - 1, -1, -1)])


def _reserve(count: int) -> tuple[int, int]:
    """Take ``count`` consecutive (millisecond, random) values; returns the first."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, (last_rand + 1) & _RANDOM_MASK
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last = (ms, (rand + count - 1) & _RANDOM_MASK)
    return ms, rand


def new_id(prefix: str) -> str:
    """A ULID-style id: 48 bits of milliseconds then 80 random bits, monotonic within a process,
    so ids sort by creation time."""
    ms, rand = _reserve(1)
    return f"{prefix}_{_encode_pairs(ms, 5)}{_encode_pairs(rand, 8)}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as :func:`new_id` would give them one after another, made in one step (for
    bulk writes)."""
    if count <= 0:
        return []
    ms, rand = _reserve(count)
    head = f"{prefix}_{_encode_pairs(ms, 5)}"
    # Consecutive values share their leading digits: encode those once per run, the last four
    # digits (20 bits) for every id.
    ids = []
    high = -1
    start = ""
    for step in range(rand, rand + count):
        value = step & _RANDOM_MASK
        if value >> 20 != high:
            high = value >> 20
            start = head + _encode_pairs(high, 6)
        ids.append(start + _PAIRS[(value >> 10) & 1023] + _PAIRS[value & 1023])
    return ids
