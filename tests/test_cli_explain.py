"""Quota and territory plans in the commands: `revplan run` outputs and `revplan explain`.

`revplan.cli.main([...])` on a small sample company, as a person would type
it: run writes quotas.csv and territory_report.csv with a summary line for
each; explain tells how a quota was derived and which territory holds an
account; names it does not know get one clear message with what exists.
"""

from __future__ import annotations

import contextlib
import io
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from revplan.cli import main
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
PLANS = ROOT / "plans"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample") / "data"
    assert main(["sample-data", "--out", str(folder), "--reps", "40", "--deals", "1000", "--seed", "3"]) == 0
    return folder


@pytest.fixture(scope="module")
def sample_run(sample, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["run", "--data", str(sample), "--plans", str(PLANS), "--out", str(out)]) == 0
    return out, stdout.getvalue()


def test_run_writes_quotas_and_the_territory_report(sample_run):
    out, printed = sample_run
    quotas = pd.read_csv(out / "quotas.csv", dtype=str)
    assert {"FY27 AE Quotas", "FY27 CSM Quotas"} == set(quotas["plan"])
    assert {"plan", "version", "rep_id", "period", "amount", "derivation"} <= set(quotas.columns)
    years = quotas[quotas["period_kind"] == "year"]
    assert set(years["period"]) == {"2027"}
    assert all(Decimal(a) % 1000 == 0 for a in quotas[quotas["plan"] == "FY27 AE Quotas"]["amount"])
    report = pd.read_csv(out / "territory_report.csv", dtype=str)
    assert {"coverage", "overlaps", "max_min_ratio", "cv", "balance"} <= set(report["check"])
    assert "quotas: FY27 AE Quotas v1" in printed and "territories: FY27 Territories v1:" in printed
    manifest = (out / "manifest.json").read_text()
    assert "quotas.csv" in manifest and "territory_report.csv" in manifest


def test_payouts_use_the_quota_plans_quotas(sample_run):
    out, _ = sample_run
    quotas = pd.read_csv(out / "quotas.csv", dtype=str)
    lines = pd.read_csv(out / "payout_lines.csv", dtype=str)
    ae = lines[(lines["plan"] == "Enterprise AE") & (lines["component"] == "New business")].iloc[0]
    (quota,) = quotas[
        (quotas["plan"] == "FY27 AE Quotas") & (quotas["rep_id"] == ae["rep_id"]) & (quotas["period"] == ae["period"])
    ]["amount"]
    # the payout line's quota is the plan's, prorated by active days (equal for a full quarter)
    assert Decimal(ae["quota"]) <= Decimal(quota)


def test_explain_quota(sample, sample_run, capsys):
    out, _ = sample_run
    quotas = pd.read_csv(out / "quotas.csv", dtype=str)
    rep = quotas[quotas["plan"] == "FY27 AE Quotas"]["rep_id"].iloc[0]
    code, text, _ = run_cli(capsys, "explain", "--quota", rep, "--data", sample, "--plans", PLANS)
    assert code == 0
    assert f'quota plan "FY27 AE Quotas" v1: quota of {rep}' in text
    assert "To allocate: 79,200,000" in text and "territory potential" in text and "phasing 22%" in text
    code, text, _ = run_cli(
        capsys, "explain", "--quota", rep, "--period", "2027-Q3", "--data", sample, "--plans", PLANS
    )
    assert code == 0 and "2027-Q3:" in text and "2027-Q1:" not in text


def test_explain_account(sample, capsys):
    code, text, _ = run_cli(capsys, "explain", "--account", "A00001", "--data", sample, "--plans", PLANS)
    assert code == 0
    assert 'territory plan "FY27 Territories" v1' in text
    assert "rule: " in text and "owner: " in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--quota", "R999"], "no quota plan gives 'R999' a quota"),
        (["--account", "A0001"], "did you mean 'A000"),
        (["--quota", "R0001", "--date", "2027-01-01"], "--date is for --account"),
        (["--account", "A00001", "--period", "2027-Q1"], "--period is for --rep and --quota"),
        (["--account", "A00001", "--date", "July"], "'July' is not a date"),
        (["--rep", "R0027", "--memory-limit", "1MB"], "RP414]: DuckDB ran out of memory at --memory-limit 1MB"),
        # a month of a quarterly plan: its quarter, not the look-alike 2027-Q3
        (["--rep", "R0013", "--period", "2027-03"], "hint: 2027-03 is within 2027-Q1: use --period 2027-Q1"),
        (["--quota", "R0013", "--period", "2027-03"], "hint: 2027-03 is within 2027-Q1, 2027: use --period 2027-Q1"),
    ],
)
def test_explain_mistakes_get_one_clear_message(sample, capsys, argv, expected):
    code, out, err = run_cli(capsys, "explain", *argv, "--data", sample, "--plans", PLANS)
    assert code == 1
    assert expected in err


def test_explain_takes_one_target(sample, capsys):
    code, _, err = run_cli(capsys, "explain", "--quota", "R0001", "--account", "A00001", "--data", sample)
    assert code == 2 and "not allowed with" in err
