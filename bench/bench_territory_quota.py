"""Benchmark territory and quota plans: 200,000 accounts through 200 rules, quotas for 10,000 reps, on DuckDB.

    python bench/bench_territory_quota.py [--accounts 200000] [--rules 200] [--reps 10000]

Builds the data in DuckDB (accounts by country, state, size and potential; a
roster of AEs, a tenth of them hired in the plan year; a year of prior-year
bookings), writes a territory plan with one rule per territory (each rule
its own priority, by country, state and size, the last by country only; a
few named-account rules first) and a quota plan allocating by territory
potential 60 % and prior bookings 40 % with phasing, ramp, overrides and
rounding, checks them, and runs them: assignments, the territory report
(gaps, overlaps, balance) and the quotas. Prints wall time per step, the
total, and the process's peak RSS (DuckDB runs in it).
Target (issue 4): under 10 s together.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.plantest import connection_for, load_checked  # noqa: E402
from runtime.run import run_plans  # noqa: E402

COUNTRIES = ["US", "CA", "GB", "DE", "FR", "NL", "ES", "JP", "AU", "SG"]
STATES = ["CA", "WA", "OR", "CO", "TX", "IL", "NY", "MA", "FL", "GA"]
HEADER = """  effective 2027-01-01 to 2027-12-31
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plans_text(rules: int, reps: int) -> str:
    lines = ["revplan 1", "", 'territory plan "Bench Territories" version 1', HEADER + "  period year"]
    territories = [f"T{i:03d}" for i in range(rules)]
    for i, name in enumerate(territories):
        lines.append(f'  territory "{name}"\n    owner "R{i * (reps // rules):05d}"')
    named = 5
    for i in range(named):
        accounts = ", ".join(f'"A{i * 10 + k:06d}"' for k in range(10))
        lines.append(f'  assign named accounts {accounts} to "{territories[i]}" priority {i + 1}')
    bands = [10_000, 5_000, 1_000, 200, 0]
    combos = [(c, s, b) for b in bands for c in COUNTRIES for s in STATES]
    for i in range(named, rules):
        country, state, band = combos[(i - named) % len(combos)]
        if i >= rules - len(COUNTRIES):  # the last rules: a country's remaining accounts
            condition = f'account.country = "{COUNTRIES[i - (rules - len(COUNTRIES))]}"'
        else:
            condition = f'account.country = "{country}" and account.state = "{state}" and account.employees >= {band:,}'
        lines.append(f'  assign accounts where {condition} to "{territories[i]}" priority {i + 1}')
    lines += ["  tolerance max_min_ratio 3", "  tolerance cv 60%", ""]
    lines += [
        'quota plan "Bench Quotas" version 1',
        HEADER + "  period quarter",
        '  applies to reps where rep.role = "AE"',
        "  target 2,000,000,000 USD",
        "  over_assign 10%",
        "  allocate by territory_potential 60%, prior_bookings 40%",
        "  phasing 22%, 24%, 25%, 29%",
        "  ramp 50%, 75%",
        '  override "R00001" 600,000 USD',
        '  override "R00002" period "2027-Q1" 150,000 USD',
        "  round to nearest 1,000 USD",
        "",
    ]
    return "\n".join(lines)


def build_data(accounts: int, reps: int):
    connection = connection_for({})
    countries = "[" + ", ".join(f"'{c}'" for c in COUNTRIES) + "]"
    states = "[" + ", ".join(f"'{s}'" for s in STATES) + "]"
    connection.execute(f"""
        INSERT INTO accounts (id, name, country, state, industry, employees, potential)
        SELECT printf('A%06d', i), printf('Account %d', i),
               CASE WHEN i % 97 = 0 THEN NULL ELSE {countries}[1 + (hash(i) % 10)::INT] END,
               {states}[1 + (hash(i * 7) % 10)::INT], 'Software',
               (hash(i * 13) % 20000)::BIGINT,
               CAST((hash(i * 31) % 100000000) AS DECIMAL(18, 2)) / 100 * 1000
        FROM range({accounts}) t(i)""")
    connection.execute(f"""
        INSERT INTO reps (id, name, role, currency, hire_date, target_incentive)
        SELECT printf('R%05d', i), printf('Rep %d', i), 'AE', 'USD',
               CASE WHEN i % 10 = 0 THEN DATE '2027-01-01' + CAST(hash(i) % 300 AS INT) ELSE DATE '2020-01-01' END,
               100000
        FROM range({reps}) t(i)""")
    connection.execute(f"""
        INSERT INTO deals (id, owner_rep_id, account_id, amount, currency, stage, product, close_date)
        SELECT printf('D%07d', i), printf('R%05d', (hash(i) % {reps})::INT),
               printf('A%06d', (hash(i * 3) % {accounts})::INT),
               CAST((hash(i * 5) % 10000000) AS DECIMAL(18, 2)) / 100 * 10, 'USD',
               CASE WHEN i % 3 = 0 THEN 'closed_lost' ELSE 'closed_won' END, 'new_logo',
               DATE '2026-01-01' + CAST(hash(i * 11) % 365 AS INT)
        FROM range({reps * 20}) t(i)""")
    return connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--reps", type=int, default=10_000)
    args = parser.parse_args()
    timings = {}
    start = time.perf_counter()
    connection = build_data(args.accounts, args.reps)
    timings["build data (not counted)"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.plan"
        path.write_text(plans_text(args.rules, args.reps), encoding="utf-8")
        began = time.perf_counter()
        files, diagnostics, _ = load_checked([path])
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            raise SystemExit("\n".join(f"{d.where}: {d.message}" for d in errors[:5]))
        timings["parse and check plans"] = time.perf_counter() - began
        step = time.perf_counter()
        result = run_plans(files, connection)
        timings["run: assignments, report, quotas"] = time.perf_counter() - step
        total = time.perf_counter() - began
    quotas, report = result.quotas, result.territory_report
    annual = quotas[quotas["period_kind"] == "year"]
    print(f"{args.accounts:,} accounts, {args.rules} rules, {args.reps:,} reps on DuckDB")
    for name, seconds in timings.items():
        print(f"  {name:<36} {seconds:7.2f} s")
    print(f"  {'total (plans + run)':<36} {total:7.2f} s   target < 10 s")
    print(f"  peak RSS {peak_rss_mb():,.0f} MB")
    print(f"  assignments {len(result.territories):,} rows; {report.summary()}")
    print(
        f"  quotas {len(quotas):,} rows, {annual['rep_id'].nunique():,} reps, "
        f"annual total {sum(annual['amount'], Decimal(0)):,.2f}"
    )


if __name__ == "__main__":
    main()
