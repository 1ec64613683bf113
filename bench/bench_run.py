"""Benchmark `revplan run`: the sample plans on DuckDB, and compiled vs hand-written SQL.

    python bench/bench_run.py [--reps 10000] [--deals 1000000 10000000] [--postgres-url URL]

For each deal count: generates the sample company as Parquet (queried in
place) in a child process; runs `revplan run` on it exactly as a user would,
in its own process (load, contract check, every plan in plans/, outputs
written), printing wall time, deals per second and that process's peak RSS
(with the default memory limit, then with memory to spare);
then once more with the deal trace computed nowhere (a what-if of its cost);
then, side by side on one connection, runs one plan of ours (W1 graduated
tiers) compiled and as a hand-written DuckDB query, printing the ratio;
and last the floor any run of the sample plans pays on this machine, with
no plan arithmetic and no outputs at all: importing the libraries a run
needs, the duplicate deal id check, one grouped scan of the deals.
With --postgres-url, also `revplan run --engine postgres` on that server.
Targets (issue 3): the whole run at 10M deals under 3 s and 1 GiB; the
compiled plan within 1.5x of the hand-written query; generation under 10 s.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.sql import compile_plan  # noqa: E402
from dsl.project import load_paths  # noqa: E402
from runtime.data import open_data  # noqa: E402

# The W1 plan (graduated tiers on quarterly attainment, owner credit, USD at the
# close-date rate), written by hand the way a DuckDB expert would (ASOF join).
HAND_WRITTEN = """
WITH bookings AS (
  SELECT d.owner_rep_id AS rep_id, 'Q' || quarter(d.close_date) AS q,
         SUM(CASE WHEN d.currency = 'USD' THEN d.amount ELSE CAST(d.amount * fx.rate AS DECIMAL(38, 10)) END) AS b
  FROM deals d
  ASOF LEFT JOIN (SELECT * FROM fx_rates WHERE "to" = 'USD') fx
    ON fx."from" = d.currency AND d.close_date >= fx."date"
  WHERE d.stage = 'closed_won' AND d.close_date BETWEEN DATE '2027-01-01' AND DATE '2027-12-31'
  GROUP BY ALL
)
SELECT b.rep_id, b.q, ROUND(
    0.05 * GREATEST(LEAST(b.b, 0.5 * q.amount), 0)
  + 0.08 * GREATEST(LEAST(b.b, 1.0 * q.amount) - 0.5 * q.amount, 0)
  + 0.12 * GREATEST(LEAST(b.b, 1.5 * q.amount) - 1.0 * q.amount, 0)
  + 0.15 * GREATEST(b.b - 1.5 * q.amount, 0), 2) AS payout
FROM bookings b JOIN quotas q ON q.rep_id = b.rep_id AND q.period = '2027-' || b.q
"""


# The least a run does with the deals: one grouped scan (every plan needs at least this much)
# and the one contract check no source can skip (deal ids are unique).
ONE_SCAN = """
SELECT owner_rep_id, date_trunc('quarter', close_date) AS quarter, product, stage, currency, sum(amount), count(*)
FROM deals WHERE close_date >= DATE '2027-01-01' GROUP BY ALL
"""
UNIQUE_IDS = "SELECT count(*) = count(DISTINCT id) FROM deals"
LIBRARIES = "import duckdb, lark, pandas, pyarrow, pydantic, rich, sqlglot"

# A what-if for the deal trace's cost: the same run with the trace computed nowhere (payout_deals.csv empty).
WITHOUT_TRACE = """import sys, runtime.run as run
plans = run.run_plans
run.run_plans = lambda *a, **k: plans(*a, **{**k, "deals": False, "deals_to": None})
from revplan.cli import main
sys.exit(main(sys.argv[1:]))"""

GENEROUS_LIMIT = "8GB"  # DuckDB's, for the second run: memory to spare, as DuckDB's own default would give


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(action):
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def best_of(times: int, action):
    action()
    runs = [timed(action) for _ in range(times)]
    return runs[0][0], min(seconds for _, seconds in runs)


STEP = re.compile(r"^  (?P<step>.+): done in (?P<seconds>[0-9.]+) s$", re.MULTILINE)


def child(*args: str, via: tuple[str, ...] = ("-m", "revplan")) -> tuple[float, float, list[tuple[str, str]]]:
    """Run `python -m revplan ARGS` (or `python VIA ARGS`) in its own process: (wall seconds, its peak RSS in
    MB, and the steps it timed: (step, seconds) from its progress lines)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:  # progress and warnings: shown only if the step fails
        process = subprocess.Popen([sys.executable, *via, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            sys.stderr.write(text)
            raise SystemExit(f"revplan {' '.join(args)} failed")
    steps = [(m["step"].split(" ")[0], m["seconds"]) for m in STEP.finditer(text)]  # loading, checking, ...
    return elapsed, usage.ru_maxrss / 1024, steps


def bench(reps: int, deals: int, postgres_url: str | None = None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="revplan-bench-run-"))
    data, out = folder / "data", folder / "out"
    try:
        generate_s, generate_mb, _ = child(
            "sample-data", "--out", str(data), "--reps", str(reps), "--deals", str(deals), "--format", "parquet"
        )
        run_s, run_mb, steps = child("run", "--data", str(data), "--out", str(out))
        generous_s, generous_mb, _ = child(
            "run", "--data", str(data), "--out", str(out), "--memory-limit", GENEROUS_LIMIT
        )
        bare_s, bare_mb, bare_steps = child("run", "--data", str(data), "--out", str(out), via=("-c", WITHOUT_TRACE))
        if postgres_url:
            on_server = ("--engine", "postgres", "--url", postgres_url)
            postgres = child("run", "--data", str(data), "--out", str(out), *on_server)
        w1 = load_paths([ROOT / "tests" / "examples" / "w01_graduated_tiers.plan"])
        with open_data(data) as source:
            sql = compile_plan(w1.plans[0], w1.shared_measures).sql(dialect="duckdb")
            connection = source.connection
            # Engine time: results as Arrow (what a run reads), best of three, both warmed up once.
            compiled_rows, compiled_s = best_of(3, lambda: connection.sql(sql).to_arrow_table())
            hand_rows, hand_s = best_of(3, lambda: connection.sql(HAND_WRITTEN).to_arrow_table())
            _, scan_s = best_of(3, lambda: connection.sql(ONE_SCAN).to_arrow_table())
            _, unique_s = best_of(3, lambda: connection.sql(UNIQUE_IDS).fetchall())
        import_s = min(timed(lambda: subprocess.run([sys.executable, "-c", LIBRARIES], check=True))[1]
                       for _ in range(3))
        lines = sum(1 for _ in open(out / "payout_lines.csv", encoding="utf-8")) - 1
        print(f"reps {reps:,}  deals {deals:,}")
        print(f"  generate sample company  {generate_s:7.2f} s   {deals / generate_s:,.0f} deals/s   "
              f"peak {generate_mb:,.0f} MB")
        print(f"  revplan run (all plans)  {run_s:7.2f} s   {deals / run_s:,.0f} deals/s   peak {run_mb:,.0f} MB   "
              f"{lines:,} payout lines")
        print("    " + ", ".join(f"{step} {seconds} s" for step, seconds in steps))
        print(f"  ... --memory-limit {GENEROUS_LIMIT}  {generous_s:6.2f} s   peak {generous_mb:,.0f} MB")
        print(f"  ... without deal trace  {bare_s:7.2f} s   peak {bare_mb:,.0f} MB   (what-if: "
              + ", ".join(f"{step} {seconds} s" for step, seconds in bare_steps) + ")")
        if postgres_url:
            postgres_s, postgres_mb, postgres_steps = postgres
            print(f"  ... --engine postgres   {postgres_s:7.2f} s   peak {postgres_mb:,.0f} MB (this process)   "
                  + ", ".join(f"{step} {seconds} s" for step, seconds in postgres_steps))
        print(f"  W1 compiled              {compiled_s:7.3f} s   ({compiled_rows.num_rows:,} rows)")
        print(f"  W1 hand-written          {hand_s:7.3f} s   ({hand_rows.num_rows:,} rows)")
        print(f"  ratio compiled / hand    {compiled_s / hand_s:7.2f} x")
        same = sum(compiled_rows["amount"].to_pylist()) == sum(hand_rows["payout"].to_pylist())
        print(f"  same W1 total both ways  {'yes' if same else 'NO'}")
        print(f"  peak RSS of this process {peak_rss_mb():7.0f} MB (the W1 comparison)")
        floor = import_s + unique_s + scan_s
        print(f"  floor of any run         {floor:7.2f} s   (importing libraries {import_s:.2f} s + unique deal ids "
              f"{unique_s:.2f} s + one grouped scan of the deals {scan_s:.2f} s; no plan arithmetic, no outputs)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--deals", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--postgres-url", help="also run on this PostgreSQL server (postgresql://...)")
    args = parser.parse_args()
    for deals in args.deals:
        bench(args.reps, deals, args.postgres_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
