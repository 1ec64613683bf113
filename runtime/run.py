"""Run compiled plans on an engine and collect payout lines.

In: checked plan files (`ir.PlanFile`), and a DuckDB connection holding the
contract tables (what `runtime.data.open_data` and the plan-test harness
build). Out: `RunResult` with payout lines as a pandas DataFrame whose money
columns hold `Decimal`s (never floats).

    run_plans(files, connection, engine="duckdb")           the embedded default
    run_plans(files, connection, engine="postgres", url=..) the same SQL, transpiled, on a server
    run_plans(files, connection, engine="spark")            the same SQL as Spark SQL, on pyspark (local mode)

Quota plans run too (`RunResult.quotas`: compiler/quota.py's rows with
their derivation), and territory plans give their assignments
(`RunResult.territories`) and a report of gaps, overlaps and balance
(`RunResult.territory_report`). Comp plans with `quota from plan "NAME"`
read that quota plan's quotas, computed in the same query.

The PostgreSQL path copies the contract tables from the DuckDB connection
into a fresh schema, runs the query there, and drops the schema.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from compiler import territory
from compiler.exact import OutOfRange, for_dialect
from compiler.quota import quota_table
from compiler.sql import (
    ASSIGNMENTS,
    DEAL_ID_COLUMNS,
    PAYOUT_COLUMNS,
    CompileError,
    compile_payouts_and_deal_ids,
    compile_plan,
    deals_behind,
)
from dsl import ir
from dsl.check import amount_inputs
from dsl.diagnostics import Diagnostic, RevplanError
from dsl.schema import SCHEMA, Schema
from runtime.data import first_line, quote
from runtime.quotas import normalise_quotas
from runtime.territory_report import TerritoryReport, build_report

ENGINES = ("duckdb", "postgres", "python", "spark")


@dataclasses.dataclass(frozen=True)
class RunResult:
    payout_lines: pd.DataFrame
    plans: tuple[str, ...]  # keys of the plans that ran
    territories: pd.DataFrame | None = None  # account -> territory -> owner, dated, with the matching rule
    quotas: pd.DataFrame | None = None  # every quota plan's quotas (year and periods), with their derivation
    territory_report: TerritoryReport | None = None  # gaps, overlaps, balance against the tolerances
    # The deals behind each commission line (DEAL_COLUMNS, DEALS_SCHEMA): an Arrow table, because it is
    # the one big output (millions of rows at scale) and Arrow keeps its decimals exact without Python objects.
    payout_deals: pa.Table | None = None
    payout_deal_files: tuple[Path, ...] = ()  # the same, in Parquet files, with run_plans(deals_to=...)

    @property
    def total(self):
        return sum(self.payout_lines["amount"], start=0)


def comp_plans(files: Sequence[ir.PlanFile]) -> list[ir.CompPlan]:
    return [p for f in files for p in f.plans if isinstance(p, ir.CompPlan)]


def shared_measures(files: Sequence[ir.PlanFile]) -> dict[str, ir.Measure]:
    return {m.name: m for f in files for m in f.measures}


def territory_plans(files: Sequence[ir.PlanFile]) -> tuple[ir.TerritoryPlan, ...]:
    return tuple(p for f in files for p in f.plans if isinstance(p, ir.TerritoryPlan))


def quota_plans(files: Sequence[ir.PlanFile]) -> tuple[ir.QuotaPlan, ...]:
    return tuple(p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan))


PARQUET_ROW_GROUP = 122_880  # DuckDB's rows per Parquet row group


def compile_all(
    files: Sequence[ir.PlanFile],
    dialect: str,
    detail: bool | str = False,
    computed: dict[str, str] | None = None,
    rep: str | None = None,
    periods: Collection[str] | None = None,
    schema: Schema = SCHEMA,
) -> list[tuple[ir.CompPlan, str]]:
    """(plan, SQL text) for every comp plan; a construct we cannot compile is a diagnostic.

    `detail=True` compiles the queries of the deals behind the lines instead, with `rep` those of one
    rep's lines only, with `periods` those of lines of these periods only; `computed` names the tables
    holding what a run already computed (see `compile_plan`); `schema` says which deal fields are money."""
    def compile_one(plan, measures, territories, quotas):
        query = compile_plan(plan, measures, dialect, territories, quotas, detail, computed, schema.converted_fields())
        return sql_text(deals_behind(query, rep, periods) if detail else query, dialect)

    return _compile_each(files, compile_one)


def compile_with_deal_ids(
    files: Sequence[ir.PlanFile],
    dialect: str,
    computed: dict[str, str] | None = None,
    rep: str | None = None,
    periods: Collection[str] | None = None,
    schema: Schema = SCHEMA,
) -> list[tuple[ir.CompPlan, tuple[str, str]]]:
    """(plan, (payout SQL, SQL of the deals behind the lines [of `rep`, of `periods`])) for every comp plan:
    what a run computes, one compile per plan."""
    return _compile_each(
        files,
        lambda plan, measures, territories, quotas: compile_payouts_and_deal_ids(
            plan, measures, dialect, territories, quotas, computed, rep, periods, schema.converted_fields()
        ),
    )


def _compile_each(files: Sequence[ir.PlanFile], compile_one) -> list:
    measures, territories, quotas = shared_measures(files), territory_plans(files), quota_plans(files)
    return _compile_or_refuse(comp_plans(files), lambda plan: (plan, compile_one(plan, measures, territories, quotas)))


def _compile_quotas(quotas: Sequence[ir.QuotaPlan], territories: Sequence[ir.TerritoryPlan], dialect: str
                    ) -> list[str]:
    """Each quota plan's SQL, refused as a comp plan's is."""
    return _compile_or_refuse(quotas, lambda plan: sql_text(quota_table(plan, tuple(territories), dialect), dialect))


def _compile_or_refuse(plans: Sequence[ir.PlanBase], compile_one: Callable) -> list:
    """`compile_one(plan)` for every plan; every plan that cannot compile is a diagnostic at the plan (RP401),
    raised together, before any query runs."""
    compiled, problems = [], []
    for plan in plans:
        try:
            compiled.append(compile_one(plan))
        except CompileError as error:
            problems.append(Diagnostic(code="RP401", message=f"{plan.key}: {error}", span=plan.span,
                                       hints=(error.hint or "this construct cannot run on this calculator yet",)))
    if problems:
        raise RevplanError(problems)
    return compiled


def sql_text(query: exp.Expression, dialect: str) -> str:
    """The SQL of a tree built for one use: printing it in place skips sqlglot's deep copy (a third of compile time)."""
    return for_dialect(query, dialect).sql(dialect=dialect, copy=False)


def run_plans(
    files: Sequence[ir.PlanFile],
    connection: duckdb.DuckDBPyConnection,
    engine: str = "duckdb",
    url: str | None = None,
    schema: Schema = SCHEMA,
    deals: bool | str = False,
    deals_to: Path | None = None,
    deals_of: str | None = None,
    deals_in: Collection[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Every plan's results; `deals=True` also computes the deals behind each commission line and
    their exact shares of it, `deals="ids"` the deals and their credited base only (one pass).
    `progress` hears what is computed next ("Enterprise AE (3 of 6)"): at 10M deals a run takes minutes.

    With `deals_to` (a folder) the deals go to one Parquet file per plan there, in plan order,
    streamed by the engine where it can (`RunResult.payout_deal_files`), instead of memory:
    at 10M deals they are the biggest result by far. With `deals_of` (a rep id) only the deals behind that
    rep's lines are computed: what `revplan explain --rep` shows, without every rep's deals in memory;
    with `deals_in` (period labels) only those behind lines of these periods: what `revplan run --period`
    writes, a quarter's deals rather than the year's."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine == "python":  # the Python calculator (compiler/python.py) on the same tables
        from runtime.python_engine import run_python

        try:
            result = run_python(files, connection, schema, deals)
        except OutOfRange as error:
            raise too_big(engine, error) from None
        if result.payout_deals is not None:
            result = dataclasses.replace(result, payout_deals=_behind(result.payout_deals, deals_of, deals_in))
        if deals_to is None or result.payout_deals is None:
            return result
        path = Path(deals_to) / "deals-000.parquet"  # one table already: one file, as the engines write them
        # In DuckDB's row groups: the CSV writer keeps the file's order, so it holds a whole row group, and
        # pyarrow's (a million rows) ran it out of its memory at 1M deals, where DuckDB's own files write.
        pq.write_table(result.payout_deals, path, row_group_size=PARQUET_ROW_GROUP)
        return dataclasses.replace(result, payout_deals=None, payout_deal_files=(path,))
    dialect = {"postgres": "postgres", "spark": "spark"}.get(engine, "duckdb")
    territories = territory_plans(files)
    quotas = quota_plans(files)
    # Quota plans run once; comp plans that take their quotas read their rows from these tables.
    computed = {plan.key: f"revplan_quotas_{uuid.uuid4().hex[:12]}" for plan in quotas}
    if territories:  # as are territory assignments, for plans credited by territory and the territory outputs
        computed[ASSIGNMENTS] = f"revplan_assignments_{uuid.uuid4().hex[:12]}"
    # Every problem before any query runs.
    if deals == "ids":
        both = compile_with_deal_ids(files, dialect, computed, deals_of, deals_in, schema)
        compiled = [(plan, payouts) for plan, (payouts, _) in both]
        deal_queries = [ids for _, (_, ids) in both]
    else:
        compiled = compile_all(files, dialect, computed=computed, schema=schema)
        traces = compile_all(files, dialect, deals, computed, deals_of, deals_in, schema) if deals else []
        deal_queries = [sql for _, sql in traces]
    quota_queries = _compile_quotas(quotas, territories, dialect)
    if engine != "duckdb":
        progress(f"copying the tables to {engine}")
    with open_session(engine, connection, url, schema) as session:
        quota_frames = []
        for plan, sql in zip(quotas, quota_queries, strict=True):
            progress(f"quotas of {plan.name}")
            quota_frames.append(session.run(sql))
            session.add_table(computed[plan.key], quota_rows(quota_frames[-1]))
        if territories:
            progress("territory assignments")
            assignments = session.run_arrow(sql_text(territory.assignments(list(territories), dialect), dialect))
            session.add_table(computed[ASSIGNMENTS], exact_table(assignments, ASSIGNMENT_ROWS))
        payouts = []
        for number, (plan, sql) in enumerate(compiled, start=1):
            progress(f"{plan.name} ({number} of {len(compiled)})")
            payouts.append(session.run(sql))
        deal_files: tuple[Path, ...] = ()
        deal_tables = []
        traced = list(zip((plan for plan, _ in compiled), deal_queries, strict=True)) if deals else []
        for number, (plan, sql) in enumerate(traced, start=1):
            progress(f"{plan.name}: the deals behind its lines ({number} of {len(traced)})")
            if deals_to is None:
                deal_tables.append(session.run_arrow(sql))
            else:
                deal_files += (Path(deals_to) / f"deals-{number - 1:03d}.parquet",)
                session.write_parquet(sql, deal_files[-1], deal_schema(shares=deals is True))
        territory_frame = report = None
        if territories:
            progress("territories")
            maps, assigned = list(territories), computed[ASSIGNMENTS]
            territory_frame = session.run(sql_text(territory.territory_table(maps, dialect, assigned), dialect))
            overlaps = [session.run(sql_text(territory.rule_matches(p, dialect), dialect)) for p in territories]
            balance = session.run(sql_text(territory.balance(maps, dialect, assigned), dialect))
            report = build_report(territories, territory_frame, pd.concat(overlaps, ignore_index=True), balance)
    lines = pd.concat(payouts, ignore_index=True) if payouts else pd.DataFrame(columns=list(PAYOUT_COLUMNS))
    plans = tuple(plan.key for plan, _ in compiled) + tuple(p.key for p in quotas) + tuple(p.key for p in territories)
    quota_frame = normalise_quotas(quota_frames) if quotas else None
    deal_table = deal_rows(deal_tables, shares=deals is True) if deals and deals_to is None else None
    return RunResult(
        normalise(lines, [plan for plan, _ in compiled]), plans, territory_frame, quota_frame, report, deal_table,
        deal_files,
    )


def _behind(deals: pa.Table, rep: str | None, periods: Collection[str] | None) -> pa.Table:
    """`deals_behind` for the Python calculator's table."""
    if rep is not None:
        deals = deals.filter(pc.equal(deals["rep_id"], rep))
    if periods is not None:
        deals = deals.filter(pc.is_in(deals["line_period"], pa.array(sorted(periods), pa.string())))
    return deals


DEALS_SCHEMA = pa.schema(
    [
        ("plan", pa.string()),
        ("version", pa.int64()),
        ("component", pa.string()),
        ("line_type", pa.string()),
        ("rep_id", pa.string()),
        ("period", pa.string()),
        ("line_period", pa.string()),
        ("deal_id", pa.string()),
        ("credited_base", pa.decimal128(38, 10)),
        ("share_of_line", pa.decimal128(38, 10)),
    ]
)


def deal_schema(shares: bool = True) -> pa.Schema:
    """DEALS_SCHEMA, or without `shares` its DEAL_ID_COLUMNS."""
    return DEALS_SCHEMA if shares else pa.schema([DEALS_SCHEMA.field(n) for n in DEAL_ID_COLUMNS])


def exact_table(rows: pa.Table | pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """An engine's rows with the schema's columns and exact types."""
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False)
    return rows.select(schema.names).cast(schema)


# Rows per Parquet row group, DuckDB's own: the output writer reads a group at a time in its small memory,
# and one group of a whole plan's deals (pyarrow's default is 1M rows) did not fit at 1M deals.
ROW_GROUP_ROWS = 122_880


def write_rows(rows: pa.Table, path: Path) -> None:
    """Rows an engine returned as a Parquet file in row groups the output writer can stream."""
    pq.write_table(rows, path, row_group_size=ROW_GROUP_ROWS)


def deal_rows(tables: Sequence[pa.Table | pd.DataFrame], shares: bool = True) -> pa.Table:
    """Every plan's deals behind its lines as one table of DEALS_SCHEMA (exact types on every engine);
    without `shares`, the columns of DEAL_ID_COLUMNS."""
    schema = deal_schema(shares)
    converted = [exact_table(t, schema) for t in tables]
    return pa.concat_tables(converted) if converted else schema.empty_table()


QUOTA_ROWS = pa.schema(
    [("rep_id", pa.string()), ("period", pa.string()), ("period_kind", pa.string()), ("amount", pa.decimal128(38, 10))]
)


# Territory assignments (territory.ASSIGNMENT_COLUMNS) with exact types on every engine.
ASSIGNMENT_TYPES = (pa.string(),) * 3 + (pa.int64(), pa.string(), pa.int64()) + (pa.date32(),) * 2
ASSIGNMENT_ROWS = pa.schema(list(zip(territory.ASSIGNMENT_COLUMNS, ASSIGNMENT_TYPES, strict=True)))


def quota_rows(frame: pd.DataFrame) -> pa.Table:
    """The columns of a quota plan's rows that comp plans read, with exact types on every engine."""
    return pa.Table.from_pandas(frame[QUOTA_ROWS.names], schema=QUOTA_ROWS, preserve_index=False)


def _lines_needing(lines: pd.DataFrame, code: str, what: str, hint: str) -> Diagnostic:
    """Lines no amount can be computed for, because the data lacks `what` they need: named, never guessed."""
    lines = lines.sort_values(["plan", "version", "rep_id", "period", "component"])  # the same on every engine
    shown = ", ".join(f"{r.plan} {r.component} {r.rep_id} {r.period}" for r in lines.head(5).itertuples())
    more = f", and {len(lines) - 5} more" if len(lines) > 5 else ""
    return Diagnostic(
        code=code, message=f"{len(lines)} payout line(s) need {what} the data does not have: {shown}{more}",
        hints=(hint,),
    )


def _without_quota(lines: pd.DataFrame) -> Diagnostic:
    """RP416: lines whose amount needs the rep's quota (`cap 2 x quota`), in rep-periods without one."""
    return _lines_needing(lines, "RP416", "a quota", "a cap or rate of these components is a multiple of the quota: "
                          "give these reps quotas for these periods (a payout is never guessed)")


def _without_ti(lines: pd.DataFrame) -> Diagnostic:
    """RP417: lines whose amount needs the rep's TI (a cap or curve on it), where the TI, in the rep's pay
    currency, has no fx rate into the plan currency on or before the period's last day."""
    currency = lines["currency"].iloc[0]
    return _lines_needing(lines, "RP417", f"a target incentive in {currency}",
                          f"a TI is in the rep's pay currency (reps.currency) and converts into {currency} at the "
                          f"rate in force on the period's last day: add fx_rates rows from that currency to "
                          f"{currency} on or before it")


def _without_measure(lines: pd.DataFrame, measures: Collection[str]) -> Diagnostic:
    """RP418: lines capped at a multiple of a measure that has no value there (`avg` of no deals)."""
    return _lines_needing(lines, "RP418", f"a value of {', '.join(sorted(measures))} (a cap is a multiple of it), "
                          "which", "a measure of no rows (avg, min or max of no deals) has no value, so the cap has "
                          "none: cap on a measure that always has one (a sum or a count), or on a fixed amount")


def normalise(lines: pd.DataFrame, plans: Sequence[ir.CompPlan]) -> pd.DataFrame:
    """One shape whatever the engine: column order, Python types, a stable row order. Lines without an amount
    stop the run with what their plan's amounts need and the data lacks (RP416-RP418)."""
    lines = lines[list(PAYOUT_COLUMNS)].copy()
    if lines["amount"].isna().any():  # never a payout to drop silently
        broken = lines[lines["amount"].isna()]
        # A missing TI or quota leaves every later line of the rep's year without an amount too (a cap per year,
        # a draw's balance, year to date), so a rep's lines are put down to what any of them lacks.
        rep_keys = ["plan", "version", "rep_id"]
        lacking = lines.assign(quota=lines["quota"].where(lines["quota"] != 0))  # a zero quota is none
        # Lines computed for their own rep-period carry its quota and TI; draws, clawbacks and paid lines do not.
        lacking = lacking[lacking["proration"].notna() & ~lacking["line_type"].isin(("draw", "draw_recovery"))]
        missing = lacking.groupby(rep_keys, dropna=False)[["target_incentive", "quota"]].agg(
            lambda v: v.isna().any())
        missing = missing.reindex(pd.MultiIndex.from_frame(broken[rep_keys]), fill_value=False).set_axis(broken.index)
        # What each line's plan computes amounts from: a TI, a quota, measures caps are multiples of.
        needs = {(p.name, p.version): {name for c in p.components for name in amount_inputs(c)} for p in plans}
        plan_needs = pd.Series([needs[key] for key in
                                zip(broken["plan"], broken["version"], strict=True)], index=broken.index)
        without_ti = missing["target_incentive"] & plan_needs.map(lambda n: "target_incentive" in n)
        without_quota = missing["quota"] & plan_needs.map(lambda n: "quota" in n) & ~without_ti
        without_measure = ~without_ti & ~without_quota & plan_needs.map(lambda n: bool(n - {"target_incentive",
                                                                                             "quota"}))
        if not (without_ti | without_quota | without_measure).all():
            shown = broken.head(3)[["plan", "component", "rep_id", "period"]]
            raise RuntimeError(f"payout lines without an amount:\n{shown.to_string(index=False)}")  # a bug
        measures = set().union(*plan_needs[without_measure]) - {"target_incentive", "quota"}
        needs_of = [(_without_ti, without_ti), (_without_quota, without_quota),
                    (lambda lines: _without_measure(lines, measures), without_measure)]
        raise RevplanError([diagnostic(broken[which]) for diagnostic, which in needs_of if which.any()])
    for column in ("version", "deal_count"):
        lines[column] = lines[column].astype("int64")
    for column in ("capped", "gated"):
        lines[column] = lines[column].astype(bool)
    keys = ["plan", "version", "rep_id", "period", "line_type", "component"]
    return lines.sort_values(keys, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- engine sessions


class Session(Protocol):
    def run(self, sql: str) -> pd.DataFrame: ...

    def run_arrow(self, sql: str) -> pa.Table | pd.DataFrame: ...

    def write_parquet(self, sql: str, path: Path, schema: pa.Schema) -> None: ...

    def add_table(self, name: str, rows: pa.Table) -> None: ...


@contextlib.contextmanager
def open_session(engine: str, connection: duckdb.DuckDBPyConnection, url: str | None, schema: Schema):
    """A place to run a run's queries that holds the contract tables (and tables a run adds)."""
    try:
        with _engine_session(engine, connection, url, schema) as session:
            yield session
    except Exception as error:
        if not _out_of_range(error):
            raise
        raise too_big(engine, error) from None


def too_big(engine: str, error: BaseException) -> RevplanError:
    """RP415: a value past the exact decimals' bounds on `engine`, never a payout computed some other way."""
    return RevplanError([Diagnostic(
        code="RP415",
        # Spark's text goes on to suggest turning ANSI mode off, i.e. NULL for the overflow: never on payroll.
        message=f"a value is too big for exact decimal arithmetic on {engine}: "
                + first_line(error).split(" If necessary set")[0],
        hints=("a payout line must stay below 10^16 (DECIMAL(18, 2)), money and its products below 10^18, and on "
               "Spark quotients below 10^17 and divisors below 5 x 10^11 (compiler/exact.py, runtime/spark.py); "
               "check the data for an amount in the wrong unit",
               "a plan in a currency of large amounts (IDR, VND) reaches this with real data: a curve or a "
               "clawback multiplies two amounts (a 1.6 billion IDR TI by 38 billion of bookings); such a plan "
               "runs in a currency of larger units (currency USD, its deals converted)",),
    )])


def _out_of_range(error: BaseException) -> bool:
    """A decimal that does not fit its type, on any engine: DuckDB's own exceptions, SQLSTATE 22003 (numeric
    value out of range) from PostgreSQL (psycopg) and Spark (ANSI mode)."""
    if isinstance(error, (duckdb.OutOfRangeException, duckdb.ConversionException)):
        return True
    state = getattr(error, "sqlstate", None)
    if state is None and callable(getattr(error, "getSqlState", None)):
        state = error.getSqlState()
    return state == "22003"


@contextlib.contextmanager
def _engine_session(engine: str, connection: duckdb.DuckDBPyConnection, url: str | None, schema: Schema):
    if engine == "postgres":
        with postgres_session(connection, url, schema) as session:
            yield session
    elif engine == "spark":  # pyspark local mode, the tables copied over through Arrow (runtime/spark.py)
        from runtime.spark import spark_session

        with spark_session(connection, schema) as session:
            yield session
    else:
        session = DuckDBSession(connection)
        try:
            yield session
        finally:
            session.close()


def _duckdb_type(arrow_type: pa.DataType) -> duckdb.sqltypes.DuckDBPyType:
    if pa.types.is_decimal(arrow_type):
        return duckdb.decimal_type(arrow_type.precision, arrow_type.scale)
    return {pa.string(): duckdb.sqltypes.VARCHAR, pa.int64(): duckdb.sqltypes.BIGINT}[arrow_type]


class DuckDBSession:
    """The contract tables are the connection's; added tables are Arrow views, gone on close."""

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection, self.added = connection, []

    def run(self, sql: str) -> pd.DataFrame:
        return self.run_arrow(sql).to_pandas()

    def run_arrow(self, sql: str) -> pa.Table:
        return self.connection.sql(sql).to_arrow_table()

    def write_parquet(self, sql: str, path: Path, schema: pa.Schema) -> None:
        """Streamed by DuckDB, in the query's order; the columns cast to the schema's exact types."""
        columns = [
            duckdb.ColumnExpression(field.name).cast(_duckdb_type(field.type)).alias(field.name) for field in schema
        ]
        self.connection.sql(sql).select(*columns).write_parquet(str(path))

    def add_table(self, name: str, rows: pa.Table) -> None:
        self.connection.register(name, rows)
        self.added.append(name)

    def close(self) -> None:
        for name in self.added:
            self.connection.unregister(name)


# ---------------------------------------------------------------- PostgreSQL


class PostgresSession:
    """A fresh schema on the server holding copies of the contract tables, dropped on close."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, pg):
        self.connection, self.pg = connection, pg

    def run(self, sql: str) -> pd.DataFrame:
        with self.pg.cursor() as cursor:
            cursor.execute(sql)
            names = [d.name for d in cursor.description]
            return pd.DataFrame(cursor.fetchall(), columns=names)

    run_arrow = run  # psycopg gives Python objects either way

    def write_parquet(self, sql: str, path: Path, schema: pa.Schema) -> None:
        """The rows a row group at a time from a server-side cursor: a plan's deals never all in memory."""
        with self.pg.transaction(), self.pg.cursor(name=f"revplan_{uuid.uuid4().hex[:12]}") as cursor:
            # A cursor is planned to return its first 10% of rows fast (nested loops); every row is read.
            self.pg.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor.execute(sql)
            with pq.ParquetWriter(path, schema) as writer:
                while rows := cursor.fetchmany(ROW_GROUP_ROWS):
                    frame = pd.DataFrame(rows, columns=[d.name for d in cursor.description])
                    writer.write_table(exact_table(frame, schema))

    def add_table(self, name: str, rows: pa.Table) -> None:
        self.connection.register(name, rows)
        try:
            copy_table(self.connection, self.pg, name)
        finally:
            self.connection.unregister(name)


@contextlib.contextmanager
def postgres_session(connection: duckdb.DuckDBPyConnection, url: str | None, schema: Schema):
    """A session whose copies of the tables are temporary: they need no CREATE privilege (TEMP is granted
    to every user by default), shadow nothing of the user's, and the server drops them when the session
    ends, however revplan stops."""
    import psycopg

    if not url:
        raise RevplanError([Diagnostic(code="RP402", message="--engine postgres needs --url postgresql://...")])
    with psycopg.connect(url, autocommit=True) as pg:
        # Local buffers for the temporary tables (8MB by default); settable only before the first one.
        pg.execute("SET temp_buffers TO '256MB'")
        pg.execute("SET search_path TO pg_temp")
        try:
            for entity in schema.entities:
                copy_table(connection, pg, entity.table)
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction) as error:
            raise RevplanError([Diagnostic(
                code="RP402", message=f"--engine postgres cannot make its working tables: {first_line(error)}",
                hints=("the user needs the TEMP privilege on the database (GRANT TEMP ON DATABASE ... TO ...), "
                       "on a server that takes writes (a primary, not a standby; default_transaction_read_only off)",),
            )]) from None
        except psycopg.errors.QueryCanceled as error:
            raise _cancelled(error) from None
        try:
            yield PostgresSession(connection, pg)
        except psycopg.errors.QueryCanceled as error:  # Ctrl-C's own cancel comes out as KeyboardInterrupt
            raise _cancelled(error) from None


def _refuse_names_postgres_cuts_alike(table: str, names: list[str]) -> None:
    """PostgreSQL keeps the first 63 bytes of a name: two long custom columns alike that far would be one."""
    seen: dict[bytes, str] = {}
    for name in names:
        other = seen.setdefault(name.encode()[:63], name)
        if other != name:
            raise RevplanError([Diagnostic(
                code="RP402", message=f"columns {other!r} and {name!r} of {table} are one name to PostgreSQL, "
                                      "which keeps the first 63 bytes of a name",
                hints=("shorten one of them in the data, or run on DuckDB",),
            )])


def _cancelled(error: Exception) -> RevplanError:
    return RevplanError([Diagnostic(
        code="RP402", message=f"the PostgreSQL server cancelled a query of the run: {first_line(error)}",
        hints=("a statement_timeout set for the user or the database stops long queries: "
               "ALTER ROLE ... SET statement_timeout = 0 for the user revplan runs as",),
    )])


# DuckDB types and their PostgreSQL types; any type not here goes over as text. Every column a plan reads is
# exact (the contract refuses FLOAT and DOUBLE sources), so a binary float here is a custom column no plan
# reads: it goes over as its text, never into NUMERIC arithmetic.
PG_TYPES = {
    "VARCHAR": "TEXT",
    "DATE": "DATE",
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "BIGINT", "SMALLINT": "BIGINT", "INTEGER": "BIGINT", "BIGINT": "BIGINT",
    "UTINYINT": "BIGINT", "USMALLINT": "BIGINT", "UINTEGER": "BIGINT",
    "UBIGINT": "NUMERIC", "HUGEINT": "NUMERIC", "UHUGEINT": "NUMERIC",
    "TIMESTAMP": "TIMESTAMP", "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
}


COPY_BLOCK = 1 << 20  # bytes of CSV per write to the server


def copy_table(connection: duckdb.DuckDBPyConnection, pg, name: str) -> None:
    """Copy a DuckDB table or view into a new temporary table of the same name on the server. A custom
    column of a type PostgreSQL has not (a LIST, a BLOB) goes over as its text."""
    from psycopg import sql

    relation = connection.table(name)
    _refuse_names_postgres_cuts_alike(name, relation.columns)
    columns, cells = [], []
    for column, duck_type in zip(relation.columns, relation.types, strict=False):
        type_name = str(duck_type)
        pg_type = PG_TYPES.get(type_name) or (type_name.replace("DECIMAL", "NUMERIC")
                                              if type_name.startswith("DECIMAL") else None)
        columns.append(sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(pg_type or "TEXT")))
        cells.append(quote(column) if pg_type else f"CAST({quote(column)} AS VARCHAR)")
    pg.execute(sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(columns)))
    # As CSV written by DuckDB, in blocks: row by row through Python took 6 s for 1M deals.
    # Both read an unquoted empty field as NULL and a quoted one ("") as an empty string.
    with tempfile.TemporaryDirectory(prefix="revplan-copy-") as folder:
        path = Path(folder) / f"{name}.csv"
        relation.select(", ".join(cells)).write_csv(str(path), header=False)
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c) for c in relation.columns))
        with open(path, "rb") as rows, pg.cursor() as cursor, cursor.copy(copy) as stream:
            while block := rows.read(COPY_BLOCK):
                stream.write(block)
    # Statistics for the planner: without them it guesses a few rows per table and picks nested loops,
    # which took a 200k-deal plan 43 s instead of 1 s.
    pg.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
