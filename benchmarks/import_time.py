"""How long ``python -c "import relcrm"`` takes, against the interpreter alone and its peers.

Runs each command ``--runs`` times in fresh interpreters and prints the medians, then one JSON
line with ``relcrm_ms``, ``bare_ms``, ``relcrm_import_ms`` (relcrm's own cumulative figure from
``-X importtime``), ``peers`` and ``optional_loaded``.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

OPTIONAL = ("click", "psycopg", "httpx", "pandas", "numpy", "scipy", "matplotlib", "pytest")
PEERS = {"attrs": "import attrs", "cattrs": "import cattrs", "pluggy": "import pluggy"}


def wall_ms(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def importtime_ms(module: str, runs: int) -> float:
    figures = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            check=True,
            capture_output=True,
            text=True,
        ).stderr
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                figures.append(int(parts[1]) / 1000)
    return statistics.median(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-c", "import relcrm"], check=True)  # warm the bytecode cache
    bare = wall_ms("pass", args.runs)
    whole = wall_ms("import relcrm", args.runs)
    peers = {name: wall_ms(code, args.runs) for name, code in PEERS.items()}
    own = importtime_ms("relcrm", args.runs)
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, relcrm; print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"python -c pass           {bare:7.1f} ms")
    print(f"python -c 'import relcrm' {whole:6.1f} ms  ({whole / bare:.2f}x bare)")
    for name, ms in peers.items():
        print(f"python -c 'import {name}' {ms:6.1f} ms  (relcrm/{name} = {whole / ms:.2f})")
    print(f"relcrm's own cumulative import time: {own:.1f} ms")
    print(f"optional dependencies loaded by import relcrm: {loaded or 'none'}")
    print(
        json.dumps(
            {
                "relcrm_ms": round(whole, 1),
                "bare_ms": round(bare, 1),
                "relcrm_import_ms": round(own, 1),
                "peers": {k: round(v, 1) for k, v in peers.items()},
                "optional_loaded": [m for m in loaded.split(",") if m],
            }
        )
    )


if __name__ == "__main__":
    main()
