"""The in-step lookup the match index uses to read relationships alongside people."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relcrm._talent_index import _InStep
from relcrm.storage.base import Record


def _records(ids: list[str]) -> list[Record]:
    return [Record("relationship", i, 1, {"n": i}, i) for i in ids]


def test_in_order_lookups_read_alongside_and_keep_nothing_aside() -> None:
    step = _InStep(_records(["a", "b", "d", "e"]))
    assert step("a") is not None
    assert step("c") is None
    found = step("d")
    assert found is not None
    assert found.id == "d"
    assert list(step._aside) == ["b"]  # passed over: b had no person asked
    assert step("e") is not None
    assert step("f") is None


@given(
    st.sets(st.text(alphabet="abcdef", min_size=1, max_size=3), max_size=30),
    st.sets(st.text(alphabet="abcdef", min_size=1, max_size=3), max_size=30),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_every_lookup_is_right_in_whatever_order_ids_are_asked(
    stored: set[str], asked: set[str], shuffle_asked: bool, rng: random.Random
) -> None:
    # records come in id order (the storage contract); the ids asked may not
    asked_ids = sorted(asked)
    if shuffle_asked:
        rng.shuffle(asked_ids)
    step = _InStep(_records(sorted(stored)))
    for key in asked_ids:
        found = step(key)
        assert (found.id if found else None) == (key if key in stored else None)


def test_records_out_of_order_are_noticed_and_read_into_a_dictionary() -> None:
    step = _InStep(_records(["a", "c", "b", "d"]))
    assert step("a") is not None
    assert step("c") is not None  # and the next, "b", comes after "c": the rest is read
    assert step._in_order is False
    assert step("d") is not None
    assert step("b") is not None
