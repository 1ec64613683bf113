"""Benchmark `revplan check`: the sample plans, then a generated repo of N plans.

    python bench/bench_check.py [--plans 1000] [--repeat 3]

Each check runs as its own process (`python -m revplan check`), as a user
runs it, `--repeat` times after one unmeasured warm-up run (which fills the
parser cache, see dsl/parse.py, and the OS file cache). Prints the best and
the median wall time, the CPU time (user + system, less disturbed than wall
time by other work on the machine), plans per second at the best wall time,
and the peak RSS of the checking process.
Targets (issue 2): sample plans/ under 1 s; 1,000 plans under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARED = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"
measure new_logo_bookings = sum(deal.amount) where deal.stage = "closed_won" and deal.product = "new_logo"
"""

PLAN = """revplan 1

# Generated plan {index}: one region each, so eligibility never overlaps.
comp plan "Generated {index}" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  applies to reps where rep.region = "R{index}" and rep.role in ("AE", "SE")

  credit owner
  credit splits
  attainment = bookings / quota
  prorate by active_days
  clawback cancelled deals within 90 days

  component "Bookings" on bookings
    graduated tiers on attainment
      0% .. 50% pays 4%
      50% .. 100% pays {rate}%
      100% .. 150% pays 12%
      150% .. pays 15%
    multiplier 1.5 where deal.product = "new_logo"
    gate attainment >= 25%
    cap 2 x target_incentive per period

  component "Club"
    bonus 5,000 USD when attainment >= 120%

  test "Quota hit"
    given rep id "A", region "R{index}", target_incentive 80,000 USD
    given quota rep_id "A", period "2027-Q1", amount 100,000 USD
    given deal id "D1", owner_rep_id "A", amount 100,000 USD, close_date 2027-02-15
    expect payout rep "A", period "2027-Q1", component "Bookings", amount 6,000.00 USD
"""


def run_check(paths: list[Path]) -> tuple[float, float, int, str]:
    """One `revplan check` process: wall seconds, CPU seconds, its peak RSS in KiB, its summary line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "revplan", "check", *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest of all children so far; the
    # checks run smallest first, so it is this run's (or an equal earlier one's).
    summary = completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else ""
    return elapsed, cpu, after.ru_maxrss, summary


def measure(paths: list[Path], repeat: int) -> tuple[list[float], list[float], int, str]:
    run_check(paths)  # warm-up, not counted
    runs = [run_check(paths) for _ in range(repeat)]
    return [r[0] for r in runs], [r[1] for r in runs], max(r[2] for r in runs), runs[-1][3]


def describe(walls: list[float], cpus: list[float]) -> str:
    return (
        f"wall best {min(walls):.2f} s, median {statistics.median(walls):.2f} s; "
        f"CPU best {min(cpus):.2f} s, median {statistics.median(cpus):.2f} s"
    )


def generate(folder: Path, count: int) -> None:
    (folder / "shared.plan").write_text(SHARED, encoding="utf-8")
    for index in range(count):
        text = PLAN.format(index=index, rate=6 + index % 5)
        (folder / f"plan_{index:05d}.plan").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each check (after one warm-up)")
    args = parser.parse_args()

    walls, cpus, peak_kb, summary = measure([ROOT / "plans"], args.repeat)
    print(f"sample plans/: {describe(walls, cpus)}; peak RSS {peak_kb / 1024:.0f} MB  [{summary}]")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.plans)
        walls, cpus, peak_kb, summary = measure([folder], args.repeat)
    print(
        f"{args.plans} generated plans: {describe(walls, cpus)}; {args.plans / min(walls):.0f} plans/s; "
        f"peak RSS {peak_kb / 1024:.0f} MB  [{summary}]"
    )


if __name__ == "__main__":
    main()
