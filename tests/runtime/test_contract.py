"""The data contract: one bad input per check, and the exact diagnostic it gives.

Each case starts from a small valid company in CSV (`GOOD`), changes one
thing, and lists the diagnostics expected as (code, file, row, column).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.diagnostics import RevplanError, Severity
from dsl.project import load_texts
from dsl.schema import SCHEMA, FieldType
from revplan.cli import main
from runtime.contract import (
    MAX_ROWS,
    check_data,
    check_mbo_coverage,
    check_near_miss_values,
    check_plan_inputs,
    check_plan_references,
    check_plans_reach_reps,
    check_quota_bases,
    check_quota_coverage,
    check_quota_plan_reps,
    check_run_off,
    check_split_periods,
    open_checked,
    part_periods,
    quota_labels,
)
from runtime.csv_shape import odd_line
from runtime.data import open_data
from runtime.run import comp_plans, run_plans

GOOD: dict[str, list[dict[str, str]]] = {
    "reps": [
        dict(id="R1", name="Ada", manager_id="", role="Manager", segment="", region="NA", currency="USD",
             hire_date="2020-01-01", termination_date="", target_incentive="100000.00"),
        dict(id="R2", name="Ben", manager_id="R1", role="AE", segment="Enterprise", region="NA", currency="USD",
             hire_date="2021-01-01", termination_date="", target_incentive="80000.00"),
        dict(id="R3", name="Chloe", manager_id="R1", role="AE", segment="Commercial", region="EMEA",
             currency="EUR", hire_date="2021-06-01", termination_date="", target_incentive="60000.00"),
    ],
    "deals": [
        dict(id="D1", owner_rep_id="R2", account_id="A1", amount="1000.00", currency="USD", stage="closed_won",
             product="new_logo", close_date="2027-01-15", cancel_date="", paid_date="2027-02-01"),
        dict(id="D2", owner_rep_id="R3", account_id="A2", amount="2500.50", currency="EUR", stage="closed_won",
             product="expansion", close_date="2027-02-20", cancel_date="", paid_date=""),
        dict(id="D3", owner_rep_id="R2", account_id="A1", amount="300.00", currency="USD", stage="open",
             product="renewal", close_date="2027-03-01", cancel_date="", paid_date=""),
    ],
    "deal_splits": [
        dict(deal_id="D1", rep_id="R2", percent="0.6"),
        dict(deal_id="D1", rep_id="R3", percent="0.4"),
    ],
    "accounts": [
        dict(id="A1", name="Acme", country="US", state="CA", industry="Software", employees="100",
             potential="50000.00"),
        dict(id="A2", name="Bravo", country="DE", state="", industry="Retail", employees="20", potential="10000.00"),
    ],
    "quotas": [dict(rep_id="R2", period="2027-Q1", amount="100000.00")],
    # R3 moves from Commercial to Enterprise on 2027-02-15
    "rep_assignments": [
        dict(rep_id="R3", start_date="2021-06-01", end_date="2027-02-14", role="AE", segment="Commercial",
             region="EMEA", target_incentive="", manager_id=""),
        dict(rep_id="R3", start_date="2027-02-15", end_date="", role="AE", segment="Enterprise", region="EMEA",
             target_incentive="70000.00", manager_id="R1"),
    ],
    "fx_rates": [
        dict(date="2027-01-01", **{"from": "EUR", "to": "USD"}, rate="1.08"),
        dict(date="2027-01-01", **{"from": "USD", "to": "EUR"}, rate="0.925926"),
    ],
}


def write_company(folder: Path, tables: dict[str, list[dict[str, str]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        columns = list(rows[0]) if rows else list(SCHEMA.entity(table).field_names)
        with open(folder / f"{table}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return folder


def found(folder: Path, base_currency: str = "USD") -> list[tuple[str, str | None, int | None, str | None]]:
    with open_data(folder) as data:
        return [summary(d) for d in check_data(data, base_currency)]


def summary(d) -> tuple[str, str | None, int | None, str | None]:
    if d.data is None:
        return (d.code, Path(d.file).name if d.file else None, None, None)
    return (d.code, Path(d.data.file).name, d.data.row, d.data.column)


def edit(table: str, row: int, **cells: str):
    """A change: set cells of a 1-based data row."""
    def apply(tables):
        tables[table][row - 1].update(cells)
    return apply


def add(table: str, **cells: str):
    def apply(tables):
        tables[table].append({**tables[table][0], **cells})
    return apply


def scores(score: str):
    """A change: one MBO score row, for R2 in 2027-Q1."""
    def apply(tables):
        tables["mbo_scores"] = [dict(rep_id="R2", period="2027-Q1", score=score)]
    return apply


def drop_column(table: str, column: str):
    def apply(tables):
        for row in tables[table]:
            del row[column]
    return apply


def rename_column(table: str, column: str, to: str):
    def apply(tables):
        tables[table] = [{(to if name == column else name): value for name, value in row.items()}
                         for row in tables[table]]
    return apply


def drop_table(table: str):
    def apply(tables):
        del tables[table]
    return apply


def test_the_good_company_keeps_the_contract(tmp_path):
    assert found(write_company(tmp_path, GOOD)) == []


# (case, change, expected diagnostics)
CASES = [
    ("missing required table", drop_table("deals"),
     [("RD002", "deals.csv", None, None)]),
    ("missing optional table", drop_table("quotas"), []),
    ("missing required column", drop_column("deals", "amount"),
     [("RD003", "deals.csv", None, "amount")]),
    ("missing optional column", drop_column("deals", "product"), []),
    ("bad date", edit("deals", 2, close_date="2027-02-30"),
     [("RD006", "deals.csv", 2, "close_date")]),
    # DuckDB read these as the year 27, as 2027-02-20 whatever the time and zone, as 2027 BC.
    ("a two-digit year", edit("deals", 2, close_date="27-02-20"), [("RD006", "deals.csv", 2, "close_date")]),
    ("a date with a time", edit("deals", 2, close_date="2027-02-20T23:30:00-08:00"),
     [("RD006", "deals.csv", 2, "close_date")]),
    ("a date before Christ", edit("deals", 2, close_date="2027-02-20 (BC)"), [("RD006", "deals.csv", 2, "close_date")]),
    ("a date with slashes", edit("deals", 2, close_date="2027/02/20"), []),
    ("a date at midnight, as spreadsheets export dates", edit("deals", 2, close_date="2027-02-20 00:00:00"), []),
    ("an optional column spelt another way", rename_column("deals", "cancel_date", "Cancel Date"),
     [("RD003", "deals.csv", None, "cancel_date")]),
    ("date in another format", edit("reps", 3, hire_date="06/01/2021"),
     [("RD006", "reps.csv", 3, "hire_date")]),
    ("a date of infinity, which DuckDB reads as 9999-12-31", edit("deals", 2, close_date="infinity"),
     [("RD006", "deals.csv", 2, "close_date")]),
    ("a date of minus infinity", edit("reps", 3, termination_date="-infinity"),
     [("RD006", "reps.csv", 3, "termination_date")]),
    ("amount with a thousands separator", edit("deals", 1, amount="1,000.00"),
     [("RD006", "deals.csv", 1, "amount")]),
    ("amount with an underscore, which DuckDB reads as a digit separator", edit("deals", 1, amount="1_000.00"),
     [("RD006", "deals.csv", 1, "amount")]),
    ("amount with a currency sign", edit("deals", 3, amount="$300"),
     [("RD006", "deals.csv", 3, "amount")]),
    ("amount in scientific notation, as a spreadsheet rounded it", edit("deals", 1, amount="1.23457E+5"),
     [("RD006", "deals.csv", 1, "amount")]),
    ("fx rate with 10 decimal places", edit("fx_rates", 1, rate="1.0812345678"), []),
    ("fx rate below 10 decimal places", edit("fx_rates", 1, rate="1.08123456789"),
     [("RD007", "fx_rates.csv", 1, "rate")]),
    ("fx rate in scientific notation", edit("fx_rates", 1, rate="9.2e-1"),
     [("RD006", "fx_rates.csv", 1, "rate")]),
    ("amount below a cent", edit("deals", 2, amount="2500.505"),
     [("RD007", "deals.csv", 2, "amount")]),
    ("percent written as 60%", edit("deal_splits", 1, percent="60%"),
     [("RD006", "deal_splits.csv", 1, "percent")]),
    ("integer that is not", edit("accounts", 2, employees="twenty"),
     [("RD006", "accounts.csv", 2, "employees")]),
    ("integer with decimals, which DuckDB would round", edit("accounts", 2, employees="999.5"),
     [("RD006", "accounts.csv", 2, "employees")]),
    ("period label no plan can have", edit("quotas", 1, period="2027Q1"),
     [("RD006", "quotas.csv", 1, "period")]),
    ("period label of a quarter 5", edit("quotas", 1, period="2027-Q5"),
     [("RD006", "quotas.csv", 1, "period")]),
    ("period label of a year no plan has (its end is past the last date)", edit("quotas", 1, period="9999-Q4"),
     [("RD006", "quotas.csv", 1, "period")]),
    ("every kind of period label is valid", lambda t: t["quotas"].extend(
        dict(rep_id="R3", period=p, amount="1.00") for p in ("2027", "2027-H2", "2027-Q4", "2027-12")), []),
    ("empty required value", edit("deals", 3, owner_rep_id=""),
     [("RD008", "deals.csv", 3, "owner_rep_id")]),
    ("blank required value", edit("deals", 3, stage="   "),
     [("RD008", "deals.csv", 3, "stage")]),
    ("duplicate id", edit("deals", 3, id="D1"),
     [("RD009", "deals.csv", 3, "id")]),
    ("duplicate composite key", add("deal_splits", deal_id="D1", rep_id="R2", percent="0"),
     [("RD009", "deal_splits.csv", 3, "deal_id")]),
    ("negative amount", edit("deals", 2, amount="-2500.50"),
     [("RD010", "deals.csv", 2, "amount")]),
    ("negative target incentive", edit("reps", 2, target_incentive="-1.00"),
     [("RD010", "reps.csv", 2, "target_incentive")]),
    ("a tab is a blank cell", edit("reps", 2, role="\t"), [("RD008", "reps.csv", 2, "role")]),
    ("a date in year 0, which is 1 BC", edit("deals", 2, close_date="0000-06-01"),
     [("RD006", "deals.csv", 2, "close_date")]),
    ("splits below 100 %", edit("deal_splits", 2, percent="0.3"),
     [("RD011", "deal_splits.csv", 1, "percent")]),
    # 0.6000005 + 0.3999995 = 1 as written; rounded to the 6 places percent keeps they would seem to sum to 1.000001.
    ("splits to 7 places that add up to 100 %: RD007 only", lambda t: (edit("deal_splits", 1, percent="0.6000005")(t),
                                                                     edit("deal_splits", 2, percent="0.3999995")(t)),
     [("RD007", "deal_splits.csv", 1, "percent"), ("RD007", "deal_splits.csv", 2, "percent")]),
    ("splits in whole percent", lambda t: (edit("deal_splits", 1, percent="60")(t),
                                           edit("deal_splits", 2, percent="40")(t)),
     [("RD036", "deal_splits.csv", 1, "percent"), ("RD036", "deal_splits.csv", 2, "percent"),
      ("RD011", "deal_splits.csv", 1, "percent")]),
    ("split shares that add up to 100 % but are not shares", lambda t: (edit("deal_splits", 1, percent="1.5")(t),
                                                                      edit("deal_splits", 2, percent="-0.5")(t)),
     [("RD036", "deal_splits.csv", 1, "percent"), ("RD036", "deal_splits.csv", 2, "percent")]),
    ("split rep not in the roster", edit("deal_splits", 2, rep_id="R9"),
     [("RD012", "deal_splits.csv", 2, "rep_id")]),
    ("deal owner not in the roster", edit("deals", 1, owner_rep_id="R7"),
     [("RD012", "deals.csv", 1, "owner_rep_id")]),
    ("manager not in the roster", edit("reps", 3, manager_id="R0"),
     [("RD012", "reps.csv", 3, "manager_id")]),
    ("quota of an unknown rep", edit("quotas", 1, rep_id="R5"),
     [("RD012", "quotas.csv", 1, "rep_id")]),
    ("split of an unknown deal", lambda t: (edit("deal_splits", 1, deal_id="D9")(t),
                                            edit("deal_splits", 2, deal_id="D9")(t)),
     [("RD013", "deal_splits.csv", 1, "deal_id"), ("RD013", "deal_splits.csv", 2, "deal_id")]),
    ("manager cycle", lambda t: (edit("reps", 1, manager_id="R3")(t), edit("reps", 3, manager_id="R2")(t),
                                 edit("reps", 2, manager_id="R1")(t)),
     # and from 2027-02-15 R3's assignment names R1, who reports to R3: a second cycle
     [("RD014", "reps.csv", 1, "manager_id"), ("RD014", "rep_assignments.csv", 2, "manager_id")]),
    ("rep who is their own manager", edit("reps", 2, manager_id="R2"),
     [("RD014", "reps.csv", 2, "manager_id")]),
    # R3's second assignment (from 2027-02-15) names R1, who reports to R3 in the reps table.
    ("manager cycle from an assignment's first day", lambda t: (edit("reps", 1, manager_id="R3")(t),
                                                                 edit("reps", 3, manager_id="")(t)),
     [("RD014", "rep_assignments.csv", 2, "manager_id")]),
    # R3 reports to R2 until 2027-02-14, and R2 to R3 from 2027-02-15: never both on one day.
    ("managers who swap on a day make no cycle", lambda t: (
        edit("rep_assignments", 1, manager_id="R2")(t),
        t["rep_assignments"].extend([
            {**t["rep_assignments"][0], "rep_id": "R2", "start_date": "2021-01-01", "end_date": "2027-02-14",
             "segment": "Enterprise", "manager_id": "R1"},
            {**t["rep_assignments"][0], "rep_id": "R2", "start_date": "2027-02-15", "end_date": "",
             "segment": "Enterprise", "manager_id": "R3"}])), []),
    ("deal currency without fx rates", edit("deals", 3, currency="JPY"),
     [("RD015", "deals.csv", 3, "currency")]),
    ("pay currency without fx rates", edit("reps", 3, currency="GBP"),
     [("RD015", "reps.csv", 3, "currency")]),
    ("no fx rates at all", drop_table("fx_rates"),
     [("RD015", "deals.csv", 2, "currency"), ("RD015", "reps.csv", 3, "currency")]),
    # Whether a deal needs a rate by then depends on the plans that count it (RD035, check_plan_rates).
    ("deal before the first rate", edit("deals", 2, close_date="2026-12-31"), []),
    ("an fx rate's currency in lower case", edit("fx_rates", 1, **{"from": "eur"}),
     [("RD040", "fx_rates.csv", 1, "from")]),
    ("an fx rate's currency with a blank", edit("fx_rates", 2, to="EUR "), [("RD040", "fx_rates.csv", 2, "to")]),
    ("zero fx rate", edit("fx_rates", 2, rate="0"),
     [("RD017", "fx_rates.csv", 2, "rate")]),
    ("termination before hire", edit("reps", 2, termination_date="2020-12-31"),
     [("RD018", "reps.csv", 2, "termination_date")]),
    ("assignment ends before it starts", edit("rep_assignments", 1, end_date="2021-05-31"),
     [("RD018", "rep_assignments.csv", 1, "end_date")]),
    ("assignment of an unknown rep", edit("rep_assignments", 2, rep_id="R9"),
     [("RD012", "rep_assignments.csv", 2, "rep_id")]),
    ("an assignment's unknown manager", edit("rep_assignments", 2, manager_id="R9"),
     [("RD012", "rep_assignments.csv", 2, "manager_id")]),
    ("an assignment's negative target incentive", edit("rep_assignments", 2, target_incentive="-5.00"),
     [("RD010", "rep_assignments.csv", 2, "target_incentive")]),
    ("assignments overlap by one day", edit("rep_assignments", 1, end_date="2027-02-15"),
     [("RD021", "rep_assignments.csv", 2, "start_date")]),
    ("an open assignment overlaps a later one", edit("rep_assignments", 1, end_date=""),
     [("RD021", "rep_assignments.csv", 2, "start_date")]),
    ("a later row that starts inside an earlier one", add("rep_assignments", start_date="2025-01-01",
                                                          end_date="2025-12-31"),
     [("RD021", "rep_assignments.csv", 3, "start_date")]),
    ("assignments of different reps may share days",
     add("rep_assignments", rep_id="R2", start_date="2027-01-01", end_date="", segment="Enterprise"), []),
    ("a gap between assignments is fine", edit("rep_assignments", 1, end_date="2026-12-31"), []),
    ("same start twice is a duplicate key", add("rep_assignments", start_date="2027-02-15", end_date=""),
     [("RD009", "rep_assignments.csv", 3, "rep_id")]),
    ("assignments need a role", edit("rep_assignments", 2, role=""),
     [("RD008", "rep_assignments.csv", 2, "role")]),
    ("assignments not given", drop_table("rep_assignments"), []),
    ("cancel before close", edit("deals", 1, cancel_date="2027-01-14"),
     [("RD019", "deals.csv", 1, "cancel_date")]),
    ("paid before close", edit("deals", 1, paid_date="2027-01-14"),
     [("RD027", "deals.csv", 1, "paid_date")]),
    ("paid on the day it closes", edit("deals", 1, paid_date="2027-01-15"), []),
    ("closed before its owner was hired", edit("reps", 2, hire_date="2027-02-01"),
     [("RD039", "deals.csv", 1, "close_date")]),
    ("closed after its owner left", edit("reps", 3, termination_date="2027-02-19"),
     [("RD039", "deals.csv", 2, "close_date")]),
    ("closed before its split rep was hired", edit("reps", 3, hire_date="2027-01-20"),
     [("RD039", "deal_splits.csv", 2, "rep_id")]),
    ("a 0 % split of a rep not yet hired credits nothing", lambda t: (
        edit("reps", 3, hire_date="2027-01-20")(t), edit("deal_splits", 1, percent="1")(t),
        edit("deal_splits", 2, percent="0")(t)), []),
    ("closed on its owner's first and last days", lambda t: (edit("reps", 2, hire_date="2027-01-15")(t),
                                                             edit("reps", 2, termination_date="2027-03-01")(t)), []),
    ("an MBO score of 105 %", scores("1.05"), []),
    ("an MBO score of 200 %", scores("2"), []),
    ("an MBO score typed as a percent", scores("80"), [("RD028", "mbo_scores.csv", 1, "score")]),
    ("a negative MBO score", scores("-0.1"), [("RD028", "mbo_scores.csv", 1, "score")]),
    ("unknown account", edit("deals", 2, account_id="A3"),
     [("RD020", "deals.csv", 2, "account_id")]),
    ("accounts not given: account ids are not checked", drop_table("accounts"), []),
    ("custom columns are fine", lambda t: [row.update(segment_tier="gold") for row in t["deals"]], []),
    ("an id with a space at its end", edit("deals", 3, id="D3 "), [("RD032", "deals.csv", 3, "id")]),
    ("an id with a tab at its start", edit("accounts", 2, id="\tA2"),
     [("RD032", "accounts.csv", 2, "id"), ("RD020", "deals.csv", 2, "account_id")]),
    ("an id with a zero-width space inside", edit("reps", 2, id="R\u200b2"),
     [("RD032", "reps.csv", 2, "id")] + [("RD012", f, row, c) for f, row, c in (
         ("deals.csv", 1, "owner_rep_id"), ("deals.csv", 3, "owner_rep_id"), ("deal_splits.csv", 1, "rep_id"),
         ("quotas.csv", 1, "rep_id"))]),
    ("an id with an accent is fine", edit("reps", 2, id="Renée"), [("RD012", "deals.csv", 1, "owner_rep_id"),
     ("RD012", "deals.csv", 3, "owner_rep_id"), ("RD012", "deal_splits.csv", 1, "rep_id"),
     ("RD012", "quotas.csv", 1, "rep_id")]),
    ("no deals", lambda t: t.update(deals=[], deal_splits=[]), [("RD031", "deals.csv", None, None)]),
]


@pytest.mark.parametrize("change, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_check_names_file_row_and_column(tmp_path, change, expected):
    tables = copy.deepcopy(GOOD)
    change(tables)
    assert found(write_company(tmp_path, tables)) == expected


def test_csv_messages_give_the_line_too(tmp_path):
    tables = copy.deepcopy(GOOD)
    edit("deals", 2, close_date="yesterday")(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        (diagnostic,) = check_data(data)
    assert diagnostic.message == "'yesterday' is not a valid date (line 3)"
    assert diagnostic.hints == ("write dates as YYYY-MM-DD, e.g. 2027-03-31",)
    assert str(diagnostic.data) == f"{tmp_path / 'deals.csv'}, row 2, column 'close_date'"


def test_messages_say_what_is_wrong(tmp_path):
    tables = copy.deepcopy(GOOD)
    edit("deal_splits", 1, percent="60")(tables)
    edit("deal_splits", 2, percent="40")(tables)
    edit("deals", 3, id="D1")(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        messages = {d.code: (d.message, d.hints) for d in check_data(data)}
    assert messages["RD011"] == (
        "the splits of deal 'D1' sum to 100 (10000 %) (rows 1, 2); they must sum to 100 %",
        ("percent is a fraction: 0.6 means 60 %",),
    )
    assert messages["RD009"][0] == "duplicate id 'D1' (line 4); first on row 1 (line 2)"


@pytest.mark.parametrize("table, column, value, message", [
    ("deals", "amount", "123000000000000000.00",
     "'123000000000000000.00' is too large for an amount (at most 16 digits before the decimal point) (line 2)"),
    ("deal_splits", "percent", "1500", "'1500' is too large for a fraction (at most 3 digits before the decimal point)"
     " (line 2)"),
    ("accounts", "employees", "99999999999999999999",
     "'99999999999999999999' is too large for a whole number (at most 18 digits before the decimal point) (line 2)"),
    ("accounts", "employees", "12.5", "'12.5' is not a valid whole number (line 2)"),
    ("deals", "amount", "12x", "'12x' is not a valid amount (line 2)"),
])
def test_a_value_too_large_for_its_column_says_so(tmp_path, table, column, value, message):
    tables = copy.deepcopy(GOOD)
    edit(table, 1, **{column: value})(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        assert [d.message for d in check_data(data) if d.code == "RD006"] == [message]


@pytest.mark.parametrize("currency, hint", [
    ("CHF", "add fx_rates rows with from = CHF and to = USD"),
    ("eur", "currency codes are upper-case ISO codes: did you mean 'EUR'?"),  # EUR has rates
    ("usd", "currency codes are upper-case ISO codes: did you mean 'USD'?"),  # the company's currency
])
def test_a_currency_without_rates_says_whether_it_is_a_known_one_misspelt(tmp_path, currency, hint):
    tables = copy.deepcopy(GOOD)
    edit("deals", 1, currency=currency)(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        [problem] = [d for d in check_data(data) if d.code == "RD015"]
    assert summary(problem) == ("RD015", "deals.csv", 1, "currency")
    assert problem.hints == (hint,)


@pytest.mark.parametrize("owner, message", [
    ("R9", "rep 'R9' is not in reps (line 2)"),
    ("R2 ", "rep 'R2 ' is not in reps (did you mean 'R2'?) (line 2)"),  # a space from a spreadsheet
    ("r2", "rep 'r2' is not in reps (did you mean 'R2'?) (line 2)"),
])
def test_an_unknown_id_says_which_id_was_meant_when_only_case_or_spaces_differ(tmp_path, owner, message):
    tables = copy.deepcopy(GOOD)
    edit("deals", 1, owner_rep_id=owner)(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        [problem] = [d for d in check_data(data) if d.code == "RD012"]
    assert (summary(problem), problem.message) == (("RD012", "deals.csv", 1, "owner_rep_id"), message)


def test_overlapping_assignments_name_both_rows(tmp_path):
    tables = copy.deepcopy(GOOD)
    edit("rep_assignments", 1, end_date="2027-03-01")(tables)
    with open_data(write_company(tmp_path, tables)) as data:
        (diagnostic,) = check_data(data)
    assert diagnostic.message == (
        "rep 'R3''s assignment from 2027-02-15 overlaps the one from 2021-06-01 to 2027-03-01 (row 1 (line 2)) (line 3)"
    )


def test_assignments_without_an_end_date_column_are_open_ended_and_overlap(tmp_path):
    """Without the column every assignment lasts for ever, as the calculators read it: the check was skipped,
    and a rep promoted mid-year was paid by both plans (audit)."""
    tables = copy.deepcopy(GOOD)
    tables["rep_assignments"] = [{k: v for k, v in row.items() if k != "end_date"} for row in tables["rep_assignments"]]
    with open_data(write_company(tmp_path, tables)) as data:
        problems = [d for d in check_data(data) if d.code == "RD021"]
    assert [d.message for d in problems] == ["rep 'R3''s assignment from 2027-02-15 overlaps the one from 2021-06-01 "
                                             "with no end_date (row 1 (line 2)) (line 3)"]


def test_a_warning_is_not_an_error(tmp_path):
    tables = copy.deepcopy(GOOD)
    edit("deals", 1, cancel_date="2027-01-01")(tables)
    folder = write_company(tmp_path, tables)
    with open_data(folder) as data:
        (diagnostic,) = check_data(data)
    assert diagnostic.severity is Severity.WARNING
    dataset, warnings = open_checked(folder)
    dataset.close()
    assert [d.code for d in warnings] == ["RD019"]


def test_open_checked_raises_with_every_error(tmp_path):
    tables = copy.deepcopy(GOOD)
    edit("deals", 1, amount="lots")(tables)
    edit("deals", 2, owner_rep_id="nobody")(tables)
    with pytest.raises(RevplanError) as caught:
        open_checked(write_company(tmp_path, tables))
    assert [d.code for d in caught.value.diagnostics] == ["RD006", "RD012"]


def test_a_malformed_line_is_reported_and_later_rows_keep_their_numbers(tmp_path):
    folder = write_company(tmp_path, GOOD)
    lines = (folder / "deals.csv").read_text().splitlines()
    lines[2] += ",surplus"  # data row 2 gets one field too many
    lines[3] = lines[3].replace("2027-03-01", "2027-03-32")  # row 3: a bad date
    (folder / "deals.csv").write_text("\n".join(lines) + "\n")
    with open_data(folder) as data:
        diagnostics = check_data(data)
    assert [summary(d) for d in diagnostics] == [
        ("RD005", "deals.csv", 2, None),
        ("RD006", "deals.csv", 3, "close_date"),
    ]
    assert diagnostics[0].message.startswith("line 3 has more fields than the header")


def text_edit(table: str, change):
    """A change to the file's text, after it is written: `change(text) -> text`."""
    def apply(folder: Path):
        path = folder / f"{table}.csv"
        path.write_text(change(path.read_text()), encoding="utf-8")
    return apply


def csv_lines(change):
    """A text edit line by line: `change(lines)` edits the list of lines in place."""
    def edit_text(text: str) -> str:
        lines = text.splitlines()
        change(lines)
        return "".join(line + "\n" for line in lines)
    return edit_text


def utf16(folder: Path):
    path = folder / "reps.csv"
    path.write_bytes(path.read_text().encode("utf-16"))


# What DuckDB's CSV reader forgives silently, and the layouts it must keep accepting (runtime/csv_shape.py):
# (case, change to the written files, expected diagnostics, a fragment of the first one's message)
SHAPE_CASES = [
    ("an unquoted comma shifts an empty last field",
     text_edit("deals", lambda t: t.replace("expansion,", "expansion, v2,")),
     [("RD005", "deals.csv", 2, None), ("RD006", "deals.csv", 2, "close_date")], "line 3 has 11 fields, the header 10"),
    ("surplus empty fields on one row",
     text_edit("deals", csv_lines(lambda lines: lines.__setitem__(1, lines[1] + ",,"))),
     [("RD005", "deals.csv", 1, None)], "line 2 has 12 fields, the header 10"),
    ("a trailing delimiter on every line", text_edit("quotas", csv_lines(lambda ls: ls.__setitem__(
        slice(None), [line + "," for line in ls]))), [], None),
    ("a trailing delimiter on every data row", text_edit("quotas", csv_lines(lambda ls: ls.__setitem__(
        slice(1, None), [line + "," for line in ls[1:]]))), [], None),
    ("a trailing delimiter on the header only: one error, not one per row", text_edit("deals", csv_lines(
        lambda ls: ls.__setitem__(0, ls[0] + ","))), [("RD005", "deals.csv", None, None)],
     "the header ends with a comma its rows do not have: it names 11 columns"),
    ("a repeated column name", text_edit("deals", csv_lines(lambda ls: ls.__setitem__(
        slice(None), [ls[0] + ",Amount"] + [line + ",0.00" for line in ls[1:]]))),
     [("RD005", "deals.csv", None, "amount")],
     "the header names column 'amount' 2 times (column 4 'amount', column 11 'Amount')"),
    ("a blank line before a bad row", text_edit("deals", lambda t: t.replace("\nD2,", "\n\nD2,").replace(
        "2027-03-01", "2027-03-32")), [("RD006", "deals.csv", 3, "close_date")], "(line 5)"),
    ("a blank line before a rejected line and a bad row: DuckDB counts blank lines in its line numbers",
     text_edit("deals", lambda t: t.replace("\nD2,", "\n\nD2,").replace("2027-02-20,,", "2027-02-20,").replace(
         "2027-03-01", "2027-03-32")),
     [("RD005", "deals.csv", 2, None), ("RD006", "deals.csv", 3, "close_date")], "line 4 has fewer fields"),
    ("a value spanning lines before a rejected line: DuckDB counts it as one line",
     text_edit("accounts", lambda t: t.replace("Acme", '"Acme\nCorp"').replace("\nA2,", "\n\nA2,").replace(
         "10000.00", "10000.00,9")), [("RD005", "accounts.csv", 2, None)], "line 5 has more fields"),
    ("a value spanning lines before a bad row", text_edit("accounts", lambda t: t.replace(
        "Acme", '"Acme\nCorp"').replace("10000.00", "ten")), [("RD006", "accounts.csv", 2, "potential")], "(line 4)"),
    ("UTF-16 text", utf16, [("RD005", "reps.csv", None, None)], "is UTF-16 text, not UTF-8"),
    ("a title line above the header, as exported reports have", text_edit("deals", lambda t: "Deals FY27\n" + t),
     [("RD005", "deals.csv", None, None)], "the first line of"),
    ("a title line and a blank line above the header", text_edit("deals", lambda t: "Deals FY27,,\n\n" + t),
     [("RD005", "deals.csv", None, None)], "line 3 names the columns"),
    ("semicolons", text_edit("accounts", lambda t: t.replace(",", ";")), [], None),
    ("column names in capitals, as CRMs export them", text_edit("deals", lambda t: t.split("\n", 1)[0].upper()
                                                                 + "\n" + t.split("\n", 1)[1]), [], None),
    ("a shift in a file whose every row ends in a delimiter", text_edit("deals", lambda t: "\n".join(
        line + ("" if i == 0 else ",") for i, line in enumerate(t.replace("expansion,", "expansion, v2,").split("\n")
                                                          [:-1])) + "\n"),
     [("RD005", "deals.csv", 2, None), ("RD006", "deals.csv", 2, "close_date")], "line 3 has 12 fields"),
    ("a shift after empty lines before the header", text_edit("deals", lambda t: "\n\n" + t.replace(
        "expansion,", "expansion, v2,")), [("RD005", "deals.csv", 2, None), ("RD006", "deals.csv", 2, "close_date")],
     "line 5 has 11 fields"),
    ("a surplus that is a space: DuckDB's own reject, once", text_edit("deals", csv_lines(
        lambda lines: lines.__setitem__(1, lines[1] + ", "))), [("RD005", "deals.csv", 1, None)],
     "line 2 has more fields than the header"),
    ("a cell longer than Python's csv default limit, and a blank line", text_edit("accounts", lambda t: t.replace(
        "Acme", '"' + "x" * 200_000 + '"').replace("\nA2,", "\n\nA2,").replace("10000.00", "ten")),
     [("RD006", "accounts.csv", 2, "potential")], "(line 4)"),
    ("stray quotes in a value are read as they are", text_edit("accounts", lambda t: t.replace(
        "Bravo", '"Bravo "North" GmbH"')), [], None),
    ("lines ending in a carriage return alone", text_edit("deals", lambda t: t.replace("\nD2,", "\n\nD2,").replace(
        "2027-03-01", "2027-03-32").replace("\n", "\r")), [("RD006", "deals.csv", 3, "close_date")], "(line 5)"),
]


def rename(old: str, new: str):
    def apply(folder: Path):
        (folder / old).rename(folder / new)
    return apply


def link_to_nothing(name: str):
    def apply(folder: Path):
        (folder / name).unlink()
        (folder / name).symlink_to(folder / "gone.csv")
    return apply


def copy_file(old: str, new: str):
    def apply(folder: Path):
        (folder / new).write_bytes((folder / old).read_bytes())
    return apply


# Files named after a table (runtime/data.py `_table_files`, `_unread_files`):
# (case, change, expected diagnostics as (code, file, row, column, severity))
FILE_NAME_CASES = [
    ("a name in capitals, as Excel on Windows saves it", rename("deals.csv", "Deals.CSV"), []),
    ("a table in a format not read", rename("quotas.csv", "quotas.txt"),
     [("RD029", "quotas.txt", None, None, Severity.ERROR)]),
    ("a required table in a format not read", rename("deals.csv", "deals.xlsx"),
     [("RD029", "deals.xlsx", None, None, Severity.ERROR), ("RD002", "deals.csv", None, None, Severity.ERROR)]),
    ("a leftover beside the table's file", copy_file("quotas.csv", "quotas.csv.bak"),
     [("RD029", "quotas.csv.bak", None, None, Severity.WARNING)]),
    # read as no deal_splits table at all: owners would be credited in full
    ("an optional table's file misnamed", rename("deal_splits.csv", "deal_split.csv"),
     [("RD029", "deal_split.csv", None, None, Severity.WARNING)]),
    ("a file that is no table", copy_file("quotas.csv", "notes.txt"),
     [("RD029", "notes.txt", None, None, Severity.WARNING)]),
    ("Excel's lock file while a table is open in it", copy_file("quotas.csv", "~$deal_splits.xlsx"), []),
    ("a link to nothing", link_to_nothing("deal_splits.csv"),
     [("RD029", "deal_splits.csv", None, None, Severity.ERROR)]),
]


@pytest.mark.parametrize("change, expected", [c[1:] for c in FILE_NAME_CASES], ids=[c[0] for c in FILE_NAME_CASES])
def test_files_named_after_a_table_are_read_or_reported(tmp_path, change, expected):
    folder = write_company(tmp_path, GOOD)
    change(folder)
    with open_data(folder) as data:
        assert [(*summary(d), d.severity) for d in check_data(data)] == expected


def test_a_misnamed_file_names_the_table_it_may_be_meant_for(tmp_path):
    folder = write_company(tmp_path, GOOD)
    rename("deal_splits.csv", "deal_split.csv")(folder)
    with open_data(folder) as data:
        [warning] = check_data(data)
    assert warning.message == "deal_split.csv is not read: no table is named 'deal_split'"
    assert warning.hints == ("did you mean deal_splits.csv? rename it",)


def test_one_table_in_two_files_that_differ_only_in_case(tmp_path):
    folder = write_company(tmp_path, GOOD)
    copy_file("quotas.csv", "Quotas.csv")(folder)
    with pytest.raises(RevplanError) as caught:
        open_data(folder)
    assert [d.code for d in caught.value.diagnostics] == ["RD001"]


@pytest.mark.parametrize("text, hint", [
    (b"id,name\nR1,Ada\r\n", "line 2 ends with CR LF, the others with LF: make every line end the same way"),
    (b"id,name\r\nR1,Ada\r\nR2,Ben\n", "line 3 ends with LF, the others with CR LF: make every line end the same way"),
    (b"id,name\nR1,Ada\n  \t\n", "line 3 holds only blanks: remove it"),
    (b"id,name\r\nR1,Ada\r\n", None),
    (b"id,name\nR1,Ada\n\n", None),  # an empty line: DuckDB skips it
])
def test_odd_lines_are_named(tmp_path, text, hint):
    (tmp_path / "t.csv").write_bytes(text)
    assert odd_line(tmp_path / "t.csv") == hint


def test_a_file_duckdb_cannot_make_sense_of_names_the_line_that_may_be_why(tmp_path):
    """DuckDB only says "error when sniffing" for a file whose last line is a lone CR LF (data audit)."""
    folder = write_company(tmp_path, GOOD)
    with open(folder / "reps.csv", "ab") as handle:
        handle.write(b"\r\n")
    with open_data(folder) as data:
        [problem] = [d for d in check_data(data) if d.code == "RD005"]
    assert "sniffing" in problem.message
    assert problem.hints == ("line 5 ends with CR LF, the others with LF: make every line end the same way",)


@pytest.mark.parametrize("change, expected, message", [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_csv_layouts_duckdb_would_forgive_are_reported(tmp_path, change, expected, message):
    folder = write_company(tmp_path, GOOD)
    change(folder)
    with open_data(folder) as data:
        diagnostics = check_data(data)
    assert [summary(d) for d in diagnostics] == expected
    if message:
        assert message in diagnostics[0].message


def test_a_file_that_is_not_utf8(tmp_path):
    folder = write_company(tmp_path, GOOD)
    text = (folder / "accounts.csv").read_text().replace("Bravo", "Br\u00e4vo")
    (folder / "accounts.csv").write_bytes(text.encode("latin-1"))
    assert found(folder) == [("RD005", "accounts.csv", 2, None)]


def test_an_empty_file(tmp_path):
    folder = write_company(tmp_path, GOOD)
    (folder / "quotas.csv").write_text("")
    assert found(folder) == [("RD005", "quotas.csv", None, None)]


def test_many_bad_rows_list_the_first_and_count_the_rest(tmp_path):
    tables = copy.deepcopy(GOOD)
    for i in range(30):
        tables["deals"].append({**tables["deals"][0], "id": f"X{i}", "amount": "n/a"})
    diagnostics = found(write_company(tmp_path, tables))
    assert diagnostics[:MAX_ROWS] == [("RD006", "deals.csv", 4 + i, "amount") for i in range(MAX_ROWS)]
    assert diagnostics[MAX_ROWS:] == [("RD006", "deals.csv", None, "amount")]


def test_base_currency_is_a_parameter(tmp_path):
    folder = write_company(tmp_path, GOOD)
    assert found(folder, base_currency="EUR") == []  # USD <-> EUR rates exist both ways
    assert found(folder, base_currency="GBP") == [
        ("RD015", "deals.csv", 1, "currency"), ("RD015", "deals.csv", 2, "currency"),
        ("RD015", "reps.csv", 1, "currency"), ("RD015", "reps.csv", 3, "currency"),
    ]


# --- sources --------------------------------------------------------------------------


def test_a_missing_folder_is_a_diagnostic_not_a_traceback(tmp_path):
    with pytest.raises(RevplanError) as caught:
        open_data(tmp_path / "nowhere")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "RD001"
    assert "does not exist" in diagnostic.message


def test_an_unknown_kind_of_source(tmp_path):
    (tmp_path / "deals.xlsx").write_bytes(b"PK")
    for source in (tmp_path / "deals.xlsx", "mysql://db/crm"):
        with pytest.raises(RevplanError) as caught:
            open_data(source)
        assert caught.value.diagnostics[0].code == "RD001"


def test_a_table_given_twice(tmp_path):
    folder = write_company(tmp_path, GOOD)
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{folder / 'deals.csv'}')) TO '{folder / 'deals.parquet'}'")
    with pytest.raises(RevplanError) as caught:
        open_data(folder)
    assert caught.value.diagnostics[0].code == "RD001"
    assert "given twice" in caught.value.diagnostics[0].message


def to_parquet(folder: Path, table: str, select: str = "*") -> None:
    """Rewrite one CSV of the company as Parquet, with typed columns chosen by `select`."""
    source = folder / f"{table}.csv"
    duckdb.sql(f"COPY (SELECT {select} FROM read_csv('{source}', all_varchar = true))"
               f" TO '{folder / f'{table}.parquet'}' (FORMAT parquet)")
    source.unlink()


def duckdb_company(folder: Path) -> Path:
    """The good company as a DuckDB file, every column text: folder/crm.duckdb."""
    csv_folder = write_company(folder / "csv", GOOD)
    database = folder / "crm.duckdb"
    with duckdb.connect(str(database)) as connection:
        for table in GOOD:
            connection.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv('{csv_folder / f'{table}.csv'}', "
                               "all_varchar = true)")
    return database


def test_a_value_that_starts_or_ends_with_an_apostrophe_is_text_not_a_quote(tmp_path):
    """DuckDB guessed ' as the quote character from such values and read the rows between two of them as one
    cell: ten deals fewer, paid nothing, with no word (audit)."""
    tables = {name: [dict(row) for row in rows] for name, rows in GOOD.items()}
    edit("deals", 1, product="'legacy")(tables)
    edit("deals", 3, product="partners'")(tables)
    folder = write_company(tmp_path, tables)
    assert found(folder) == []
    with open_data(folder) as data:
        assert data.connection.execute("SELECT id, product FROM deals ORDER BY id").fetchall() == [
            ("D1", "'legacy"), ("D2", tables["deals"][1]["product"] or None), ("D3", "partners'")]


def test_a_date_bc_in_typed_sources_is_not_a_valid_date(tmp_path):
    """A Parquet or DuckDB DATE can be BC; DuckDB hands it to Python as text, and a warning's message crashed."""
    folder = write_company(tmp_path, GOOD)
    to_parquet(folder, "deals", "* REPLACE (CASE WHEN id = 'D2' THEN DATE '0001-06-01 (BC)' ELSE "
               "CAST(close_date AS DATE) END AS close_date, CAST(amount AS DECIMAL(18,2)) AS amount)")
    assert found(folder) == [("RD006", "deals.parquet", 2, "close_date")]


def test_a_view_of_a_duckdb_file_that_cannot_be_read_is_rd001(tmp_path):
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TABLE gone (x INTEGER)")
        connection.execute("CREATE VIEW reps AS SELECT * FROM gone")
        connection.execute("DROP TABLE gone")
    with pytest.raises(RevplanError) as caught:
        open_data(database)
    assert [d.code for d in caught.value.diagnostics] == ["RD001"]
    assert "cannot read" in caught.value.diagnostics[0].message and ":reps" in caught.value.diagnostics[0].message


def test_a_duckdb_files_fingerprint_holds_its_write_ahead_log(tmp_path):
    """Rows not yet checkpointed live in crm.duckdb.wal, and a run reads them: the manifest's fingerprint must
    change with them (it once hashed crm.duckdb alone, audit)."""
    database = duckdb_company(tmp_path)
    with open_data(database) as data:
        before = data.fingerprint
    with duckdb.connect(str(database)) as connection:  # a writer that has not checkpointed yet
        connection.execute("PRAGMA disable_checkpoint_on_shutdown")
        connection.execute("UPDATE deals SET amount = '1.00' WHERE id = 'D1'")
    assert (tmp_path / "crm.duckdb.wal").exists()
    with open_data(database) as data:
        assert data.connection.execute("SELECT amount FROM deals WHERE id = 'D1'").fetchone()[0] == Decimal("1.00")
        assert data.fingerprint != before


def test_parquet_with_money_as_double_is_a_wrong_type(tmp_path):
    folder = write_company(tmp_path, GOOD)
    to_parquet(folder, "deals", "* REPLACE (CAST(amount AS DOUBLE) AS amount, CAST(close_date AS DATE) AS close_date)")
    assert found(folder) == [("RD004", "deals.parquet", None, "amount")]


def test_fx_rates_that_cannot_be_read_are_one_problem_not_a_missing_rate_per_currency(tmp_path):
    folder = write_company(tmp_path, GOOD)
    to_parquet(folder, "fx_rates", "* REPLACE (CAST(rate AS DOUBLE) AS rate, CAST(date AS DATE) AS date)")
    assert found(folder) == [("RD004", "fx_rates.parquet", None, "rate")]  # and no RD015 for EUR


def test_parquet_with_typed_columns_keeps_the_contract(tmp_path):
    folder = write_company(tmp_path, GOOD)
    to_parquet(folder, "deals", "* REPLACE (CAST(amount AS DECIMAL(18,2)) AS amount, "
               "CAST(close_date AS DATE) AS close_date, CAST(paid_date AS DATE) AS paid_date)")
    to_parquet(folder, "accounts", "* REPLACE (CAST(employees AS INTEGER) AS employees)")
    assert found(folder) == []
    with open_data(folder) as data:
        types = dict(data.connection.execute("SELECT column_name, data_type FROM information_schema.columns"
                                             " WHERE table_name = 'deals'").fetchall())
    assert types["amount"] == "DECIMAL(18,2)" and types["close_date"] == "DATE"


def test_a_parquet_column_without_a_value_has_no_type_and_is_empty(tmp_path):
    """pandas and pyarrow write a column of None alone with the null type: an optional one is empty, a
    required one is empty in each row (RD008), not a column of the wrong type."""
    folder = write_company(tmp_path, GOOD)
    typed = pacsv.ConvertOptions(column_types={"amount": pa.decimal128(18, 2)})
    deals = pacsv.read_csv(folder / "deals.csv", convert_options=typed).drop_columns(["cancel_date", "stage"])
    deals = deals.append_column("cancel_date", pa.nulls(3)).append_column("stage", pa.nulls(3))
    pq.write_table(deals, folder / "deals.parquet")
    (folder / "deals.csv").unlink()
    assert found(folder) == [("RD008", "deals.parquet", row, "stage") for row in (1, 2, 3)]
    with open_data(folder) as data:
        assert data.connection.execute("SELECT DISTINCT cancel_date FROM deals").fetchall() == [(None,)]


def deals_in_two_parts(folder: Path, second: str = "part-1.parquet", select: str = "*") -> Path:
    """The good company with deals as a folder of Parquet parts: D1 and D2 in part-0.parquet, D3 in `second`
    (a name below deals/), its columns chosen by `select`. Returns the deals folder."""
    company = write_company(folder, GOOD)
    parts, source = company / "deals", company / "deals.csv"
    (parts / second).parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{source}', all_varchar = true) WHERE id <> 'D3')"
               f" TO '{parts / 'part-0.parquet'}' (FORMAT parquet)")
    duckdb.sql(f"COPY (SELECT {select} FROM read_csv('{source}', all_varchar = true) WHERE id = 'D3')"
               f" TO '{parts / second}' (FORMAT parquet)")
    source.unlink()
    return parts


def test_parquet_rows_are_numbered_per_file_in_a_folder_of_parts(tmp_path):
    parts = deals_in_two_parts(tmp_path, select="* REPLACE ('D1' AS id)")
    with open_data(parts.parent) as data:
        (diagnostic,) = check_data(data)
        assert data.files()["deals"] == (parts / "part-0.parquet", parts / "part-1.parquet")
    assert summary(diagnostic) == ("RD009", "part-1.parquet", 1, "id")
    assert diagnostic.message == "duplicate id 'D1'; first on row 1 of part-0.parquet"


@pytest.mark.parametrize("part, read", [("part-1.PARQUET", True), ("batch=2/part-1.parquet", False)])
def test_every_parquet_part_of_a_folder_is_read_or_an_error(tmp_path, part, read):
    """A part named in upper case was skipped, and so was a partitioned one in a subfolder: its deals were
    paid nothing, with no word (audit). Upper case is read; a subfolder is RD029, an error."""
    with open_data(deals_in_two_parts(tmp_path, part).parent) as data:
        problems = [summary(d) for d in data.load_diagnostics]
        ids = [i for (i,) in data.connection.execute("SELECT id FROM deals ORDER BY id").fetchall()]
    assert (problems, ids) == (([], ["D1", "D2", "D3"]) if read else ([("RD029", "part-1.parquet", None, None)], []))


def test_a_parquet_part_without_a_column_the_others_have_is_rd041(tmp_path):
    """Read together, the part's rows had cancel_date empty: an older export's cancellations never clawed back."""
    with open_data(deals_in_two_parts(tmp_path, select="* EXCLUDE (cancel_date)").parent) as data:
        assert [summary(d) for d in data.load_diagnostics] == [("RD041", "part-1.parquet", None, "cancel_date")]


def test_a_parquet_file_with_two_columns_of_one_name_is_rd005(tmp_path):
    """`amount` and `Amount`: DuckDB read the first and renamed the second, with no word; a CSV is refused so."""
    folder = write_company(tmp_path, GOOD)
    deals = pacsv.read_csv(folder / "deals.csv", convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    pq.write_table(deals.append_column("Amount", pa.array(["1.00"] * deals.num_rows)), folder / "deals.parquet")
    (folder / "deals.csv").unlink()
    with open_data(folder) as data:
        assert [summary(d) for d in data.load_diagnostics] == [("RD005", "deals.parquet", None, "amount")]


def test_a_duckdb_file_source(tmp_path):
    database = duckdb_company(tmp_path)
    with duckdb.connect(str(database)) as connection:
        connection.execute("ALTER TABLE deals ALTER amount TYPE DECIMAL(18,2)")
        connection.execute("UPDATE deals SET owner_rep_id = 'R8' WHERE id = 'D3'")
    with open_data(database) as data:
        assert [summary(d) for d in check_data(data)] == [("RD012", "crm.duckdb:deals", 3, "owner_rep_id")]
        assert data.connection.execute("SELECT sum(amount) FROM deals").fetchall() == [(Decimal("3800.50"),)]
        assert data.connection.execute("SELECT typeof(amount) FROM deals LIMIT 1").fetchall() == [("DECIMAL(18,2)",)]


def test_an_enum_column_of_a_duckdb_file_is_text(tmp_path):
    """A CRM's stage as a DuckDB ENUM: the Python calculator refused it (exit 3) where DuckDB paid (audit)."""
    database = duckdb_company(tmp_path)
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TYPE stage_kind AS ENUM ('closed_won', 'closed_lost', 'open')")
        connection.execute("ALTER TABLE deals ALTER stage TYPE stage_kind")
    with open_data(database) as data:
        assert check_data(data) == []
        assert data.connection.execute("SELECT DISTINCT typeof(stage) FROM deals").fetchall() == [("VARCHAR",)]


@pytest.mark.parametrize("suffix", [".duckdb", ".parquet"])
def test_a_typed_date_of_infinity_is_a_bad_date(tmp_path, suffix):
    folder = write_company(tmp_path / "csv", GOOD)
    table = "SELECT * REPLACE (CAST(CASE WHEN id = 'D2' THEN 'infinity' ELSE close_date END AS DATE) AS close_date)" \
            f" FROM read_csv('{folder / 'deals.csv'}', all_varchar = true)"
    if suffix == ".duckdb":
        source = tmp_path / "crm.duckdb"
        with duckdb.connect(str(source)) as connection:
            for name in GOOD:
                csv = folder / f"{name}.csv"
                connection.execute(f"CREATE TABLE {name} AS FROM read_csv('{csv}', all_varchar = true)")
            connection.execute(f"CREATE OR REPLACE TABLE deals AS {table}")
    else:
        source = folder
        duckdb.execute(f"COPY ({table}) TO '{folder / 'deals.parquet'}'")
        (folder / "deals.csv").unlink()
    with open_data(source) as data:
        (diagnostic,) = check_data(data)
    assert (diagnostic.code, diagnostic.data.row, diagnostic.data.column) == ("RD006", 2, "close_date")
    assert diagnostic.message == "'infinity' is not a valid date"


def test_missing_optional_tables_are_empty_views_with_typed_columns(tmp_path):
    tables = {name: rows for name, rows in GOOD.items() if name in ("reps", "deals", "fx_rates")}
    with open_data(write_company(tmp_path, tables)) as data:
        assert data.connection.execute("SELECT count(*) FROM activities").fetchall() == [(0,)]
        columns = data.connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'mbo_scores'"
        ).fetchall()
    assert columns == [("rep_id", "VARCHAR"), ("period", "VARCHAR"), ("score", "DECIMAL(9,6)")]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_blank_optional_text_is_empty(tmp_path, suffix):
    """A segment of ' ' (or '' in Parquet) is no segment: read as a value, it took a rep out of a plan
    for `rep.segment is null` (audit)."""
    tables = copy.deepcopy(GOOD)
    tables["reps"][1]["segment"] = " " if suffix == ".csv" else ""
    folder = write_company(tmp_path / "csv", tables)
    if suffix == ".parquet":
        parquet = tmp_path / "parquet"
        parquet.mkdir()
        for path in folder.glob("*.csv"):
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in tables[path.stem][0]}, strings_can_be_null=False))
            pq.write_table(table, parquet / f"{path.stem}.parquet")
        folder = parquet
    with open_data(folder) as data:
        assert check_data(data) == []
        assert data.connection.execute("SELECT id, segment FROM reps ORDER BY id").fetchall() == [
            ("R1", None), ("R2", None), ("R3", "Commercial")]


def test_views_hold_exact_types(tmp_path):
    with open_data(write_company(tmp_path, GOOD)) as data:
        types = dict(data.connection.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
        ).fetchall())
    assert types["deals.amount"] == "DECIMAL(18,2)"
    assert types["deals.close_date"] == "DATE"
    assert types["deal_splits.percent"] == "DECIMAL(9,6)"
    assert types["fx_rates.rate"] == "DECIMAL(28,10)"
    assert types["accounts.employees"] == "BIGINT"


def test_custom_fields_from_the_schema_are_typed(tmp_path):
    schema = SCHEMA.with_extra_fields({"deal": {"multi_year": FieldType.BOOL}})
    tables = copy.deepcopy(GOOD)
    for row in tables["deals"]:
        row["multi_year"] = "true"
    tables["deals"][2]["multi_year"] = "maybe"
    with open_data(write_company(tmp_path, tables), schema) as data:
        assert [summary(d) for d in check_data(data)] == [("RD006", "deals.csv", 3, "multi_year")]
        assert data.connection.execute("SELECT multi_year FROM deals").fetchall() == [(True,), (True,), (None,)]


def test_fingerprint_follows_content_not_place(tmp_path):
    first = write_company(tmp_path / "a", GOOD)
    second = write_company(tmp_path / "b", GOOD)
    with open_data(first) as a, open_data(second) as b:
        assert a.fingerprint == b.fingerprint
    tables = copy.deepcopy(GOOD)
    edit("deals", 1, amount="1000.01")(tables)
    with open_data(write_company(tmp_path / "c", tables)) as c:
        assert c.fingerprint != a.fingerprint


@pytest.mark.parametrize("source, shown", [
    ("postgresql://ann:s3cret@db:5432/crm", "postgresql://db:5432/crm"),
    ("postgresql://spc:p@ss:w/rd#1?%x@db:5432/crm", "postgresql://db:5432/crm"),  # not URL-encoded
    ("postgresql://ann:s3:cret@db/crm", "postgresql://db/crm"),
    ("postgresql://ann@db/crm?password=s3cret", "postgresql://db/crm"),
    ("postgresql:///?service=crm&password=s3cret", "postgresql:///?service=crm"),  # the service says which database
    ("data/company", "data/company"),
])
def test_a_data_source_is_shown_without_a_password(source, shown):
    from runtime.data import shown_source

    assert shown_source(source) == shown


@pytest.mark.parametrize("url", [
    "host=127.0.0.1 port=1 user=nobody password=s3cret dbname=none",  # libpq's key=value form, not a URL
    "postgresql://nobody:s3cret@127.0.0.1:1/none",
    "postgresql://nobody@127.0.0.1:1/none?password=s3cret",
    "postgresql://nobody:s3:cr/et@127.0.0.1:1/none",  # not URL-encoded
    "mysql://nobody:s3cret@127.0.0.1:1/none",
])
def test_an_unreachable_database_is_a_diagnostic_without_its_password(url):
    with pytest.raises(RevplanError) as caught:
        open_data(url)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "RD001"
    assert "s3" not in diagnostic.message + diagnostic.file


def test_an_unreadable_parquet_file(tmp_path):
    folder = write_company(tmp_path, GOOD)
    (folder / "accounts.csv").unlink()
    (folder / "accounts.parquet").write_bytes(b"not parquet at all")
    diagnostics = found(folder)
    assert diagnostics == [("RD005", "accounts.parquet", None, None)]


def test_a_duckdb_file_with_tables_named_in_capitals(tmp_path):
    folder = write_company(tmp_path / "csv", GOOD)
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as connection:
        for table in GOOD:
            name = {"deals": "Deals", "deal_splits": "Deal_Splits", "reps": "REPS"}.get(table, table)
            connection.execute(f"CREATE TABLE {name} AS FROM read_csv('{folder / f'{table}.csv'}', all_varchar = true)")
    with open_data(database) as data:
        assert check_data(data) == []
        assert data.connection.execute("SELECT count(*) FROM deal_splits").fetchall() == [(2,)]


def test_a_duckdb_file_with_views(tmp_path):
    folder = write_company(tmp_path / "csv", GOOD)
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as connection:
        for table in GOOD:
            connection.execute(f"CREATE TABLE raw_{table} AS SELECT * FROM read_csv('{folder / f'{table}.csv'}',"
                               " all_varchar = true)")
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM raw_{table}")
        connection.execute("UPDATE raw_deals SET amount = '12.345' WHERE id = 'D2'")
    with open_data(database) as data:
        assert [summary(d) for d in check_data(data)] == [("RD007", "crm.duckdb:deals", 2, "amount")]


TERRITORIES = """revplan 1

territory plan "T" version 1
  effective 2027-01-01 to 2027-12-31
  period year
  currency USD
  owners sales "@s" finance "@f"
  territory "East"
    owner "R2"
    overlay "R9"
  assign named accounts "A1", "A7" to "East" priority 1
  move account "A8" to "East" on 2027-07-01

quota plan "Q" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  applies to reps where rep.role = "AE"
  target 100,000 USD
  allocate by weights
  weight "R2" 2
  weight "r3" 9
  weight "R1" 5
  override "R8" 1,000 USD
"""


def test_plans_naming_reps_or_accounts_the_data_lacks_warn_at_their_line(tmp_path):
    """A mistyped id is ignored: a territory credits nobody, a move or a weight does nothing (audit: `weight "c"`
    for rep C gave C 40,000 instead of 88,000, with no word)."""
    project = load_texts([("t.plan", TERRITORIES)])
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        warnings = check_plan_references(project.files, dataset)
        quotas = run_plans(project.files, dataset.connection).quotas
        ignored = check_quota_plan_reps(project.files, quotas, dataset)
    assert [(w.code, w.severity, w.span.line) for w in warnings] == [
        ("RD022", Severity.WARNING, 25),  # override for R8: not on the roster
        ("RD022", Severity.WARNING, 10),  # overlay R9: not on the roster
        ("RD022", Severity.WARNING, 23),  # weight for r3 (R3's id is upper case)
        ("RD022", Severity.WARNING, 11),  # account A7: not in accounts
        ("RD022", Severity.WARNING, 12),  # the move of A8: not in accounts
    ]
    assert "overlay R9" in warnings[1].message and "A7" in warnings[3].message and "A8" in warnings[4].message
    # R1 is on the roster but a Manager: the plan for AEs gives R1 no quota, so the weight is ignored
    assert [(w.code, w.span.line, w.message) for w in ignored] == [
        ("RD022", 24, 'quota plan "Q" version 1: the weight for rep R1 is ignored: the plan gives R1 no quota')]


BASES_PLAN = """revplan 1
quota plan "Q" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  target 100,000 USD
  allocate by {allocation}
{weights}"""


@pytest.mark.parametrize("allocation, weights, warned", [
    # GOOD's deals all close in 2027: no rep has prior (2026) bookings
    ("prior_bookings", "", ["prior_bookings"]),
    ("prior_bookings 60%, equal 40%", "", ["prior_bookings"]),
    ("weights", '  weight "R2" 0\n  weight "R3" 0\n  weight "R1" 0\n', ["weights"]),
    ("weights 50%, prior_bookings 50%", '  weight "R2" 0\n  weight "R3" 1\n  weight "R1" 0\n', ["prior_bookings"]),
    ("weights", '  weight "R2" 3\n', []),  # the others weigh 1 each
    ("equal", "", []),
])
def test_an_allocation_basis_that_weighs_no_rep_warns_at_its_line(tmp_path, allocation, weights, warned):
    """Such a basis shares its part of the target equally (so the whole target is allocated): legal, but not
    the rule the plan states, and on payroll it must not go unnoticed."""
    project = load_texts([("q.plan", BASES_PLAN.format(allocation=allocation, weights=weights))])
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        quotas = run_plans(project.files, dataset.connection).quotas
    warnings = check_quota_bases(project.files, quotas)
    assert [(w.code, w.severity, w.span.line) for w in warnings] == [("RD042", Severity.WARNING, 8)] * len(warned)
    assert [w.message.split("`")[1] for w in warnings] == [f"allocate by {basis}" for basis in warned]


ATTAINMENT_PLAN = """revplan 1
measure bookings = sum(deal.amount) where deal.stage = "closed_won"
comp plan "AE" version 1
  effective 2027-01-01 to 2027-06-30
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  applies to reps where rep.role = "AE"
  quota from quotas
  attainment = bookings / quota
  component "Bookings" on bookings
    rate 5%
"""


def test_reps_paid_on_attainment_without_a_quota_warn_at_the_quota_line(tmp_path):
    """GOOD has one quota row (R2, Q1): R2's Q2 and R3's two quarters have none."""
    project = load_texts([("ae.plan", ATTAINMENT_PLAN)])
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
    [warning] = check_quota_coverage(comp_plans(project.files), lines)
    assert (warning.code, warning.severity, warning.span.line) == ("RD023", Severity.WARNING, 9)
    assert "2 reps have no quota (or 0) from the quotas table in 3 rep-periods" in warning.message
    assert "attainment is empty there" in warning.message
    assert "(R2 2027-Q2, R3 2027-Q1, R3 2027-Q2)" in warning.message


def test_year_to_date_a_period_without_a_quota_after_one_with_warns_too(tmp_path):
    """Year to date the lines show the quota to date, which R2's Q2 has from Q1 (audit: silent, and Q2 paid
    attainment on Q1's quota alone). R3 has none all year: warned as ever."""
    measured = "  quota from quotas\n  measured year_to_date with true_up\n"
    ytd = ATTAINMENT_PLAN.replace("  quota from quotas\n", measured)
    project = load_texts([("ae.plan", ytd)])
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
    assert lines[(lines["rep_id"] == "R2") & (lines["period"] == "2027-Q2")]["quota"].notna().all()
    [warning] = check_quota_coverage(comp_plans(project.files), lines)
    assert "(R2 2027-Q2, R3 2027-Q1, R3 2027-Q2)" in warning.message
    assert "year to date, their attainment there is measured on the quotas of the other periods" in warning.message


def segment_plan(name: str, where: str, period: str = "quarter", more: str = "") -> str:
    """A comp plan paying 5 % of bookings, at most 1,000 a period (a period pays its cap whole)."""
    return f"""
comp plan "{name}" version 1
  effective 2027-01-01 to 2027-12-31
  period {period}
  currency USD
  owners sales "@s" finance "@f"
  applies to reps where {where}
{more}  component "Bookings" on bookings
    rate 5%
    cap 1,000 USD per period
"""


BOOKINGS = 'revplan 1\nmeasure bookings = sum(deal.amount) where deal.stage = "closed_won"\n'
COMMERCIAL = segment_plan("Commercial", 'rep.segment = "Commercial"')
ENTERPRISE = segment_plan("Enterprise", 'rep.segment = "Enterprise"', more="  prorate by active_days\n")
MONTHLY_ENTERPRISE = segment_plan("Enterprise", 'rep.segment = "Enterprise"', "month")


@pytest.mark.parametrize(
    "plans, warned",
    [
        # GOOD's R3 moves from Commercial to Enterprise on 2027-02-15: Q1 in both plans, only Enterprise prorates.
        ([COMMERCIAL, ENTERPRISE], {"Commercial": "R3 2027-Q1"}),
        ([COMMERCIAL], {"Commercial": "R3 2027-Q1"}),  # whatever pays the rest of the quarter, or nothing
        # Neither prorates, and Enterprise is monthly: its February is part of one too (audit: missed when it
        # went by the labels of other plans' lines, as was a plan paid on payment, which has no proration).
        ([COMMERCIAL, MONTHLY_ENTERPRISE], {"Commercial": "R3 2027-Q1", "Enterprise": "R3 2027-02"}),
        ([COMMERCIAL, segment_plan("Enterprise", 'rep.segment = "Enterprise"', more="  paid on payment\n")],
         {"Commercial": "R3 2027-Q1", "Enterprise": "R3 2027-Q1"}),
        # A plan every AE is in all year, beside the segment plans: in for all their days, not part of them.
        ([segment_plan("AE kicker", 'rep.role = "AE"', "month"), ENTERPRISE], {}),
        # A rate on deals alone pays a part-period for its own deals.
        ([COMMERCIAL.replace("    cap 1,000 USD per period\n", "")], {}),
    ],
)
def test_plans_that_pay_a_period_whole_warn_of_reps_in_them_for_part_of_it(tmp_path, plans, warned):
    project = load_texts([("plans.plan", BOOKINGS + "".join(plans))])
    comp = comp_plans(project.files)
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        warnings = check_split_periods(comp, part_periods(comp, dataset.connection))
    shown = {w.message.split('"')[1]: w.message.split("(")[1].split(")")[0] for w in warnings}
    assert shown == warned
    assert all((w.code, w.severity) == ("RD037", Severity.WARNING) for w in warnings)


def test_a_part_period_warns_at_the_plan_line(tmp_path):
    project = load_texts([("plans.plan", BOOKINGS + COMMERCIAL)])
    comp = comp_plans(project.files)
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        [warning] = check_split_periods(comp, part_periods(comp, dataset.connection))
    assert warning.span.line == 4  # after the measure and the blank line segment_plan starts with
    assert warning.message == ('comp plan "Commercial" version 1 has 1 rep-period of reps in it for part of their '
                               "days (R3 2027-Q1) and pays each a whole period's quota, TI and fixed amounts")
    on_a_boundary = copy.deepcopy(GOOD)
    on_a_boundary["rep_assignments"][0]["end_date"] = "2027-03-31"
    on_a_boundary["rep_assignments"][1]["start_date"] = "2027-04-01"
    with open_data(write_company(tmp_path / "on_a_boundary", on_a_boundary)) as dataset:
        assert part_periods(comp, dataset.connection).empty


MBO_PLAN = """revplan 1
comp plan "AE" version 1
  effective 2027-01-01 to 2027-06-30
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  applies to reps where rep.role = "AE"
  component "Goals"
    mbo 1,000 USD from mbo_scores
"""


def test_mbo_paid_without_a_score_warns_and_names_scores_of_another_period_kind(tmp_path):
    """R2 has a score for 2027-Q1 only, and rows by month the quarterly plan does not read; R3 has none
    (audit: scores by quarter for a monthly plan paid twelve 0.00 lines with no word). R1's half-year
    score is for another plan: the hint names only the unscored reps' labels (audit: it named all)."""
    tables = copy.deepcopy(GOOD)
    tables["mbo_scores"] = [dict(rep_id="R2", period="2027-Q1", score="0.9"),
                            dict(rep_id="R2", period="2027-04", score="0.8"),
                            dict(rep_id="R1", period="2027-H1", score="1")]
    project = load_texts([("ae.plan", MBO_PLAN)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
        [warning] = check_mbo_coverage(comp_plans(project.files), lines, dataset)
    assert (warning.code, warning.severity, warning.span.line) == ("RD038", Severity.WARNING, 9)
    assert '"Goals" has no MBO score for 3 rep-periods it pays (R2 2027-Q2, R3 2027-Q1, R3 2027-Q2)' \
        in warning.message
    assert warning.hints[0] == "mbo_scores has rows for 2027-04, which a plan paid by quarter does not read"
    tables["mbo_scores"] += [dict(rep_id=rep, period=period, score="0")
                             for rep, period in (("R2", "2027-Q2"), ("R3", "2027-Q1"), ("R3", "2027-Q2"))]
    with open_data(write_company(tmp_path / "scored", tables)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
        assert check_mbo_coverage(comp_plans(project.files), lines, dataset) == []


def test_quota_rows_of_another_period_kind_are_named_in_the_hint(tmp_path):
    """Monthly rows for a quarterly plan are not read: the warning says they are there."""
    tables = copy.deepcopy(GOOD)
    tables["quotas"] += [dict(rep_id="R3", period=f"2027-0{m}", amount="30000.00") for m in (1, 2, 3)]
    project = load_texts([("ae.plan", ATTAINMENT_PLAN)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
        labels = quota_labels(dataset)
    [warning] = check_quota_coverage(comp_plans(project.files), lines, labels)
    assert warning.hints[0] == ("the quotas table also has rows for 2027-01, 2027-02, 2027-03, which a plan paid "
                                "by quarter does not read")
    [warning] = check_quota_coverage(comp_plans(project.files), lines, ["2027-Q1"])
    assert warning.hints[0].startswith("give them quotas in the quotas table")


def line(rep_id: str, period: str, quota: str | None, proration: str | None = "1") -> dict:
    return dict(plan="AE", version=1, rep_id=rep_id, period=period, quota=quota and Decimal(quota),
                proration=proration and Decimal(proration))


@pytest.mark.parametrize("lines, missing", [
    ([line("R1", "2027-Q1", "100")], None),
    ([line("R1", "2027-Q1", None)], "R1 2027-Q1"),
    ([line("R1", "2027-Q1", "0")], "R1 2027-Q1"),  # a zero quota: attainment is empty too
    ([line("R1", "2027-Q1", None), line("R1", "2027-Q1", "100")], None),  # one line of the rep-period has it
    ([line("R1", "2027-Q2", None, proration=None)], None),  # a paid line of an earlier period: no quota there
])
def test_quota_coverage_by_rep_period(lines, missing):
    project = load_texts([("ae.plan", ATTAINMENT_PLAN)])
    warnings = check_quota_coverage(comp_plans(project.files), pd.DataFrame(lines))
    assert [w.message.split("(")[-1].split(")")[0] for w in warnings] == ([missing] if missing else [])


def test_plans_without_attainment_never_warn_of_quotas():
    project = load_texts([("ae.plan", ATTAINMENT_PLAN.replace("  attainment = bookings / quota\n", ""))])
    assert check_quota_coverage(comp_plans(project.files), pd.DataFrame([line("R1", "2027-Q1", None)])) == []


NEAR_MISS_PLAN = ATTAINMENT_PLAN + """  component "Logos" on bookings
    rate 1%
    multiplier 2 where deal.product in ("new_logo", "expansion")
"""


@pytest.mark.parametrize("change, expected", [
    (None, []),
    (edit("deals", 2, stage="Closed_Won"), [("RD024", "deals.csv", 2, "stage", "'Closed_Won' is not 'closed_won'")]),
    (edit("deals", 2, stage=" closed won"), [("RD024", "deals.csv", 2, "stage", "' closed won' is not 'closed_won'")]),
    (edit("deals", 1, product="New-Logo"), [("RD024", "deals.csv", 1, "product", "'New-Logo' is not 'new_logo'")]),
    (edit("reps", 3, role="ae"), [("RD024", "reps.csv", 3, "role", "'ae' is not 'AE'")]),
    # a role on a dated assignment is compared too
    (edit("rep_assignments", 2, role="Ae "), [("RD024", "rep_assignments.csv", 2, "role", "'Ae ' is not 'AE'")]),
    # a zero-width space, pasted from a document along with the value
    (edit("deals", 2, stage="closed\u200b_won"),
     [("RD024", "deals.csv", 2, "stage", "'closed\\u200b_won' is not 'closed_won'")]),
    # values no plan names are normal data: "open", a product the plan does not mention
    (edit("deals", 2, stage="open", product="renewal"), []),
    # texts that differ in more than case and spacing are not near misses
    (edit("deals", 2, stage="closedwon"), []),
])
def test_values_that_differ_from_a_plan_text_only_in_case_or_spacing_warn(tmp_path, change, expected):
    tables = copy.deepcopy(GOOD)
    if change:
        change(tables)
    project = load_texts([("ae.plan", NEAR_MISS_PLAN)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        warnings = check_near_miss_values(project.files, dataset)
    assert [(*summary(w), w.message.split(",")[0]) for w in warnings] == expected
    assert all(w.severity is Severity.WARNING for w in warnings)


def test_a_near_miss_names_the_plan_text_its_place_and_how_many_rows(tmp_path):
    tables = copy.deepcopy(GOOD)
    tables["deals"][0]["stage"] = tables["deals"][1]["stage"] = "Closed Won"
    project = load_texts([("ae.plan", NEAR_MISS_PLAN)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        [warning] = check_near_miss_values(project.files, dataset)
    assert warning.message == (
        "'Closed Won' is not 'closed_won', which ae.plan:2:43 compares deal.stage with; texts match exactly, "
        "so the 2 rows with it meet no condition on 'closed_won' (line 2)"
    )
    assert warning.hints == ("write 'closed_won' in the data, or name both values in the plan",)


ROLES_HINT = "rep.role in the data: 'AE', 'Manager'"
DATES_HINT = "check `applies to` and the plan's dates against the data (hire and termination dates)"


@pytest.mark.parametrize("applies_to, dates, hints", [
    ('rep.role = "AE"', "2027-01-01 to 2027-06-30", None),
    # a bonus nobody earns still gives its reps their lines: the plan reaches them
    ('rep.role = "AE" and rep.region = "NA"', "2027-01-01 to 2027-06-30", None),
    ('rep.role = "Account Executive"', "2027-01-01 to 2027-06-30", [ROLES_HINT, DATES_HINT]),  # the data says AE
    ('rep.role = "AE"', "2019-01-01 to 2019-06-30", [ROLES_HINT, DATES_HINT]),  # before anyone was hired
    # the values of a text field help; those of an amount do not
    ('rep.target_incentive > 1,000,000 USD', "2027-01-01 to 2027-06-30", [DATES_HINT]),
])
def test_a_comp_plan_that_reaches_no_rep_warns_at_its_applies_to(tmp_path, applies_to, dates, hints):
    text = (ATTAINMENT_PLAN.replace('rep.role = "AE"', applies_to).replace("2027-01-01 to 2027-06-30", dates)
            + '  component "Never"\n    bonus 1 USD when bookings > 1,000,000,000 USD\n')
    project = load_texts([("ae.plan", text)])
    with open_data(write_company(tmp_path, GOOD)) as dataset:
        lines = run_plans(project.files, dataset.connection).payout_lines
        warnings = check_plans_reach_reps(comp_plans(project.files), lines, dataset)
    assert [(w.code, w.severity, w.span.line) for w in warnings] == ([("RD025", Severity.WARNING, 8)] if hints else [])
    if hints:
        assert warnings[0].message.endswith("so it pays nobody")
        assert list(warnings[0].hints) == hints


RUN_OFF_PLAN = """revplan 1
measure bookings = sum(deal.amount) where deal.stage = "closed_won"
comp plan "CSM" version 1
  effective 2027-01-01 to 2027-06-30
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  TIMING
  component "Bookings" on bookings
    rate 5%
"""
PAID = "paid on payment"
LONG_CLAWBACK = "clawback cancelled deals within 1,000 days"


@pytest.mark.parametrize("timing, change, expected", [
    (PAID, None, []),
    # the run-off of a plan that ends on 2027-06-30 ends on 2029-06-30
    (PAID, edit("deals", 1, paid_date="2029-07-01"), [("RD026", "deals.csv", 1, "paid_date")]),
    (PAID, edit("deals", 1, paid_date="2029-06-30"), []),
    # a plan paid on booking has paid the deal when it closed
    (LONG_CLAWBACK, edit("deals", 1, paid_date="2029-07-01"), []),
    # a deal that closed before the plan is another plan's
    (PAID, edit("deals", 1, close_date="2026-12-20", paid_date="2029-07-01"), []),
    # cancelled 773 days after it closed: within the window, after the run-off
    (LONG_CLAWBACK, edit("deals", 1, close_date="2027-06-20", cancel_date="2029-08-01"),
     [("RD026", "deals.csv", 1, "cancel_date")]),
    (LONG_CLAWBACK, edit("deals", 1, close_date="2027-06-20", cancel_date="2029-06-30"), []),
])
def test_a_deal_paid_or_cancelled_after_a_plans_run_off_warns_at_its_row(tmp_path, timing, change, expected):
    tables = copy.deepcopy(GOOD)
    if change:
        change(tables)
    project = load_texts([("csm.plan", RUN_OFF_PLAN.replace("TIMING", timing))])
    with open_data(write_company(tmp_path, tables)) as dataset:
        warnings = check_run_off(comp_plans(project.files), dataset)
    assert [summary(w) for w in warnings] == expected
    assert all(w.severity is Severity.WARNING for w in warnings)


def test_a_late_payment_names_the_deal_the_plan_and_how_many_more(tmp_path):
    tables = copy.deepcopy(GOOD)
    for deal in tables["deals"]:
        deal["paid_date"] = "2030-01-15"
    project = load_texts([("csm.plan", RUN_OFF_PLAN.replace("TIMING", PAID))])
    with open_data(write_company(tmp_path, tables)) as dataset:
        [warning] = check_run_off(comp_plans(project.files), dataset)
    assert warning.message == (
        "deal 'D1': paid_date 2030-01-15 is after 2029-06-30, the end of the run-off of comp plan \"CSM\" version 1 "
        "(the period 2 years after its last day), so if the plan credits the deal, no line pays its commission; "
        "2 more deals are that late (line 2)"
    )


INPUTS_PLAN = """revplan 1

comp plan "AE" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  credit owner
  credit splits
  paid on payment
  clawback cancelled deals within 90 days

  component "Commission" on bookings
    rate 5%
    multiplier 1.5 where deal.account_id = "A1"
"""
SHARED_MEASURES = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won" and deal.product != "trial"
"""


# (what the data lacks, where the plan reads it: (file, line), what the warning says the plan reads)
@pytest.mark.parametrize("change, expected", [
    (None, []),
    (drop_column("deals", "paid_date"), [("ae.plan", 3, "deal.paid_date (it is paid on payment)")]),
    (drop_column("deals", "cancel_date"), [("ae.plan", 11, "deal.cancel_date (its clawback)")]),
    (drop_table("deal_splits"), [("ae.plan", 3, "deal_splits (it credits splits)")]),  # the IR keeps no credit line
    (lambda t: t["deal_splits"].clear(), [("ae.plan", 3, "deal_splits (it credits splits)")]),  # a header only
    (drop_column("deals", "account_id"), [("ae.plan", 15, "deal.account_id")]),
    # through a shared measure the plan's component is paid on
    (drop_column("deals", "product"), [("measures.plan", 3, "deal.product")]),
    # a required column is RD003's, an error of the data contract
    (drop_column("deals", "stage"), []),
])
def test_a_plan_reading_an_optional_input_the_data_lacks_warns_at_its_line(tmp_path, change, expected):
    tables = copy.deepcopy(GOOD)
    if change:
        change(tables)
    project = load_texts([("ae.plan", INPUTS_PLAN), ("measures.plan", SHARED_MEASURES)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        warnings = check_plan_inputs(project.files, dataset)
    assert [(w.span.file, w.span.line, w.message.split(" reads ")[1].split(", but")[0]) for w in warnings] == expected
    assert all(w.code == "RD033" and w.severity is Severity.WARNING for w in warnings)


IMPLIED_INPUTS = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Managers" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  credit rollup
  component "Override" on bookings
    rate 1%

quota plan "Q" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
  target 1,000,000 USD
  allocate by territory_potential 100%
  phasing 25%, 25%, 25%, 25%
"""


@pytest.mark.parametrize("change, expected", [
    (None, []),
    (drop_column("reps", "manager_id"), ["rep.manager_id (its roll-up to managers)"]),
    (drop_column("accounts", "potential"), ["account.potential (its allocation by territory potential)"]),
])
def test_inputs_constructs_read_without_naming_them_warn_too(tmp_path, change, expected):
    """A roll-up without reps.manager_id paid managers 0.00, an allocation by potential without accounts.potential
    gave every rep another quota, each with no word (audit)."""
    tables = copy.deepcopy(GOOD)
    if change:
        change(tables)
    project = load_texts([("plans.plan", IMPLIED_INPUTS)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        warnings = check_plan_inputs(project.files, dataset)
    assert [w.message.split(" reads ")[1].split(", but")[0] for w in warnings] == expected


def test_a_missing_input_says_what_the_plan_gets_instead(tmp_path):
    tables = copy.deepcopy(GOOD)
    drop_column("deals", "paid_date")(tables)
    project = load_texts([("ae.plan", INPUTS_PLAN), ("measures.plan", SHARED_MEASURES)])
    with open_data(write_company(tmp_path, tables)) as dataset:
        [warning] = check_plan_inputs(project.files, dataset)
    assert warning.message == (
        f'comp plan "AE" version 1 reads deal.paid_date (it is paid on payment), but {tmp_path / "deals.csv"} has '
        "no paid_date column: every deal's paid_date is empty"
    )


@pytest.mark.parametrize("source, hint", [
    ("folder", "add deal_splits.csv or deal_splits.parquet (columns: deal_id, rep_id, percent)"),
    ("duckdb", "add a table named deal_splits (columns: deal_id, rep_id, percent)"),
])
def test_a_missing_table_is_added_where_the_source_keeps_tables(tmp_path, source, hint):
    tables = copy.deepcopy(GOOD)
    drop_table("deal_splits")(tables)
    folder = write_company(tmp_path / "csv", tables)
    if source == "duckdb":
        with duckdb.connect(str(tmp_path / "crm.duckdb")) as connection:
            for table in tables:
                connection.execute(f"CREATE TABLE {table} AS FROM read_csv('{folder / f'{table}.csv'}')")
        folder = tmp_path / "crm.duckdb"
    project = load_texts([("ae.plan", INPUTS_PLAN), ("measures.plan", SHARED_MEASURES)])
    with open_data(folder) as dataset:
        [warning] = check_plan_inputs(project.files, dataset)
    assert warning.hints[0] == hint


# ---------------------------------------------------------------- garbled data, end to end

# Values people and tools put in cells: empty, blank, words, other number and date formats, quotes, separators,
# huge and tiny numbers, other scripts, control characters.
ODD_VALUES = ["", " ", "abc", "0", "-0.00", "-1", "1e5", "1.5E-3", "NaN", "inf", "1,000.00", "$12", "12%",
              "99999999999999999999999.99", "0.000000001", "2027-02-30", "31/12/2027", "2027-1-5", "9999-12-31",
              "true", "null", "NULL", "R1", "D1", "A1", "EUR", "usd", '"', "a,b", "x\ny", "é", "\t", "\x00", "🙂"]


@st.composite
def garblings(draw):
    """One to three changes to GOOD: odd values in random cells, a dropped column, a row twice or gone."""
    tables = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        table = draw(st.sampled_from(sorted(tables)))
        rows = tables[table]
        kind = draw(st.sampled_from(["cell", "cell", "cell", "column", "twice", "gone"]))
        if not rows:
            continue
        if kind == "cell":
            row = draw(st.sampled_from(rows))
            row[draw(st.sampled_from(sorted(row)))] = draw(st.sampled_from(ODD_VALUES) | st.text(max_size=8))
        elif kind == "column":
            drop_column(table, draw(st.sampled_from(sorted(rows[0]))))(tables)
        elif kind == "twice":
            rows.append(dict(draw(st.sampled_from(rows))))
        else:
            rows.remove(draw(st.sampled_from(rows)))
    return tables


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=garblings())
def test_garbled_data_gets_diagnostics_or_a_run_never_a_crash(tmp_path_factory, tables):
    """Whatever is in the files, `revplan run` either pays or stops with diagnostics that name where the data is
    wrong; an uncaught exception (a traceback) fails the test."""
    folder = tmp_path_factory.mktemp("garbled")
    (folder / "plans").mkdir()
    (folder / "plans" / "ae.plan").write_text(NEAR_MISS_PLAN, encoding="utf-8")
    data = write_company(folder / "data", tables)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--data", str(data), "--plans", str(folder / "plans"), "--out", str(folder / "out")])
    assert code in (0, 1), err.getvalue()
    if code == 1:
        assert "error[RD" in err.getvalue(), err.getvalue()
    else:
        assert (folder / "out" / "payout_lines.csv").is_file()
