"""Benchmark `revplan check`: the sample plans, then a generated repo of N plans.

    python bench/bench_check.py [--plans 1000]

Prints wall time, plans per second and the peak RSS of the checking process.
Targets (issue 2): sample plans/ under 1 s; 1,000 plans under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
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


def run_check(paths: list[Path]) -> tuple[float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "revplan", "check", *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - start
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return elapsed, peak_kb, completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else ""


def generate(folder: Path, count: int) -> None:
    (folder / "shared.plan").write_text(SHARED, encoding="utf-8")
    for index in range(count):
        text = PLAN.format(index=index, rate=6 + index % 5)
        (folder / f"plan_{index:05d}.plan").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    args = parser.parse_args()

    elapsed, peak_kb, summary = run_check([ROOT / "plans"])
    print(f"sample plans/: {elapsed:.2f} s wall (whole process), peak RSS {peak_kb / 1024:.0f} MB  [{summary}]")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.plans)
        elapsed, peak_kb, summary = run_check([folder])
    rate = args.plans / elapsed
    print(
        f"{args.plans} generated plans: {elapsed:.2f} s wall, {rate:.0f} plans/s, "
        f"peak RSS {peak_kb / 1024:.0f} MB  [{summary}]"
    )


if __name__ == "__main__":
    main()
