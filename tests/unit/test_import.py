"""``import relcrm`` stays light: no optional dependency, no CLI library, no test tooling."""

import json
import subprocess
import sys

HEAVY = ("click", "psycopg", "httpx", "pandas", "numpy", "scipy", "matplotlib", "pytest", "sqlite3")


def test_import_loads_no_optional_dependency() -> None:
    code = (
        "import sys, json, relcrm; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


def test_opening_a_store_loads_only_that_backend() -> None:
    code = (
        "import sys, json, relcrm; relcrm.open('memory://', load_entrypoints=False).close(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('relcrm.storage.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [
        "relcrm.storage._checks",
        "relcrm.storage.base",
        "relcrm.storage.memory",
    ]
