"""Benchmark the Python calculator against DuckDB: the sample plans on the same data.

    python bench/bench_python.py [--reps 10000] [--deals 1000000 10000000]

For each deal count: generates the sample company as Parquet (queried in
place), then runs every plan in plans/ with `run_plans(engine=...)` for
DuckDB and for the Python calculator, each in a fresh process so that the
peak RSS printed is that engine's own. Checks that both pay the same lines
(a hash of the payout lines as CSV). Prints wall time of the run, deals per
second, peak RSS and the ratio Python / DuckDB.
Targets (issue 5): Python within 3x of DuckDB at 1M deals, 5x at 10M.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_engine(folder: str, engine: str) -> dict:
    """In this process: open the data, run every plan on `engine`, measure."""
    from dsl.project import load_paths
    from runtime.data import open_data
    from runtime.run import run_plans

    project = load_paths([ROOT / "plans"])
    with open_data(folder) as data:
        start = time.perf_counter()
        lines = run_plans(project.files, data.connection, engine=engine).payout_lines
        seconds = time.perf_counter() - start
    digest = hashlib.sha256(lines.to_csv(index=False).encode()).hexdigest()[:16]
    return {
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lines": len(lines),
        "total": str(sum(lines["amount"], start=0)),
        "digest": digest,
    }


def measure(folder: str, engine: str) -> dict:
    child = subprocess.run(
        [sys.executable, __file__, "--child", folder, engine], capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def bench(reps: int, deals: int) -> None:
    from runtime.sample_data import generate_sample_company

    folder = Path(tempfile.mkdtemp(prefix="revplan-bench-python-"))
    try:
        generate_sample_company(folder, reps=reps, deals=deals, fmt="parquet")
        results = {engine: measure(str(folder), engine) for engine in ("duckdb", "python")}
        print(f"reps {reps:,}  deals {deals:,}")
        for engine, r in results.items():
            print(f"  {engine:7} {r['seconds']:7.2f} s   {deals / r['seconds']:>10,.0f} deals/s   "
                  f"peak RSS {r['peak_mb']:6.0f} MB   {r['lines']:,} lines, total {r['total']} USD")
        same = results["duckdb"]["digest"] == results["python"]["digest"]
        ratio = results["python"]["seconds"] / results["duckdb"]["seconds"]
        print(f"  python / duckdb {ratio:5.2f} x   same payout lines: {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(run_engine(sys.argv[2], sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--deals", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    for deals in args.deals:
        bench(args.reps, deals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
