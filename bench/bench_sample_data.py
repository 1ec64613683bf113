"""Benchmark the sample-company generator and the data contract check.

    python bench/bench_sample_data.py [--deals 1000000] [--reps 10000] [--fmt auto] [--keep DIR]

Generates a company into a temporary folder (or DIR with --keep), then opens
it (`runtime.data.open_data`) and checks it (`runtime.contract.check_data`).
Prints wall time, rows per second and the peak RSS of this process (DuckDB
and NumPy run in it, so that is the whole cost).
Targets (issue 3): 10,000 reps and 10,000,000 deals written as Parquet in
under 10 s on 2 cores; the check in a few hundred milliseconds.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.contract import check_data  # noqa: E402
from runtime.data import open_data  # noqa: E402
from runtime.sample_data import generate_sample_company  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fmt", choices=("auto", "csv", "parquet"), default="auto")
    parser.add_argument("--keep", type=Path, help="write here and keep the files (default: a temporary folder)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="revplan-bench-"))
    try:
        steps: list[tuple[str, float]] = []
        start = time.perf_counter()
        files = generate_sample_company(folder, reps=args.reps, deals=args.deals, seed=args.seed, fmt=args.fmt,
                                        progress=lambda step: steps.append((step, time.perf_counter())))
        finished = time.perf_counter()
        generated = finished - start
        size = sum(path.stat().st_size for path in files.values())

        start = time.perf_counter()
        data = open_data(folder)
        opened = time.perf_counter() - start
        counts = {t: data.connection.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in files}
        start = time.perf_counter()
        diagnostics = check_data(data)
        checked = time.perf_counter() - start
        data.close()
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    rows = sum(counts.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    fmt = next(iter(files.values())).suffix.lstrip(".")
    print(f"sample company: {args.reps:,} reps, {args.deals:,} deals, {fmt}, seed {args.seed}")
    print(f"  generate     {generated:8.2f} s   {args.deals / generated:12,.0f} deals/s   "
          f"{rows / generated:12,.0f} rows/s   {size / 1e6:,.0f} MB on disk")
    for (step, at), (_, until) in zip(steps, steps[1:] + [("end", finished)], strict=True):
        print(f"    {step:<12} {until - at:6.2f} s   {counts.get(step, 0):>12,} rows")
    print(f"  open_data    {opened:8.3f} s")
    print(f"  check_data   {checked:8.3f} s   {args.deals / checked:12,.0f} deals/s   "
          f"{len(diagnostics)} diagnostics")
    print(f"  peak RSS     {peak_mb:8.0f} MB")
    return 0 if not diagnostics else 1


if __name__ == "__main__":
    sys.exit(main())
