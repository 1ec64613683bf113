"""A paid period stays paid: its lines depend only on what had happened by its last day.

Payroll pays 2027-Q2 at the end of June. Rerun at year end, with the rest of
the year's deals, payments and cancellations in the data, 2027-Q2's lines
must come out the same, or the books of a closed period change. Each case
runs the sample plans on the sample company as it stood on a period's last
day (later deals, activities and MBO scores removed, later payment and
cancel dates still empty) and compares that period's lines, and every
earlier one's, with the whole year's run. The roster, accounts and quotas
are plan inputs known up front and stay as they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dsl.project import load_paths
from revplan.cli import period_range
from runtime.data import open_data
from runtime.run import run_plans
from runtime.sample_data import generate_sample_company

ROOT = Path(__file__).resolve().parents[2]
PERIODS = ["2027-Q1", "2027-Q2", "2027-Q3"]


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("closed") / "data"
    generate_sample_company(folder, reps=60, deals=3000, seed=11)
    return folder


def as_of(company: Path, day: str, folder: Path) -> Path:
    """The company's data as it stood at the end of `day` (ISO dates compare as text)."""
    folder.mkdir(parents=True)
    for path in company.glob("*.csv"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.stem == "deals":
            table = table[table["close_date"] <= day].copy()
            for column in ("cancel_date", "paid_date"):
                table.loc[table[column] > day, column] = ""
        elif path.stem == "deal_splits":
            table = table[table["deal_id"].isin(set(pd.read_csv(company / "deals.csv", dtype=str).query(
                "close_date <= @day")["id"]))]
        elif path.stem == "activities":
            table = table[table["date"] <= day]
        elif path.stem == "mbo_scores":
            table = table[[period_range(p)[1].isoformat() <= day for p in table["period"]]]
        table.to_csv(folder / path.name, index=False)
    return folder


def lines(data: Path, engine: str) -> pd.DataFrame:
    project = load_paths([ROOT / "plans"])
    with open_data(data) as source:
        return run_plans(project.files, source.connection, engine=engine).payout_lines


@pytest.fixture(scope="module")
def year_end(company) -> dict[str, pd.DataFrame]:
    """The whole year's lines, by engine: what each period is compared with."""
    return {engine: lines(company, engine) for engine in ("duckdb", "python")}


@pytest.mark.parametrize("engine", ["duckdb", "python"])
@pytest.mark.parametrize("period", PERIODS)
def test_a_periods_lines_do_not_change_when_later_data_arrives(company, year_end, tmp_path, engine, period):
    last_day = period_range(period)[1].isoformat()
    whole = year_end[engine]
    then = lines(as_of(company, last_day, tmp_path / "as_of"), engine)
    closed = sorted(p for p in set(whole["period"]) if period_range(p)[1].isoformat() <= last_day)
    keys = ["plan", "version", "rep_id", "period", "line_type", "component"]
    expected = whole[whole["period"].isin(closed)].sort_values(keys).reset_index(drop=True)
    actual = then[then["period"].isin(closed)].sort_values(keys).reset_index(drop=True)
    # the case this guards: clawbacks of a plan measured year to date
    assert ((whole["plan"] == "Commercial AE") & (whole["line_type"] == "clawback")).any()
    pd.testing.assert_frame_equal(actual, expected)
