"""The whole sample company pays the same on every engine, to the cent, line by line."""

from __future__ import annotations

import collections
import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from compiler.sql import DEAL_ID_COLUMNS, compile_plan
from dsl.project import load_paths
from dsl.schema import SCHEMA, Schema
from runtime.contract import check_data
from runtime.data import open_data
from runtime.run import (
    ROW_GROUP_ROWS,
    comp_plans,
    copy_table,
    deal_schema,
    normalise,
    postgres_session,
    quota_plans,
    run_plans,
    shared_measures,
    territory_plans,
)
from runtime.sample_data import generate_sample_company

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("REVPLAN_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def sample_company(tmp_path_factory):
    folder = tmp_path_factory.mktemp("company")
    generate_sample_company(folder, reps=80, deals=4000, seed=7)
    project = load_paths([ROOT / "plans"])
    assert project.ok, [d.message for d in project.diagnostics if d.is_error]
    with open_data(folder) as data:
        assert check_data(data) == []
        yield project, data


@pytest.fixture(scope="module")
def duckdb_lines(sample_company):
    project, data = sample_company
    return run_plans(project.files, data.connection).payout_lines


def test_money_is_decimal_and_every_plan_pays(duckdb_lines):
    assert len(duckdb_lines) > 0
    assert all(isinstance(v, Decimal) for v in duckdb_lines["amount"])
    assert all(v == v.quantize(Decimal("0.01")) for v in duckdb_lines["amount"])
    plans = set(duckdb_lines["plan"])
    assert {"Enterprise AE", "Commercial AE", "SDR", "Sales Manager", "Solutions Engineer", "Customer Success"} <= plans


def test_promoted_sdrs_are_paid_by_both_plans_for_their_days(sample_company, duckdb_lines):
    """An SDR promoted to Commercial AE mid-year: SDR lines up to the promotion month, Commercial AE
    lines from the promotion quarter, and that quarter's AE line prorated by the days as an AE when the
    plan prorates (the sample Commercial AE plan does not: a partial quarter counts whole, as for a hire)."""
    project, data = sample_company
    (commercial,) = [p for f in project.files for p in f.plans if p.name == "Commercial AE"]
    promotions = data.connection.execute(
        "SELECT rep_id, start_date FROM rep_assignments WHERE role = 'AE' ORDER BY rep_id").fetchall()
    assert promotions
    for rep_id, promoted in promotions:
        lines = duckdb_lines[duckdb_lines["rep_id"] == rep_id]
        sdr = sorted(set(lines[lines["plan"] == "SDR"]["period"]))
        ae = lines[lines["plan"] == "Commercial AE"]
        assert sdr and sdr[-1] == f"{promoted:%Y-%m}", (rep_id, promoted, sdr)
        quarter = f"{promoted.year}-Q{(promoted.month - 1) // 3 + 1}"
        assert sorted(set(ae["period"]))[0] == quarter
        first = ae[(ae["period"] == quarter) & ae["proration"].notna()]
        quarter_start = promoted.replace(month=3 * ((promoted.month - 1) // 3) + 1, day=1)
        quarter_end = (quarter_start.replace(month=quarter_start.month + 2, day=28) + pd.Timedelta(days=4))
        quarter_end = quarter_end.replace(day=1) - pd.Timedelta(days=1)
        days_as_ae = (quarter_end - promoted).days + 1
        period_days = (quarter_end - quarter_start).days + 1
        expected = (Decimal(days_as_ae) / Decimal(period_days)).quantize(Decimal("0.0000000001"))
        if not commercial.prorate:
            expected = Decimal("1.0000000000")
        assert set(first["proration"]) == {expected}, (rep_id, promoted)


def test_runs_are_repeatable(sample_company, duckdb_lines):
    project, data = sample_company
    again = run_plans(project.files, data.connection).payout_lines
    assert again.equals(duckdb_lines)


def test_compiled_sql_on_its_own_pays_what_a_run_pays(sample_company, duckdb_lines):
    """`revplan compile` prints SQL that computes everything itself (territory assignments, quota
    plans); a run computes those once and its plans read them from tables. Both pay the same."""
    project, data = sample_company
    files = project.files
    measures, territories, quotas = shared_measures(files), territory_plans(files), quota_plans(files)
    plans = comp_plans(files)
    assert any(plan.crediting.overlay for plan in plans) and any(plan.quota.plan for plan in plans)
    queries = [compile_plan(plan, measures, "duckdb", territories, quotas).sql("duckdb") for plan in plans]
    alone = [data.connection.sql(sql).to_arrow_table().to_pandas() for sql in queries]
    assert normalise(pd.concat(alone, ignore_index=True), plans).equals(duckdb_lines)


def require_postgres() -> None:
    """Skip without a server, visibly; in CI its absence is a failure."""
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must provide a PostgreSQL server (REVPLAN_TEST_POSTGRES_URL)")
        pytest.skip("no PostgreSQL server: set REVPLAN_TEST_POSTGRES_URL (source .ci/postgres.sh; start_postgres)")


@pytest.mark.postgres
def test_postgres_pays_the_same_as_duckdb(sample_company, duckdb_lines):
    require_postgres()
    project, data = sample_company
    postgres = run_plans(project.files, data.connection, engine="postgres", url=POSTGRES_URL).payout_lines
    assert len(postgres) == len(duckdb_lines)
    money = ["amount", "uncapped", "base", "quota", "target_incentive"]
    for column in duckdb_lines.columns:
        left, right = duckdb_lines[column].tolist(), postgres[column].tolist()
        if column in money or column in ("rate", "attainment", "proration"):
            left = [None if v is None else Decimal(v) for v in left]
            right = [None if v is None else Decimal(v) for v in right]
        assert left == right, f"column {column} differs between DuckDB and PostgreSQL"


@pytest.mark.postgres
def test_tables_reach_postgres_cell_for_cell(tmp_path):
    """The contract tables go to the server as CSV: empty text stays empty, NULL stays NULL, and
    quotes, commas, line breaks, decimals, dates and booleans arrive as they were."""
    require_postgres()
    import psycopg

    rows = [
        ("", None, "a,b", 'say "hi"', "two\nlines", Decimal("0.50"), Decimal("-1E-10"), dt.date(2027, 1, 1), True),
        (None, "x", None, None, None, None, None, None, None),
    ]
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE sent (a VARCHAR, b VARCHAR, c VARCHAR, d VARCHAR, e VARCHAR, f DECIMAL(18, 2), "
        "g DECIMAL(38, 10), h DATE, i BOOLEAN)"
    )
    connection.executemany("INSERT INTO sent VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS revplan_copy_test")
        pg.execute("SET search_path TO revplan_copy_test")
        pg.execute("DROP TABLE IF EXISTS sent")
        try:
            copy_table(connection, pg, "sent")
            got = pg.execute("SELECT * FROM sent ORDER BY b NULLS FIRST").fetchall()
        finally:
            pg.execute("DROP SCHEMA revplan_copy_test CASCADE")
    assert got == rows


@pytest.mark.postgres
def test_custom_columns_postgres_has_no_type_for_reach_it_as_text():
    """A CRM's own columns ride along with the contract tables: types PostgreSQL lacks arrive as text,
    names with quotes intact, 128-bit integers exact; a binary float (which no plan reads: the contract
    refuses it) as its text, never as NUMERIC."""
    require_postgres()
    import psycopg

    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE crm AS SELECT 18446744073709551615::UBIGINT AS big, (2::HUGEINT ** 100)::HUGEINT AS huge,"
        " '\\x00a'::BLOB AS bytes, [1, 2] AS list, {'k': 'v'} AS struct, 'x' AS \"say \"\"hi\"\"\","
        " 0.1::DOUBLE AS score"
    )
    with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
        copy_table(connection, pg, "crm")
        got = pg.execute("SELECT * FROM crm").fetchone()
        names = [d.name for d in pg.execute("SELECT * FROM crm").description]
    assert got == (Decimal(2**64 - 1), Decimal(2**100), "\\x00a", "[1, 2]", "{'k': v}", "x", "0.1")
    assert names == ["big", "huge", "bytes", "list", "struct", 'say "hi"', "score"]


@pytest.mark.postgres
def test_custom_columns_postgres_would_read_as_one_are_refused():
    require_postgres()
    import psycopg

    from dsl.diagnostics import RevplanError

    connection = duckdb.connect()
    long = "crm_" + "x" * 60
    connection.execute(f"CREATE TABLE crm AS SELECT 1 AS {long}_a, 2 AS {long}_b")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as pg, pytest.raises(RevplanError) as caught:
        copy_table(connection, pg, "crm")
    assert caught.value.diagnostics[0].message.startswith(f"columns '{long}_a' and '{long}_b' of crm are one name")


@pytest.mark.postgres
def test_postgres_engine_needs_no_create_privilege(tmp_path):
    """A read-only user runs plans on the server: the working tables are temporary. Without TEMP, on a
    read-only server, or stopped by a statement_timeout, a diagnostic says what to change."""
    require_postgres()
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from dsl.diagnostics import RevplanError

    name = f"revplan_ro_{os.getpid()}"
    user_url = make_conninfo(POSTGRES_URL, user=name, dbname=name)
    assert conninfo_to_dict(user_url)["user"] == name
    connection = duckdb.connect()
    connection.execute("CREATE TABLE fx_rates AS SELECT DATE '2027-01-01' AS date, 'EUR' AS \"from\", 1.08 AS rate")
    rates = Schema(entities=(SCHEMA.entity("fx_rates"),))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC")
        try:
            with postgres_session(connection, user_url, rates) as session:
                assert session.run("SELECT rate FROM fx_rates").values.tolist() == [[Decimal("1.08")]]
            admin.execute(f"REVOKE TEMP ON DATABASE {name} FROM PUBLIC")
            with pytest.raises(RevplanError) as caught, postgres_session(connection, user_url, rates):
                pass
            assert caught.value.diagnostics[0].code == "RP402"
            assert "TEMP" in caught.value.diagnostics[0].hints[0]
            admin.execute(f"GRANT TEMP ON DATABASE {name} TO PUBLIC")
            admin.execute(f"ALTER ROLE {name} SET default_transaction_read_only = on")  # as on a standby
            with pytest.raises(RevplanError) as caught, postgres_session(connection, user_url, rates):
                pass
            assert "a primary, not a standby" in caught.value.diagnostics[0].hints[0]
            admin.execute(f"ALTER ROLE {name} RESET default_transaction_read_only")
            admin.execute(f"ALTER ROLE {name} SET statement_timeout = '50ms'")
            with pytest.raises(RevplanError) as caught, postgres_session(connection, user_url, rates) as session:
                session.run("SELECT pg_sleep(1)")
            assert caught.value.diagnostics[0].code == "RP402"
            assert "statement_timeout" in caught.value.diagnostics[0].hints[0]
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE {name}")


@pytest.mark.postgres
def test_postgres_streams_a_plans_deals_to_parquet_in_row_groups(tmp_path):
    """A plan's deals come from the server a row group at a time (a server-side cursor), never
    all in memory: more rows than one group arrive whole, exact and in order."""
    require_postgres()
    count = 2 * ROW_GROUP_ROWS + 5
    sql = (
        "SELECT 'Sales Manager' AS plan, 1 AS version, 'Team override' AS component, 'commission' AS line_type, "
        "'R' || (n % 7) AS rep_id, "
        "'2027-Q1' AS period, '2027-Q1' AS line_period, 'D' || n AS deal_id, "
        "CAST(n / 7.0 AS NUMERIC(38, 10)) AS credited_base "
        f"FROM generate_series(1, {count}) AS n ORDER BY n"
    )
    with postgres_session(duckdb.connect(), POSTGRES_URL, Schema(entities=())) as session:
        session.write_parquet(sql, tmp_path / "deals.parquet", deal_schema(shares=False))
    written = pq.ParquetFile(tmp_path / "deals.parquet")
    assert written.metadata.num_rows == count and written.metadata.num_row_groups == 3
    rows = written.read()
    assert rows["deal_id"][count - 1].as_py() == f"D{count}"
    assert rows["credited_base"][count - 1].as_py() == (Decimal(count) / 7).quantize(Decimal("1E-10"))


@pytest.fixture(scope="module")
def duckdb_trace(sample_company):
    """The sample company's run on DuckDB with every deal's share of its line (what explain computes)."""
    project, data = sample_company
    return run_plans(project.files, data.connection, deals=True)


LINE_KEY = ["plan", "component", "line_type", "rep_id", "period"]  # a deal's line: its line_period is `period`


def traced_lines(lines: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """The commission and clawback lines of the components whose pay the trace follows to deals."""
    traced = lines.merge(deals[["plan", "component"]].drop_duplicates(), on=["plan", "component"])
    return traced[traced["line_type"].isin(["commission", "clawback"])]


def test_deals_behind_each_line_add_up_to_it(sample_company, duckdb_trace):
    """Every cent of a traced line comes from named deals (what explain shows): the shares of the rows under a
    line's key round to its amount, on lines paid on booking, lines paid on payment and clawback lines."""
    deals = duckdb_trace.payout_deals.to_pandas().assign(period=lambda d: d["line_period"])
    assert len(deals) > 0 and all(isinstance(v, Decimal) for v in deals["share_of_line"])
    shares = deals.groupby(LINE_KEY)["share_of_line"].agg(lambda s: sum(s, Decimal(0))).to_dict()
    checked = collections.Counter()
    for line in traced_lines(duckdb_trace.payout_lines, deals).to_dict("records"):
        total = shares.get(tuple(line[k] for k in LINE_KEY), Decimal(0))
        assert abs(total - line["amount"]) < Decimal("0.01"), line  # shares are exact to 10 places
        checked[line["plan"], line["line_type"]] += line["amount"] != 0
    assert checked["Customer Success", "commission"] > 20 and checked["Enterprise AE", "commission"] > 20
    assert checked["Enterprise AE", "clawback"] + checked["Commercial AE", "clawback"] > 2, checked


def test_run_lists_the_same_deals_without_their_shares(sample_company, duckdb_trace):
    """`revplan run` writes deal ids and credited bases only (deals="ids", one pass over the deals):
    the same rows as the full trace, and for a plan whose bases are plain sums, they add up to the base."""
    project, data = sample_company
    full = duckdb_trace.payout_deals
    result = run_plans(project.files, data.connection, deals="ids")
    ids = result.payout_deals
    assert ids.column_names == list(DEAL_ID_COLUMNS) and ids.num_rows > 50
    assert ids.equals(full.drop_columns(["share_of_line"]))
    deals = ids.to_pandas()
    deals = deals[deals["line_type"] == "commission"]  # a clawback's rows are the same deals again
    bases = deals.groupby(["plan", "component", "rep_id", "period"])["credited_base"].agg(lambda s: sum(s, Decimal(0)))
    lines = result.payout_lines
    commission = lines[(lines["plan"] == "Enterprise AE") & (lines["component"] == "New business")]
    checked = 0
    for line in commission.itertuples():
        key = (line.plan, line.component, line.rep_id, line.period)
        if key in bases and line.base is not None:  # a line with no bookings has no base
            assert abs(bases[key] - line.base) <= Decimal("0.005"), key  # the line shows its base in cents
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_each_line_finds_its_deals_by_its_own_key(sample_company, engine):
    """payout_deals.csv joins payout_lines.csv on (plan, component, line_type, rep_id, line_period = period): a
    traced line has deal_count deals, and every row with a line_period has its line. For Customer Success, paid
    on payment, that is the period a deal is paid in, not the one it was earned in (`period`); unpaid deals have
    none. A clawback line's deals are the ones cancelled in its period: on Commercial AE, measured year to date,
    a deal earned in Q1 counts in Q2-Q4 too, and has a row for each period it earned in."""
    project, data = sample_company
    result = run_plans(project.files, data.connection, engine=engine, deals="ids")
    deals = result.payout_deals.to_pandas()
    assert not deals.duplicated([*LINE_KEY, "line_period", "deal_id"]).any()
    paid = deals.dropna(subset=["line_period"]).assign(period=lambda d: d["line_period"])
    rows = paid.groupby(LINE_KEY)["deal_id"].nunique()
    counts = traced_lines(result.payout_lines, deals).set_index(LINE_KEY)["deal_count"]
    assert rows.reindex(counts.index, fill_value=0).equals(counts)
    assert rows.index.isin(counts.index).all()
    paid_later = deals[(deals["line_period"] != deals["period"]) & (deals["line_type"] == "commission")]
    assert set(paid_later["plan"]) == {"Customer Success"} and paid_later["line_period"].notna().sum() > 50
    assert deals["line_period"].isna().sum() > 0  # deals not paid yet: behind no line
    assert {("SDR", "Opportunities sourced"), ("Sales Manager", "Team override")} <= set(  # a count, a roll-up
        zip(deals["plan"], deals["component"], strict=True))
    clawed = deals[deals["line_type"] == "clawback"]
    assert set(clawed["plan"]) == {"Enterprise AE", "Commercial AE"} and clawed["line_period"].notna().all()


def reps_of_traced_plans(deals) -> list[str]:
    """A rep of each kind of trace one rep's filter could get wrong: roll-up lines (a manager, whose deals are
    owned by others) and paid on payment (lines in other periods than the deals')."""
    first = deals.to_pandas().groupby("plan")["rep_id"].min()
    return [first[plan] for plan in ("Sales Manager", "Customer Success")]


@pytest.mark.parametrize("engine", ["duckdb", "python"])
@pytest.mark.parametrize("deals", [True, "ids"])
def test_the_deals_of_one_rep_are_the_full_traces_rows_of_that_rep(sample_company, duckdb_trace, python_result,
                                                                   engine, deals):
    """`revplan explain --rep` computes one rep's deals only (at 10M deals all of them took 9.7 GB):
    the same rows, in the same order, as the full trace keeps for that rep; the lines are unchanged."""
    project, data = sample_company
    full = {"duckdb": duckdb_trace, "python": python_result}[engine]
    for rep in [*reps_of_traced_plans(full.payout_deals), "nobody"]:
        mine = run_plans(project.files, data.connection, engine=engine, deals=deals, deals_of=rep)
        expected = full.payout_deals.filter(pc.equal(full.payout_deals["rep_id"], rep))
        if deals == "ids":
            expected = expected.drop_columns(["share_of_line"])
        assert mine.payout_deals.equals(expected), rep
        assert (mine.payout_deals.num_rows > 0) == (rep != "nobody"), rep
        assert mine.payout_lines.equals(full.payout_lines)


@pytest.mark.parametrize("engine", ["duckdb", "python"])
@pytest.mark.parametrize("deals", [True, "ids"])
def test_the_deals_of_some_periods_are_the_full_traces_rows_of_those_periods(sample_company, duckdb_trace,
                                                                            python_result, engine, deals):
    """`revplan run --period` computes the deals behind that period's lines only: the same rows, in the same
    order, as the full trace has for lines of those periods (`line_period`: for Customer Success, paid on
    payment, deals paid then; a label no line has changes nothing); the lines are unchanged."""
    project, data = sample_company
    full = {"duckdb": duckdb_trace, "python": python_result}[engine]
    periods = {"2027-Q2", "2027-04", "2027-Q9"}
    kept = run_plans(project.files, data.connection, engine=engine, deals=deals, deals_in=periods)
    expected = full.payout_deals.filter(pc.is_in(full.payout_deals["line_period"], pa.array(sorted(periods))))
    assert set(expected["line_period"].to_pylist()) == {"2027-Q2", "2027-04"}  # quarterly plans and the SDRs
    if deals == "ids":
        expected = expected.drop_columns(["share_of_line"])
    assert 0 < kept.payout_deals.num_rows < full.payout_deals.num_rows
    assert kept.payout_deals.equals(expected)
    assert kept.payout_lines.equals(full.payout_lines)


@pytest.mark.postgres
def test_postgres_computes_one_reps_and_one_periods_deals_as_duckdb_does(sample_company, duckdb_trace):
    require_postgres()
    project, data = sample_company
    full = duckdb_trace.payout_deals
    for rep in reps_of_traced_plans(full):
        postgres = run_plans(project.files, data.connection, engine="postgres", url=POSTGRES_URL, deals=True,
                             deals_of=rep).payout_deals
        assert postgres.equals(full.filter(pc.equal(full["rep_id"], rep))), rep
    quarter = run_plans(project.files, data.connection, engine="postgres", url=POSTGRES_URL, deals=True,
                        deals_in={"2027-Q2"}).payout_deals
    assert quarter.equals(full.filter(pc.equal(full["line_period"], "2027-Q2")))


@pytest.fixture(scope="module")
def python_result(sample_company):
    project, data = sample_company
    return run_plans(project.files, data.connection, engine="python", deals=True)


def test_python_calculator_pays_byte_for_byte_what_duckdb_pays(duckdb_lines, python_result):
    """The Python calculator (compiler/python.py) is a second implementation: same lines, same digits."""
    lines = python_result.payout_lines
    assert list(lines.dtypes) == list(duckdb_lines.dtypes)
    assert lines.equals(duckdb_lines)
    assert lines.to_csv(index=False) == duckdb_lines.to_csv(index=False)  # same scale on every Decimal


def test_python_calculator_traces_the_same_deals(sample_company, python_result, duckdb_trace):
    project, data = sample_company
    sql = duckdb_trace
    assert python_result.payout_deals.equals(sql.payout_deals)  # same rows, same exact types
    python_ids = run_plans(project.files, data.connection, engine="python", deals="ids").payout_deals
    assert python_ids.equals(run_plans(project.files, data.connection, deals="ids").payout_deals)
    assert python_result.territories.to_csv(index=False) == sql.territories.to_csv(index=False)


def test_a_run_says_what_it_computes_next(sample_company):
    """`progress` hears each step of a run, in the order it runs them: what a terminal shows while a run of
    millions of deals works (`revplan run`)."""
    project, data = sample_company
    heard = []
    run_plans(project.files, data.connection, deals="ids", progress=heard.append)
    comp = [plan.name for plan in comp_plans(project.files)]
    assert heard == [
        "quotas of FY27 AE Quotas", "quotas of FY27 CSM Quotas", "territory assignments",
        *(f"{name} ({number} of 6)" for number, name in enumerate(comp, start=1)),
        *(f"{name}: the deals behind its lines ({number} of 6)" for number, name in enumerate(comp, start=1)),
        "territories",
    ]


@pytest.mark.spark
def test_spark_pays_the_same_as_duckdb(sample_company, duckdb_lines, spark_session, monkeypatch):
    """The Spark SQL on pyspark (local mode): every payout line, quota and territory assignment, to the cent.

    Tables of more than 500 rows reach Spark as Parquet files (deals, accounts, fx rates, the territory
    assignments), the others in memory (reps, quotas): both ways in one run."""
    monkeypatch.setattr("runtime.spark.IN_MEMORY_ROWS", 500)
    project, data = sample_company
    duckdb = run_plans(project.files, data.connection)
    spark = run_plans(project.files, data.connection, engine="spark")
    assert len(spark.payout_lines) == len(duckdb_lines)
    assert all(isinstance(v, Decimal) for v in spark.payout_lines["amount"])
    for column in duckdb_lines.columns:
        assert spark.payout_lines[column].tolist() == duckdb_lines[column].tolist(), f"column {column} differs"
    for name in ("quotas", "territories"):
        assert _rows(getattr(spark, name)) == _rows(getattr(duckdb, name)), f"{name} differ"


def _rows(frame) -> list[tuple]:
    """Rows in a stable order, missing values as None (engines spell them NaN, NaT or None)."""
    rows = [tuple(None if _missing(v) else v for v in row) for row in frame.itertuples(index=False)]
    return sorted(rows, key=repr)


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
