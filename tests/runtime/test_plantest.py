"""The plan-test harness: given rows -> typed tables, expectations -> exact comparisons.

A fake calculator (a fixed DataFrame, or a few lines of SQL on the test's
connection) stands in for the real ones, so these tests pin the harness
alone.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from dsl import ir
from dsl.diagnostics import Diagnostic, RevplanError
from dsl.parse import parse
from dsl.resolve import resolve
from dsl.schema import SCHEMA
from runtime.plantest import (
    PlanTestError,
    TestResult,
    build_tables,
    compare,
    connection_for,
    plan_files_for,
    run_plan_tests,
)
from runtime.run import run_plans

HEADER = """revplan 1
comp plan "P" version 2
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  component "Commission" on bookings
    rate 10%
"""


def load(text: str, path: str = "p.plan") -> ir.PlanFile:
    resolved = resolve(parse(text, path))
    assert not resolved.diagnostics, resolved.diagnostics
    return resolved.plan_file


def plan_with_test(rows: str, path: str = "p.plan") -> tuple[ir.PlanBase, ir.PlanTest]:
    text = HEADER + '  test "t"\n' + "".join(f"    {line.strip()}\n" for line in rows.strip().splitlines())
    plan = load(text, path).plans[0]
    return plan, plan.tests[0]


def tables_for(rows: str) -> dict[str, pa.Table]:
    plan, test = plan_with_test(rows + '\nexpect payout rep "A", amount 0.00 USD')
    return build_tables(test, plan)


def expectations(rows: str, path: str = "p.plan") -> tuple[ir.Expectation, ...]:
    _, test = plan_with_test('given rep id "A"\n' + rows, path)
    return test.expect


def lines(*rows: dict) -> pd.DataFrame:
    defaults = {
        "rep_id": "A",
        "period": "2027-Q1",
        "plan": "P",
        "version": 2,
        "component": "Commission",
        "line_type": "commission",
        "base": None,
        "rate": None,
        "attainment": None,
        "quota": None,
        "target_incentive": None,
        "proration": None,
        "uncapped": None,
        "amount": Decimal("0.00"),
        "currency": "USD",
        "capped": False,
        "gated": False,
        "deal_count": 0,
    }
    return pd.DataFrame([{**defaults, **row} for row in rows], columns=list(defaults))


# ---------------------------------------------------------------- build_tables


def test_rep_defaults_and_types():
    tables = tables_for('given rep id "A", target_incentive 80,000 USD')
    assert set(tables) == {"reps"}
    reps = tables["reps"]
    assert reps.schema.field("target_incentive").type == pa.decimal128(18, 2)
    assert reps.schema.field("hire_date").type == pa.date32()
    assert reps.column_names == list(SCHEMA.entity("rep").field_names)
    assert reps.to_pylist() == [
        {
            "id": "A",
            "name": "A",
            "manager_id": None,
            "role": "AE",
            "segment": None,
            "region": None,
            "currency": "USD",
            "hire_date": dt.date(2000, 1, 1),
            "termination_date": None,
            "target_incentive": Decimal("80000.00"),
        }
    ]


def test_rep_target_incentive_defaults_to_zero():
    (rep,) = tables_for('given rep id "A", role "SDR", hire_date 2027-02-15').pop("reps").to_pylist()
    assert rep["target_incentive"] == Decimal("0.00") and rep["role"] == "SDR"
    assert rep["hire_date"] == dt.date(2027, 2, 15)


def test_deal_defaults_and_currency_from_the_amount():
    tables = tables_for(
        """
        given rep id "A"
        given deal id "D1", owner_rep_id "A", amount 130,000 USD, close_date 2027-02-15
        given deal id "D2", owner_rep_id "A", amount 100,000 EUR, close_date 2027-01-20
        given fx_rate date 2027-01-01, from "EUR", to "USD", rate 1.1
        """
    )
    d1, d2 = tables["deals"].to_pylist()
    assert d1 == {
        "id": "D1",
        "owner_rep_id": "A",
        "account_id": None,
        "amount": Decimal("130000.00"),
        "currency": "USD",
        "stage": "closed_won",
        "product": None,
        "close_date": dt.date(2027, 2, 15),
        "cancel_date": None,
        "paid_date": None,
    }
    assert d2["currency"] == "EUR"


def test_percent_number_and_integer_columns():
    tables = tables_for(
        """
        given rep id "A"
        given rep id "B"
        given deal id "D1", owner_rep_id "A", amount 100 USD, close_date 2027-01-20
        given split deal_id "D1", rep_id "A", percent 60%
        given split deal_id "D1", rep_id "B", percent 40%
        given fx_rate date 2027-01-20, from "EUR", to "USD", rate 1.10
        given account id "acc-1", employees 5,000, potential 2,000,000 USD, state null
        """
    )
    assert tables["deal_splits"].schema.field("percent").type == pa.decimal128(9, 6)
    assert tables["deal_splits"].to_pylist()[0]["percent"] == Decimal("0.600000")
    assert tables["fx_rates"].schema.field("rate").type == pa.decimal128(28, 10)
    assert tables["fx_rates"].to_pylist()[0]["rate"] == Decimal("1.1000000000")
    account = tables["accounts"].to_pylist()[0]
    assert account["employees"] == 5000 and account["name"] == "acc-1" and account["state"] is None


def test_ids_are_generated_per_table():
    tables = tables_for(
        """
        given rep id "A"
        given activity rep_id "A", type "meeting", date 2027-01-05
        given activity rep_id "A", type "call", date 2027-01-06
        """
    )
    assert [r["id"] for r in tables["activities"].to_pylist()] == ["activity-1", "activity-2"]


def test_table_names_work_too():
    tables = tables_for(
        """
        given reps id "A"
        given deals id "D1", owner_rep_id "A", amount 100 USD, close_date 2027-01-20
        given deal_splits deal_id "D1", rep_id "A", percent 100%
        """
    )
    assert "deal_splits" in tables


@pytest.mark.parametrize(
    ("row", "message", "hint"),
    [
        ('given dael id "D1"', "unknown table 'dael'", "did you mean 'deal'?"),
        ('given rep id "A", rolle "AE"', "rep has no field 'rolle'", "did you mean 'role'?"),
        ('given rep id "A", target_incentive 80,000', "rep.target_incentive takes money", "5,000 USD"),
        ('given split deal_id "D1", rep_id "A", percent 0.6', "split.percent takes percent", "60%"),
        (
            'given deal id "D1", owner_rep_id "A", amount 1.005 USD, close_date 2027-01-01',
            "more than 2 decimal places",
            "cents",
        ),
        ('given deal id "D1", owner_rep_id "A", amount 1 USD', "lacks close_date", "close_date ..."),
        # too large for the column data loads it into (audit: a traceback from Arrow)
        (
            'given deal id "D1", owner_rep_id "A", amount 99,999,999,999,999,999 USD, close_date 2027-01-01',
            "deal.amount 99,999,999,999,999,999 is too large for the column",
            "16 digits before the point",
        ),
        ('given fx_rate date 2027-01-01, from "EUR", to "USD", rate 100,000,000,000,000,000,000', "too large", None),
        ('given account id "a", employees 99,999,999,999,999,999,999', "too large for the column", None),
        ('given quota rep_id "A", period "2027-Q1", amount 1 EUR', "plan currency (USD)", None),
        (
            'given deal owner_rep_id "A", amount 1 USD, currency "EUR", close_date 2027-01-01',
            "currency is EUR but its money is in USD",
            None,
        ),
        ('given account id "a", employees 1.5', "is a whole number", None),
        ('given rep id "A", id "B"', "given twice", None),
        (
            'given rep_assignment rep_id "A", start_date 2027-02-01, end_date 2027-01-31, role "SDR"',
            "ends before it starts",
            "on or after start_date",
        ),
        (
            'given rep_assignment rep_id "A", start_date 2027-01-01, role "SDR"\n'
            'given rep_assignment rep_id "A", start_date 2027-02-01, role "AE"',
            "rep 'A' has two assignments on 2027-02-01",
            "end the one on line",
        ),
        (
            'given rep_assignment rep_id "A", start_date 2027-03-01, role "AE"\n'
            'given rep_assignment rep_id "A", start_date 2027-01-01, end_date 2027-03-01, role "SDR"',
            "rep 'A' has two assignments on 2027-03-01",
            None,
        ),
        (
            'given rep id "A", manager_id "B"\ngiven rep id "B", manager_id "A"',
            "the manager hierarchy has a cycle: 'A' -> 'B' -> 'A'",
            "report to no one",
        ),
        (
            'given rep id "A", manager_id "B"\ngiven rep id "B"\n'
            'given rep_assignment rep_id "B", start_date 2027-03-01, role "Manager", manager_id "A"',
            "from 2027-03-01 the manager hierarchy has a cycle: 'B' -> 'A' -> 'B'",
            None,
        ),
    ],
)
def test_bad_given_rows_name_the_line(row, message, hint):
    plan, test = plan_with_test(row + '\nexpect payout rep "A", amount 0.00 USD', path="bad.plan")
    with pytest.raises(PlanTestError) as raised:
        build_tables(test, plan)
    assert message in raised.value.message
    assert raised.value.span is not None and raised.value.span.file == "bad.plan"
    assert str(raised.value).startswith("bad.plan:")
    if hint:
        assert hint in raised.value.hint


def test_assignments_that_follow_each_other_or_leave_a_gap_are_fine():
    plan, test = plan_with_test(
        'given rep id "A"\n'
        'given rep_assignment rep_id "A", start_date 2027-01-01, end_date 2027-01-31, role "SDR"\n'
        'given rep_assignment rep_id "A", start_date 2027-03-01, role "AE"\n'
        'given rep_assignment rep_id "A", start_date 2027-02-01, end_date 2027-02-10, role "AE"\n'
        'expect payout rep "A", amount 0.00 USD')
    assert build_tables(test, plan)["rep_assignments"].num_rows == 3


def test_duplicate_keys_are_an_error():
    plan, test = plan_with_test('given rep id "A"\ngiven rep id "A"\nexpect payout rep "A", amount 0.00 USD')
    with pytest.raises(PlanTestError, match="two rep rows have id 'A'"):
        build_tables(test, plan)


# ---------------------------------------------------------------- connection_for


def test_connection_has_every_contract_table_typed():
    connection = connection_for(tables_for('given rep id "A", target_incentive 80,000 USD'))
    for entity in SCHEMA.entities:
        columns = connection.execute(f'DESCRIBE "{entity.table}"').fetchall()
        assert [c[0] for c in columns] == list(entity.field_names), entity.table
    types = dict(connection.execute("SELECT column_name, column_type FROM (DESCRIBE reps)").fetchall())
    assert types["target_incentive"] == "DECIMAL(18,2)" and types["hire_date"] == "DATE"
    assert connection.execute("SELECT count(*) FROM deals").fetchone() == (0,)
    percent = "SELECT column_type FROM (DESCRIBE deal_splits) WHERE column_name = 'percent'"
    assert connection.execute(percent).fetchone() == ("DECIMAL(9,6)",)
    assert connection.execute("SELECT id, target_incentive FROM reps").fetchall() == [("A", Decimal("80000.00"))]


# ---------------------------------------------------------------- compare


def test_sum_of_matching_lines_passes_exactly():
    expect = expectations('expect payout rep "A", period "2027-Q1", amount 10,100.00 USD')
    frame = lines(
        {"amount": Decimal("10000.00")},
        {"amount": Decimal("100.00"), "component": "Kicker"},
        {"amount": Decimal("999.00"), "rep_id": "B"},
        {"amount": Decimal("999.00"), "period": "2027-Q2"},
    )
    assert compare(expect, frame) == []


def test_filters_by_component_line_type_plan_and_version():
    expect = expectations(
        """
        expect payout rep "A", component "Kicker", amount 100.00 USD
        expect payout rep "A", line_type "clawback", amount -5,000.00 USD
        expect payout rep "A", plan "P", version 2, amount 100.00 USD
        expect payout rep "A", plan "Other", amount 0.00 USD
        """
    )
    frame = lines(
        {"amount": Decimal("100.00"), "component": "Kicker"},
        {"amount": Decimal("-5000.00"), "line_type": "clawback"},
        {"amount": Decimal("5000.00")},
    )
    assert compare(expect, frame) == []


def test_a_wrong_sum_renders_expected_and_actual_with_file_line_and_column():
    expect = expectations('expect payout rep "A", period "2027-Q1", amount 10,100.00 USD', path="plans/w1.plan")
    (mismatch,) = compare(expect, lines({"amount": Decimal("10099.99")}))
    text = str(mismatch)
    assert text.splitlines()[0] == 'plans/w1.plan:11:5: expect payout rep "A", period "2027-Q1", amount 10,100.00 USD'
    assert "amount | 10,100.00 USD | 10,099.99 USD" in text
    assert "selected rows (1):" in text and "Commission" in text


def test_no_matching_line_sums_to_zero():
    expect = expectations(
        """
        expect payout rep "A", period "2027-Q2", amount 0.00 USD
        expect payout rep "A", period "2027-Q2", amount 1.00 USD
        """
    )
    (mismatch,) = compare(expect, lines({"amount": Decimal("5.00")}))
    assert mismatch.expectation == expect[1]
    assert "no result row matches" in str(mismatch)


def test_flags_any_line():
    expect = expectations(
        """
        expect payout rep "A", capped true, gated false
        expect payout rep "B", gated true
        """
    )
    frame = lines({"capped": True}, {"capped": False}, {"rep_id": "B", "gated": False})
    (mismatch,) = compare(expect, frame)
    assert mismatch.expectation == expect[1]
    assert [(d.field, d.expected, d.actual) for d in mismatch.differences] == [("gated", "true", "false")]


def test_attainment_is_the_one_shared_value():
    expect = expectations(
        """
        expect attainment rep "A", period "2027-Q1", value 130%
        expect attainment rep "B", period "2027-Q1", value 60%
        expect attainment rep "C", period "2027-Q1", value 10%
        """
    )
    frame = lines(
        {"attainment": Decimal("1.300000")},
        {"attainment": Decimal("1.3"), "component": "Kicker"},
        {"rep_id": "B", "attainment": Decimal("0.6")},
        {"rep_id": "B", "attainment": Decimal("0.7"), "component": "Kicker"},
    )
    first, second = compare(expect, frame)
    assert first.expectation == expect[1]
    assert first.differences[0].actual == "different values: 0.6, 0.7"
    assert second.expectation == expect[2] and second.differences[0].actual == "(no row)"


def test_payout_value_columns_and_sums():
    expect = expectations(
        'expect payout rep "A", amount 9,000.00 USD, quota 45,000.00 USD, target_incentive 9,000.00 USD, '
        "uncapped 9,000.00 USD, base 45,000.00 USD, deal_count 1, proration 50%"
    )
    frame = lines(
        {
            "amount": Decimal("9000.00"),
            "quota": Decimal("45000.00"),
            "target_incentive": Decimal("9000.00"),
            "uncapped": Decimal("9000.00"),
            "base": Decimal("45000.00"),
            "deal_count": 1,
            "proration": Decimal("0.500000"),
        }
    )
    assert compare(expect, frame) == []


def test_float_money_is_reported_not_compared():
    expect = expectations('expect payout rep "A", amount 0.30 USD')
    (mismatch,) = compare(expect, lines({"amount": 0.1}, {"amount": 0.2}))
    assert "is a float" in mismatch.differences[0].actual


def test_currency_of_the_lines_must_match():
    expect = expectations('expect payout rep "A", amount 5.00 USD')
    (mismatch,) = compare(expect, lines({"amount": Decimal("5.00"), "currency": "EUR"}))
    assert [(d.field, d.expected, d.actual) for d in mismatch.differences] == [("amount currency", "USD", "EUR")]


def test_negative_expected_amounts():
    expect = expectations('expect payout rep "A", amount -5,000.00 USD')
    assert compare(expect, lines({"amount": Decimal("-5000.00")})) == []


def test_quotas_and_territories():
    expect = expectations(
        """
        expect quota rep "A", period "2027-Q1", amount 110,000 USD
        expect territory account "acc-1", territory "Strategic"
        expect territory account "acc-6", territory null
        expect territory account "acc-4", date 2027-08-01, territory "Strategic", owner "R2"
        expect territory account "acc-4", date 2027-03-01, territory "US-Ent"
        """
    )
    quotas = pd.DataFrame(
        {"rep_id": ["A", "A"], "period": ["2027-Q1", "2027"], "amount": [Decimal("110000.00"), Decimal("550000.00")]}
    )
    territories = pd.DataFrame(
        {
            "account_id": ["acc-1", "acc-6", "acc-4", "acc-4"],
            "territory": ["Strategic", None, "US-Ent", "Strategic"],
            "owner_rep_id": ["R1", None, "R3", "R2"],
            "start": [None, None, None, dt.date(2027, 7, 1)],
            "end": [None, None, dt.date(2027, 6, 30), None],
        }
    )
    assert compare(expect, lines(), quotas=quotas, territories=territories) == []


def test_null_matches_a_missing_row_or_an_empty_value():
    expect = expectations(
        """
        expect quota rep "B", period "2027", amount null
        expect quota rep "A", period "2027-Q1", amount null
        expect territory account "acc-9", territory null
        """
    )
    quotas = pd.DataFrame({"rep_id": ["A"], "period": ["2027-Q1"], "amount": [Decimal("1.00")]})
    territories = pd.DataFrame({"account_id": ["acc-1"], "territory": ["Strategic"], "owner_rep_id": ["R1"]})
    (mismatch,) = compare(expect, lines(), quotas=quotas, territories=territories)
    assert mismatch.expectation == expect[1] and mismatch.differences[0].actual == "1.00"


def test_expecting_results_the_calculator_does_not_produce():
    expect = expectations('expect quota rep "A", period "2027-Q1", amount 1 USD')
    with pytest.raises(PlanTestError, match="produced no quotas"):
        compare(expect, lines())


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('expect payuot rep "A", amount 1 USD', "unknown expectation 'payuot'"),
        ('expect payout rep "A", amout 1 USD', "expect payout has no field 'amout'"),
        ('expect payout rep "A", period "2027-Q1"', "compares nothing"),
        ('expect attainment rep "A", amount 1 USD', "expect attainment has no field 'amount'"),
    ],
)
def test_malformed_expectations(row, message):
    with pytest.raises(PlanTestError, match=message):
        compare(expectations(row), lines())


# ---------------------------------------------------------------- run_plan_tests

SUITE = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Flat" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  component "Commission" on bookings
    rate 10%

  test "passes"
    given rep id "A"
    given deal id "D1", owner_rep_id "A", amount 1,000 USD, close_date 2027-02-01
    expect payout rep "A", period "2027-Q1", amount 100.00 USD

  test "fails"
    given rep id "A"
    given deal id "D1", owner_rep_id "A", amount 1,000 USD, close_date 2027-02-01
    expect payout rep "A", period "2027-Q1", amount 99.99 USD

  test "bad row"
    given rep id "A", rolle "AE"
    expect payout rep "A", period "2027-Q1", amount 0.00 USD

  test "quota"
    given rep id "A"
    expect quota rep "A", period "2027-Q1", amount 1 USD

comp plan "Other" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  applies to reps where rep.role = "SE"
  credit overlay
  component "Overlay" on bookings
    rate 1%

territory plan "Territories" version 1
  effective 2027-01-01 to 2027-12-31
  period year
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  territory "All"
    owner "A"
  assign accounts where account.country is not null to "All" priority 1
"""


def sql_calculator(plan_files, connection) -> pd.DataFrame:
    """A stand-in calculator: 10 % of each rep's closed-won bookings per quarter, from the test's tables."""
    rows = connection.execute(
        """
        SELECT owner_rep_id AS rep_id,
               year(close_date) || '-Q' || quarter(close_date) AS period,
               round(sum(amount) * 0.10, 2) AS amount
        FROM deals WHERE stage = 'closed_won' GROUP BY ALL
        """
    ).fetchdf()
    rows["amount"] = [Decimal(str(v)).quantize(Decimal("0.01")) for v in rows["amount"]]
    rows["currency"] = "USD"
    return rows


def test_run_plan_tests_reports_each_test():
    suite = load(SUITE, "suite.plan")
    results = run_plan_tests([suite], sql_calculator)
    assert [(r.plan, r.name, r.status) for r in results] == [
        ('comp plan "Flat" version 1', "passes", "passed"),
        ('comp plan "Flat" version 1', "fails", "failed"),
        ('comp plan "Flat" version 1', "bad row", "error"),
        ('comp plan "Flat" version 1', "quota", "skipped"),
    ]
    failed = results[1]
    assert "amount | 99.99 USD | 100.00 USD" in str(failed)
    assert str(failed).startswith('FAILED suite.plan:18: comp plan "Flat" version 1: test "fails"')
    assert "rep has no field 'rolle'" in results[2].message
    assert "computes no quotas" in results[3].message


def test_calculator_receives_only_the_tested_plan_and_its_inputs():
    suite = load(SUITE, "suite.plan")
    seen = []

    def calculator(plan_files, connection):
        seen.append([[p.name for p in f.plans] for f in plan_files])
        seen.append([m.name for f in plan_files for m in f.measures])
        return lines()

    run_plan_tests([suite], calculator, select=lambda plan, test: test.name == "passes")
    assert seen == [[["Flat"]], ["bookings"]]

    flat, other, territories = suite.plans
    assert [p.name for f in plan_files_for(other, [suite]) for p in f.plans] == ["Other", "Territories"]
    assert [p.name for f in plan_files_for(territories, [suite]) for p in f.plans] == ["Territories"]


def test_a_failing_calculator_is_an_error_result():
    def broken(plan_files, connection):
        raise ZeroDivisionError("boom")

    (result,) = run_plan_tests([load(SUITE)], broken, select=lambda plan, test: test.name == "passes")
    assert result.status == "error" and "ZeroDivisionError: boom" in result.message


def test_a_plan_the_calculator_refuses_is_an_error_result_with_its_diagnostic():
    def refusing(plan_files, connection):
        raise RevplanError([Diagnostic(code="RP401", message="aggregates over split rows are not supported")])

    (result,) = run_plan_tests([load(SUITE)], refusing, select=lambda plan, test: test.name == "passes")
    assert (result.status, result.message) == ("error", "aggregates over split rows are not supported")


def test_result_objects_with_payout_lines_are_accepted():
    class Result:
        payout_lines = lines({"amount": Decimal("100.00")})
        quotas = pd.DataFrame({"rep_id": ["A"], "period": ["2027-Q1"], "amount": [Decimal("1.00")]})

    results = run_plan_tests(
        [load(SUITE)], lambda files, connection: Result(), select=lambda plan, test: test.name in ("passes", "quota")
    )
    assert [r.status for r in results] == ["passed", "passed"]


def test_paths_with_plan_errors_give_one_error_result(tmp_path):
    bad = tmp_path / "bad.plan"
    bad.write_text('revplan 1\ncomp plan "X" version 1\n  period quartr\n', encoding="utf-8")
    (result,) = run_plan_tests([bad], sql_calculator)
    assert result.status == "error" and "bad.plan:3" in result.message


def test_paths_are_loaded(tmp_path):
    path = tmp_path / "suite.plan"
    # Without the "bad row" test: loading from paths runs `revplan check`, which rejects its unknown field (RP221).
    path.write_text(SUITE.split('\n  test "bad row"')[0] + "\n", encoding="utf-8")
    results = run_plan_tests([path], sql_calculator, select=lambda plan, test: test.name == "passes")
    assert [r.status for r in results] == ["passed"], [str(r) for r in results]


# ---------------------------------------------------------------- expectations that could select nothing

NAMED = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Monthly" version 1
  effective 2027-01-01 to 2027-12-31
  period month
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  applies to reps where rep.role = "AE"
  CLAWBACK
  component "Commission" on bookings
    rate 1%

  test "t"
    given rep id "F"
    given rep id "S", role "SE"
    EXPECT
"""


def one_line_calculator(plan_files, connection) -> pd.DataFrame:
    """January pays F 1.00 of commission; S (an SE) is outside the plan and has no line."""
    return lines({"rep_id": "F", "period": "2027-01", "plan": "Monthly", "version": 1, "amount": Decimal("1.00")})


def run_named(expect: str, clawback: str = "") -> TestResult:
    text = NAMED.replace("CLAWBACK", clawback).replace("EXPECT", expect)
    (result,) = run_plan_tests([load(text, "named.plan")], one_line_calculator)
    return result


@pytest.mark.parametrize(
    ("expect", "message", "hint"),
    [
        (
            'expect payout rep "F", period "2027-01", component "Comission", amount 0.00 USD',
            'comp plan "Monthly" version 1 has no component "Comission"',
            "did you mean 'Commission'? components: Commission",
        ),
        (
            'expect payout rep "F", period "2027-01", line_type "comission", amount 0.00 USD',
            'no line_type "comission"',
            "did you mean 'commission'? line types: commission, bonus, spiff, mbo, clawback, draw, draw_recovery",
        ),
        (
            'expect payout rep "G", period "2027-01", amount 0.00 USD',
            'the test gives no rep "G"',
            "reps: F, S",
        ),
        (
            'expect payout rep "F", period "2027-Q1", amount 0.00 USD',
            'comp plan "Monthly" version 1 has no lines in period "2027-Q1"',
            "its periods are months: 2027-01 to 2027-12",
        ),
        (
            'expect payout rep "F", period "2028-01", amount 0.00 USD',
            'has no lines in period "2028-01"',
            "2027-01 to 2027-12",
        ),
        (
            'expect attainment rep "G", period "2027-01", value null',
            'the test gives no rep "G"',
            None,
        ),
        (
            'expect quota rep "G", period "2027-01", amount null',
            'the test gives no rep "G"',
            None,
        ),
        # a plan or version that does not run in the test selects nothing either (audit: 0.00 passed)
        ('expect payout rep "F", period "2027-01", plan "Montly", amount 0.00 USD',
         'no plan "Montly" runs in this test', "did you mean 'Monthly'? plans: Monthly"),
        ('expect payout rep "F", period "2027-01", version 2, amount 0.00 USD',
         "no version 2 of the plans runs in this test", "versions: 1"),
        ('expect payout rep "F", period "2027-01", version "7", amount 0.00 USD', "no version 7", None),
        ('expect attainment rep "F", period "2027-01", plan "Typo", value null', 'no plan "Typo"', None),
    ],
)
def test_an_expectation_naming_what_the_test_or_plan_lacks_is_an_error(expect, message, hint):
    result = run_named(expect)
    assert result.status == "error", str(result)
    assert message in result.message
    assert result.message.startswith("named.plan:18:")  # the expect line, at the name it does not know
    if hint:
        assert hint in result.message


def test_run_off_periods_are_periods_of_a_plan_with_a_clawback():
    clawback = "clawback cancelled deals within 90 days"
    assert run_named('expect payout rep "F", period "2029-12", amount 0.00 USD', clawback).status == "passed"
    result = run_named('expect payout rep "F", period "2030-01", amount 0.00 USD', clawback)
    assert result.status == "error"
    assert "2027-01 to 2027-12, then 2028-01 to 2029-12 (its run-off)" in result.message


@pytest.mark.parametrize(
    "expect",
    [
        'expect payout rep "F", period "2027-01", component "Commission", amount 1.00 USD',
        'expect payout rep "F", line_type "commission", amount 1.00 USD',
        'expect payout rep "F", period "2027-02", amount 0.00 USD',  # a period of the plan without a line
        'expect payout rep "F", period "2027-01", line_type "clawback", amount 0.00 USD',
        'expect payout rep "S", period "2027-01", amount 0.00 USD',  # a rep outside `applies to`: not paid
        'expect attainment rep "S", period "2027-01", value null',
    ],
)
def test_zero_for_a_rep_period_or_component_that_exists_passes_without_a_line(expect):
    result = run_named(expect)
    assert result.status == "passed", str(result)


# ---------------------------------------------------------------- the data contract on given rows


@pytest.mark.parametrize(
    ("rows", "bad_line", "message", "hint"),
    [
        (
            'given rep id "B"\n'
            'given deal id "D1", owner_rep_id "A", amount 100 USD, close_date 2027-01-01\n'
            'given split deal_id "D1", rep_id "A", percent 70%\n'
            'given split deal_id "D1", rep_id "B", percent 70%',
            4,
            "RD011: the splits of deal 'D1' sum to 1.4 (140 %)",
            "must add up to 1",
        ),
        (
            'given rep id "F "\ngiven deal id "D1", owner_rep_id "F ", amount 100 USD, close_date 2027-01-01',
            2,
            "RD032: id 'F ' has a blank at its end",
            "remove the blanks",
        ),
        ('given deal id "D1", owner_rep_id "B", amount 100 USD, close_date 2027-01-01', 2,
         "RD012: rep 'B' is not in reps", "the test's reps"),
        ('given split deal_id "D9", rep_id "A", percent 100%', 2, "RD013: deal 'D9' is not in deals", None),
        ('given split deal_id "D1", rep_id "A", percent 150%\n'
         'given deal id "D1", owner_rep_id "A", amount 100 USD, close_date 2027-01-01', 2,
         "RD036: split percent 1.5 (150 %) is outside 0 % to 100 %", None),
        ('given deal id "D1", owner_rep_id "A", amount 100 EUR, close_date 2027-01-01', 2,
         "RD015: currency 'EUR' has no fx rate to or from USD", "add fx_rates rows"),
        ('given rep id "B", hire_date 2027-03-01, termination_date 2027-02-01', 2,
         "RD018: termination_date 2027-02-01 is before hire_date 2027-03-01", None),
    ],
)
def test_given_rows_the_data_contract_refuses_are_an_error_at_their_line(rows, bad_line, message, hint):
    plan, test = plan_with_test('given rep id "A"\n' + rows + '\nexpect payout rep "A", amount 0.00 USD', "bad.plan")
    with pytest.raises(PlanTestError) as raised:
        build_tables(test, plan)
    assert message in raised.value.message
    assert raised.value.span == test.given[bad_line - 1].span
    assert str(raised.value).startswith(f"bad.plan:{raised.value.span.line}:5: ")
    if hint:
        assert hint in raised.value.hint


def test_given_rows_the_data_contract_accepts_build():
    plan, test = plan_with_test(
        """
        given rep id "A", target_incentive 10,000 USD
        given rep id "B", currency "EUR"
        given deal id "D1", owner_rep_id "A", amount 100 EUR, close_date 2027-01-10, cancel_date 2027-01-01
        given split deal_id "D1", rep_id "A", percent 60%
        given split deal_id "D1", rep_id "B", percent 40%
        given fx_rate date 2027-01-01, from "EUR", to "USD", rate 1.1
        expect payout rep "A", amount 0.00 USD
        """
    )
    assert build_tables(test, plan)["deal_splits"].num_rows == 2  # a cancel before the close is only a warning


def test_a_test_with_rows_the_contract_refuses_is_an_error_result_not_a_pass():
    suite = load(
        HEADER.replace("    rate 10%", "    rate 10%\n  credit splits")
        + """  test "splits of 140 %"
    given rep id "F"
    given rep id "G"
    given deal id "D1", owner_rep_id "F", amount 100 USD, close_date 2027-01-01
    given split deal_id "D1", rep_id "F", percent 70%
    given split deal_id "D1", rep_id "G", percent 70%
    expect payout rep "F", period "2027-Q1", amount 7.00 USD
""",
        "splits.plan",
    )
    (result,) = run_plan_tests([suite], lambda files, connection: lines({"rep_id": "F", "amount": Decimal("7.00")}))
    assert result.status == "error"
    assert result.message.startswith("splits.plan:14:5: RD011: the splits of deal 'D1' sum to 1.4 (140 %)")


QUOTA_AND_TERRITORY = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Flat" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  component "Commission" on bookings
    rate 10%

  test "t"
    given rep id "A"
    given deal id "D1", owner_rep_id "A", amount 1,000 USD, close_date 2027-02-01
    given account id "acc-1", name "Acme", country "US"
    EXPECT_COMP

quota plan "Q" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  target 100,000 USD
  allocate by equal

  test "t"
    given rep id "A"
    EXPECT_QUOTA

territory plan "T" version 1
  effective 2027-01-01 to 2027-12-31
  period year
  currency USD
  owners sales "@s" finance "@f"
  territory "East"
    owner "A"
  assign accounts where account.country = "US" to "East" priority 1

  test "t"
    given rep id "A"
    given account id "acc-1", name "Acme", country "US"
    EXPECT_TERRITORY
"""


def run_runtime_test(plan: str, expect: str) -> TestResult:
    text = QUOTA_AND_TERRITORY
    for which in ("COMP", "QUOTA", "TERRITORY"):
        text = text.replace(f"EXPECT_{which}", expect if which.lower() == plan else {
            "COMP": 'expect payout rep "A", period "2027-Q1", amount 100.00 USD',
            "QUOTA": 'expect quota rep "A", period "2027-Q1", amount 25,000.00 USD',
            "TERRITORY": 'expect territory account "acc-1", territory "East"'}[which])
    name = {"comp": "Flat", "quota": "Q", "territory": "T"}[plan]
    (result,) = run_plan_tests([load(text, "qt.plan")], lambda files, connection: run_plans(files, connection),
                               select=lambda p, test: p.name == name)
    return result


@pytest.mark.parametrize(("plan", "expect", "status", "message"), [
    ("comp", 'expect payout rep "A", period "2027-Q1", amount 100.00 USD', "passed", ""),
    ("quota", 'expect quota rep "A", period "2027-Q1", amount 25,000.00 USD', "passed", ""),
    ("territory", 'expect territory account "acc-1", territory "East"', "passed", ""),
    # names no row of theirs can hold (audit: each passed, whatever the plans computed)
    ("quota", 'expect payout rep "A", amount 0.00 USD', "error", "a quota plan makes no payout lines"),
    ("territory", 'expect payout rep "A", amount 0.00 USD', "error", "a territory plan makes no payout lines"),
    ("quota", 'expect quota rep "A", period "2027-Q7", amount null', "error",
     'the quota plans give no quota for period "2027-Q7"'),
    ("quota", 'expect quota rep "A", period "2027-Q1", plan "QQ", amount null', "error", 'no plan "QQ" runs'),
    ("territory", 'expect territory account "acc-7", territory null', "error", 'the test gives no account "acc-7"'),
    # a comp plan's test computes no quotas or territories: an error, and never one that hides a wrong payout
    ("comp", 'expect quota rep "A", period "2027-Q1", amount 1 USD', "error", "no quotas are computed in this test"),
    ("comp", 'expect territory account "acc-1", territory "East"', "error", "no territories are computed"),
    ("comp", 'expect payout rep "A", period "2027-Q1", amount 99.00 USD\n'
             '    expect quota rep "A", period "2027-Q1", amount 1 USD', "failed", ""),
])
def test_quota_and_territory_expectations_select_what_their_test_computes(plan, expect, status, message):
    result = run_runtime_test(plan, expect)
    assert result.status == status, str(result)
    assert message in result.message
