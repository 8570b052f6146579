"""The skills taxonomy: normalisation, extraction, hierarchy, lazy loading and the build script."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from relcrm.matching import taxonomy
from relcrm.matching.taxonomy import Skill, SkillGroup, SkillTaxonomy, alias_key

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def esco() -> SkillTaxonomy:
    return taxonomy.esco_taxonomy().load()


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


def test_alias_key_folds_case_punctuation_spaces_and_plural() -> None:
    assert alias_key("  Relational   Databases ") == "relational database"
    assert alias_key("Technologies") == "technology"
    assert alias_key("C++") == "c++"
    assert alias_key("Node.JS") == "node.js"
    assert alias_key("CI/CD") == "ci cd"
    assert alias_key("AWS") == "aws"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("PostgreSQL", "PostgreSQL"),
        ("Python", "Python (computer programming)"),
        ("JavaScript", "JavaScript"),
        ("databases", "database"),
        ("Project Management", "project management"),
    ],
)
def test_normalise_exact_labels(esco: SkillTaxonomy, text: str, label: str) -> None:
    found = esco.normalise(text)
    assert found is not None
    assert (found.label, found.score) == (label, 1.0)


@pytest.mark.parametrize(
    ("text", "skill_id"),
    [
        ("k8s", "relcrm:kubernetes"),
        ("js", "esco:3cd569a2-4f88-4c1e-9995-8dce8c5e51a7"),
        ("postgres", "esco:a8d07b5a-c1a1-42c6-9d53-db9c7a2ca996"),
        ("psql", "esco:a8d07b5a-c1a1-42c6-9d53-db9c7a2ca996"),
        ("React.js", "relcrm:react"),
        ("reactjs", "relcrm:react"),
        ("golang", "relcrm:go"),
        ("GCP", "relcrm:gcp"),
        ("ci/cd", "relcrm:ci-cd"),
        ("ML", "esco:8369c2d6-c100-4cf6-bd83-9668d8678433"),
    ],
)
def test_normalise_synonyms(esco: SkillTaxonomy, text: str, skill_id: str) -> None:
    found = esco.normalise(text)
    assert found is not None
    assert found.id == skill_id
    assert found.score == 1.0


def test_normalise_reports_the_alias_that_matched(esco: SkillTaxonomy) -> None:
    found = esco.normalise("K8S")
    assert found is not None
    assert (found.label, found.alias) == ("Kubernetes", "k8s")


def test_normalise_strips_decorations(esco: SkillTaxonomy) -> None:
    found = esco.normalise("experience with Python")
    assert found is not None
    assert found.label == "Python (computer programming)"
    assert found.score == 0.95


@pytest.mark.parametrize(
    ("typo", "label"),
    [("kubernets", "Kubernetes"), ("javscript", "JavaScript"), ("postgressql", "PostgreSQL")],
)
def test_normalise_fuzzy_typos(esco: SkillTaxonomy, typo: str, label: str) -> None:
    found = esco.normalise(typo)
    assert found is not None
    assert found.label == label
    assert taxonomy.FUZZY_THRESHOLD <= found.score < 1


@pytest.mark.parametrize("text", ["underwater basket weaving", "xyzzy", "", "  ", "tf", "!!"])
def test_normalise_unknown_is_none(esco: SkillTaxonomy, text: str) -> None:
    assert esco.normalise(text) is None


# ------------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------------

SUMMARY = (
    "Senior backend engineer with 8 years building data platforms in Python and Go. Led the "
    "migration of a monolith to microservices on Kubernetes (k8s) and AWS, and set up CI/CD "
    "pipelines with Jenkins. Strong background in machine learning and NLP with TensorFlow. "
    "Managed PostgreSQL and MongoDB databases. Excellent communication skills; fluent in English."
)

JOB = (
    "We are hiring a Frontend Developer. Responsibilities: build React and TypeScript "
    "applications, write unit tests, manage budgets for the design system, and work with our "
    "agile teams. Nice to have: Node.js, GraphQL, experience with Figma. You will go the extra "
    "mile, and react calmly when things break."
)


def test_extract_from_a_profile_summary(esco: SkillTaxonomy) -> None:
    mentions = esco.extract(SUMMARY)
    labels = [m.label for m in mentions]
    assert labels == [
        "Python (computer programming)",
        "microservices",
        "Kubernetes",
        "Kubernetes",
        "Amazon Web Services",
        "CI/CD",
        "Jenkins (tools for software configuration management)",
        "utilise machine learning",
        "natural language processing",
        "TensorFlow",
        "PostgreSQL",
        "MongoDB",
        "database",
    ]
    # positions point at what was written
    assert [SUMMARY[m.start : m.end] for m in mentions][:6] == [
        "Python",
        "microservices",
        "Kubernetes",
        "k8s",
        "AWS",
        "CI/CD pipelines",
    ]


def test_extract_skips_generic_words_and_ambiguous_lowercase(esco: SkillTaxonomy) -> None:
    labels = {m.label for m in esco.extract(SUMMARY)}
    assert "communication" not in labels  # a general one-word skill
    assert "English" not in labels
    assert "Go (computer programming)" not in labels  # "Go" alone is too ambiguous


def test_extract_from_a_job_description(esco: SkillTaxonomy) -> None:
    mentions = esco.extract(JOB)
    labels = [m.label for m in mentions]
    assert labels == [
        "React",
        "TypeScript",
        "perform software unit testing",
        "manage budgets",
        "Node.js",
        "GraphQL",
        "Figma",
    ]
    # "react quickly" and "go the extra mile" are not skills: lower-case ordinary words
    assert all(JOB[m.start : m.end] != "react" for m in mentions)


def test_extract_prefers_the_longest_alias(esco: SkillTaxonomy) -> None:
    [mention] = esco.extract("a machine learning engineer")
    assert mention.label == "utilise machine learning"
    assert mention.alias == "machine learning"


def test_extract_handles_punctuation_and_plurals(esco: SkillTaxonomy) -> None:
    text = "Skills: C++, C#, .NET, Node.js; relational databases."
    assert [text[m.start : m.end] for m in esco.extract(text)] == [
        "C++",
        "C#",
        ".NET",
        "Node.js",
        "databases",
    ]


def test_extract_empty_text(esco: SkillTaxonomy) -> None:
    assert esco.extract("") == []
    assert esco.extract("... !!") == []


# ------------------------------------------------------------------------------------------------
# Hierarchy and labels
# ------------------------------------------------------------------------------------------------


def test_related_through_the_hierarchy(esco: SkillTaxonomy) -> None:
    python = esco.normalise("Python")
    java = esco.normalise("Java")
    assert python is not None
    assert java is not None
    near = esco.related(python.id)
    assert "esco:K0613" in near  # its group
    assert "esco:K061" in near  # the group's parent
    assert java.id in near  # a sibling
    assert python.id not in near
    assert esco.group("esco:K0613").parent == "esco:K061"
    assert esco.label("esco:K0613") == "software and applications development and analysis"


def test_related_leaves_out_large_groups(esco: SkillTaxonomy) -> None:
    python = esco.normalise("Python")
    assert python is not None
    small = esco.related(python.id, max_group_size=10)
    assert all(not i.startswith("esco:") or "-" not in i for i in small)  # groups only


def test_related_relcrm_concepts_sit_in_esco_groups(esco: SkillTaxonomy) -> None:
    assert "esco:K0612" in esco.related("relcrm:kubernetes")
    assert esco.related("nope:unknown") == set()


def test_labels_and_kinds(esco: SkillTaxonomy) -> None:
    assert esco.labels("relcrm:kubernetes") == ("Kubernetes", "k8s", "kube")
    assert esco.label("relcrm:kubernetes") == "Kubernetes"
    python = esco.skill(esco.normalise("Python").id)  # type: ignore[union-attr]
    assert python.kind == "knowledge"
    assert python.technology
    assert "Python" in python.aliases  # derived from "Python (computer programming)"
    assert esco.skill(esco.normalise("communication").id).technology is False  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        esco.labels("nope:unknown")


def test_module_shortcuts_use_the_built_in_taxonomy() -> None:
    found = taxonomy.normalise("k8s")
    assert found is not None
    assert taxonomy.label(found.id) == "Kubernetes"
    assert taxonomy.labels(found.id)[0] == "Kubernetes"
    assert "esco:K0612" in taxonomy.related(found.id)
    assert [m.id for m in taxonomy.extract("Docker and k8s")] == ["relcrm:docker", found.id]


# ------------------------------------------------------------------------------------------------
# Custom taxonomies and merging
# ------------------------------------------------------------------------------------------------


def test_a_taxonomy_from_skills() -> None:
    tax = SkillTaxonomy.from_skills(
        "tiny",
        [
            Skill("t:forklift", "forklift operation", aliases=("forklift",), groups=("t:g",)),
            Skill("t:crane", "crane operation", groups=("t:g",)),
        ],
        [SkillGroup("t:g", "operating machinery")],
    )
    assert not tax.loaded
    assert tax.normalise("Forklifts").id == "t:forklift"  # type: ignore[union-attr]
    assert tax.loaded
    assert tax.load_seconds is not None
    assert tax.related("t:forklift") == {"t:g", "t:crane"}
    # a one-word general skill is not extracted from text; two words are
    assert [m.id for m in tax.extract("forklift and crane operation")] == ["t:crane"]
    assert len(tax) == 2
    assert "t:crane" in tax
    assert {s.id for s in tax} == {"t:forklift", "t:crane"}


def test_merged_later_taxonomy_wins_shared_aliases() -> None:
    first = SkillTaxonomy.from_skills("a", [Skill("a:x", "shared name"), Skill("a:y", "only a")])
    second = SkillTaxonomy.from_skills("b", [Skill("b:x", "shared name")])
    merged = SkillTaxonomy.merged("a+b", [first, second])
    assert merged.normalise("shared name").id == "b:x"  # type: ignore[union-attr]
    assert merged.normalise("only a").id == "a:y"  # type: ignore[union-attr]


def test_lazy_taxonomy_loads_once_on_first_query() -> None:
    calls: list[int] = []

    def loader() -> tuple[list[Skill], list[SkillGroup]]:
        calls.append(1)
        return [Skill("l:x", "lazy skill")], []

    tax = SkillTaxonomy.lazy("lazy", loader)
    assert calls == []
    assert tax.normalise("lazy skill") is not None
    assert tax.normalise("lazy skills") is not None
    assert calls == [1]


# ------------------------------------------------------------------------------------------------
# Lazy loading of the built-in taxonomy
# ------------------------------------------------------------------------------------------------


def test_import_relcrm_does_not_load_the_taxonomy() -> None:
    script = (
        "import sys, relcrm\n"
        "crm = relcrm.open('memory://', load_entrypoints=False)\n"
        "assert 'relcrm.matching.taxonomy' not in sys.modules, 'taxonomy imported'\n"
        "from relcrm.matching import taxonomy\n"
        "tax = taxonomy.taxonomy_for(crm.plugin_manager)\n"
        "assert not tax.loaded, 'registering loaded the data'\n"
        "assert tax.normalise('k8s').id == 'relcrm:kubernetes'\n"
        "assert tax.loaded and tax.load_seconds > 0\n"
        "assert taxonomy.esco_taxonomy() is tax\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "src"), "RELCRM_DISABLE_PLUGIN_AUTOLOAD": "1"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"


def test_the_data_file_credits_esco() -> None:
    path = ROOT / "src/relcrm/matching" / taxonomy.DATA_FILE
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = "".join(line for line in f if line.startswith("#"))
    assert "ESCO (European Skills, Competences, Qualifications and Occupations) v1.1.1" in header
    assert "European Union" in header
    assert "CC BY 4.0" in header
    assert path.stat().st_size < 3_000_000


# ------------------------------------------------------------------------------------------------
# The build script
# ------------------------------------------------------------------------------------------------


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_skills_taxonomy", ROOT / "scripts" / "build_skills_taxonomy.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample_csv(rows: list[tuple[str, str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "description", "hierarchy_levels", "type"])
    writer.writerows(rows)
    return out.getvalue()


SAMPLE = [
    ("aaa", "Python (computer programming)", "[['K', 'K06', 'K061', 'K0613']]", "preferredLabel"),
    ("aaa", "Python 3", "[['K', 'K06', 'K061', 'K0613']]", "altLabels"),
    ("bbb", "manage budgets", "[['S', 'S4', 'S4.2', 'S4.2.1']]", "preferredLabel"),
    ("bbb", "budget management", "[['S', 'S4', 'S4.2', 'S4.2.1']]", "altLabels"),
    ("ccc", "communicate", "[['T', 'T4', 'T4.1', None], ['S', 'S1', 'S1.0', 'S1.0.0']]",
     "preferredLabel"),
    ("S4.2", "planning and scheduling", "", "level_2"),
]  # fmt: skip
HIERARCHY = {
    "S4": "management skills",
    "S4.2.1": "allocating resources",
    "S1": "communication",
    "S1.0": "communication",
    "S1.0.0": "communication",
    "T4": "social skills",
    "T4.1": "communicating",
    "K06": "ict",
    "K061": "ict",
    "K0613": "software development",
    "K0612": "databases and networks",
    "K0611": "computer use",
    "K0688": "inter-disciplinary ict",
}


def test_build_transform_is_deterministic_and_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    build = _build_script()
    monkeypatch.setattr(build, "ESCO_SYNONYMS", {"Python (computer programming)": ("py",)})
    monkeypatch.setattr(build, "NEW_CONCEPTS", (("k8s", "Kubernetes", "K0612", ("k8s",)),))
    text = build.transform(_sample_csv(SAMPLE), HIERARCHY)
    shuffled = build.transform(
        _sample_csv(list(reversed(SAMPLE))), dict(reversed(HIERARCHY.items()))
    )
    assert text == shuffled
    assert text.startswith("# relcrm skills taxonomy")
    rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    concepts = {r[1]: r for r in rows if r[0] == "C"}
    assert concepts["esco:aaa"] == [
        "C", "esco:aaa", "knowledge", "esco:K0613", "Python (computer programming)",
        "Python|Python 3", "py",
    ]  # fmt: skip
    assert concepts["esco:bbb"][2:4] == ["skill", "esco:S4.2.1"]
    assert concepts["esco:ccc"][2:4] == ["transversal", "esco:S1.0.0,esco:T4.1"]
    assert concepts["relcrm:k8s"][2:] == ["knowledge", "esco:K0612", "Kubernetes", "", "k8s"]
    groups = {r[1]: r for r in rows if r[0] == "G"}
    assert groups["esco:S4.2"] == ["G", "esco:S4.2", "esco:S4", "planning and scheduling"]
    assert groups["esco:K0613"][2] == "esco:K061"
    assert groups["esco:S"][2:] == ["", "skills"]

    # what the script writes is what the package reads
    skills, read_groups = taxonomy.read_taxonomy_file(text.splitlines())
    tax = SkillTaxonomy.from_skills("sample", skills, read_groups)
    assert tax.normalise("py").id == "esco:aaa"  # type: ignore[union-attr]
    assert tax.normalise("Python").id == "esco:aaa"  # type: ignore[union-attr]
    assert tax.related("esco:aaa") >= {"esco:K0613", "esco:K061"}


def test_build_fails_on_a_synonym_for_a_missing_label(monkeypatch: pytest.MonkeyPatch) -> None:
    build = _build_script()
    monkeypatch.setattr(build, "ESCO_SYNONYMS", {"No Such Skill": ("nss",)})
    monkeypatch.setattr(build, "NEW_CONCEPTS", ())
    with pytest.raises(ValueError, match="No Such Skill"):
        build.transform(_sample_csv(SAMPLE), HIERARCHY)


def test_build_writes_reproducible_gzip(tmp_path: Path) -> None:
    build = _build_script()
    build.write("x\ty\n", tmp_path / "a.tsv.gz")
    build.write("x\ty\n", tmp_path / "b.tsv.gz")
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.tsv.gz").read_bytes()) == b"x\ty\n"
    assert json.dumps(build.ROOT_GROUPS)  # the root labels are plain data
