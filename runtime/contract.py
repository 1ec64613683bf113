"""The data contract: check opened input data, report every problem with its place.

In: a `DataSet` from `runtime.data.open_data`. Out: a list of `Diagnostic`s,
errors and warnings, each naming file, 1-based data row and column (CSV
messages add the file line: row + 1 because of the header, more after a
blank line or a value spanning lines).
`check_data` never raises for bad data; an empty list means the data keeps
the contract.

Every check is SQL run by DuckDB on the views in place: one aggregate pass
per table counts all row-level problems at once, and only a problem that
occurs fetches its first `MAX_ROWS` rows (the rest are counted in one more
diagnostic). Keys, references and sums are one grouped or anti-join query
each.

| code  | severity | problem                                                                |
| ----- | -------- | ---------------------------------------------------------------------- |
| RD001 | error    | the data source does not exist or cannot be opened (`open_data` raises) |
| RD002 | error    | a required table (reps, deals) is missing                              |
| RD003 | error    | a required column is missing, or an optional one is spelt another way  |
|       |          | (`Cancel Date` for cancel_date: its values would not be read)          |
| RD004 | error    | a column has a type that cannot hold its values exactly (DOUBLE money)  |
| RD005 | error    | a file or a line cannot be read (malformed CSV line, not UTF-8, empty)  |
|       |          | or would be misread: a column name given twice, a CSV row with more    |
|       |          | fields than the header (an unquoted comma shifts the values after it)  |
| RD006 | error    | a value is not valid for its column (a bad date, a non-numeric amount, 1.5E+3) |
| RD007 | error    | a value has more decimal places than the column keeps (money: cents)   |
| RD008 | error    | a required value is empty                                              |
| RD009 | error    | a duplicate key (deal id, rep id, deal and rep of a split, ...)         |
| RD010 | error    | a negative money amount                                                |
| RD011 | error    | the splits of a deal do not sum to 100 %                               |
| RD012 | error    | an unknown rep: deal owner, split rep, manager, quota/activity/MBO/assignment rep or manager |
| RD013 | error    | a split of an unknown deal                                             |
| RD014 | error    | a cycle in the manager hierarchy (the reps table's, or on some day with assignments) |
| RD015 | error    | a currency with no fx rate to or from the company currency             |
| RD016 | (retired) | a deal before the first fx rate: RD035, for the deals a plan counts    |
| RD017 | error    | an fx rate that is zero or negative                                    |
| RD018 | error    | an end before its start: termination_date before hire_date, or an      |
|       |          | assignment's end_date before its start_date                            |
| RD019 | warning  | a cancel_date before the close_date                                    |
| RD020 | error    | an unknown account (deal or activity account not in accounts)          |
| RD021 | error    | two rep_assignments of one rep overlap (a rep has one role on each day) |
| RD022 | warning  | a plan names a rep or an account the data does not have (territory owners, |
|       |          | overlays, named and moved accounts; quota weights and overrides), or a    |
|       |          | quota weight or override names a rep the plan gives no quota             |
| RD023 | warning  | a rep in a plan measured on attainment has no quota (or 0) for a period of it |
| RD024 | warning  | a value differs only in case or spacing from a text a plan compares it with |
| RD025 | warning  | a comp plan applies to no rep of the data while it is in force          |
| RD026 | warning  | a deal is paid, or cancelled, after the run-off of a plan in force when it closed |
| RD027 | warning  | a paid_date before the close_date                                      |
| RD028 | warning  | an MBO score below 0 or above 2 (200 %): most often a percent typed as a number |
| RD029 | error    | a file of the data folder that revplan does not read, named after a table |
|       |          | that has no file it reads (`quotas.txt`); any other such file is a warning, |
|       |          | naming the table it may be meant for (`deal_split.csv`)                |
| RD030 | error    | the sample company cannot be generated (bad arguments, unwritable folder) |
| RD031 | warning  | a required table (reps, deals) has no rows                             |
| RD032 | error    | an id with a blank (space, tab) at its start or end, or an invisible   |
|       |          | character (a no-break or zero-width space) anywhere                    |
| RD033 | warning  | a plan reads an optional table or column the data does not have, or an |
|       |          | optional table with no rows                                             |
| RD034 | warning  | a column of a database table the user may not read (it is not read)    |
| RD035 | error    | a deal a plan counts in a currency with no fx rate into the plan's      |
|       |          | currency on or before the day the plan converts it (its close date or   |
|       |          | its period's end; a quota plan's prior bookings; rates not inverted)    |
| RD036 | error    | a split percent below 0 % or above 100 %                               |
| RD037 | warning  | a plan without `prorate by active_days` has reps in it for part of a     |
|       |          | period they were employed in (a role change, a new version mid-period)  |
| RD038 | warning  | a plan pays an MBO for a rep-period with no score in mbo_scores (0.00)  |
| RD039 | warning  | a deal closes before its owner's (or a split rep's) hire_date or after their |
|       |          | termination_date                                                        |
| RD040 | error    | an fx rate's currency code in lower case or with blanks (no deal reads it) |
| RD041 | error    | a Parquet part of a table lacks a column other parts have (read as empty) |
| RD042 | warning  | a quota plan's `allocate by` basis weighs none of its reps (no prior bookings, |
|       |          | no territory potential, every weight 0): that share is allocated equally |

Codes are stable: tests and documentation name them. `runtime.data` raises
RD001 and reports RD005 at load time; `check_data` returns those first;
`runtime.sample_data` raises RD030.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.compute as pc

from compiler.calendar import RUN_OFF_YEARS, plan_periods, run_off_end
from compiler.sql import compile_part_periods
from dsl import ir
from dsl.check import LABEL_YEAR, pays_by_the_period, period_dates, walk
from dsl.diagnostics import DataLocation, Diagnostic, RevplanError, Severity, did_you_mean, has_errors
from dsl.schema import SCHEMA, FieldType, Schema
from runtime.data import (
    FILE,
    ROW,
    SCALES,
    SQL_TYPES,
    ColumnSource,
    Conversion,
    DataSet,
    TableSource,
    decimal_scale,
    first_line,
    first_row,
    open_data,
    quote,
)
from runtime.hierarchy import Manager, cycles
from runtime.run import shared_measures

MAX_ROWS = 20  # offending rows listed per check; the rest are counted
PERIOD_LABEL = LABEL_YEAR + r"(-(H[12]|Q[1-4]|0[1-9]|1[0-2]))?"  # 2027, 2027-H1, 2027-Q1, 2027-01

REQUIRED_TABLES = ("reps", "deals")

# (table, column, referenced table, referenced column, code, what the referenced row is)
REFERENCES = (
    ("reps", "manager_id", "reps", "id", "RD012", "rep"),
    ("deals", "owner_rep_id", "reps", "id", "RD012", "rep"),
    ("deal_splits", "rep_id", "reps", "id", "RD012", "rep"),
    ("quotas", "rep_id", "reps", "id", "RD012", "rep"),
    ("activities", "rep_id", "reps", "id", "RD012", "rep"),
    ("mbo_scores", "rep_id", "reps", "id", "RD012", "rep"),
    ("rep_assignments", "rep_id", "reps", "id", "RD012", "rep"),
    ("rep_assignments", "manager_id", "reps", "id", "RD012", "rep"),
    ("deal_splits", "deal_id", "deals", "id", "RD013", "deal"),
    ("deals", "account_id", "accounts", "id", "RD020", "account"),
    ("activities", "account_id", "accounts", "id", "RD020", "account"),
)

# How a message names a value each type expects, and how to write one.
_EXPECTED = {
    FieldType.MONEY: ("amount", "write amounts like 1234.50: no currency sign, no thousands separator"),
    FieldType.NUMBER: ("number", "write numbers like 1.0825"),
    FieldType.PERCENT: ("fraction", "write a fraction: 0.6 for 60 %"),
    FieldType.INTEGER: ("whole number", "write whole numbers like 250"),
    FieldType.DATE: ("date", "write dates as YYYY-MM-DD, e.g. 2027-03-31"),
    FieldType.BOOL: ("true/false value", "write true or false"),
}


@dataclass(frozen=True)
class _RowRule:
    """A condition on single rows, counted in the table's aggregate pass."""

    code: str
    column: str
    condition: str  # SQL over the raw view `t` (and `joins`)
    values: tuple[str, ...]  # SQL fetched for the message of an offending row
    message: Callable[..., str]  # values -> message
    hints: tuple[str, ...] = ()
    joins: str = ""  # LEFT JOINs to lookups unique on their key (never duplicate rows)
    severity: Severity = Severity.ERROR


MBO_SCORE_LIMIT = 2  # 200 %: above it a score is more likely 80 for 80 % than a real achievement


def check_data(dataset: DataSet, base_currency: str = "USD") -> list[Diagnostic]:
    """Check `dataset` against the data contract; errors and warnings, never an exception.

    `base_currency` is the company currency: every other currency a deal or
    a rep uses needs fx rates to or from it.
    """
    checker = _Checker(dataset, base_currency)
    diagnostics = list(dataset.load_diagnostics)
    for check in checker.checks():
        try:
            diagnostics.extend(check())
        except duckdb.OutOfMemoryException:  # the machine's limit, not the data's fault: the caller says so
            raise
        except duckdb.Error as error:  # unreadable data found mid-query: report, keep checking
            diagnostics.append(Diagnostic(code="RD005", message=f"cannot read the data: {first_line(error)}",
                                          file=dataset.source))
    return diagnostics


def open_checked(
    source, schema: Schema = SCHEMA, base_currency: str = "USD"
) -> tuple[DataSet, list[Diagnostic]]:
    """Open and check data; raise `RevplanError` if there are errors, else return it with its warnings."""
    dataset = open_data(source, schema)
    diagnostics = check_data(dataset, base_currency)
    if has_errors(diagnostics):
        dataset.close()
        raise RevplanError(diagnostics)
    return dataset, diagnostics


class _Checker:
    def __init__(self, dataset: DataSet, base_currency: str):
        self.data = dataset
        self.db = dataset.connection
        self.base = base_currency
        self.tables = dataset.tables

    def checks(self) -> Iterator[Callable[[], list[Diagnostic]]]:
        """Each check is a function returning diagnostics, so a failing one cannot stop the others."""
        yield self.missing_tables
        yield self.empty_tables
        for table in self.usable_tables():
            yield lambda table=table: self.columns(table)
        self.db.execute("SET VARIABLE rp_base_currency = ?", [self.base])
        yield self.fx_lookup
        yield self.employment_lookup
        yield self.deal_lookup
        for table in self.usable_tables():
            yield lambda table=table: self.row_rules(table)
            yield lambda table=table: self.duplicate_keys(table)
        for reference in REFERENCES:
            yield lambda reference=reference: self.reference(*reference)
        yield self.split_sums
        yield self.currencies_without_rates
        yield self.manager_cycles
        yield self.overlapping_assignments

    def usable_tables(self) -> list[TableSource]:
        return [t for t in self.tables.values() if t.present and not t.broken]

    def usable(self, table: str, *columns: str) -> bool:
        source = self.tables.get(table)
        return (
            source is not None
            and source.present
            and not source.broken
            and all(_convertible(source.columns[c]) for c in columns)
        )

    # --- tables and columns -------------------------------------------------------

    def missing_tables(self) -> list[Diagnostic]:
        found = []
        for name in REQUIRED_TABLES:
            table = self.tables[name]
            if not table.present:
                found.append(Diagnostic(
                    code="RD002",
                    message=f"required table {name!r} is missing from {self.data.source}",
                    data=DataLocation(file=table.location),
                    hints=(_how_to_add(table),),
                ))
        return found

    def empty_tables(self) -> list[Diagnostic]:
        """RD031 warnings: a required table with a header and no rows pays nobody, or pays deals from nowhere."""
        found = []
        for name in REQUIRED_TABLES:
            table = self.tables[name]
            if self.usable(name) and _has_no_rows(self.db, table):
                found.append(Diagnostic(
                    code="RD031", severity=Severity.WARNING, message=f"{name} has no rows",
                    data=DataLocation(file=table.location),
                    hints=(f"a run without {name} pays " + ("nobody" if name == "reps" else "no commission on deals")
                           + "; check that the export is complete",),
                ))
        return found

    def columns(self, table: TableSource) -> list[Diagnostic]:
        found = []
        for column in table.columns.values():
            where = DataLocation(file=table.location, column=column.name)
            if column.conversion is Conversion.MISSING and column.field.required:
                hints = did_you_mean(column.name, table.extra_columns)
                if len(table.extra_columns) == 1 and any(sep in table.extra_columns[0] for sep in ";\t|"):
                    hints += ("the header was read as one column: separate columns with commas",)
                found.append(Diagnostic(code="RD003", message=f"required column {column.name!r} is missing",
                                        data=where, hints=hints))
            elif column.conversion is Conversion.MISSING and (written := _written_as(column.name, table)):
                # 'Cancel Date' is not read as cancel_date: all its values would be empty, and every clawback lost.
                found.append(Diagnostic(
                    code="RD003",
                    message=f"column {written!r} is not read: the optional column {column.name!r} is spelt so",
                    data=where, hints=(f"rename the column {column.name}",),
                ))
            elif column.conversion is Conversion.WRONG_TYPE:
                found.append(Diagnostic(
                    code="RD004",
                    message=f"column {column.name!r} is {column.source_type}; {column.field.type.value} "
                    f"needs {column.sql_type}",
                    data=where,
                    hints=(_wrong_type_hint(column),),
                ))
        return found

    # --- row rules: one aggregate pass per table ---------------------------------

    def row_rules(self, table: TableSource) -> list[Diagnostic]:
        rules = list(self.rules_for(table))
        if not rules:
            return []
        joins = "".join(dict.fromkeys(rule.joins for rule in rules))
        flags = ", ".join(f"({rule.condition}) AS c{i}" for i, rule in enumerate(rules))
        counts = ", ".join(f"count(*) FILTER (WHERE c{i})" for i in range(len(rules)))
        query = f"SELECT {counts} FROM (SELECT {flags} FROM {table.raw_view} AS t{joins})"
        totals = self.db.execute(query).fetchall()[0]
        found = []
        for rule, total in zip(rules, totals, strict=True):
            if total:
                rows = self.db.execute(
                    f"SELECT t.{FILE}, t.{ROW}, {', '.join(rule.values)} FROM {table.raw_view} AS t{rule.joins}"
                    f" WHERE {rule.condition} ORDER BY t.{FILE}, t.{ROW} LIMIT {MAX_ROWS}"
                ).fetchall()
                found.extend(self.row_diagnostics(table, rule.code, rule.column, rows, total, rule.message,
                                                  rule.hints, rule.severity))
        return found

    def rules_for(self, table: TableSource) -> Iterator[_RowRule]:
        for column in table.columns.values():
            yield from _column_rules(column)
        yield from self.table_rules(table)

    def table_rules(self, table: TableSource) -> Iterator[_RowRule]:
        """The rules that are about one table's meaning, not about types."""
        c = table.columns
        if table.entity.key == ("id",) and self.usable(table.table, "id"):
            # `R0157 ` from a spreadsheet is another id than the `R0157` deals name: the error belongs here.
            # A first or last character at or below ' ' (space, tab) is the cheap test of a blank at an end.
            key = c["id"].typed()
            # So is a no-break or zero-width space anywhere (only where bytes outnumber characters: cheap).
            invisible = f"strlen({key}) <> length({key}) AND regexp_matches({key}, '{INVISIBLE}')"
            yield _RowRule("RD032", "id", f"left({key}, 1) <= ' ' OR right({key}, 1) <= ' ' OR ({invisible})",
                           (key,), _blank_in_id, ("remove the blanks: other tables name the id without them",))
        if table.table == "reps" and self.usable("reps", "hire_date", "termination_date"):
            hire, end = c["hire_date"].typed(), c["termination_date"].typed()
            yield _RowRule("RD018", "termination_date", f"{end} < {hire}", (end, hire),
                           lambda end, hire: f"termination_date {end} is before hire_date {hire}")
        if table.table == "rep_assignments" and self.usable("rep_assignments", "start_date", "end_date"):
            start, end = c["start_date"].typed(), c["end_date"].typed()
            yield _RowRule("RD018", "end_date", f"{end} < {start}", (end, start),
                           lambda end, start: f"end_date {end} is before start_date {start}",
                           ("an assignment's end_date is its last day, on or after start_date",))
        if table.table in ("quotas", "mbo_scores") and self.usable(table.table, "period"):
            # A label no plan can have (2027Q1, Q1 2027) matches no period: its row would be unused, unseen.
            period = c["period"].typed()
            yield _RowRule("RD006", "period", f"NOT regexp_full_match({period}, '{PERIOD_LABEL}')", (period,),
                           lambda period: f"{_show(period)} is not a valid period",
                           ("write periods as 2027, 2027-H1, 2027-Q1 or 2027-01",))
        if table.table == "deal_splits" and self.usable("deal_splits", "percent"):
            # Shares of 1.5 and -0.5 add up to 1 (RD011 is content) and credited one rep 150 % of the deal (audit).
            share = c["percent"].typed()
            yield _RowRule("RD036", "percent", f"{share} < 0 OR {share} > 1", (share,),
                           lambda share: f"split percent {_plain(share)} ({_percent(share)}) is outside 0 % to 100 %",
                           ("a split is a rep's share of the deal: 0.6 for 60 %",))
        if table.table == "fx_rates" and self.usable("fx_rates", "rate"):
            rate = c["rate"].typed()
            yield _RowRule("RD017", "rate", f"{rate} <= 0", (rate,),
                           lambda rate: f"fx rate {_plain(rate)} is not positive",
                           ("a rate says how many units of `to` one unit of `from` buys",))
        for side in ("from", "to"):
            if table.table == "fx_rates" and self.usable("fx_rates", side):
                # Deals and reps read a rate by its exact code: a rate of 'eur' or 'USD ' is never used, and deals
                # converted at an older rate with no word (audit). Their own codes are RD015's.
                code = c[side].typed()
                yield _RowRule("RD040", side, f"{code} <> upper(trim({code}))", (code,),
                               lambda code: f"currency code {_show(code)} is not an upper-case code without blanks, "
                               f"so no deal or rep reads this rate",
                               ("write currency codes as upper-case ISO codes, as deals and reps do: EUR",))
        if table.table == "deals" and self.usable("deals", "close_date", "cancel_date"):
            close, cancel = c["close_date"].typed(), c["cancel_date"].typed()
            yield _RowRule("RD019", "cancel_date", f"{cancel} < {close}", (cancel, close),
                           lambda cancel, close: f"cancel_date {cancel} is before close_date {close}",
                           severity=Severity.WARNING)
        if table.table == "mbo_scores" and self.usable("mbo_scores", "score"):
            # A score typed as a percent (80 for 0.8) pays 80 times the MBO: legal, so a warning, and loud.
            score = c["score"].typed()
            yield _RowRule("RD028", "score", f"{score} < 0 OR {score} > {MBO_SCORE_LIMIT}", (score,),
                           lambda score: f"MBO score {_plain(score)} is {_percent(score)}",
                           ("scores are fractions: 0.9 is 90 %; a plan pays its MBO amount times the score as it "
                            "is",), severity=Severity.WARNING)
        if table.table == "deals" and self.usable("deals", "close_date", "paid_date"):
            close, paid = c["close_date"].typed(), c["paid_date"].typed()
            yield _RowRule("RD027", "paid_date", f"{paid} < {close}", (paid, close),
                           lambda paid, close: f"paid_date {paid} is before close_date {close}",
                           ("a plan paid on payment pays such a deal when it closes: commission is earned on "
                            "booking",), severity=Severity.WARNING)
        if table.table == "deals" and self.usable("deals", "close_date", "owner_rep_id"):
            # Owners are credited whatever the date; a plan by period then pays none in a period the owner has
            # no day of, while a year-to-date one counts it later (audit): legal, rarely meant, never silent.
            close, owner = c["close_date"].typed(), c["owner_rep_id"].typed()
            yield _RowRule(
                "RD039", "close_date", f"{close} >= DATE '0001-01-01' AND ({close} < emp.hire_date"  # RD006 BC
                f" OR {close} > emp.termination_date)",
                (close, owner, "emp.hire_date", "emp.termination_date"),
                lambda close, owner, hire, end: f"close_date {close} is " + (
                    f"before its owner {owner}'s hire_date {hire}" if close < hire
                    else f"after its owner {owner}'s termination_date {end}"),
                ("plans credit the owner whatever the date, so pay depends on the plan: one paid by period pays "
                 "nothing for it in a period the owner has no day of, a year-to-date one counts it later; "
                 "check the owner and the dates",),
                joins=f" LEFT JOIN _rp_employment AS emp ON emp.id = {owner}", severity=Severity.WARNING,
            )
        if table.table == "deal_splits" and self.usable("deal_splits", "deal_id", "rep_id", "percent"):
            # A split rep's share is theirs whatever the date, as an owner's deal is (audit: a share of a deal
            # closed after its split rep left was paid to nobody, with no word). The owner's row is warned of above.
            deal, rep, share = (c[n].typed() for n in ("deal_id", "rep_id", "percent"))
            yield _RowRule(
                "RD039", "rep_id", f"{share} > 0 AND dc.close_date >= DATE '0001-01-01' AND {rep} <> dc.owner"
                f" AND (dc.close_date < emp.hire_date OR dc.close_date > emp.termination_date)",
                (deal, rep, "dc.close_date", "emp.hire_date", "emp.termination_date"),
                lambda deal, rep, close, hire, end: f"deal {_show(deal)} closes {close}, " + (
                    f"before its split rep {rep}'s hire_date {hire}" if close < hire
                    else f"after its split rep {rep}'s termination_date {end}"),
                ("plans that credit splits credit the split rep whatever the date, so pay depends on the plan: "
                 "one paid by period pays nothing for the share in a period the rep has no day of, a "
                 "year-to-date one counts it later; check the split and the dates",),
                joins=f" LEFT JOIN _rp_deals AS dc ON dc.id = {deal}"
                      f" LEFT JOIN _rp_employment AS emp ON emp.id = {rep}", severity=Severity.WARNING,
            )

    def employment_lookup(self) -> list[Diagnostic]:
        """A small table: each rep's first hire_date and last termination_date (one row per id)."""
        if self.usable("reps", "id", "hire_date", "termination_date"):
            c = self.tables["reps"].columns
            rep, hire, end = (c[n].typed() for n in ("id", "hire_date", "termination_date"))
            # Reps whose termination is before their hire are RD018's: no RD039 on top for each of their deals.
            query = (f"SELECT {rep} AS id, min({hire}) AS hire_date, max({end}) AS termination_date"
                     f" FROM {self.tables['reps'].raw_view} AS t WHERE {rep} IS NOT NULL GROUP BY 1"
                     f" HAVING NOT coalesce(max({end}) < min({hire}), false)")
        else:
            query = "SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS DATE) AS hire_date, " \
                    "CAST(NULL AS DATE) AS termination_date WHERE false"
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE _rp_employment AS {query}")
        return []

    def deal_lookup(self) -> list[Diagnostic]:
        """A small table: each split deal's close_date and owner (one row per id; a repeated id is RD009's).
        Split deals only: grouping 10M deals cost the check 3 s."""
        if self.usable("deals", "id", "close_date", "owner_rep_id") and self.usable("deal_splits", "deal_id"):
            c, split = self.tables["deals"].columns, self.tables["deal_splits"]
            query = (f"SELECT {c['id'].typed()} AS id, min({c['close_date'].typed()}) AS close_date,"
                     f" min({c['owner_rep_id'].typed()}) AS owner FROM {self.tables['deals'].raw_view} AS t"
                     f" WHERE {c['id'].typed()} IN (SELECT {split.columns['deal_id'].typed()} FROM {split.raw_view}"
                     f" AS t) GROUP BY 1")
        else:
            query = ("SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS DATE) AS close_date,"
                     " CAST(NULL AS VARCHAR) AS owner WHERE false")
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE _rp_deals AS {query}")
        return []

    def fx_lookup(self) -> list[Diagnostic]:
        """A small table: each currency with rates to or from the company currency, and its first date."""
        fx = self.tables["fx_rates"]
        if self.usable("fx_rates", "date", "from", "to", "rate"):
            c = fx.columns
            day, src, dst, rate = (c[n].typed() for n in ("date", "from", "to", "rate"))
            base = "getvariable('rp_base_currency')"
            query = (
                f"SELECT CASE WHEN {src} = {base} THEN {dst} ELSE {src} END AS currency, min({day}) AS first_date"
                f" FROM {fx.raw_view} AS t WHERE ({src} = {base}) <> ({dst} = {base}) AND {rate} > 0"
                f" AND {day} IS NOT NULL GROUP BY 1"
            )
        else:
            query = "SELECT CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS DATE) AS first_date WHERE false"
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE _rp_fx_first AS {query}")
        return []

    # --- keys, references, sums ---------------------------------------------------

    def duplicate_keys(self, table: TableSource) -> list[Diagnostic]:
        """Keys that occur more than once: the first `MAX_ROWS` keys, with all their rows."""
        key = table.entity.key
        if not self.usable(table.table, *key) or (len(key) == 1 and self.strictly_increasing(table, key[0])):
            return []
        typed = ", ".join(table.columns[k].typed() for k in key)
        not_null = " AND ".join(f"{table.columns[k].typed()} IS NOT NULL" for k in key)
        grouped = f"FROM {table.raw_view} AS t WHERE {not_null} GROUP BY {typed} HAVING count(*) > 1"
        (total,) = self.db.execute(f"SELECT count(*) FROM (SELECT 1 {grouped})").fetchall()[0]
        if not total:
            return []
        first = self.db.execute(
            f"SELECT hash({typed}) {grouped} ORDER BY min(t.{FILE}), min(t.{ROW}) LIMIT {MAX_ROWS}"
        ).fetchall()
        groups = self.db.execute(
            f"SELECT {typed}, list(t.{FILE} ORDER BY t.{FILE}, t.{ROW}), list(t.{ROW} ORDER BY t.{FILE}, t.{ROW})"
            f" FROM {table.raw_view} AS t"
            f" WHERE {not_null} AND hash({typed}) IN (SELECT UNNEST(?)) GROUP BY {typed} HAVING count(*) > 1"
            f" ORDER BY min(t.{FILE}), min(t.{ROW})",
            [[h for (h,) in first]],
        ).fetchall()
        name = key[0] if len(key) == 1 else f"({', '.join(key)})"
        found = []
        for *values, files, rows in groups:
            shown = _show(values[0]) if len(values) == 1 else "(" + ", ".join(_show(v) for v in values) + ")"
            first = self.row_label(table, rows[0]) + (f" of {Path(files[0]).name}" if files[0] != files[1] else "")
            found.append(Diagnostic(
                code="RD009",
                message=f"duplicate {name} {shown}{self.line_suffix(table, rows[1])}; first on {first}"
                + (f", {len(rows)} rows in all" if len(rows) > 2 else ""),
                data=DataLocation(file=_file_of(table, files[1]), row=rows[1], column=key[0]),
                hints=(f"each {table.entity.name} needs its own {name}",),
            ))
        if total > MAX_ROWS:
            found.append(self.more(table, "RD009", key[0], total - MAX_ROWS, "duplicate keys"))
        return found

    def strictly_increasing(self, table: TableSource, column: str) -> bool:
        """True if the column's values only ever increase: then none repeats.

        Exports are often sorted by id; one streaming pass over the ids proves
        that in a fraction of the time a hash table of 10M keys takes, and it
        stops at the first value out of order.
        """
        value = table.columns[column].typed()
        reader = self.db.sql(f"SELECT {value} FROM {table.raw_view} AS t").to_arrow_reader(1_000_000)
        try:
            last = None
            for batch in reader:
                values = batch.column(0)
                if values.null_count:
                    return False
                if len(values) == 0:
                    continue
                if last is not None and not pc.greater(values[0], last).as_py():
                    return False
                pairs_increase = pc.greater(values.slice(1), values.slice(0, len(values) - 1))
                if len(values) > 1 and not pc.all(pairs_increase).as_py():
                    return False
                last = values[len(values) - 1]
            return True
        finally:
            reader.close()

    def reference(self, table_name: str, column: str, target_name: str, target_column: str, code: str,
                  noun: str) -> list[Diagnostic]:
        """Every value of `table.column` must be a `target.target_column` (anti join: no duplicates)."""
        if not (self.usable(table_name, column) and self.usable(target_name, target_column)):
            return []
        if self.tables[target_name].rejected:  # its unreadable lines would show up as unknown ids here
            return []
        table, target = self.tables[table_name], self.tables[target_name]
        value = table.columns[column].typed()
        unknown = (f"FROM {table.raw_view} AS t ANTI JOIN {quote(target_name)} AS r"
                   f" ON r.{quote(target_column)} = {value} WHERE {value} IS NOT NULL")
        rows = self.db.execute(
            f"SELECT t.{FILE}, t.{ROW}, {value} {unknown} ORDER BY t.{FILE}, t.{ROW} LIMIT {MAX_ROWS}"
        ).fetchall()
        if not rows:
            return []
        total = len(rows) if len(rows) < MAX_ROWS else self.db.execute(f"SELECT count(*) {unknown}").fetchall()[0][0]
        # 'R0157 ' or 'r0157' for R0157: the id that is there, written another way.
        meant = dict(self.db.execute(
            f"SELECT x, min(r.{quote(target_column)}) FROM (SELECT UNNEST(?) AS x) JOIN {quote(target_name)} AS r"
            f" ON lower(trim(r.{quote(target_column)})) = lower(trim(x)) GROUP BY x", [[v for *_, v in rows]]
        ).fetchall())
        return self.row_diagnostics(
            table, code, column, rows, total,
            lambda v: f"{noun} {_show(v)} is not in {target_name}"
            + (f" (did you mean {_show(meant[v])}?)" if v in meant else ""),
            (f"each {column} must be an {target_column} in {target.location}",),
        )

    def split_sums(self) -> list[Diagnostic]:
        """Per deal, the split percentages must add up to exactly 1 (exact decimals, no tolerance)."""
        if not self.usable("deal_splits", "deal_id", "percent") or self.tables["deal_splits"].rejected:
            return []
        splits = self.tables["deal_splits"]
        deal, percent = splits.columns["deal_id"].typed(), splits.columns["percent"].typed()
        # Deals with a percent that is empty or invalid are reported by RD006/RD008 already, and one RD007 rounds
        # (thirds written to 7 places would seem to sum to 0.999999).
        found = _rounded(splits.columns["percent"])
        rounded = f" AND NOT coalesce(bool_or({found}), false)" if found else ""
        wrong = self.db.execute(
            f"SELECT count(*) OVER (), {deal}, sum({percent}) FROM {splits.raw_view} AS t"
            f" WHERE {deal} IS NOT NULL GROUP BY {deal}"
            f" HAVING count({percent}) = count(*) AND sum({percent}) <> 1{rounded}"
            f" ORDER BY min(t.{FILE}), min(t.{ROW}) LIMIT {MAX_ROWS}"
        ).fetchall()
        if not wrong:
            return []
        rows_of = dict(self.db.execute(
            f"SELECT {deal}, list(t.{ROW} ORDER BY t.{FILE}, t.{ROW}) FROM {splits.raw_view} AS t"
            f" WHERE {deal} IN (SELECT UNNEST(?)) GROUP BY {deal}",
            [[deal_id for _, deal_id, _ in wrong]],
        ).fetchall())
        found = []
        for _, deal_id, total in wrong:
            rows = rows_of[deal_id]
            hints = ("percent is a fraction: 0.6 means 60 %",) if total == 100 else (
                "the shares of one deal must add up to 1 (100 %)",)
            rows_text = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
            found.append(Diagnostic(
                code="RD011",
                message=f"the splits of deal {_show(deal_id)} sum to {_plain(total)} ({_percent(total)}) "
                f"(rows {rows_text}); they must sum to 100 %",
                data=DataLocation(file=splits.location, row=rows[0], column="percent"),
                hints=hints,
            ))
        if wrong[0][0] > MAX_ROWS:
            found.append(self.more(splits, "RD011", "percent", wrong[0][0] - MAX_ROWS, "deals"))
        return found

    def currencies_without_rates(self) -> list[Diagnostic]:
        """Every currency other than the company's needs rates to or from it (one message per currency)."""
        if self.tables["fx_rates"].present and not self.usable("fx_rates", "date", "from", "to", "rate"):
            return []  # the rates cannot be read (RD003, RD004, RD005 say why): every currency would look rateless
        found = []
        for name in ("deals", "reps"):
            if not self.usable(name, "currency"):
                continue
            table = self.tables[name]
            currency = table.columns["currency"].typed()
            missing = self.db.execute(
                f"SELECT {currency} AS cur, count(*), arg_min(t.{ROW}, (t.{FILE}, t.{ROW})) FROM {table.raw_view} AS t"
                f" WHERE {currency} IS NOT NULL AND {currency} <> getvariable('rp_base_currency')"
                f" AND {currency} NOT IN (SELECT currency FROM _rp_fx_first) GROUP BY 1 ORDER BY 3"
            ).fetchall()
            known = {self.base} | {c for (c,) in self.db.execute("SELECT currency FROM _rp_fx_first").fetchall()}
            for cur, count, row in missing:
                used = f"{count:,} rows" if count > 1 else "1 row"
                meant = cur.strip().upper()  # 'usd', 'EUR ': a known code written another way
                hint = (f"currency codes are upper-case ISO codes: did you mean {_show(meant)}?" if meant in known
                        else f"add fx_rates rows with from = {cur} and to = {self.base}")
                found.append(Diagnostic(
                    code="RD015",
                    message=f"currency {_show(cur)} has no fx rate to or from {self.base} "
                    f"(used by {used}; first on {self.row_label(table, row)})",
                    data=DataLocation(file=table.location, row=row, column="currency"),
                    hints=(hint,),
                ))
        return found

    def manager_cycles(self) -> list[Diagnostic]:
        """Cycles in the manager hierarchy (`runtime.hierarchy`): the reps table's, and those rep_assignments
        make on some day; roll-up would credit a deal again at each turn. Assignments that overlap are RD021's,
        ones that end before they start RD018's."""
        if not self.usable("reps", "id", "manager_id"):
            return []
        reps = self.tables["reps"]
        rep, manager = reps.columns["id"].typed(), reps.columns["manager_id"].typed()
        rows = self.db.execute(
            f"SELECT {rep}, {manager}, t.{FILE}, t.{ROW} FROM {reps.raw_view} AS t WHERE {rep} IS NOT NULL"
            f" ORDER BY t.{FILE}, t.{ROW}"
        ).fetchall()
        managers = [Manager(r, m, (reps, file, row)) for r, m, file, row in rows]
        dated = []
        # Without an end_date column every assignment is open-ended, as the calculators read it.
        if self.usable("rep_assignments", "rep_id", "start_date", "manager_id"):
            table = self.tables["rep_assignments"]
            rep, start, end, manager = (
                table.columns[n].typed() for n in ("rep_id", "start_date", "end_date", "manager_id")
            )
            rows = self.db.execute(
                f"SELECT {rep}, {manager}, t.{FILE}, t.{ROW}, {start}, {end} FROM {table.raw_view} AS t"
                f" WHERE {rep} IS NOT NULL AND {start} IS NOT NULL AND NOT coalesce({end} < {start}, false)"
                f" ORDER BY {start}, t.{FILE}, t.{ROW}"
            ).fetchall()
            dated = [Manager(r, m, (table, file, row), s, e) for r, m, file, row, s, e in rows]
        found = []
        for cycle in cycles(managers, dated):
            table, file, row = cycle.closed_by.where
            found.append(Diagnostic(
                code="RD014",
                message=cycle.text() + self.line_suffix(table, row),
                data=DataLocation(file=_file_of(table, file), row=row, column="manager_id"),
                hints=("someone in the cycle reports to no one in it"
                       + (" on that day" if cycle.closed_by.start else "") + ": empty their manager_id or fix it",),
            ))
        return found

    def overlapping_assignments(self) -> list[Diagnostic]:
        """A rep's assignments may not share a day: on each day one assignment says which plans apply.

        Each assignment is compared with the one of the same rep that starts next
        (the first one it can overlap); an open end (empty end_date) lasts for
        ever. Two rows with the same start are a duplicate key (RD009) and rows
        with an end before their start are RD018's: neither is repeated here.
        """
        if not self.usable("rep_assignments", "rep_id", "start_date"):  # no end_date column: none ends
            return []
        table = self.tables["rep_assignments"]
        rep, start, end = (table.columns[n].typed() for n in ("rep_id", "start_date", "end_date"))
        ordered = (
            f"SELECT {rep} AS rep, {start} AS start_date, {end} AS end_date, t.{FILE} AS file, t.{ROW} AS row,"
            f" lead({start}) OVER w AS next_start, lead(t.{FILE}) OVER w AS next_file,"
            f" lead(t.{ROW}) OVER w AS next_row"
            f" FROM {table.raw_view} AS t"
            f" WHERE {rep} IS NOT NULL AND {start} IS NOT NULL AND NOT coalesce({end} < {start}, false)"
            f" WINDOW w AS (PARTITION BY {rep} ORDER BY {start}, t.{FILE}, t.{ROW})"
        )
        overlapping = f"FROM ({ordered}) WHERE next_start > start_date AND (end_date IS NULL OR end_date >= next_start)"
        rows = self.db.execute(
            f"SELECT next_file, next_row, rep, next_start, start_date, end_date, row {overlapping}"
            f" ORDER BY next_file, next_row LIMIT {MAX_ROWS}"
        ).fetchall()
        if not rows:
            return []
        if len(rows) < MAX_ROWS:
            total = len(rows)
        else:
            (total,) = self.db.execute(f"SELECT count(*) {overlapping}").fetchall()[0]

        def message(rep_id, next_start, start_date, end_date, row) -> str:
            until = f"to {_show(end_date)}" if end_date is not None else "with no end_date"
            return (f"rep {_show(rep_id)}'s assignment from {_show(next_start)} overlaps the one from "
                    f"{_show(start_date)} {until} ({self.row_label(table, row)})")

        return self.row_diagnostics(
            table, "RD021", "start_date", rows, total, message,
            ("end the earlier assignment the day before the next one starts",),
        )

    # --- messages -------------------------------------------------------------------

    def row_diagnostics(self, table: TableSource, code: str, column: str, rows, total: int,
                        message: Callable[..., str], hints: tuple[str, ...] = (),
                        severity: Severity = Severity.ERROR) -> list[Diagnostic]:
        """One diagnostic per fetched row (`(file, row, *values)`), and one for the rest."""
        found = [
            Diagnostic(
                code=code,
                severity=severity,
                message=message(*values) + self.line_suffix(table, row),
                data=DataLocation(file=_file_of(table, file), row=row, column=column),
                hints=hints,
            )
            for file, row, *values in rows
        ]
        if total > len(rows):
            found.append(self.more(table, code, column, total - len(rows), "rows", severity))
        return found

    def more(self, table: TableSource, code: str, column: str, count: int, what: str,
             severity: Severity = Severity.ERROR) -> Diagnostic:
        return Diagnostic(code=code, severity=severity,
                          message=f"{count:,} more {what} with this problem (the first {MAX_ROWS} are listed)",
                          data=DataLocation(file=table.location, column=column))

    @staticmethod
    def line_suffix(table: TableSource, row: int) -> str:
        return f" (line {table.line(row)})" if table.shows_lines else ""

    def row_label(self, table: TableSource, row: int) -> str:
        return f"row {row}" + self.line_suffix(table, row)


def _rounded(column: ColumnSource) -> str | None:
    """SQL: the value has more decimal places than the column keeps, so its typed value is rounded (RD007);
    None where it cannot be."""
    scale = SCALES.get(column.field.type)
    if scale is None or column.conversion is Conversion.SAME:
        return None
    if column.source_type == "VARCHAR":
        return f"TRY_CAST(TRIM({column.raw()}) AS DECIMAL(38,18)) <> {column.typed()}"
    if (decimal_scale(column.source_type) or 0) > scale:
        return f"{column.raw()} <> {column.typed()}"
    return None


def _column_rules(column: ColumnSource) -> Iterator[_RowRule]:
    """Type rules for one column: valid values, decimal places, required, not negative."""
    if not _convertible(column):
        return
    raw, typed = column.raw(), column.typed()
    raw_text = raw if column.source_type == "VARCHAR" else f"CAST({raw} AS VARCHAR)"
    kind = column.field.type
    if column.conversion is not Conversion.SAME and kind is not FieldType.STRING:
        expected, how = _EXPECTED[kind]
        yield _RowRule("RD006", column.name, f"NOT {column.is_blank()} AND {typed} IS NULL", (raw_text,),
                       lambda value: _not_valid(kind, value), (how,))
    elif kind is FieldType.DATE:  # a DATE column of a .duckdb or Parquet file can hold 'infinity', or a year BC
        yield _RowRule("RD006", column.name, f"NOT isfinite({raw}) OR {raw} < DATE '0001-01-01'", (raw_text,),
                       lambda value: _not_valid(kind, value), (_EXPECTED[kind][1],))
    scale = SCALES.get(kind)
    if scale is not None and column.conversion is not Conversion.SAME and column.source_type == "VARCHAR":
        # DuckDB reads 1.23457E+5 as a number, but a spreadsheet writes one so only after rounding it to 6 digits.
        yield _RowRule("RD006", column.name, f"{typed} IS NOT NULL AND contains(upper({raw}), 'E')", (raw_text,),
                       lambda value: f"{_show(value)} is in scientific notation",
                       ("spreadsheets write numbers so once rounded to 6 digits: export the column as plain "
                        "decimals (format the cells as numbers with their decimal places)",))
    if (rounded := _rounded(column)) is not None:
        places = "cents" if kind is FieldType.MONEY else f"{scale} decimal places"
        yield _RowRule("RD007", column.name, rounded, (raw_text,),
                       lambda value: f"{_show(value)} has more than {scale} decimal places",
                       (f"{column.name} keeps {places}; round the value in the source",))
    if column.field.required:
        yield _RowRule("RD008", column.name, column.is_blank(), (),
                       lambda: f"required value {column.name!r} is empty",
                       (f"every row needs its {column.name}: {column.field.doc}",))
    if kind is FieldType.MONEY:
        yield _RowRule("RD010", column.name, f"{typed} < 0", (typed,),
                       lambda value: f"negative {column.name} {_show(value)}",
                       ("amounts are never negative: a cancelled deal has a cancel_date",))


INVISIBLE = r"[\x{00A0}\x{200B}-\x{200D}\x{2060}\x{FEFF}]"  # no-break and zero-width spaces (RE2)


def _blank_in_id(key: str) -> str:
    if key[:1].isspace() or key[-1:].isspace():
        return f"id {key!r} has a blank at its " + ("start" if key[:1].isspace() else "end")
    return f"id {key!r} holds an invisible character (a no-break or zero-width space)"


def _written_as(name: str, table: TableSource) -> str | None:
    """A column of the source that is `name` written another way (`Cancel Date`, `paid-date`), if any."""
    loose = [c for c in table.extra_columns if re.sub(r"[\s\-]+", "_", c.strip()).lower() == name]
    return loose[0] if loose else None


def _convertible(column: ColumnSource) -> bool:
    return column.conversion not in (Conversion.MISSING, Conversion.WRONG_TYPE)


def _how_to_add(table: TableSource) -> str:
    """Where a missing table would go: a file of the folder, or a table of the database."""
    in_folder = table.location.endswith(".csv")  # a missing table of a folder is located at its CSV file
    where = f"{table.table}.csv or {table.table}.parquet" if in_folder else f"a table named {table.table}"
    if table.location.startswith("postgres"):
        where += " in a schema on the URL's search path (?options=-csearch_path%3Dcrm)"
    return f"add {where} (columns: {', '.join(table.entity.field_names)})"


def _wrong_type_hint(column: ColumnSource) -> str:
    if column.source_type in ("FLOAT", "DOUBLE", "REAL", "DOUBLE PRECISION"):
        return f"binary floating point cannot hold exact values: store {column.sql_type} (or text) in the source"
    if (column.source_type or "").startswith("TIMESTAMP"):
        return "store a DATE (the day in the company's time zone), not a timestamp"
    return f"store {column.sql_type} (or text) in the source"


def _file_of(table: TableSource, file: str | None) -> str:
    """Rows of a folder of Parquet parts name their part; others the table's location."""
    return file if table.kind == "parquet" and file else table.location


def _whole_digits(kind: FieldType) -> int | None:
    """Digits before the decimal point a column of `kind` holds: DECIMAL(18,2) money 16, BIGINT 18 for sure."""
    if kind is FieldType.INTEGER:
        return 18
    decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", SQL_TYPES[kind])
    return int(decimal[1]) - int(decimal[2]) if decimal else None


def _not_valid(kind: FieldType, value: str | None) -> str:
    """Why a cell did not convert: a plain number too big for its column says so (an amount in cents, or
    in the wrong currency unit, most often), anything else is not a valid value.

    >>> _not_valid(FieldType.MONEY, "123000000000000000.00")
    "'123000000000000000.00' is too large for an amount (at most 16 digits before the decimal point)"
    """
    expected = _EXPECTED[kind][0]
    number = r"\s*[-+]?\d+\s*" if kind is FieldType.INTEGER else r"\s*[-+]?\d+(\.\d*)?\s*"
    if _whole_digits(kind) is not None and re.fullmatch(number, value or ""):
        article = "an" if expected[0] in "aeiou" else "a"
        return (f"{_show(value)} is too large for {article} {expected} "
                f"(at most {_whole_digits(kind)} digits before the decimal point)")
    return f"{_show(value)} is not a valid {expected}"


def _show(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _plain(value: decimal.Decimal) -> str:
    """A decimal without trailing zeros: 1.200000 -> '1.2', 100.00 -> '100'."""
    return format(value.normalize(), "f")


def _percent(fraction: decimal.Decimal) -> str:
    """0.9 -> '90 %'."""
    return f"{_plain(fraction * 100)} %"


def check_plan_references(files: Sequence[ir.PlanFile], dataset: DataSet) -> list[Diagnostic]:
    """RD022 warnings, at the plan's line: reps and accounts territory plans name that the data lacks.

    A territory held by a rep who is not on the roster credits nobody, and a
    named account that does not exist assigns nothing: legal, but rarely meant.
    """
    named: dict[tuple[str, str], list[tuple[ir.Node, str]]] = {}
    for plan in (p for f in files for p in f.plans if isinstance(p, ir.TerritoryPlan)):
        for territory in plan.territories:
            for role, holders in (("owner", territory.owners), ("overlay", territory.overlays)):
                for holder in holders:
                    what = f'{plan.key}: territory "{territory.name}" names {role} {holder.rep}'
                    named.setdefault(("reps", holder.rep), []).append((holder, what))
        for rule in plan.rules:
            for account in rule.accounts:
                what = f'{plan.key}: the rule for "{rule.territory}" names account {account}'
                named.setdefault(("accounts", account), []).append((rule, what))
        for move in plan.moves:
            what = f'{plan.key}: the move to "{move.territory}" on {move.on} names account {move.account}'
            named.setdefault(("accounts", move.account), []).append((move, what))
    for plan in (p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan)):
        for weight in plan.weights:
            named.setdefault(("reps", weight.rep), []).append((weight, f"{plan.key}: a weight names rep {weight.rep}"))
        for override in plan.overrides:
            what = f"{plan.key}: an override names rep {override.rep}"
            named.setdefault(("reps", override.rep), []).append((override, what))
    diagnostics = []
    for table in ("reps", "accounts"):
        wanted = sorted(key for kind, key in named if kind == table)
        if not wanted:
            continue
        found = {row[0] for row in dataset.connection.execute(
            f'SELECT id FROM "{table}" WHERE list_contains(?, id)', [wanted]  # our table name, ids bound
        ).fetchall()}
        for key in wanted:
            if key in found:
                continue
            for node, what in named[(table, key)]:
                diagnostics.append(Diagnostic(
                    code="RD022", severity=Severity.WARNING, span=node.span,
                    message=f"{what}, who is not in the data's {table}" if table == "reps"
                    else f"{what}, which is not in the data's {table}",
                    hints=("it applies to nobody: check the id against the data, or remove it from the plan",)
                    if table == "reps" else ("it assigns nothing: check the id against the data",),
                ))
    return diagnostics


def check_quota_plan_reps(files: Sequence[ir.PlanFile], quotas, dataset: DataSet) -> list[Diagnostic]:
    """RD022 warnings, at the line: a quota plan's weight or override for a rep on the roster whom the plan
    does not give a quota (its `applies to` leaves them out): ignored, so the others' quotas are not what
    its author meant. `quotas` are the run's; reps missing from the roster are `check_plan_references`'."""
    plans = [p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan)]
    named = sorted({node.rep for plan in plans for node in (*plan.weights, *plan.overrides)})
    if not named:
        return []
    on_roster = {row[0] for row in dataset.connection.execute(
        'SELECT id FROM "reps" WHERE list_contains(?, id)', [named]).fetchall()}
    diagnostics = []
    for plan in plans:
        mine = quotas[(quotas["plan"] == plan.name) & (quotas["version"] == plan.version)] if quotas is not None \
            else None
        given = set(mine["rep_id"]) if mine is not None else set()
        for node, what in [*((w, "weight") for w in plan.weights), *((o, "override") for o in plan.overrides)]:
            if node.rep in given or node.rep not in on_roster:
                continue
            diagnostics.append(Diagnostic(
                code="RD022", severity=Severity.WARNING, span=node.span,
                message=f"{plan.key}: the {what} for rep {node.rep} is ignored: the plan gives {node.rep} no quota",
                hints=("its `applies to` does not select them: remove the line, or check the id",),
            ))
    return diagnostics


_WEIGHED_BY = {  # basis -> what its reps must have for it to weigh them (the quota rows' `<column>_total`)
    "territory_potential": ("territory_potential", "accounts with potential in their territories"),
    "prior_bookings": ("prior_bookings", "closed_won bookings in the year before"),
    "weights": ("weight", "a weight above 0"),
}


def check_quota_bases(files: Sequence[ir.PlanFile], quotas) -> list[Diagnostic]:
    """RD042 warnings, at the `allocate by` line: a basis that weighs none of the plan's reps (no prior
    bookings, no territory potential, every weight 0). Its share of the target is allocated equally, so the
    whole target is still allocated (compiler/quota.py), but that is not the rule the plan states.
    `quotas` are the run's."""
    if quotas is None:
        return []
    years = quotas[quotas["period_kind"] == "year"]
    diagnostics = []
    for plan in (p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan)):
        mine = years[(years["plan"] == plan.name) & (years["version"] == plan.version)]
        for term in plan.allocation:
            if term.basis not in _WEIGHED_BY or mine.empty:
                continue
            column, what = _WEIGHED_BY[term.basis]
            for year in sorted(set(mine.loc[mine[f"{column}_total"] == 0, "period"])):
                diagnostics.append(Diagnostic(
                    code="RD042", severity=Severity.WARNING, span=term.span,
                    message=f"{plan.key}: `allocate by {term.basis}` weighs none of the plan's reps for {year}: "
                            f"none has {what}, so its share of the target is allocated in equal shares",
                    hints=("check the data the basis reads, or allocate by another basis",),
                ))
    return diagnostics


def check_quota_coverage(plans: Sequence[ir.CompPlan], lines, quota_periods: Collection[str] = ()
                         ) -> list[Diagnostic]:
    """RD023 warnings, at the plan's `quota` line: reps a plan measures on attainment but who have no quota,
    or a zero one, in a period they are in it. Their attainment is empty, so tiers on attainment pay nothing
    there, curves pay their value below the first point and gates on attainment fail (a zero quota counts as
    none: tests/examples/zero_quota.plan):
    legal, rarely meant, and on payroll it must not go unnoticed.

    `lines` are the run's payout lines; a rep-period counts when it has a line of its own period (paid
    lines of earlier periods carry no quota) and none of its lines has a quota. `quota_periods`, the quotas
    table's period labels, tell of rows of another period kind, which such a plan does not read (audit:
    monthly rows for a quarter lost 16,659.13 with no word of them)."""
    diagnostics = []
    own = lines[lines["proration"].notna()]  # lines computed for the rep-period itself
    for plan in plans:
        if plan.attainment is None:
            continue
        rows = own[(own["plan"] == plan.name) & (own["version"] == plan.version)]
        if rows.empty:
            continue
        ytd = plan.measurement == ir.Measurement.YEAR_TO_DATE
        quota = rows.groupby(["rep_id", "period"], sort=True)["quota"].max()
        if ytd:
            quota = _own_quotas(quota)
        missing = [key for key, value in quota.items() if pd.isna(value) or value == 0]  # (rep, period)
        if not missing:
            continue
        reps = len({rep for rep, _ in missing})
        shown = _rep_periods(missing)
        source = f'quota plan "{plan.quota.plan}"' if plan.quota.plan else "the quotas table"
        unread_hint = () if plan.quota.plan else _unread_labels("the quotas table also has", quota_periods, plan)
        diagnostics.append(Diagnostic(
            code="RD023", severity=Severity.WARNING, span=plan.quota.span or plan.span,
            message=f"{plan.key}: {reps} rep{'s' * (reps != 1)} ha{'ve' if reps != 1 else 's'} no quota (or 0) from "
                    f"{source} in {len(missing)} rep-period{'s' * (len(missing) != 1)} of the plan ({shown}); "
                    + ("year to date, their attainment there is measured on the quotas of the other periods so "
                       "far only (empty where none has one)"
                       if ytd else "their attainment is empty there, so no tier band or curve point on attainment is "
                       "reached"),
            hints=(*unread_hint, f"give them quotas in {source}" + (
                " (its `applies to`, `allocate by` and overrides decide who gets what)" if plan.quota.plan else "")),
        ))
    return diagnostics


def _own_quotas(to_date: pd.Series) -> pd.Series:
    """Each rep-period's own quota, from the quotas to date year-to-date lines show (by rep and period, sorted):
    what it adds to the year's so far, 0 where it adds nothing (the sum skipped a period without one)."""
    own, so_far = {}, {}
    for (rep, period), value in to_date.items():
        year = (rep, period[:4])
        own[(rep, period)] = None if pd.isna(value) else value - so_far.get(year, 0)
        if not pd.isna(value):
            so_far[year] = value
    return pd.Series(own, dtype=object)


def check_mbo_coverage(plans: Sequence[ir.CompPlan], lines, dataset: DataSet) -> list[Diagnostic]:
    """RD038 warnings, at the MBO component: rep-periods it pays with no score in mbo_scores, so it pays 0.00
    there (audit: scores labelled 2027-Q1 and 2027-H1 for a monthly plan paid twelve zeros with no word).
    The hint names those reps' score labels of another period kind, which such a plan does not read.

    `lines` are the run's payout lines; a rep-period counts when it has an MBO line of its own period."""
    if not dataset.tables["mbo_scores"].present:
        return []  # RD033 says the plan reads a table the data does not have
    scored = dataset.connection.execute(
        "SELECT DISTINCT rep_id, period FROM mbo_scores WHERE score IS NOT NULL AND rep_id IS NOT NULL"
    ).fetchall()
    scored_pairs = set(scored)
    own = lines[lines["proration"].notna() & (lines["line_type"] == "mbo")]
    found = []
    for plan in plans:
        for component in (c for c in plan.components if isinstance(c.payout, ir.Mbo)):
            rows = own[(own["plan"] == plan.name) & (own["version"] == plan.version)
                       & (own["component"] == component.name)]
            missing = sorted({(r.rep_id, r.period) for r in rows.itertuples()} - scored_pairs)
            if not missing:
                continue
            missing_reps = {rep for rep, _ in missing}
            labels = {period for rep, period in scored if rep in missing_reps}  # theirs, not other plans' reps'
            found.append(Diagnostic(
                code="RD038", severity=Severity.WARNING, span=component.payout.span or component.span,
                message=f'{plan.key}: "{component.name}" has no MBO score for {len(missing)} '
                        f"rep-period{'s' * (len(missing) != 1)} it pays ({_rep_periods(missing)}), so it pays 0.00 "
                        "there",
                hints=(*_unread_labels("mbo_scores has", labels, plan),
                       "give them a score for each period (0 when they scored nothing)"),
            ))
    return found


def _rep_periods(pairs: Sequence[tuple[str, str]]) -> str:
    """`R2 2027-Q2, R3 2027-Q1, ... and 7 more`: the first five (rep, period) pairs a warning names."""
    shown = ", ".join(f"{rep} {period}" for rep, period in pairs[:5])
    return shown + (f", and {len(pairs) - 5} more" if len(pairs) > 5 else "")


def _unread_labels(table_has: str, labels: Collection[str], plan: ir.CompPlan) -> tuple[str, ...]:
    """A hint naming a table's period labels of another kind than `plan`'s, which the plan does not read."""
    unread = sorted(label for label in labels if period_dates(plan.period, label) is None)
    if not unread:
        return ()
    return (f"{table_has} rows for {', '.join(unread[:4])}{', ...' * (len(unread) > 4)}, which a plan paid by "
            f"{plan.period.value} does not read",)


def check_near_miss_values(files: Sequence[ir.PlanFile], dataset: DataSet) -> list[Diagnostic]:
    """RD024 warnings, at the data's first such row: a value that differs from a text a plan compares its
    column with only in case, spaces, `_` or `-` (`Closed Won` where plans say "closed_won", `ae` for
    "AE"). Texts match exactly, so those rows meet none of the plan's conditions on that value: a deal
    that counts in no measure, a rep in no plan, and nothing says so. Values no plan names stay quiet:
    a product no plan mentions is normal data."""
    found = []
    for (entity, field), texts in sorted(_compared_texts(files).items()):
        near = {_loose(text): text for text in texts}
        for source in _tables_with(dataset, entity, field):
            value = source.columns[field].typed()
            counts = dataset.connection.execute(
                f"SELECT {value}, count(*) FROM {source.raw_view} AS t WHERE {value} IS NOT NULL GROUP BY ALL"
            ).fetchall()
            for data_value, count in sorted(counts):
                meant = near.get(_loose(data_value))
                if data_value in texts or meant is None:
                    continue
                file, row = first_row(dataset.connection.execute(
                    f"SELECT t.{FILE}, t.{ROW} FROM {source.raw_view} AS t WHERE {value} = ?"
                    f" ORDER BY t.{FILE}, t.{ROW} LIMIT 1", [data_value]
                ))
                rows = f"the {count:,} rows with it meet" if count != 1 else "the row with it meets"
                where = texts[meant].span or "a plan"
                found.append(Diagnostic(
                    code="RD024", severity=Severity.WARNING,
                    message=f"{_show(data_value)} is not {_show(meant)}, which {where} compares {entity}.{field} "
                            f"with; texts match exactly, so {rows} no condition on {_show(meant)}"
                            + _Checker.line_suffix(source, row),
                    data=DataLocation(file=_file_of(source, file), row=row, column=field),
                    hints=(f"write {_show(meant)} in the data, or name both values in the plan",),
                ))
    return found


def _compared_texts(files: Sequence[ir.PlanFile]) -> dict[tuple[str, str], dict[str, ir.Node]]:
    """(entity, field) -> {text: the first condition comparing them} for `field = "text"`, `!=` and `in`."""
    compared: dict[tuple[str, str], dict[str, ir.Node]] = {}
    for node in (node for file in files for node in walk(file)):
        pairs = []
        if isinstance(node, ir.Compare) and node.op in ("=", "!="):
            pairs = [(node.left, node.right), (node.right, node.left)]
        elif isinstance(node, ir.InList):
            pairs = [(node.operand, value) for value in node.values]
        for field, text in pairs:
            if isinstance(field, ir.FieldRef) and isinstance(text, ir.Text):
                compared.setdefault((field.entity, field.field), {}).setdefault(text.value, node)
    return compared


def _tables_with(dataset: DataSet, entity: str, field: str) -> list[TableSource]:
    """The readable tables holding `entity.field`: the entity's own, and for a rep its dated assignments."""
    return [
        source for source in dataset.tables.values()
        if (source.entity.name == entity or (entity == "rep" and source.table == "rep_assignments"))
        and field in source.columns and source.present and not source.broken and _convertible(source.columns[field])
    ]


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))  # zero-width spaces and joiners


def _loose(text: str) -> str:
    """A text without case or invisible characters, and with every run of spaces, `_` and `-` as one `_`: what a
    near miss shares (`closed\u200b_won`, pasted from a document, is one too, audit)."""
    visible = text.translate(_INVISIBLE)
    return "_".join(part for part in visible.lower().replace("-", " ").replace("_", " ").split())


def quota_labels(dataset: DataSet) -> list[str]:
    """The period labels of the quotas table (for `check_quota_coverage`): a handful, whatever its size."""
    if not dataset.tables["quotas"].present:
        return []
    query = "SELECT DISTINCT period FROM quotas WHERE period IS NOT NULL"
    return [label for (label,) in dataset.connection.execute(query).fetchall()]


def part_periods(plans: Sequence[ir.CompPlan], connection) -> pd.DataFrame:
    """(plan, version, rep_id, period) of the plans that do not prorate and pay a period something whole, where
    the rep is in the plan on some but fewer of the period's days than employed: a role change or a new version
    mid-period. Computed from the roster, as the calculators compute the plan's days (RD037)."""
    found = [pd.DataFrame(columns=["plan", "version", "rep_id", "period"])]
    for plan in plans:
        if plan.prorate or not pays_by_the_period(plan):
            continue
        rows = connection.sql(compile_part_periods(plan).sql(dialect="duckdb")).df()
        found.append(rows.assign(plan=plan.name, version=plan.version)[["plan", "version", "rep_id", "period"]])
    return pd.concat(found, ignore_index=True)


def check_split_periods(plans: Sequence[ir.CompPlan], parts: pd.DataFrame) -> list[Diagnostic]:
    """RD037 warnings, at the plan's line: reps in a plan for part of a period they were employed in (`parts`,
    from `part_periods`), where the plan does not `prorate by active_days`. It then pays a whole period's quota,
    TI and fixed amounts for their days in it, as another plan may for the rest (audit: a curve on TI paid its
    18,000 in both plans of one quarter). Legal, so a warning."""
    found = []
    for plan in plans:
        rows = parts[(parts["plan"] == plan.name) & (parts["version"] == plan.version)]
        if rows.empty:
            continue
        shown = _rep_periods(list(zip(rows["rep_id"], rows["period"], strict=True)))
        found.append(Diagnostic(
            code="RD037", severity=Severity.WARNING, span=plan.span,
            message=f"{plan.key} has {len(rows)} rep-period{'s' * (len(rows) != 1)} of reps in it for part of "
                    f"their days ({shown}) and pays each a whole period's quota, TI and fixed amounts",
            hints=("add `prorate by active_days` to the plan: they then scale with the rep's days in it",
                   "or change roles and start versions on a period's first day"),
        ))
    return found


def check_plans_reach_reps(plans: Sequence[ir.CompPlan], lines, dataset: DataSet) -> list[Diagnostic]:
    """RD025 warnings, at the plan's `applies to`: a comp plan no rep of the data is in on any day it is in
    force. It pays nobody, which is never the point of a plan: most often `applies to` names a value the
    data spells another way ("Sales Engineer" for SE). The hint lists the values the data has.

    `lines` are the run's payout lines, of every period (a rep in a plan has a line in each of its periods)."""
    paying = set(zip(lines["plan"], lines["version"], strict=True))
    found = []
    for plan in plans:
        if (plan.name, plan.version) in paying:
            continue
        fields = sorted({(n.entity, n.field) for n in walk(plan.eligibility)
                         if isinstance(n, ir.FieldRef)}) if plan.eligibility else []
        hints = tuple(hint for entity, field in fields if (hint := _values_hint(dataset, entity, field)))
        found.append(Diagnostic(
            code="RD025", severity=Severity.WARNING, span=(plan.eligibility or plan).span,
            message=f"{plan.key} applies to no rep of the data from {plan.effective_from} to "
                    f"{plan.effective_to}, so it pays nobody",
            hints=(*hints, "check `applies to` and the plan's dates against the data (hire and termination dates)"),
        ))
    return found


def check_plan_rates(plans: Sequence[ir.PlanBase], dataset: DataSet, base_currency: str) -> list[Diagnostic]:
    """RD035 errors, at the data's first such deal: a deal a plan counts, in a currency with no fx rate *into
    the plan's currency* on the day the plan converts it or before: a comp plan's deal closing while it is in
    force (converted on its close date, or with `fx at period_end` at the end of its period), a quota plan's
    closed-won deal of the year before (prior bookings, converted on its close date). The calculators convert
    with such rates only (a rate the other way is not inverted), so the deal would count for nothing. Deals no
    plan counts need no rate: a CRM export's history older than the rates is fine. A currency with no rate to
    or from the company currency at all is RD015's, and not repeated."""
    deals, fx = dataset.tables.get("deals"), dataset.tables.get("fx_rates")
    usable = [t is not None and t.present and not t.broken for t in (deals, fx)]
    if not all(usable) or not all(_convertible(deals.columns[c]) for c in ("id", "currency", "close_date")) \
            or not all(_convertible(fx.columns[c]) for c in ("date", "from", "to", "rate")):
        return []
    day, source, target, rate = (fx.columns[c].typed() for c in ("date", "from", "to", "rate"))
    currency, close = deals.columns["currency"].typed(), deals.columns["close_date"].typed()

    def first_rates(into_column: str, from_column: str) -> str:  # each currency's first rate into the plan's
        return (f"SELECT {from_column} AS currency, min({day}) AS first_date FROM {fx.raw_view} AS t "
                f"WHERE {into_column} = $plan AND {rate} > 0 AND {day} IS NOT NULL GROUP BY 1")

    found, reported, asked = [], set(), set()
    for plan, first, last, converted_on, counted in _converted_deals(plans, close, deals):
        if (plan.currency, first, last, converted_on, counted) in asked:  # as an earlier plan: one scan of the deals
            continue
        asked.add((plan.currency, first, last, converted_on, counted))
        # In the company currency, a currency without any rate either way is RD015's.
        some_rate = (" AND (f.first_date IS NOT NULL OR r.first_date IS NOT NULL)"
                     if plan.currency == base_currency else "")
        late = dataset.connection.execute(  # the first such deal of each currency
            f"SELECT {deals.columns['id'].typed()}, {currency}, {close}, f.first_date, t.{FILE}, t.{ROW}, "
            f"count(*) OVER (PARTITION BY {currency}) FROM {deals.raw_view} AS t "
            f"LEFT JOIN ({first_rates(target, source)}) AS f ON f.currency = {currency} "
            f"LEFT JOIN ({first_rates(source, target)}) AS r ON r.currency = {currency} "
            f"WHERE {currency} <> $plan AND {close} BETWEEN $first AND $last{counted} "
            f"AND (f.first_date IS NULL OR {converted_on} < f.first_date){some_rate} "
            f"QUALIFY row_number() OVER (PARTITION BY {currency} ORDER BY t.{FILE}, t.{ROW}) = 1 "
            f"ORDER BY t.{FILE}, t.{ROW}",
            {"plan": plan.currency, "first": first, "last": last},
        ).fetchall()
        for deal, deal_currency, closed, first_rate, file, row, count in late:
            if (plan.currency, deal_currency) in reported:  # once per pair of currencies: the first plan's
                continue
            reported.add((plan.currency, deal_currency))
            since = f"the first is on {first_rate}" if first_rate is not None else "there is none"
            others = f"; {count - 1:,} more deal{'s' * (count != 2)} like it" if count > 1 else ""
            when = "it" if converted_on == close else "the end of its period"
            does = "pays" if isinstance(plan, ir.CompPlan) else "sets quotas"
            found.append(Diagnostic(
                code="RD035",
                message=f"deal {_show(deal)} closes on {closed} in {deal_currency}, but {plan.key} {does} in "
                        f"{plan.currency} and no fx rate from {deal_currency} to {plan.currency} is dated on or "
                        f"before {when} ({since}){others}" + _Checker.line_suffix(deals, row),
                data=DataLocation(file=_file_of(deals, file), row=row, column="currency"),
                hints=(f"add fx_rates rows with from = {deal_currency} and to = {plan.currency}: amounts convert "
                       "into the plan's currency, and a rate the other way is not inverted",),
            ))
    return found


def _converted_deals(plans: Sequence[ir.PlanBase], close: str, deals: TableSource) -> Iterator[tuple]:
    """(plan, first day, last day, the day a deal is converted on, a condition on the deals it counts) for each
    plan that converts deals: comp plans, and quota plans allocating by prior bookings."""
    for plan in plans:
        if isinstance(plan, ir.CompPlan):
            periods = plan_periods(plan.effective_from, plan.effective_to, plan.period)
            # The day the plan converts a deal on: its close date, or the end of the period it closes in.
            ends = " ".join(f"WHEN {close} BETWEEN DATE '{p.start}' AND DATE '{p.end}' THEN DATE '{p.end}'"
                            for p in periods)
            converted_on = close if plan.fx_at == ir.FxDate.CLOSE_DATE else f"CASE {ends} ELSE {close} END"
            yield plan, min(periods[0].year_start, periods[0].start), periods[-1].end, converted_on, ""
        elif isinstance(plan, ir.QuotaPlan) and any(t.basis == "prior_bookings" for t in plan.allocation):
            year = plan.effective_from.year - 1  # compiler/quota.py's prior_bookings: closed-won deals only
            stage_column = deals.columns.get("stage")
            stage = f" AND {stage_column.typed()} = 'closed_won'" if stage_column and _convertible(stage_column) else ""
            yield plan, datetime.date(year, 1, 1), datetime.date(year, 12, 31), close, stage


def check_run_off(plans: Sequence[ir.CompPlan], dataset: DataSet) -> list[Diagnostic]:
    """RD026 warnings, at the data's first such deal: a deal that closes while a plan paid on payment (or with
    a clawback) is in force, and is paid (cancelled within the window) after the plan's run-off ends, two years
    after its last day. No line pays (takes back) it: legal for a plan, but on payroll it must not go unnoticed,
    and a paid_date years late is more often a typo."""
    deals = dataset.tables.get("deals")
    if deals is None or not deals.present or deals.broken or "close_date" not in deals.columns:
        return []
    close = deals.columns["close_date"].typed()
    found = []
    for plan in plans:
        events = []  # (date column, the clawback's window in days or None, what no line does)
        if plan.paid_on == ir.PayoutTiming.PAYMENT:
            events.append(("paid_date", None, "pays its commission"))
        if plan.clawback is not None:
            events.append(("cancel_date", int(plan.clawback.within_days), "takes its commission back"))
        end = run_off_end(plan.effective_to, plan.period)
        for field, window, undone in events:
            if field not in deals.columns or not _convertible(deals.columns[field]):
                continue
            day = deals.columns[field].typed()
            where = f"{close} BETWEEN ? AND ? AND {day} > ?"
            if window is not None:
                where += f" AND {day} - {close} <= {window}"
            late = first_row(dataset.connection.execute(
                f"SELECT {deals.columns['id'].typed()}, {day}, t.{FILE}, t.{ROW}, count(*) OVER () "
                f"FROM {deals.raw_view} AS t WHERE {where} ORDER BY t.{FILE}, t.{ROW} LIMIT 1",
                [plan.effective_from, plan.effective_to, end],
            ))
            if late is None:
                continue
            deal, value, file, row, count = late
            others = f"; {count - 1:,} more deal{'s' * (count != 2)} {'are' if count != 2 else 'is'} that late" \
                if count > 1 else ""
            found.append(Diagnostic(
                code="RD026", severity=Severity.WARNING,
                message=f"deal {_show(deal)}: {field} {value} is after {end}, the end of the run-off of {plan.key} "
                        f"(the period {RUN_OFF_YEARS} years after its last day), so if the plan credits the deal, "
                        f"no line {undone}{others}"
                        + _Checker.line_suffix(deals, row),
                data=DataLocation(file=_file_of(deals, file), row=row, column=field),
                hints=(f"check the {field}; a plan pays deals paid, and takes back deals cancelled, up to "
                       f"the end of the period {RUN_OFF_YEARS} years after it ends",),
            ))
    return found


def _values_hint(dataset: DataSet, entity: str, field: str, shown: int = 12) -> str | None:
    """`rep.role in the data: 'AE', 'CSM', ...`: what a condition on a text `entity.field` can match."""
    values: set = set()
    for source in _tables_with(dataset, entity, field):
        if source.columns[field].field.type is not FieldType.STRING:  # 10,000 amounts or dates help nobody
            continue
        value = source.columns[field].typed()
        values.update(v for (v,) in dataset.connection.execute(
            f"SELECT DISTINCT {value} AS v FROM {source.raw_view} AS t WHERE v IS NOT NULL"
            f" ORDER BY v LIMIT {shown + 1}"
        ).fetchall())
    if not values:
        return None
    listed = ", ".join(_show(v) for v in sorted(values)[:shown])
    return f"{entity}.{field} in the data: {listed}" + (", ..." if len(values) > shown else "")


def check_plan_inputs(files: Sequence[ir.PlanFile], dataset: DataSet) -> list[Diagnostic]:
    """RD033 warnings, at the plan's line: a plan reads an optional table or column the data does not have.

    Optional columns and tables may be missing, and are then empty. A plan that
    reads one pays as if it were: `paid on payment` without a paid_date column pays
    no deal, a clawback without cancel_date takes nothing back, `credit splits`
    without deal_splits credits owners only. Legal, so a warning, once per plan and input.
    """
    shared = shared_measures(files)
    tables = {entity.name: entity.table for entity in dataset.schema.entities}
    found: dict[tuple[str, str, str | None], Diagnostic] = {}
    for plan in (p for f in files for p in f.plans):
        for table, column, node, what in _plan_inputs(plan, shared, tables):
            source = dataset.tables.get(table)
            if source is None or (plan.key, table, column) in found:
                continue
            if not source.present:
                missing = f"the data has no {table} table: it is read as empty"
                hint = _how_to_add(source)
            elif column is None and source.entity.table not in REQUIRED_TABLES and not source.broken \
                    and _has_no_rows(dataset.connection, source):
                missing = f"{source.location} has no rows: it is read as empty"
                hint = f"check that the export of {table} is complete"
            elif column is not None and source.columns[column].conversion is Conversion.MISSING \
                    and not source.columns[column].field.required:  # a required one is RD003's error
                missing = f"{source.location} has no {column} column: every {source.entity.name}'s {column} is empty"
                hint = f"add the {column} column to {source.location}"
            else:
                continue
            found[(plan.key, table, column)] = Diagnostic(
                code="RD033", severity=Severity.WARNING, span=node.span if node and node.span else plan.span,
                message=f"{plan.key} reads {what}, but {missing}",
                hints=(hint, "or change the plan not to read it"),
            )
    return list(found.values())


def _has_no_rows(connection: duckdb.DuckDBPyConnection, table: TableSource) -> bool:
    """A table with a header and no rows (RD031 for a required one, RD033 for one a plan reads)."""
    return not connection.execute(f"SELECT count(*) FROM {table.raw_view}").fetchall()[0][0]


def _plan_inputs(plan: ir.PlanBase, shared: dict[str, ir.Measure], tables: dict[str, str]
                 ) -> Iterator[tuple[str, str | None, ir.Node | None, str]]:
    """(table, column or None for the whole table, the node that reads it, what reads it) for what a plan
    reads; `tables` maps the entities plans name (`deal`) to their tables."""
    for node in (n for source in (plan, *_measures_used(plan, shared)) for n in walk(source)):
        if isinstance(node, ir.FieldRef) and node.entity in tables:
            yield tables[node.entity], node.field, node, f"{node.entity}.{node.field}"
        elif isinstance(node, ir.Aggregate) and node.entity in tables:
            yield tables[node.entity], node.field, node, (f"{node.entity}.{node.field}" if node.field
                                                           else tables[node.entity])
    if isinstance(plan, ir.QuotaPlan):  # read by constructs, not named (audit: pay changed with no word)
        for term in plan.allocation:
            if term.basis == "territory_potential":
                yield "accounts", "potential", term, "account.potential (its allocation by territory potential)"
    if not isinstance(plan, ir.CompPlan):
        return
    if plan.crediting.rollup:
        yield "reps", "manager_id", plan.crediting, "rep.manager_id (its roll-up to managers)"
    if plan.paid_on is ir.PayoutTiming.PAYMENT:
        yield "deals", "paid_date", None, "deal.paid_date (it is paid on payment)"
    if plan.clawback is not None:
        yield "deals", "cancel_date", plan.clawback, "deal.cancel_date (its clawback)"
    if plan.attainment is not None and plan.quota.plan is None:
        yield "quotas", None, plan.quota, "quotas (its attainment)"
    if plan.crediting.splits:
        yield "deal_splits", None, plan.crediting, "deal_splits (it credits splits)"
    for component in plan.components:
        if isinstance(component.payout, ir.Mbo):
            yield "mbo_scores", None, component.payout, "mbo_scores (its MBO)"


def _measures_used(plan: ir.PlanBase, shared: dict[str, ir.Measure]) -> list[ir.Measure]:
    """The shared measures a plan reads, directly or through other measures (its own are in the plan)."""
    used: dict[str, ir.Measure] = {}
    names = list(_names_in(plan))
    while names:
        name = names.pop()
        if name in shared and name not in used and name not in {m.name for m in plan.measures}:
            used[name] = shared[name]
            names.extend(_names_in(shared[name]))
    return list(used.values())


def _names_in(node: ir.Node) -> set[str]:
    """The measure names a node refers to: in expressions, and as the base, attainment or curve input."""
    names = set()
    for inner in walk(node):
        if isinstance(inner, ir.NameRef):
            names.add(inner.name)
        for attribute in ("base", "attainment", "on", "of"):
            value = getattr(inner, attribute, None)
            if isinstance(value, str):
                names.add(value)
    return names
