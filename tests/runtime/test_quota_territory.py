"""Quota and territory plans run: allocation properties, coverage, overlaps, balance, realignment end to end.

Properties (hypothesis): allocated quotas add up to target x (1 + over_assign)
exactly without rounding (to the cent), within the rounding rule with it,
and each is within a cent of the exact proportional share; every account is
assigned exactly once or reported as a gap, as a reference evaluation of the
rules says. A realignment (one rule changed) moves assignments, territory
potential, quotas and payouts consistently. Quotas and the territory report
are the same on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import os
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.plantest import connection_for, load_checked
from runtime.run import run_plans
from runtime.territory_report import TerritoryReport, coefficient_of_variation, max_min_ratio

POSTGRES_URL = os.environ.get("REVPLAN_TEST_POSTGRES_URL")
ENGINES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
HEADER = """  effective 2027-01-01 to 2027-12-31
  currency USD
  owners sales "@s" finance "@f"
"""


def engine_url(engine: str) -> str | None:
    if engine != "postgres":
        return None
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must provide a PostgreSQL server (REVPLAN_TEST_POSTGRES_URL)")
        pytest.skip("no PostgreSQL server: set REVPLAN_TEST_POSTGRES_URL (source .ci/postgres.sh; start_postgres)")
    return POSTGRES_URL


def load(folder: Path, text: str):
    path = folder / "plans.plan"
    path.write_text("revplan 1\n" + text, encoding="utf-8")
    files, diagnostics, _ = load_checked([path])
    errors = [f"{d.where}: {d.message}" for d in diagnostics if d.is_error]
    assert not errors, errors
    return files


def load_unchecked(text: str):
    """Parsed and resolved, not checked: the checker refuses rules that can overlap (RP330), the run still
    reports overlaps it finds in the data (plans loaded without the checker, conditions it cannot compare)."""
    from dsl.parse import parse
    from dsl.resolve import resolve

    resolved = resolve(parse("revplan 1\n" + text, "plans.plan"))
    assert resolved.plan_file is not None, [d.message for d in resolved.diagnostics]
    return (resolved.plan_file,)


def data(reps=(), accounts=(), deals=(), assignments=()):
    """A DuckDB connection with every contract table; rows as dicts of SQL literals by column."""
    connection = connection_for({})
    for table, rows in (("reps", reps), ("accounts", accounts), ("deals", deals), ("rep_assignments", assignments)):
        for row in rows:
            columns = ", ".join(f'"{c}"' for c in row)
            connection.execute(
                f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(["?"] * len(row))})', list(row.values())
            )
    return connection


def rep(rep_id: str, hire_date: str = "2020-01-01", role: str = "AE") -> dict:
    return dict(id=rep_id, name=rep_id, role=role, currency="USD", hire_date=hire_date, target_incentive=Decimal(0))


def annual(quotas, plan: str | None = None) -> dict[str, Decimal]:
    rows = quotas[quotas["period_kind"] == "year"]
    if plan is not None:
        rows = rows[rows["plan"] == plan]
    return dict(zip(rows["rep_id"], rows["amount"], strict=True))


def periods(quotas, rep_id: str) -> dict[str, Decimal]:
    rows = quotas[(quotas["period_kind"] == "period") & (quotas["rep_id"] == rep_id)]
    return dict(zip(rows["period"], rows["amount"], strict=True))


# ---------------------------------------------------------------- allocation properties

ROUNDINGS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["nearest", "up", "down"]), st.sampled_from([1, 100, 1000, 5000])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    weights=st.lists(st.one_of(st.none(), st.integers(1, 100)), min_size=1, max_size=9),
    target_cents=st.integers(1, 10**11),
    over_tenths=st.integers(0, 500),
    rounding=ROUNDINGS,
)
def test_weights_allocate_the_whole_target(tmp_path, weights, target_cents, over_tenths, rounding):
    target = Decimal(target_cents).scaleb(-2)
    over = Decimal(over_tenths).scaleb(-1)  # percent, one decimal
    lines = [f'  weight "R{i}" {Decimal(w).scaleb(-1)}' for i, w in enumerate(weights) if w is not None]
    round_line = ""
    if rounding is not None:
        mode, step = rounding
        round_line = f"  round {'to nearest' if mode == 'nearest' else mode + ' to'} {step} USD\n"
    text = (
        'quota plan "P" version 1\n' + HEADER + "  period quarter\n"
        f"  target {target} USD\n  over_assign {over}%\n  allocate by weights\n"
        + "\n".join(lines)
        + ("\n" if lines else "")
        + "  phasing 20%, 30%, 25%, 25%\n"
        + round_line
    )
    files = load(tmp_path, text)
    connection = data(reps=[rep(f"R{i}") for i in range(len(weights))])
    quotas = run_plans(files, connection).quotas
    to_allocate = target * (1 + over / 100)
    amounts = annual(quotas)
    assert len(amounts) == len(weights)
    total = sum(amounts.values(), Decimal(0))
    n = len(weights)
    if rounding is None:
        assert total == to_allocate.quantize(Decimal("0.01"), ROUND_HALF_UP)
        units = [Fraction(w if w is not None else 10) for w in weights]
        for i, unit in enumerate(units):  # each within a cent of its exact share
            exact = Fraction(to_allocate) * unit / sum(units)
            assert abs(Fraction(amounts[f"R{i}"]) - exact) < Fraction(1, 100)
        for i in range(n):  # period quotas add up to the annual quota
            assert sum(periods(quotas, f"R{i}").values(), Decimal(0)) == amounts[f"R{i}"]
    else:
        mode, step = rounding
        for amount in amounts.values():
            assert amount % step == 0
        if mode == "nearest":
            assert abs(total - to_allocate) <= n * Decimal(step) / 2
        elif mode == "up":
            assert to_allocate <= total < to_allocate + n * step
        else:
            assert to_allocate - n * step < total <= to_allocate


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reps=st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(0, 10**8)),  # (potential cents, prior bookings cents)
        min_size=1,
        max_size=6,
    ),
    shares=st.sampled_from([(60, 40), (50, 50), (33, 67), (100, 0)]),
)
def test_blends_allocate_the_whole_target(tmp_path, reps, shares):
    territories = "".join(f'  territory "T{i}"\n    owner "R{i}"\n' for i in range(len(reps)))
    rules = "".join(f'  assign named accounts "a{i}" to "T{i}" priority 1\n' for i in range(len(reps)))
    allocate = f"territory_potential {shares[0]}%, prior_bookings {shares[1]}%" if shares[1] else "territory_potential"
    text = (
        'territory plan "T" version 1\n'
        + HEADER
        + "  period year\n"
        + territories
        + rules
        + 'quota plan "Q" version 1\n'
        + HEADER
        + "  period quarter\n"
        + f"  target 1000000 USD\n  over_assign 10%\n  allocate by {allocate}\n"
    )
    files = load(tmp_path, text)
    connection = data(
        reps=[rep(f"R{i}") for i in range(len(reps))],
        accounts=[dict(id=f"a{i}", name=f"a{i}", potential=Decimal(p).scaleb(-2)) for i, (p, _) in enumerate(reps)],
        deals=[
            dict(
                id=f"d{i}",
                owner_rep_id=f"R{i}",
                account_id=f"a{i}",
                amount=Decimal(b).scaleb(-2),
                currency="USD",
                stage="closed_won",
                close_date="2026-06-30",
            )
            for i, (_, b) in enumerate(reps)
            if b
        ],
    )
    quotas = run_plans(files, connection).quotas
    amounts = annual(quotas)
    assert sum(amounts.values(), Decimal(0)) == Decimal("1100000.00")
    potentials = [Fraction(p) for p, _ in reps]
    bookings = [Fraction(b) for _, b in reps]
    for i in range(len(reps)):
        share = Fraction(0)
        for part, basis in ((shares[0], potentials), (shares[1], bookings)):
            if part:
                weight = basis[i] / sum(basis) if sum(basis) else Fraction(1, len(reps))  # all zero: equal
                share += Fraction(part, 100) * weight
        assert abs(Fraction(amounts[f"R{i}"]) - 1_100_000 * share) < Fraction(1, 100)


def test_an_override_of_minus_zero_is_zero(tmp_path):
    """`-0 USD` is 0 (RP307 refuses a negative one): the run crashed on it (audit)."""
    text = 'quota plan "P" version 1\n' + HEADER + '  period quarter\n  target 1000 USD\n  allocate by equal\n' \
        '  override "B" -0 USD\n'
    quotas = run_plans(load(tmp_path, text), data(reps=[rep("A"), rep("B")])).quotas
    assert annual(quotas) == {"A": Decimal("500.00"), "B": Decimal("0.00")}


def test_ramp_override_and_equal_phasing(tmp_path):
    """Without phasing each period gets an equal share (cents apportioned); ramps and overrides as written."""
    text = (
        'quota plan "P" version 1\n' + HEADER + "  period quarter\n"
        "  target 1000 USD\n  allocate by equal\n  ramp 50%, 75%\n"
        '  override "C" 90 USD\n  override "A" period "2027-Q4" 1 USD\n'
    )
    files = load(tmp_path, text)
    connection = data(reps=[rep("A"), rep("B", hire_date="2027-02-15"), rep("C")])
    quotas = run_plans(files, connection).quotas
    # 1,000 / 3 with the cents apportioned in rep order: 333.33, 666.67 - 333.33, 1,000 - 666.67
    assert annual(quotas) == {"A": Decimal("333.33"), "B": Decimal("333.34"), "C": Decimal("90.00")}
    # A: 333.33 in four equal shares, the cents apportioned (83.33, 166.67, 250.00, 333.33 cumulated); Q4 overridden
    assert periods(quotas, "A") == {
        "2027-Q1": Decimal("83.33"),
        "2027-Q2": Decimal("83.34"),
        "2027-Q3": Decimal("83.33"),
        "2027-Q4": Decimal("1.00"),
    }
    # B hired 2027-02-15: Q1 (partial) at the first ramp step, Q2 (first full quarter) 50 %, Q3 75 %, Q4 full
    # (phased 83.34, 83.33, 83.34, 83.33; x 50% = 41.67, 41.665 -> 41.67; x 75% = 62.505 -> 62.51)
    assert periods(quotas, "B") == {
        "2027-Q1": Decimal("41.67"),
        "2027-Q2": Decimal("41.67"),
        "2027-Q3": Decimal("62.51"),
        "2027-Q4": Decimal("83.33"),
    }
    assert periods(quotas, "C") == {q: Decimal("22.50") for q in ("2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4")}
    derivation = quotas[(quotas["rep_id"] == "B") & (quotas["period"] == "2027-Q2")]["derivation"].iloc[0]
    assert "ramp 50% (new in the plan: a hire or a move into its role)" in derivation


def assignment(rep_id: str, start: str, end: str | None, role: str) -> dict:
    return dict(rep_id=rep_id, start_date=start, end_date=end, role=role)


@pytest.mark.parametrize("engine", ["duckdb", "python", ENGINES[1]])
def test_quota_plans_read_roles_from_rep_assignments(tmp_path, engine):
    """`applies to` reads the dated role, as comp plans do: a rep promoted into the plan's role gets a quota,
    ramped from the promotion like a new hire; a rep whose assignments never hold the role gets none. A rep in the
    role since before the plan is no new hire, however their assignment rows are cut (a new row on the plan's
    first day for a new TI or manager); one who comes back to the role after a gap is."""
    text = 'quota plan "P" version 1\n' + HEADER + '  period quarter\n  applies to reps where rep.role = "AE"\n'
    text += "  target 1000 USD\n  allocate by equal\n  ramp 50%, 75%\n"
    files = load(tmp_path, text)
    connection = data(
        reps=[rep("A"), rep("P", role="SDR"), rep("S"), rep("V", role="SDR"), rep("W"), rep("X"), rep("Y")],
        assignments=[
            assignment("P", "2020-01-01", "2027-02-14", "SDR"),
            assignment("P", "2027-02-15", None, "AE"),  # promoted: in the plan from 2027-02-15
            assignment("S", "2020-01-01", None, "SDR"),  # the reps row says AE, the assignment SDR: not in it
            assignment("V", "2021-03-01", None, "AE"),  # an AE since 2021: not ramped
            assignment("W", "2021-03-01", "2026-12-31", "AE"),  # an AE since 2021 with a new row for 2027
            assignment("W", "2027-01-01", "2027-06-30", "AE"),
            assignment("W", "2027-07-01", None, "AE"),
            assignment("X", "2021-03-01", "2026-06-30", "AE"),  # an AE, then an SDR, back as an AE on 2027-02-15
            assignment("X", "2026-07-01", "2027-02-14", "SDR"),
            assignment("X", "2027-02-15", None, "AE"),
            assignment("Y", "2021-03-01", "2026-12-30", "AE"),  # an AE until the day before the plan's eve: a gap
            assignment("Y", "2027-01-01", None, "AE"),
        ],
    )
    quotas = run_plans(files, connection, engine=engine, url=engine_url(engine)).quotas
    first = quotas[quotas["period"] == "2027-Q1"].set_index("rep_id")["ramp"].to_dict()
    assert first == {"A": 1, "P": Decimal("0.5"), "V": 1, "W": 1, "X": Decimal("0.5"), "Y": Decimal("0.5")}
    connection = data(
        reps=[rep("A"), rep("P", role="SDR"), rep("S"), rep("V", role="SDR")],
        assignments=[
            assignment("P", "2020-01-01", "2027-02-14", "SDR"),
            assignment("P", "2027-02-15", None, "AE"),
            assignment("S", "2020-01-01", None, "SDR"),
            assignment("V", "2021-03-01", None, "AE"),
        ],
    )
    quotas = run_plans(files, connection, engine=engine, url=engine_url(engine)).quotas
    assert annual(quotas) == {"A": Decimal("333.33"), "P": Decimal("333.34"), "V": Decimal("333.33")}
    # P as a hire on 2027-02-15: Q1 (partial) and Q2 (first full quarter) at 50 %, Q3 75 %, Q4 full
    assert periods(quotas, "P") == {
        "2027-Q1": Decimal("41.67"),
        "2027-Q2": Decimal("41.67"),
        "2027-Q3": Decimal("62.51"),
        "2027-Q4": Decimal("83.33"),
    }
    assert periods(quotas, "V") == periods(quotas, "A")


# ---------------------------------------------------------------- territories: coverage, overlaps, balance

RULES = [  # (priority, territory, condition as plan text, as Python)
    (1, "Named", 'named accounts "n1", "n2"', lambda a: a["id"] in ("n1", "n2")),
    (
        2,
        "West",
        'accounts where account.country = "US" and account.state in ("CA", "WA") and account.employees >= 1,000',
        lambda a: a["country"] == "US" and a["state"] in ("CA", "WA") and (a["employees"] or 0) >= 1000,
    ),
    (3, "US", 'accounts where account.country = "US"', lambda a: a["country"] == "US"),
    (3, "Canada", 'accounts where account.country = "CA"', lambda a: a["country"] == "CA"),
]


def territory_plan_text(rules=RULES, tolerances: str = "") -> str:
    names = dict.fromkeys(t for _, t, _, _ in rules)
    body = "".join(f'  territory "{name}"\n    owner "O-{name}"\n' for name in names)
    body += "".join(f'  assign {cond} to "{territory}" priority {p}\n' for p, territory, cond, _ in rules)
    return 'territory plan "T" version 1\n' + HEADER + "  period year\n" + body + tolerances


ACCOUNTS = st.lists(
    st.fixed_dictionaries(
        dict(
            country=st.sampled_from(["US", "CA", "DE", None]),
            state=st.sampled_from(["CA", "WA", "TX", None]),
            employees=st.one_of(st.none(), st.integers(0, 5000)),
            potential=st.integers(0, 10**6),
        )
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(accounts=ACCOUNTS, named=st.booleans())
def test_every_account_is_assigned_once_or_reported_as_a_gap(tmp_path, accounts, named):
    rows = [
        dict(id=("n1" if named and i == 0 else f"x{i}"), name=f"x{i}", **{**a, "potential": Decimal(a["potential"])})
        for i, a in enumerate(accounts)
    ]
    files = load(tmp_path, territory_plan_text())
    result = run_plans(files, data(accounts=rows))
    assigned = result.territories
    assert sorted(assigned["account_id"]) == sorted(r["id"] for r in rows)  # once each
    for row in rows:
        expected = next((t for _, t, _, matches in sorted(RULES, key=lambda r: r[0]) if matches(row)), None)
        (got,) = assigned[assigned["account_id"] == row["id"]]["territory"]
        assert (got if isinstance(got, str) else None) == expected, row
    gaps = set(result.territory_report.gaps["account_id"])
    assert gaps == {r["id"] for r in rows if not any(m(r) for _, _, _, m in RULES)}
    checks = result.territory_report.checks.set_index("check")
    assert checks.loc["coverage", "value"] == len(gaps)
    assert checks.loc["overlaps", "value"] == 0  # US and Canada rules never match the same account


@pytest.mark.parametrize("engine", ENGINES)
def test_overlapping_rules_of_the_deciding_priority_are_reported(tmp_path, engine):
    rules = [
        (2, "US", 'accounts where account.country = "US"', None),
        (2, "California", 'accounts where account.state = "CA"', None),
        (1, "Named", 'named accounts "n1"', None),
        (3, "Big", "accounts where account.employees >= 1,000", None),
        (3, "Huge", "accounts where account.employees >= 5,000", None),
    ]
    files = load_unchecked(territory_plan_text(rules))
    accounts = [
        dict(id="ca", name="ca", country="US", state="CA", employees=10),  # US and California tie at 2
        dict(id="tx", name="tx", country="US", state="TX", employees=10),  # US only
        dict(id="n1", name="n1", country="US", state="CA", employees=10),  # named wins: the tie does not decide
        dict(id="big", name="big", country="DE", state=None, employees=9000),  # Big and Huge tie at 3
    ]
    result = run_plans(files, data(accounts=accounts), engine=engine, url=engine_url(engine))
    overlaps = result.territory_report.overlaps
    found = sorted(zip(overlaps["account_id"], overlaps["territory"], strict=True))
    assert found == [("big", "Big"), ("big", "Huge"), ("ca", "California"), ("ca", "US")]
    assigned = dict(zip(result.territories["account_id"], result.territories["territory"], strict=True))
    assert assigned["ca"] == "US" and assigned["big"] == "Big"  # the first written wins
    report = result.territory_report.to_frame()
    assert set(report[report["check"] == "overlap"]["account_id"]) == {"ca", "big"}


@pytest.mark.parametrize("engine", ENGINES)
def test_balance_is_checked_against_the_tolerances(tmp_path, engine):
    rules = [
        (1, "A", 'named accounts "a1", "a2"', None),
        (1, "B", 'named accounts "b1"', None),
        (1, "C", 'named accounts "c1"', None),
    ]
    text = territory_plan_text(rules, "  tolerance max_min_ratio 3\n  tolerance cv 40%\n")
    text += '  move account "a2" to "C" on 2027-07-02\n'  # a2 counts in A for 182 days, in C for 183
    files = load(tmp_path, text)
    accounts = [
        dict(id="a1", name="a1", potential=Decimal("1000.00")),
        dict(id="a2", name="a2", potential=Decimal("365.00")),
        dict(id="b1", name="b1", potential=Decimal("500.00")),
        dict(id="c1", name="c1", potential=Decimal("400.00")),
    ]
    result = run_plans(files, data(accounts=accounts), engine=engine, url=engine_url(engine))
    balance = result.territory_report.balance
    potential = dict(zip(balance["territory"], balance["potential"], strict=True))
    assert potential == {"A": Decimal("1182"), "B": Decimal("500"), "C": Decimal("583")}
    assert dict(zip(balance["territory"], balance["accounts"], strict=True)) == {"A": 2, "B": 1, "C": 2}
    checks = result.territory_report.checks.set_index("check")
    assert checks.loc["max_min_ratio", "value"] == Decimal("2.3640") and checks.loc["max_min_ratio", "ok"]
    values = [Decimal(1182), Decimal(500), Decimal(583)]
    cv, ok = coefficient_of_variation(values, Decimal("0.4"))
    assert checks.loc["cv", "value"] == cv and bool(checks.loc["cv", "ok"]) == ok
    assert not ok  # CV ~0.4024 > 40 %
    assert "cv 40.24% (limit 40%) EXCEEDED" in result.territory_report.summary()


def test_a_plan_with_no_accounts_counts_whole_gaps(tmp_path):
    """No accounts: no ratio to keep the checks' figures Decimals; the counts still read 0, not 0.0."""
    files = load(tmp_path, territory_plan_text([(1, "A", 'named accounts "a1"', None)], "  tolerance cv 40%\n"))
    report = run_plans(files, data()).territory_report
    assert report.summary() == "territories: T v1: 0 gap(s), 0 overlap(s), max_min_ratio n/a, cv n/a (limit 40%)"
    assert report.to_frame()["value"].tolist()[:2] == [0, 0]


def test_balance_figures_are_exact_tests():
    assert max_min_ratio([Decimal(3), Decimal(1)], Decimal(3)) == (Decimal("3.0000"), True)
    assert max_min_ratio([Decimal("3.0000000001"), Decimal(1)], Decimal(3))[1] is False
    assert max_min_ratio([Decimal(3), Decimal(0)], Decimal(3)) == (None, False)
    assert coefficient_of_variation([Decimal(1), Decimal(3)], Decimal("0.5")) == (Decimal("0.5000"), True)
    assert coefficient_of_variation([Decimal(1), Decimal("3.0000001")], Decimal("0.5"))[1] is False
    assert coefficient_of_variation([Decimal(5), Decimal(5)], Decimal(0)) == (Decimal("0.0000"), True)


# ---------------------------------------------------------------- realignment end to end

REALIGNMENT = """territory plan "T" version 1
{header}  period year
  territory "West"
    owner "A"
  territory "East"
    owner "B"
  assign accounts where account.state in ({west}) to "West" priority 1
  assign accounts where account.state in ({east}) to "East" priority 1

quota plan "Q" version 1
{header}  period quarter
  target 1,000,000 USD
  allocate by territory_potential
  phasing 25%, 25%, 25%, 25%

comp plan "C" version 1
{header}  period quarter
  quota from plan "Q"
  measure bookings = sum(deal.amount) where deal.stage = "closed_won"
  attainment = bookings / quota
  component "Commission" on bookings
    retroactive tiers on attainment
      0% .. 100% pays 5%
      100% ..    pays 10%
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_moving_a_state_moves_accounts_quotas_and_payouts(tmp_path, engine):
    accounts = [
        dict(id="ca", name="ca", state="CA", potential=Decimal("600000.00")),
        dict(id="wa", name="wa", state="WA", potential=Decimal("200000.00")),
        dict(id="ny", name="ny", state="NY", potential=Decimal("200000.00")),
    ]
    deals = [
        dict(
            id="d1",
            owner_rep_id="A",
            account_id="ca",
            amount=Decimal("180000.00"),
            currency="USD",
            stage="closed_won",
            close_date="2027-02-01",
        ),
        dict(
            id="d2",
            owner_rep_id="B",
            account_id="ny",
            amount=Decimal("60000.00"),
            currency="USD",
            stage="closed_won",
            close_date="2027-02-01",
        ),
    ]

    def run(west: str, east: str):
        files = load(tmp_path, REALIGNMENT.format(header=HEADER, west=west, east=east))
        connection = data(reps=[rep("A"), rep("B")], accounts=accounts, deals=deals)
        return run_plans(files, connection, engine=engine, url=engine_url(engine))

    before = run('"CA", "WA"', '"NY"')
    after = run('"CA"', '"NY", "WA"')  # WA moves from West (A) to East (B)

    def territory_of(result, account):
        return dict(zip(result.territories["account_id"], result.territories["territory"], strict=True))[account]

    assert territory_of(before, "wa") == "West" and territory_of(after, "wa") == "East"
    # potential A 800,000 / B 200,000 -> 600,000 / 400,000 of 1,000,000: quotas follow
    assert annual(before.quotas) == {"A": Decimal("800000.00"), "B": Decimal("200000.00")}
    assert annual(after.quotas) == {"A": Decimal("600000.00"), "B": Decimal("400000.00")}
    assert periods(after.quotas, "A")["2027-Q1"] == Decimal("150000.00")

    def q1(result, rep_id):
        lines = result.payout_lines
        row = lines[(lines["rep_id"] == rep_id) & (lines["period"] == "2027-Q1")].iloc[0]
        return row["quota"], row["attainment"], row["amount"]

    # A: 180,000 on 200,000 = 90 % at 5 % = 9,000 -> on 150,000 = 120 % at 10 % = 18,000
    assert q1(before, "A") == (Decimal("200000.00"), Decimal("0.9000000000"), Decimal("9000.00"))
    assert q1(after, "A") == (Decimal("150000.00"), Decimal("1.2000000000"), Decimal("18000.00"))
    # B: 60,000 on 50,000 = 120 % at 10 % = 6,000 -> on 100,000 = 60 % at 5 % = 3,000
    assert q1(before, "B") == (Decimal("50000.00"), Decimal("1.2000000000"), Decimal("6000.00"))
    assert q1(after, "B") == (Decimal("100000.00"), Decimal("0.6000000000"), Decimal("3000.00"))


OUTSIDE_DATES = """territory plan "T" version 1
{header}  period year
  territory "West"
    owner "A"
    owner "B" from 2026-12-01
  territory "East"
    owner "C" from 2027-04-01
  assign accounts where account.state = "CA" to "West" priority 1
  assign accounts where account.state = "NY" to "East" priority 1
  move account "ny" to "West" on 2028-02-01

quota plan "Q" version 1
{header}  period quarter
  target 1,000,000 USD
  allocate by territory_potential
  phasing 25%, 25%, 25%, 25%
"""


@pytest.mark.parametrize("engine", ["python", *ENGINES])
def test_dates_outside_a_territory_plan_count_from_its_first_day_or_never(tmp_path, engine):
    """An owner from before the plan holds from its first day (B replaced A before 2027: A held West in all of
    2027 and B had no quota); a move after the plan does not happen in it (it made an inverted span and
    miscounted the balance); days a territory has no owner are in the table, without one (they were dropped)."""
    accounts = [dict(id=state.lower(), name=state, state=state, potential=Decimal("365.00")) for state in ("CA", "NY")]
    files = load(tmp_path, OUTSIDE_DATES.format(header=HEADER))
    connection = data(reps=[rep("A"), rep("B"), rep("C")], accounts=accounts)
    result = run_plans(files, connection, engine=engine, url=engine_url(engine))
    spans = [(r.account_id, r.territory, r.owner_rep_id if isinstance(r.owner_rep_id, str) else None,
              str(r.start), str(r.end)) for r in result.territories.itertuples()]
    assert spans == [
        ("ca", "West", "B", "2027-01-01", "2027-12-31"),
        ("ny", "East", None, "2027-01-01", "2027-03-31"),
        ("ny", "East", "C", "2027-04-01", "2027-12-31"),
    ]
    # potential x days owned: B 365 x 365, C 365 x 275 of the 1,000,000
    assert annual(result.quotas) == {"A": Decimal("0.00"), "B": Decimal("570312.50"), "C": Decimal("429687.50")}
    balance = result.territory_report.balance
    assert {t: Decimal(p) for t, p in zip(balance["territory"], balance["potential"], strict=True)} == {
        "West": Decimal(365), "East": Decimal(365)}


@pytest.mark.parametrize("engine", [*ENGINES, pytest.param("spark", marks=pytest.mark.spark)])
def test_territory_potential_in_the_tens_of_billions_allocates_on_every_engine(tmp_path, engine):
    """A total potential above 10^10 overflowed Spark's exact division (a DECIMAL(38, 18) quotient): the
    200-rep sample company's, 1.6 x 10^10, stopped `revplan run --engine spark` with a traceback."""
    accounts = [
        dict(id="ca", name="ca", state="CA", potential=Decimal("60000000000.00")),
        dict(id="wa", name="wa", state="WA", potential=Decimal("20000000000.00")),
        dict(id="ny", name="ny", state="NY", potential=Decimal("20000000000.00")),
    ]
    files = load(tmp_path, REALIGNMENT.format(header=HEADER, west='"CA", "WA"', east='"NY"'))
    connection = data(reps=[rep("A"), rep("B")], accounts=accounts)
    result = run_plans(files, connection, engine=engine, url=engine_url(engine))
    assert annual(result.quotas) == {"A": Decimal("800000.00"), "B": Decimal("200000.00")}
    shown = result.quotas[result.quotas["rep_id"] == "A"].iloc[0]
    assert (shown["territory_potential"], shown["territory_potential_total"]) == (
        Decimal("80000000000.0000000000"), Decimal("100000000000.0000000000"))


# ---------------------------------------------------------------- the sample company on both engines


@pytest.mark.postgres
def test_sample_company_quotas_and_report_agree_across_engines(tmp_path):
    from dsl.project import load_paths
    from runtime.data import open_data
    from runtime.sample_data import generate_sample_company

    url = engine_url("postgres")
    root = Path(__file__).resolve().parents[2]
    generate_sample_company(tmp_path, reps=60, deals=2000, seed=11)
    project = load_paths([root / "plans"])
    with open_data(tmp_path) as company:
        duck = run_plans(project.files, company.connection)
        postgres = run_plans(project.files, company.connection, engine="postgres", url=url)
    columns = ["plan", "rep_id", "period", "amount", "allocated", "share", "unrounded", "derivation"]
    assert duck.quotas[columns].equals(postgres.quotas[columns])
    assert len(duck.quotas) > 0
    assert duck.territory_report.to_frame().equals(postgres.territory_report.to_frame())


@pytest.mark.parametrize("value, ok, shown", [
    (Decimal("2.5"), True, "max_min_ratio 2.5 (limit 3)"),
    (Decimal("4"), False, "max_min_ratio 4 (limit 3) EXCEEDED"),
    (None, False, "max_min_ratio unbounded (a territory's potential is 0) (limit 3) EXCEEDED"),  # not "n/a"
    (None, True, "max_min_ratio n/a (limit 3)"),  # every potential 0: nothing to compare
])
def test_the_summary_says_why_a_ratio_has_no_value(value, ok, shown):
    checks = pd.DataFrame([
        dict(plan="T", version=1, check="coverage", value=0, limit=None, ok=True, detail=None),
        dict(plan="T", version=1, check="overlaps", value=0, limit=None, ok=True, detail=None),
        dict(plan="T", version=1, check="max_min_ratio", value=value, limit=Decimal(3), ok=ok, detail=None),
    ], dtype=object)  # as the run builds it: figures stay Decimals
    report = TerritoryReport(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), checks)
    assert report.summary() == f"territories: T v1: 0 gap(s), 0 overlap(s), {shown}"


@pytest.mark.postgres
def test_remainders_go_to_reps_in_code_point_order_whatever_the_databases_collation(tmp_path):
    """Equal shares of 1,000.01 among three reps: cumulative rounding gives the middle rep in rep id order a cent
    less. By code point 'r2' comes after 'R3'; a PostgreSQL database with a linguistic collation (en-US, a common
    default) put it between 'R1' and 'R3', and the cent moved to another rep there (audit). Ids compare by code
    point on every engine."""
    import psycopg

    url = engine_url("postgres")
    database = f"revplan_icu_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as admin:
        try:
            admin.execute(f"CREATE DATABASE {database} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                          "LOCALE 'C.UTF-8'")
        except psycopg.Error as error:  # a server built without ICU
            pytest.skip(f"no ICU collation on this server: {error}")
    try:
        files = load(tmp_path, 'quota plan "P" version 1\n' + HEADER + "  period quarter\n  target 1000.01 USD\n"
                     "  allocate by equal\n")
        connection = data(reps=[rep("R1"), rep("r2"), rep("R3")])
        icu_url = psycopg.conninfo.make_conninfo(url, dbname=database)
        on_icu = annual(run_plans(files, connection, engine="postgres", url=icu_url).quotas)
        assert on_icu == annual(run_plans(files, connection).quotas)
        assert on_icu == {"R1": Decimal("333.34"), "R3": Decimal("333.33"), "r2": Decimal("333.34")}
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database}")
