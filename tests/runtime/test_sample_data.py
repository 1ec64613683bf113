"""The sample company: coherent, deterministic, and within the data contract."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from dsl.diagnostics import RevplanError
from runtime import sample_data
from runtime.contract import check_data
from runtime.data import open_data
from runtime.sample_data import generate_sample_company

TABLES = ["accounts", "activities", "deal_splits", "deals", "fx_rates", "mbo_scores", "quotas", "rep_assignments",
          "reps"]


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    """The default company (200 reps, 20,000 deals), as CSV."""
    folder = tmp_path_factory.mktemp("company")
    generate_sample_company(folder)
    return folder


@pytest.fixture(scope="module")
def db(company):
    with open_data(company) as data:
        yield data.connection


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_writes_one_csv_per_table(company):
    assert sorted(p.name for p in company.iterdir()) == [f"{t}.csv" for t in TABLES]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generated_data_keeps_the_contract(tmp_path, fmt):
    generate_sample_company(tmp_path, reps=40, deals=3_000, fmt=fmt)
    with open_data(tmp_path) as data:
        assert check_data(data) == []


def test_the_default_company_keeps_the_contract(company):
    with open_data(company) as data:
        assert check_data(data) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_arguments_same_bytes(tmp_path, fmt):
    generate_sample_company(tmp_path / "a", reps=30, deals=5_000, seed=7, fmt=fmt)
    generate_sample_company(tmp_path / "b", reps=30, deals=5_000, seed=7, fmt=fmt)
    generate_sample_company(tmp_path / "c", reps=30, deals=5_000, seed=8, fmt=fmt)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a")[f"deals.{fmt}"] != digests(tmp_path / "c")[f"deals.{fmt}"]


def test_more_deals_keep_the_roster(tmp_path):
    generate_sample_company(tmp_path / "small", reps=30, deals=1_000)
    generate_sample_company(tmp_path / "large", reps=30, deals=3_000)
    assert digests(tmp_path / "small")["reps.csv"] == digests(tmp_path / "large")["reps.csv"]


def test_a_bigger_company_keeps_the_reps_and_accounts_the_plans_name(tmp_path):
    """plans/ name reps (territory owners and overlays) and accounts of the 200-rep company: a company of
    10,000 reps has those same reps, row for row, and ids that only grow a digit past R9999 and A99999."""
    generate_sample_company(tmp_path / "demo", reps=200, deals=100)
    generate_sample_company(tmp_path / "big", reps=10_000, deals=100)
    connection = duckdb.connect()
    demo, big = (connection.read_csv(str(tmp_path / name / "reps.csv"), all_varchar=True) for name in ("demo", "big"))
    assert big.limit(200).fetchall() == demo.fetchall()
    ids = [row[0] for row in big.fetchall()]
    assert ids[:3] == ["R0001", "R0002", "R0003"] and ids[9_998:] == ["R9999", "R10000"]
    assert all(manager in ids for (manager,) in big.select("manager_id").filter("manager_id IS NOT NULL").fetchall())
    accounts = sample_data._Accounts.build(100_000, seed=1).ids.to_pylist()  # as 2M deals have
    assert accounts[218 - 1] == "A00218" and accounts[-2:] == ["A99999", "A100000"]


def test_csv_and_parquet_load_the_same(tmp_path):
    generate_sample_company(tmp_path / "csv", reps=30, deals=2_500, fmt="csv")
    generate_sample_company(tmp_path / "parquet", reps=30, deals=2_500, fmt="parquet")
    with open_data(tmp_path / "csv") as csv_data, open_data(tmp_path / "parquet") as parquet_data:
        for table in TABLES:
            query = f"SELECT * FROM {table} ORDER BY ALL"
            csv_rows = csv_data.connection.execute(query).fetchall()
            assert csv_rows, table
            assert csv_rows == parquet_data.connection.execute(query).fetchall(), table
            describe = f"DESCRIBE {table}"
            assert csv_data.connection.execute(describe).fetchall()[:10] == \
                parquet_data.connection.execute(describe).fetchall()[:10], table


def test_auto_format_switches_to_parquet_for_many_deals_and_removes_the_csv(tmp_path):
    generate_sample_company(tmp_path, reps=10, deals=100)
    assert (tmp_path / "deals.csv").exists()
    files = generate_sample_company(tmp_path, reps=10, deals=sample_data.PARQUET_ABOVE_DEALS + 1)
    assert files["deals"] == tmp_path / "deals.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{t}.parquet" for t in TABLES]
    with open_data(tmp_path) as data:
        assert data.connection.execute("SELECT count(*) FROM deals").fetchall() == [(200_001,)]


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(path, schema, batches):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(sample_data, "_write_csv", fail)
    with pytest.raises(RevplanError) as caught:
        generate_sample_company(tmp_path, reps=10, deals=10)
    assert caught.value.diagnostics[0].code == "RD030"
    assert "disk full" in caught.value.diagnostics[0].message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arguments", [dict(reps=3), dict(deals=-1), dict(fmt="xlsx"), dict(year=10_000)])
def test_bad_arguments_are_diagnostics(tmp_path, arguments):
    with pytest.raises(RevplanError) as caught:
        generate_sample_company(tmp_path, **arguments)
    assert caught.value.diagnostics[0].code == "RD030"


def test_a_runs_output_folder_is_refused_and_left_as_it_is(tmp_path):
    """quotas.csv is a table of the sample and an output of a run: generating into a run's folder replaced it."""
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "quotas.csv").write_text("a run's quotas\n")
    with pytest.raises(RevplanError) as caught:
        generate_sample_company(tmp_path, reps=10, deals=10)
    assert caught.value.diagnostics[0].code == "RD030"
    assert (tmp_path / "quotas.csv").read_text() == "a run's quotas\n"


def test_progress_names_each_step(tmp_path):
    steps = []
    generate_sample_company(tmp_path, reps=10, deals=10, progress=steps.append)
    assert steps == ["reps", "accounts", "deals", "deal_splits", "quotas", "mbo_scores", "activities", "fx_rates",
                     "rep_assignments"]


# --- a coherent company --------------------------------------------------------------


def test_hierarchy_cro_vps_managers_teams(db):
    top = db.execute("SELECT id, role, title FROM reps WHERE manager_id IS NULL").fetchall()
    assert top == [("R0001", "Manager", "Chief Revenue Officer")]
    vps = db.execute("SELECT region FROM reps WHERE manager_id = 'R0001' ORDER BY id").fetchall()
    assert vps == [("NA",), ("EMEA",), ("APAC",)]
    # Every team member reports to a manager of the same region, who leads a team of their kind.
    teams = db.execute(
        "SELECT m.role, list(DISTINCT r.role ORDER BY r.role), count(*) FILTER (WHERE m.region <> r.region)"
        " FROM reps r JOIN reps m ON m.id = r.manager_id"
        " WHERE r.role NOT LIKE '%Manager' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert teams == [("Manager", ["AE", "CSM"], 0), ("SDR Manager", ["SDR"], 0), ("SE Manager", ["SE"], 0)]


def test_roles_segments_regions_and_currencies(db):
    roles = dict(db.execute("SELECT role, count(*) FROM reps GROUP BY 1").fetchall())
    assert set(roles) == {"AE", "SDR", "SE", "CSM", "Manager", "SDR Manager", "SE Manager"}
    segments = {s for (s,) in db.execute("SELECT DISTINCT segment FROM reps WHERE role = 'AE'").fetchall()}
    assert segments == {"Enterprise", "Commercial"}
    emea = dict(db.execute("SELECT currency, count(*) FROM reps WHERE region = 'EMEA' GROUP BY 1").fetchall())
    assert emea["EUR"] > emea.get("USD", 0)
    assert {c for (c,) in db.execute("SELECT DISTINCT currency FROM deals").fetchall()} == {"USD", "EUR", "GBP"}


def test_mid_year_hires_and_terminations(db):
    hires, leavers = db.execute(
        "SELECT count(*) FILTER (WHERE hire_date >= DATE '2027-01-01'),"
        " count(*) FILTER (WHERE termination_date IS NOT NULL) FROM reps"
    ).fetchall()[0]
    assert hires > 5 and leavers > 0


def test_deals_close_while_their_owner_is_employed(db):
    outside = db.execute(
        "SELECT count(*) FROM deals d JOIN reps r ON r.id = d.owner_rep_id"
        " WHERE d.close_date < r.hire_date OR d.close_date > coalesce(r.termination_date, DATE '9999-12-31')"
    ).fetchall()
    assert outside == [(0,)]
    owners = {r for (r,) in db.execute(
        "SELECT DISTINCT r.role FROM deals d JOIN reps r ON r.id = d.owner_rep_id").fetchall()}
    assert owners == {"AE", "CSM"}


def test_deal_mix(db):
    years = dict(db.execute("SELECT year(close_date), count(*) FROM deals GROUP BY 1").fetchall())
    assert set(years) == {2026, 2027} and years[2026] < years[2027] / 4
    stages = dict(db.execute("SELECT stage, count(*) FROM deals GROUP BY 1").fetchall())
    assert set(stages) == {"closed_won", "closed_lost", "open"}
    products = {p for (p,) in db.execute("SELECT DISTINCT product FROM deals").fetchall()}
    assert products == {"new_logo", "expansion", "renewal", "analytics"}
    cents = db.execute("SELECT count(*) FROM deals WHERE amount * 100 % 100 <> 0").fetchall()[0][0]
    assert cents > 1_000  # amounts to the cent, not rounded dollars


def test_cancellations_and_payments(db):
    won, cancelled, within_90, paid, wrong = db.execute(
        "SELECT count(*) FILTER (WHERE stage = 'closed_won'), count(cancel_date),"
        " count(*) FILTER (WHERE cancel_date - close_date <= 90), count(paid_date),"
        " count(*) FILTER (WHERE (cancel_date IS NOT NULL OR paid_date IS NOT NULL) AND stage <> 'closed_won'"
        "   OR cancel_date <= close_date OR paid_date <= close_date) FROM deals"
    ).fetchall()[0]
    assert 0.02 < cancelled / won < 0.04
    assert 0 < within_90 < cancelled
    assert paid > 0.8 * won
    assert wrong == 0


def test_splits(db):
    deals, split_deals, shares = db.execute(
        "SELECT (SELECT count(*) FROM deals), count(DISTINCT deal_id), list(DISTINCT percent ORDER BY percent)"
        " FROM deal_splits"
    ).fetchall()[0]
    assert 0.04 < split_deals / deals < 0.06
    assert Decimal("0.6") in shares and Decimal("0.4") in shares
    owners_first = db.execute(
        "SELECT count(*) FROM deal_splits s JOIN deals d ON d.id = s.deal_id"
        " WHERE s.rep_id = d.owner_rep_id").fetchall()[0][0]
    assert owners_first == split_deals


def test_quotas_follow_target_incentives_and_roll_up(db):
    periods = {p for (p,) in db.execute("SELECT DISTINCT period FROM quotas").fetchall()}
    assert periods == {"2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"}
    # A full-year Enterprise AE paid in USD: annual quota = 10 x target incentive.
    ratio = db.execute(
        "SELECT DISTINCT sum(q.amount) / any_value(r.target_incentive) FROM quotas q JOIN reps r ON r.id = q.rep_id"
        " WHERE r.segment = 'Enterprise' AND r.role = 'AE' AND r.currency = 'USD'"
        " AND r.hire_date < DATE '2027-01-01' AND r.termination_date IS NULL GROUP BY r.id"
    ).fetchall()
    assert {round(r, 2) for (r,) in ratio} == {Decimal("10")}
    cro = db.execute("SELECT sum(amount) FROM quotas WHERE rep_id = 'R0001'").fetchall()[0][0]
    vps = db.execute("SELECT sum(amount) FROM quotas q JOIN reps r ON r.id = q.rep_id"
                     " WHERE r.manager_id = 'R0001'").fetchall()[0][0]
    assert abs(cro - vps) < 10  # per-quarter rounding only


def test_bookings_are_in_line_with_quotas(db):
    """Deal sizes follow quotas: the median seller attains between 50 % and 150 %."""
    (median,) = db.execute(
        "WITH won AS (SELECT owner_rep_id AS rep, sum(amount) AS bookings FROM deals"
        "  WHERE stage = 'closed_won' AND year(close_date) = 2027 GROUP BY 1),"
        " quota AS (SELECT rep_id AS rep, sum(amount) AS quota FROM quotas GROUP BY 1)"
        " SELECT median(bookings / quota) FROM won JOIN quota USING (rep)"
    ).fetchall()[0]
    assert 0.5 < median < 1.5


def test_fx_rates_daily_for_two_years_both_ways(db):
    days, pairs, first, last = db.execute(
        'SELECT count(DISTINCT date), count(DISTINCT ("from", "to")), min(date), max(date) FROM fx_rates'
    ).fetchall()[0]
    assert (days, pairs) == (730, 6)
    assert (str(first), str(last)) == ("2026-01-01", "2027-12-31")
    eur_usd, usd_eur = db.execute(
        """SELECT max(rate) FILTER (WHERE "from" = 'EUR' AND "to" = 'USD'),"""
        """ max(rate) FILTER (WHERE "from" = 'USD' AND "to" = 'EUR') FROM fx_rates WHERE date = DATE '2027-06-30'"""
    ).fetchall()[0]
    assert abs(eur_usd * usd_eur - 1) < Decimal("0.000001")


def test_activities_are_sdr_work(db):
    roles = db.execute(
        "SELECT DISTINCT r.role FROM activities a JOIN reps r ON r.id = a.rep_id").fetchall()
    assert roles == [("SDR",)]
    types = {t for (t,) in db.execute("SELECT DISTINCT type FROM activities").fetchall()}
    assert types == {"meeting", "call", "email"}


def test_some_sdrs_are_promoted_to_commercial_ae_mid_year(db):
    rows = db.execute(
        "SELECT a.rep_id, r.role, r.hire_date, r.termination_date, a.start_date, a.end_date, a.role, a.segment,"
        " a.region = r.region FROM rep_assignments a JOIN reps r ON r.id = a.rep_id ORDER BY a.rep_id, a.start_date"
    ).fetchall()
    sdrs = db.execute("SELECT count(*) FROM reps WHERE role = 'SDR'").fetchall()[0][0]
    assert 2 <= len(rows) // 2 < sdrs and len(rows) % 2 == 0
    for sdr, ae in zip(rows[::2], rows[1::2], strict=True):
        rep_id, role, hired, terminated = sdr[:4]
        assert ae[0] == rep_id and role == "SDR" and terminated is None and sdr[8] and ae[8]
        assert (sdr[4], sdr[6], sdr[7]) == (hired, "SDR", None)
        assert (ae[5], ae[6], ae[7]) == (None, "AE", "Commercial")
        assert (ae[4] - sdr[5]).days == 1 and 3 <= ae[4].month <= 9  # promoted March .. September


def test_mbo_scores_per_rep_and_quarter(db):
    low, high, per_rep = db.execute(
        "SELECT min(score), max(score), max(n) FROM mbo_scores,"
        " (SELECT count(*) AS n FROM mbo_scores GROUP BY rep_id)"
    ).fetchall()[0]
    assert Decimal("0.5") <= low and high <= Decimal("1.2") and per_rep == 4


def test_accounts(db):
    countries = {c for (c,) in db.execute("SELECT DISTINCT country FROM accounts").fetchall()}
    assert {"US", "DE", "GB", "FR", "JP"} <= countries
    states = db.execute(
        "SELECT count(*) FILTER (WHERE country = 'US' AND state IS NULL),"
        " count(*) FILTER (WHERE country <> 'US' AND state IS NOT NULL) FROM accounts").fetchall()
    assert states == [(0, 0)]
