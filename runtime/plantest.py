"""Plan tests: run the `test` blocks written beside a plan, on any calculator.

In: plan files (paths, or `ir.PlanFile`s already loaded) and a calculator,
`calculator(plan_files, connection) -> payout lines` (a pandas DataFrame, or
a result object with `.payout_lines` and, when it computes them, `.quotas`
and `.territories`). The calculator is injected, so the SQL runtime and the
Python calculator are tested by the same plan tests.
Out: one `TestResult` per test block, with a `Mismatch` per failed expectation.

    build_tables(test, plan)      -> {"reps": pa.Table, "deals": ...}   the given rows, typed
    connection_for(tables)        -> DuckDB connection                  every contract table
    check_names(expect, plan, scope) -> raises PlanTestError            a name no row can hold
    compare(expectations, lines)  -> [Mismatch]                         exact Decimal comparison
    run_plan_tests(files, calc)   -> [TestResult]

What always holds:
  - Input tables have every contract column (`dsl/schema.py`) in its exact
    type: money DECIMAL(18,2), number DECIMAL(28,10), percent DECIMAL(9,6) (a
    fraction), integer BIGINT, date DATE. Omitted columns get the defaults
    below; a value that does not fit its column is a `PlanTestError` naming
    the `given` line, never a silently changed number.
  - Given rows keep the data contract: what `revplan run` refuses
    (`runtime.contract.check_data`: splits that do not sum to 100 %, an id
    with a blank, an unknown rep) is a `PlanTestError` at the `given` line of
    the first row refused. An optional table without given rows is absent.
  - An expectation names only what exists: a rep or account the test gives,
    a component of the plan, a line type of `compiler.sql.LINE_TYPES`, a
    period the plan can have lines in, a plan and version that run in the
    test (`check_names`). Else it would select no line and `amount 0.00`
    would pass whatever the plan pays.
  - A test expecting quotas or territories no plan computes in it is an
    error, after its payouts are compared (a failing payout is reported).
  - Expectations compare exactly: `Decimal` sums, never floats.
  - A test runs its own plan only, with what that plan depends on: every
    file's shared measures, the quota plan of `quota from plan`, the
    territory plans for `credit overlay` and `allocate by territory_potential`.
  - In a test of a comp plan with `quota from plan "NAME"`, `given quota`
    rows stand in for the quota plan: the plan reads them. Without quota
    rows, the quota plan runs on the test's reps, accounts and deals.

Given rows (`given TABLE field value, ...`; TABLE is the entity name: rep,
deal, split, account, quota, fx_rate, activity, mbo_score, rep_assignment; or
the table name).

| table | defaults for omitted columns |
| --- | --- |
| every table with an `id` key | id `"<entity>-<n>"` (n counts that table's rows from 1) |
| rep | name = id, role "AE", currency: see below, hire_date 2000-01-01, target_incentive 0 (ANNUAL TI) |
| deal | stage "closed_won", currency: see below |
| account | name = id |
| every table | other optional columns null; a required column without a default must be given |

`currency` (reps, deals) is the currency of the row's money values (`amount
100,000 EUR` makes a EUR deal), else the plan currency. Money in a table
without a currency column (quotas, account potential) must be in the plan
currency. Percentages are written `60%` and stored as fractions (0.6).

Expectations (`expect WHAT field value, ...`): key fields select result
rows, value fields are compared.

- `payout`, by rep, period, component, line_type, plan, version: amount,
  uncapped, base, deal_count are SUMS over the selected lines (no line: 0,
  for a rep, period and component that exist: a rep outside `applies to`);
  capped, gated are true when any selected line is; attainment, quota,
  target_incentive, rate, proration are the one value the lines share.
- `null` expects no value: the selected rows have none, or there is no row.
- `attainment`, by rep, period, component, plan: value (the one attainment).
- `quota`, by rep, period, plan: amount (needs a calculator with `.quotas`:
  rep_id, period, amount).
- `territory`, by account, date (as of), plan: territory (null: unassigned),
  owner (needs `.territories`: account_id, territory, owner_rep_id, and
  optionally start/end dates).

>>> from dsl.parse import parse
>>> from dsl.resolve import resolve
>>> text = '''revplan 1
... comp plan "P" version 1
...   effective 2027-01-01 to 2027-12-31
...   period quarter
...   currency USD
...   owners sales "@s" finance "@f"
...   component "C" on b
...     rate 10%
...   test "t"
...     given rep id "A", target_incentive 80,000 USD
...     given deal owner_rep_id "A", amount 100,000 EUR, close_date 2027-01-20
...     given fx_rate date 2027-01-01, from "EUR", to "USD", rate 1.1
...     expect payout rep "A", period "2027-Q1", amount 11,000.00 USD
... '''
>>> plan = resolve(parse(text, "p.plan")).plan_file.plans[0]
>>> tables = build_tables(plan.tests[0], plan)
>>> tables["deals"].to_pylist()[0]["currency"], tables["reps"].to_pylist()[0]["role"]
('EUR', 'AE')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from compiler.calendar import line_periods, plan_periods
from compiler.sql import LINE_TYPES
from dsl import ir
from dsl.diagnostics import (
    Diagnostic,
    RevplanError,
    Span,
    did_you_mean,
    has_errors,
    render_human,
    sort_key,
    too_deeply_nested,
)
from dsl.schema import SCHEMA, Entity, FieldType, Schema
from runtime.contract import check_data, check_plan_rates
from runtime.data import open_tables, quote
from runtime.hierarchy import Manager, cycles

ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.STRING: pa.string(),
    FieldType.MONEY: pa.decimal128(18, 2),
    FieldType.NUMBER: pa.decimal128(28, 10),
    FieldType.PERCENT: pa.decimal128(9, 6),
    FieldType.INTEGER: pa.int64(),
    FieldType.DATE: pa.date32(),
    FieldType.BOOL: pa.bool_(),
}
SCALE = {FieldType.MONEY: 2, FieldType.NUMBER: 10, FieldType.PERCENT: 6}
DEFAULT_HIRE_DATE = dt.date(2000, 1, 1)


class PlanTestError(Exception):
    """A test block that cannot run as written (unknown table or field, a bad value)."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""  # file:line:col, as `revplan check` names a place
        hint = f"\n  = hint: {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"


# ---------------------------------------------------------------- input tables


def build_tables(test: ir.PlanTest, plan: ir.PlanBase, schema: Schema = SCHEMA) -> dict[str, pa.Table]:
    """The test's given rows as typed Arrow tables, keyed by contract table name.

    Only tables the test gives rows for are returned; `connection_for` adds
    empty ones for the rest.
    """
    rows: dict[str, list[tuple[ir.TestRow, dict[str, Any]]]] = {}
    for given in test.given:
        entity = schema.entity(given.table)
        if entity is None:
            raise PlanTestError(
                f"unknown table '{given.table}' in a given row",
                given.span,
                _hint(given.table, schema.entity_names, f"tables: {', '.join(schema.entity_names)}"),
            )
        table_rows = rows.setdefault(entity.table, [])
        table_rows.append((given, _row(given, entity, plan.currency, len(table_rows) + 1)))
    tables = {}
    for name, table_rows in rows.items():
        entity = schema.entity(name)
        _check_keys(entity, table_rows)
        if name == "rep_assignments":
            _check_assignments_do_not_overlap(table_rows)
        arrow_schema = arrow_schema_for(entity)
        columns = {f.name: [values[f.name] for _, values in table_rows] for f in entity.fields}
        tables[name] = pa.table(columns, schema=arrow_schema)
    _check_no_manager_cycle(rows.get("reps", []), rows.get("rep_assignments", []))
    _check_contract(tables, rows, test, plan, schema)
    return tables


def arrow_schema_for(entity: Entity) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in entity.fields])


def _row(given: ir.TestRow, entity: Entity, plan_currency: str, number: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    money_currencies: set[str] = set()
    for field_value in given.values:
        field = entity.field(field_value.name)
        if field is None:
            raise PlanTestError(
                f"{entity.name} has no field '{field_value.name}'",
                field_value.span,
                _hint(field_value.name, entity.field_names, f"{entity.name} fields: {', '.join(entity.field_names)}"),
            )
        if field.name in values:
            raise PlanTestError(f"{entity.name} field '{field.name}' is given twice in one row", field_value.span)
        value = _cell(field_value, field.type, entity)
        if isinstance(field_value.value, ir.Money):
            money_currencies.add(field_value.value.currency)
        values[field.name] = value
    has_currency = entity.field("currency") is not None
    if has_currency:
        explicit = values.get("currency")
        if len(money_currencies) > 1:
            raise PlanTestError(
                f"one {entity.name} row has money in {' and '.join(sorted(money_currencies))}",
                given.span,
                "a row's money is in its one currency",
            )
        if explicit is not None and money_currencies and money_currencies != {explicit}:
            raise PlanTestError(
                f"the row's currency is {explicit} but its money is in {money_currencies.pop()}",
                given.span,
                f"write the amounts in {explicit}, or leave out the currency column",
            )
        if explicit is None:
            values["currency"] = money_currencies.pop() if money_currencies else plan_currency
    else:
        foreign = money_currencies - {plan_currency}
        if foreign:
            raise PlanTestError(
                f"{entity.table} hold money in the plan currency ({plan_currency}), not {foreign.pop()}",
                given.span,
            )
    for name, default in _defaults(entity, values, number).items():
        values.setdefault(name, default)
    missing = [f.name for f in entity.fields if f.required and values.get(f.name) is None]
    if missing:
        raise PlanTestError(
            f"the {entity.name} row lacks {', '.join(missing)}",
            given.span,
            f"add {', '.join(f'{name} ...' for name in missing)} to the given line",
        )
    return {f.name: values.get(f.name) for f in entity.fields}


def _defaults(entity: Entity, values: dict[str, Any], number: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if entity.key == ("id",):
        defaults["id"] = f"{entity.name}-{number}"
    row_id = values.get("id", defaults.get("id"))
    if entity.name == "rep":
        defaults.update(name=row_id, role="AE", hire_date=DEFAULT_HIRE_DATE, target_incentive=Decimal("0.00"))
    elif entity.name == "deal":
        defaults.update(stage="closed_won")
    elif entity.name == "account":
        defaults.update(name=row_id)
    return defaults


def _cell(field_value: ir.FieldValue, field_type: FieldType, entity: Entity) -> Any:
    value = field_value.value
    where = f"{entity.name}.{field_value.name}"
    if isinstance(value, ir.Null):
        return None
    expected = {
        FieldType.STRING: (ir.Text, 'text in double quotes: "closed_won"'),
        FieldType.MONEY: (ir.Money, "money with its currency: 5,000 USD"),
        FieldType.NUMBER: (ir.Number, "a number: 1.10"),
        FieldType.PERCENT: (ir.Percent, "a percentage: 60%"),
        FieldType.INTEGER: (ir.Number, "a whole number: 1,000"),
        FieldType.DATE: (ir.Date, "a date: 2027-01-01"),
        FieldType.BOOL: (ir.Boolean, "true or false"),
    }[field_type]
    node_type, example = expected
    if not isinstance(value, node_type):
        raise PlanTestError(f"{where} takes {field_type.value}", field_value.span, f"write {example}")
    if field_type is FieldType.STRING:
        return value.value
    if field_type is FieldType.MONEY:
        return _exact(value.amount, field_type, where, field_value.span)
    if field_type in (FieldType.NUMBER, FieldType.PERCENT):
        return _exact(value.value, field_type, where, field_value.span)
    if field_type is FieldType.INTEGER:
        if value.value != value.value.to_integral_value():
            raise PlanTestError(f"{where} is a whole number", field_value.span)
        if abs(value.value) >= 2 ** 63:  # BIGINT, as in the data
            raise PlanTestError(f"{where} {value.value:,} is too large for the column", field_value.span)
        return int(value.value)
    return value.value


def _exact(number: Decimal, field_type: FieldType, where: str, span: Span | None) -> Decimal:
    """The value in its column's exact type (as data loads it): its places, and digits that fit."""
    scale, digits = SCALE[field_type], ARROW_TYPES[field_type].precision - SCALE[field_type]
    if abs(number) >= Decimal(10) ** digits:  # the column (DECIMAL(18,2) for money) cannot hold it
        raise PlanTestError(f"{where} {number:,} is too large for the column", span,
                            f"the column holds {digits} digits before the point, as data loads it")
    quantum = Decimal(1).scaleb(-scale)
    fitted = number.quantize(quantum)
    if fitted != number:
        raise PlanTestError(
            f"{where} {number} has more than {scale} decimal places",
            span,
            "the column keeps cents" if scale == 2 else f"the column keeps {scale} decimal places",
        )
    return fitted


def _check_keys(entity: Entity, table_rows: list[tuple[ir.TestRow, dict[str, Any]]]) -> None:
    seen: dict[tuple, ir.TestRow] = {}
    for given, values in table_rows:
        key = tuple(values[name] for name in entity.key)
        if key in seen:
            first = seen[key].span
            shown = ", ".join(f"{name} {value!r}" for name, value in zip(entity.key, key, strict=True))
            raise PlanTestError(
                f"two {entity.name} rows have {shown}",
                given.span,
                f"the first is on line {first.line}" if first else None,
            )
        seen[key] = given


def _check_assignments_do_not_overlap(table_rows: list[tuple[ir.TestRow, dict[str, Any]]]) -> None:
    """What the data contract refuses (RD018, RD021) is refused in a test too: the calculators assume it."""
    by_rep: dict[str, list[tuple[ir.TestRow, dict[str, Any]]]] = {}
    for given, values in table_rows:
        if values["end_date"] is not None and values["end_date"] < values["start_date"]:
            raise PlanTestError("the rep_assignment ends before it starts", given.span,
                                "end_date is the last day of the assignment, on or after start_date")
        by_rep.setdefault(values["rep_id"], []).append((given, values))
    for assignments in by_rep.values():
        assignments.sort(key=lambda row: row[1]["start_date"])
        for (earlier_given, earlier), (given, later) in zip(assignments, assignments[1:], strict=False):
            if earlier["end_date"] is None or earlier["end_date"] >= later["start_date"]:
                raise PlanTestError(
                    f"rep {later['rep_id']!r} has two assignments on {later['start_date']}",
                    given.span,
                    f"end the one on line {earlier_given.span.line} the day before"
                    if earlier_given.span else "end the earlier one the day before",
                )


def _check_no_manager_cycle(reps: list[tuple[ir.TestRow, dict[str, Any]]],
                            assignments: list[tuple[ir.TestRow, dict[str, Any]]]) -> None:
    """A cycle of managers is refused in a test as in the data (RD014): roll-up would credit a deal at each turn."""
    managers = [Manager(values["id"], values["manager_id"], given) for given, values in reps]
    dated = sorted(
        (Manager(v["rep_id"], v["manager_id"], given, v["start_date"], v["end_date"]) for given, v in assignments),
        key=lambda a: a.start,
    )
    found = cycles(managers, dated)
    if found:
        raise PlanTestError(found[0].text(), found[0].closed_by.where.span,
                            "someone in the cycle must report to no one in it")


def _check_contract(tables: Mapping[str, pa.Table], rows: Mapping[str, list[tuple[ir.TestRow, dict[str, Any]]]],
                    test: ir.PlanTest, plan: ir.PlanBase, schema: Schema) -> None:
    """Refuse what `revplan run` refuses, with the data contract's own checks (runtime/contract.py), at the
    given line of the first row it refuses: a test must not pass on data no run accepts (splits of 140 %,
    an id with a blank). Its warnings (a cancel_date before the close_date) are legal data: a test may hold them.

    An optional table the test gives no rows for is missing, as a file left out of a run's data is: what names
    it is not checked (a test's deals may name accounts it does not give).
    """
    given = {
        e.table: tables.get(e.table, arrow_schema_for(e).empty_table())
        for e in schema.entities
        if e.table in tables or not e.optional_table
    }
    locations = {e.table: f"the test's {e.table}" for e in schema.entities}
    converting = [plan] if isinstance(plan, (ir.CompPlan, ir.QuotaPlan)) else []
    with open_tables(given, f'test "{test.name}"', lambda entity: locations[entity.table], schema) as dataset:
        diagnostics = [*check_data(dataset, plan.currency), *check_plan_rates(converting, dataset, plan.currency)]
    errors = [d for d in diagnostics if d.is_error]
    if not errors:
        return
    table_of = {location: table for table, location in locations.items()}

    def given_row(diagnostic: Diagnostic) -> ir.TestRow | None:
        where = diagnostic.data
        if where is None or where.row is None or where.file not in table_of:
            return None
        return rows[table_of[where.file]][where.row - 1][0]

    def line(diagnostic: Diagnostic) -> int:
        given = given_row(diagnostic)
        return given.span.line if given is not None and given.span is not None else 0

    first = min(errors, key=line)  # the first in the test's text; min keeps the contract's order on one line
    given = given_row(first)
    more = f" ({len(errors) - 1} more the data contract refuses)" if len(errors) > 1 else ""
    raise PlanTestError(f"{first.code}: {first.message}{more}", given.span if given is not None else test.span,
                        "; ".join(first.hints) or None)


def connection_for(tables: Mapping[str, pa.Table], schema: Schema = SCHEMA) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one table per contract table (empty when not given)."""
    connection = duckdb.connect(":memory:")
    for entity in schema.entities:
        table = tables.get(entity.table)
        if table is None:
            table = arrow_schema_for(entity).empty_table()
        connection.register("_plantest_input", table)
        connection.execute(f"CREATE TABLE {quote(entity.table)} AS SELECT * FROM _plantest_input")
        connection.unregister("_plantest_input")
    return connection


# ---------------------------------------------------------------- expectations

KEY_COLUMNS = {
    "rep": "rep_id",
    "period": "period",
    "component": "component",
    "line_type": "line_type",
    "plan": "plan",
    "version": "version",
    "account": "account_id",
}


@dataclasses.dataclass(frozen=True)
class ExpectationKind:
    keys: tuple[str, ...]  # expectation fields that select rows
    sums: tuple[str, ...] = ()  # compared as the sum over selected rows
    flags: tuple[str, ...] = ()  # true when any selected row is true
    values: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> column holding one shared value
    frame: str = "payout_lines"


KINDS: dict[str, ExpectationKind] = {
    "payout": ExpectationKind(
        keys=("rep", "period", "component", "line_type", "plan", "version"),
        sums=("amount", "uncapped", "base", "deal_count"),
        flags=("capped", "gated"),
        values={f: f for f in ("attainment", "quota", "target_incentive", "rate", "proration")},
    ),
    "attainment": ExpectationKind(keys=("rep", "period", "component", "plan"), values={"value": "attainment"}),
    "quota": ExpectationKind(keys=("rep", "period", "plan"), values={"amount": "amount"}, frame="quotas"),
    "territory": ExpectationKind(
        keys=("account", "date", "plan"),
        values={"territory": "territory", "owner": "owner_rep_id"},
        frame="territories",
    ),
}


@dataclasses.dataclass(frozen=True)
class Difference:
    field: str
    expected: str
    actual: str


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One expectation that did not hold: what was expected, what came out, and where."""

    expectation: ir.Expectation
    differences: tuple[Difference, ...]
    rows: pd.DataFrame | None = None  # the selected result rows, to show
    note: str | None = None

    def __str__(self) -> str:
        span = self.expectation.span  # file:line:col, as a diagnostic's: an editor jumps to it
        where = f"{span.file}:{span.line}:{span.column}" if span else "<test>"
        lines = [f"{where}: {expectation_text(self.expectation)}"]
        if self.note:
            lines.append(f"  {self.note}")
        if self.differences:
            lines.extend(
                "  " + line
                for line in text_table(
                    ["field", "expected", "actual"],
                    [[d.field, d.expected, d.actual] for d in self.differences],
                )
            )
        if self.rows is not None:
            if self.rows.empty:
                lines.append("  no result row matches this expectation")
            else:
                lines.append(f"  selected rows ({len(self.rows)}):")
                lines.extend("    " + line for line in _rows_table(self.rows))
        return "\n".join(lines)


def validate(expectation: ir.Expectation) -> None:
    """Raise `PlanTestError` for an expectation that names unknown things."""
    kind = KINDS.get(expectation.what)
    if kind is None:
        raise PlanTestError(
            f"unknown expectation '{expectation.what}'",
            expectation.span,
            _hint(expectation.what, KINDS, f"expect one of: {', '.join(KINDS)}"),
        )
    known = (*kind.keys, *kind.sums, *kind.flags, *kind.values)
    seen = set()
    for field_value in expectation.values:
        if field_value.name not in known:
            raise PlanTestError(
                f"expect {expectation.what} has no field '{field_value.name}'",
                field_value.span,
                _hint(field_value.name, known, f"fields: {', '.join(known)}"),
            )
        if field_value.name in seen:
            raise PlanTestError(f"'{field_value.name}' is given twice", field_value.span)
        seen.add(field_value.name)
    if not any(f.name not in kind.keys for f in expectation.values):
        raise PlanTestError(
            f"expect {expectation.what} compares nothing",
            expectation.span,
            f"add one of: {', '.join(f for f in known if f not in kind.keys)}",
        )


DRAW_COMPONENT = "Draw"  # the component of draw and draw_recovery lines (compiler/sql.py, compiler/python.py)
PERIOD_WORDS = {ir.Period.MONTH: "months", ir.Period.QUARTER: "quarters", ir.Period.HALF: "halves",
                ir.Period.YEAR: "years"}


@dataclasses.dataclass(frozen=True)
class TestScope:
    """What a test's result rows can name: the reps and accounts it gives, the plans that run in it."""

    reps: Sequence[str]
    accounts: Sequence[str]
    plans: Sequence[ir.PlanBase]  # the tested plan and those that feed it (`plan_files_for`)


def check_names(expectation: ir.Expectation, plan: ir.PlanBase, scope: TestScope) -> None:
    """Raise `PlanTestError` for an expectation that selects by a name no result row can have.

    It would select nothing, and `amount 0.00` (or `value null`) would pass
    whatever the plan pays: a typo in a component, line type, plan or
    account, a version or a rep the test does not have, a period label of
    another length or past the plan, a payout of a quota plan. A rep, period
    and component that exist but have no line (a rep outside `applies to`)
    are fine: nothing is paid there, and 0.00 says so.
    """
    kind = KINDS[expectation.what]
    if kind.frame == "payout_lines" and not isinstance(plan, ir.CompPlan):
        kind_name = "quota" if isinstance(plan, ir.QuotaPlan) else "territory"
        raise PlanTestError(f"a {kind_name} plan makes no payout lines", expectation.span,
                            "expect quota rows in a quota plan's test, territory rows in a territory plan's")
    for field_value in expectation.values:
        value = field_value.value
        if field_value.name in kind.keys and isinstance(value, ir.Text | ir.Number):
            name = value.value if isinstance(value, ir.Text) else format(value.value.normalize(), "f")
            problem = _unknown_name(field_value.name, name, kind, plan, scope)
            if problem is not None:
                message, hint = problem
                raise PlanTestError(message, field_value.span, hint)


def _unknown_name(field: str, name: str, kind: ExpectationKind, plan: ir.PlanBase, scope: TestScope
                  ) -> tuple[str, str] | None:
    """(message, hint) when `name` is not one the rows selected by `field` can hold; None when it is."""
    reps = scope.reps
    if field == "rep":
        return None if name in reps else (f'the test gives no rep "{name}"', _listed(name, reps, "reps"))
    if field == "account":
        accounts = scope.accounts
        return None if name in accounts else (f'the test gives no account "{name}"',
                                              _listed(name, accounts, "accounts"))
    producing = [p for p in scope.plans if isinstance(p, _PRODUCERS[kind.frame])]
    if not producing:  # no plan computes these rows in this test: `run_test` says so
        return None
    if field == "plan":
        names = sorted({p.name for p in producing})
        return None if name in names else (f'no plan "{name}" runs in this test', _listed(name, names, "plans"))
    if field == "version":
        versions = sorted({str(p.version) for p in producing})
        return None if name in versions else (f"no version {name} of the plans runs in this test",
                                              _listed(name, versions, "versions"))
    if field == "period" and kind.frame == "quotas":
        labels = {label for p in producing for label in _quota_labels(p)}
        return None if name in labels else (f'the quota plans give no quota for period "{name}"',
                                            f"their periods: {', '.join(sorted(labels, key=_label_order))}")
    if kind.frame != "payout_lines" or not isinstance(plan, ir.CompPlan):
        return None
    if field == "component":
        components = [c.name for c in plan.components] + ([DRAW_COMPONENT] if plan.draw is not None else [])
        if name not in components:
            return f'{plan.key} has no component "{name}"', _listed(name, components, "components")
    if field == "line_type" and name not in LINE_TYPES:
        return f'payout lines have no line_type "{name}"', _listed(name, LINE_TYPES, "line types")
    if field == "period" and name not in {p.label for p in line_periods(plan)}:
        return f'{plan.key} has no lines in period "{name}"', _periods_hint(plan)
    return None


_PRODUCERS = {"payout_lines": ir.CompPlan, "quotas": ir.QuotaPlan, "territories": ir.TerritoryPlan}


def _quota_labels(plan: ir.QuotaPlan) -> list[str]:
    """The periods a quota plan's rows have: each year's, and each period's."""
    periods = plan_periods(plan.effective_from, plan.effective_to, plan.period)
    return sorted({str(p.start.year) for p in periods}) + [p.label for p in periods]


def _label_order(label: str) -> tuple[int, str]:
    return (len(label), label)


def _listed(name: str, known: Sequence[str], what: str) -> str:
    return " ".join([*did_you_mean(name, known), f"{what}: {', '.join(known) if known else 'none'}"])


def _periods_hint(plan: ir.CompPlan) -> str:
    """`its periods are months: 2027-01 to 2027-12, then 2028-01 to 2029-12 (its run-off)`."""
    own = plan_periods(plan.effective_from, plan.effective_to, plan.period)
    run_off = line_periods(plan)[len(own):]
    hint = f"its periods are {PERIOD_WORDS[plan.period]}: {_label_range(own)}"
    return hint + (f", then {_label_range(run_off)} (its run-off)" if run_off else "")


def _label_range(periods: Sequence[Any]) -> str:
    first, last = periods[0].label, periods[-1].label
    return first if first == last else f"{first} to {last}"


def compare(
    expectations: Iterable[ir.Expectation],
    payout_lines: pd.DataFrame,
    *,
    quotas: pd.DataFrame | None = None,
    territories: pd.DataFrame | None = None,
) -> list[Mismatch]:
    """Check each expectation against the calculator's results; [] when all hold.

    Raises `PlanTestError` for a malformed expectation, and for one about
    results the calculator did not produce (quotas=None, territories=None).
    """
    frames = {"payout_lines": payout_lines, "quotas": quotas, "territories": territories}
    mismatches = []
    for expectation in expectations:
        validate(expectation)
        kind = KINDS[expectation.what]
        frame = frames[kind.frame]
        if frame is None:
            raise PlanTestError(
                f"the calculator produced no {kind.frame.replace('_', ' ')}",
                expectation.span,
                f"'expect {expectation.what}' needs a calculator that computes them",
            )
        mismatch = _compare_one(expectation, kind, frame)
        if mismatch is not None:
            mismatches.append(mismatch)
    return mismatches


def _compare_one(expectation: ir.Expectation, kind: ExpectationKind, frame: pd.DataFrame) -> Mismatch | None:
    selected = frame
    for field_value in expectation.values:
        if field_value.name not in kind.keys:
            continue
        selected = _select(selected, field_value, expectation)
    differences = []
    for field_value in expectation.values:
        name, expected = field_value.name, field_value.value
        if name in kind.keys:
            continue
        if name in kind.sums:
            actual, problem = _sum(selected, name)
        elif name in kind.flags:
            actual, problem = _any(selected, name)
        elif isinstance(expected, ir.Null) and selected.empty:
            actual, problem = None, None  # expected none, and there is no row at all
        else:
            actual, problem = _shared(selected, kind.values[name])
        if problem is not None or not _equal(expected, actual):
            differences.append(Difference(name, literal_text(expected), problem or _actual_text(actual, expected)))
        if isinstance(expected, ir.Money) and "currency" in selected.columns and not selected.empty:
            currencies = sorted({str(c) for c in selected["currency"] if not _missing(c)})
            if currencies and currencies != [expected.currency]:
                differences.append(Difference(f"{name} currency", expected.currency, ", ".join(currencies)))
    if not differences:
        return None
    return Mismatch(expectation, tuple(differences), rows=selected)


def _select(frame: pd.DataFrame, field_value: ir.FieldValue, expectation: ir.Expectation) -> pd.DataFrame:
    name, value = field_value.name, field_value.value
    if name == "date":
        if not isinstance(value, ir.Date):
            raise PlanTestError("date takes a date: 2027-07-01", field_value.span)
        if "start" not in frame.columns and "end" not in frame.columns:
            return frame  # undated results: one assignment for the whole plan
        day = value.value
        start = frame["start"] if "start" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        end = frame["end"] if "end" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        keep = [
            (_missing(s) or _as_date(s) <= day) and (_missing(e) or day <= _as_date(e))
            for s, e in zip(start, end, strict=True)
        ]
        return _rows_where(frame, keep)
    column = KEY_COLUMNS[name]
    if column not in frame.columns:
        raise PlanTestError(
            f"the results have no '{column}' column to select '{name}' by",
            field_value.span,
        )
    if isinstance(value, ir.Text):
        wanted: Any = value.value
    elif isinstance(value, ir.Number) and name == "version":
        wanted = int(value.value)
    else:
        raise PlanTestError(f"'{name}' takes text in quotes", field_value.span)
    return _rows_where(frame, [(not _missing(v)) and _same_key(v, wanted) for v in frame[column]])


def _rows_where(frame: pd.DataFrame, keep: list[bool]) -> pd.DataFrame:
    return frame[pd.Series(keep, index=frame.index, dtype=bool)]


def _same_key(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, int):
        try:
            return int(actual) == wanted
        except (TypeError, ValueError):
            return False
    return str(actual) == wanted


def _sum(frame: pd.DataFrame, column: str) -> tuple[Any, str | None]:
    if column not in frame.columns:
        return None, f"(no '{column}' column)"
    total = Decimal(0)
    for value in frame[column]:
        if _missing(value):
            continue
        if isinstance(value, float):
            return None, f"{value!r} is a float; money and counts must be exact (Decimal)"
        total += Decimal(value)
    return total, None


def _any(frame: pd.DataFrame, column: str) -> tuple[Any, str | None]:
    if column not in frame.columns:
        return None, f"(no '{column}' column)"
    return any(bool(v) for v in frame[column] if not _missing(v)), None


def _shared(frame: pd.DataFrame, column: str) -> tuple[Any, str | None]:
    if column not in frame.columns:
        return None, f"(no '{column}' column)"
    values = []
    for value in frame[column]:
        if _missing(value):  # a line without the value (a draw has no attainment) does not disagree
            continue
        if isinstance(value, float):
            return None, f"{value!r} is a float; it must be exact (Decimal)"
        if value not in values:
            values.append(value)
    if frame.empty:
        return None, "(no row)"
    if not values:
        return None, None
    if len(values) > 1:
        return None, "different values: " + ", ".join(_plain(v) for v in values)
    return values[0], None


def _equal(expected: ir.Node, actual: Any) -> bool:
    if isinstance(expected, ir.Null):
        return actual is None
    if actual is None:
        return False
    if isinstance(expected, ir.Money):
        return _decimal(actual) == expected.amount
    if isinstance(expected, (ir.Percent, ir.Number)):
        return _decimal(actual) == expected.value
    if isinstance(expected, ir.Boolean):
        return bool(actual) is expected.value
    if isinstance(expected, ir.Date):
        return _as_date(actual) == expected.value
    if isinstance(expected, ir.Text):
        return str(actual) == expected.value
    return False


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return Decimal(value)
    return None


def _as_date(value: Any) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- text


def span_text(span: Span | None) -> str:
    return f"{span.file}:{span.line}" if span else "<test>"


def literal_text(node: ir.Node) -> str:
    """A literal as a plan would write it: `10,100.00 USD`, `130%`, `"A"`."""
    if isinstance(node, ir.Money):
        return f"{node.amount:,} {node.currency}"
    if isinstance(node, ir.Percent):
        return f"{_trim(node.value * 100):,}%"
    if isinstance(node, ir.Number):
        return f"{node.value:,}"
    if isinstance(node, ir.Text):
        return f'"{node.value}"'
    if isinstance(node, ir.Boolean):
        return "true" if node.value else "false"
    if isinstance(node, ir.Date):
        return node.value.isoformat()
    if isinstance(node, ir.Duration):
        return f"{node.days} days"
    if isinstance(node, ir.Null):
        return "null"
    return node.kind


def expectation_text(expectation: ir.Expectation) -> str:
    values = ", ".join(f"{f.name} {literal_text(f.value)}" for f in expectation.values)
    return f"expect {expectation.what} {values}"


def _actual_text(actual: Any, expected: ir.Node) -> str:
    if actual is None:
        return "null"
    if isinstance(expected, ir.Money) and _decimal(actual) is not None:
        return f"{_decimal(actual):,} {expected.currency}"
    if isinstance(expected, ir.Percent) and _decimal(actual) is not None:
        return f"{_trim(_decimal(actual) * 100):,}%"
    return _plain(actual)


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:,}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _trim(value: Decimal) -> Decimal:
    """130.000000 -> 130, 12.50 -> 12.5 (for percentages shown to people)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


ROW_COLUMNS = (
    "plan",
    "rep_id",
    "period",
    "component",
    "line_type",
    "base",
    "rate",
    "attainment",
    "amount",
    "capped",
    "gated",
    "account_id",
    "territory",
    "owner_rep_id",
    "start",
    "end",
)
MAX_SHOWN_ROWS = 12


def _rows_table(frame: pd.DataFrame) -> list[str]:
    columns = [c for c in ROW_COLUMNS if c in frame.columns]
    body = [[_cell_text(row[c]) for c in columns] for _, row in frame.head(MAX_SHOWN_ROWS).iterrows()]
    lines = text_table(columns, body)
    if len(frame) > MAX_SHOWN_ROWS:
        lines.append(f"... and {len(frame) - MAX_SHOWN_ROWS} more")
    return lines


def _cell_text(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, Decimal):
        return f"{value:,}"
    return str(value)


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in body)]


def _hint(name: str, candidates: Iterable[str], fallback: str) -> str:
    close = did_you_mean(name, candidates)
    return close[0] if close else fallback


# ---------------------------------------------------------------- running tests

Calculator = Callable[[Sequence[ir.PlanFile], duckdb.DuckDBPyConnection], Any]


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One test block's outcome: passed, failed (mismatches), error or skipped."""

    __test__ = False  # not a pytest class

    file: str
    plan: str  # the plan's key: comp plan "Enterprise AE" version 3
    name: str
    span: Span | None
    status: str  # "passed" | "failed" | "error" | "skipped"
    mismatches: tuple[Mismatch, ...] = ()
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def title(self) -> str:
        return f'{span_text(self.span)}: {self.plan}: test "{self.name}"'

    def __str__(self) -> str:
        head = f"{self.status.upper()} {self.title}"
        details = [str(m) for m in self.mismatches]
        if self.message:
            details.append(self.message)
        return "\n".join([head, *("  " + line for d in details for line in d.splitlines())])


def run_plan_tests(
    plan_files: Sequence[str | Path | ir.PlanFile],
    calculator: Calculator,
    *,
    select: Callable[[ir.PlanBase, ir.PlanTest], bool] | None = None,
    schema: Schema = SCHEMA,
) -> list[TestResult]:
    """Run every test block of the given plans (or those `select` picks) on `calculator`.

    Paths are loaded and checked first; a project with errors gives one
    error result carrying the rendered diagnostics. `ir.PlanFile`s are taken
    as already checked.
    """
    files, problem = _load(plan_files, schema)
    if problem is not None:
        return [problem]
    results = []
    for plan_file in files:
        for plan in plan_file.plans:
            for test in plan.tests:
                if select is None or select(plan, test):
                    results.append(run_test(test, plan, files, calculator, schema=schema))
    return results


def run_test(
    test: ir.PlanTest,
    plan: ir.PlanBase,
    files: Sequence[ir.PlanFile],
    calculator: Calculator,
    *,
    schema: Schema = SCHEMA,
) -> TestResult:
    """One test block: build its data, run its plan (with dependencies), compare."""
    file = test.span.file if test.span else ""

    def outcome(status: str, mismatches: Sequence[Mismatch] = (), message: str = "") -> TestResult:
        return TestResult(file, plan.key, test.name, test.span, status, tuple(mismatches), message)

    try:
        for expectation in test.expect:
            validate(expectation)
        if not test.expect:
            raise PlanTestError("the test expects nothing", test.span, "add expect rows")
        tables = build_tables(test, plan, schema)
        running = plan_files_for(plan, files, given_quotas="quotas" in tables)
        scope = TestScope(
            reps=tables["reps"].column("id").to_pylist() if "reps" in tables else [],
            accounts=tables["accounts"].column("id").to_pylist() if "accounts" in tables else [],
            plans=[p for f in running for p in f.plans],
        )
        for expectation in test.expect:
            check_names(expectation, plan, scope)
    except PlanTestError as error:
        return outcome("error", message=str(error))
    connection = connection_for(tables, schema)
    try:
        try:
            produced = calculator(running, connection)
        except RevplanError as error:  # the plan or the test's data: its diagnostics, not a traceback
            return outcome("error", message="\n".join(d.message for d in error.diagnostics))
        except RecursionError:
            return outcome("error", message=too_deeply_nested().message)
        except Exception as error:  # a calculator bug must not stop the other tests
            detail = "".join(traceback.format_exception(error)).rstrip()
            return outcome("error", message=f"the calculator failed:\n{detail}")
        payout_lines, quotas, territories = unpack_results(produced)
        absent = _absent_results(test, quotas, territories)
        try:  # what can be compared is, whatever else the test expects: a wrong payout never hides
            mismatches = compare([e for e in test.expect if KINDS[e.what].frame not in absent], payout_lines,
                                 quotas=quotas, territories=territories)
        except PlanTestError as error:
            return outcome("error", message=str(error))
    finally:
        connection.close()
    if mismatches:
        return outcome("failed", mismatches)
    if absent and isinstance(produced, pd.DataFrame):  # a calculator of payout lines only (a test's own)
        return outcome("skipped", message=f"the calculator computes no {' or '.join(absent)}, which this test "
                                          "expects")
    if absent:
        return outcome("error", message=f"no {' or '.join(absent)} are computed in this test: " + " ".join(
            _WHY_ABSENT[frame] for frame in absent))
    return outcome("passed")


def plan_files_for(
    plan: ir.PlanBase, files: Sequence[ir.PlanFile], given_quotas: bool = False
) -> tuple[ir.PlanFile, ...]:
    """The files a test of `plan` runs with: every shared measure, the plan, its inputs.

    Other comp plans are left out (their payouts are not this test's); a quota
    plan named by `quota from plan` and territory plans (for overlay credit
    and territory potential, the comp plan's quota plan's included) are kept,
    since they feed this plan.

    `given_quotas`: the test gives `quota` rows. In a test of a comp plan with
    `quota from plan "NAME"`, given quota rows stand in for the quota plan
    (the plan reads them, as with `quota from quotas`), so a test can state
    the quota its payouts are computed on; a test without quota rows runs the
    quota plan on its given reps, accounts and deals.
    """
    quota_plan = plan.quota.plan if isinstance(plan, ir.CompPlan) else None
    if quota_plan is not None and given_quotas:
        plan_as_run = plan.model_copy(update={"quota": ir.QuotaSource()})
        swapped = [
            f.model_copy(update={"plans": tuple(plan_as_run if p is plan else p for p in f.plans)}) for f in files
        ]
        return plan_files_for(plan_as_run, swapped)
    feeding = [p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan) and p.name == quota_plan]

    def uses_potential(other: ir.PlanBase) -> bool:
        return isinstance(other, ir.QuotaPlan) and any(t.basis == "territory_potential" for t in other.allocation)

    needs_territories = (
        (isinstance(plan, ir.CompPlan) and plan.crediting.overlay)
        or uses_potential(plan)
        or any(uses_potential(p) for p in feeding)
    )

    def keep(other: ir.PlanBase) -> bool:
        if other is plan:
            return True
        if isinstance(other, ir.QuotaPlan) and other.name == quota_plan:
            return True
        return isinstance(other, ir.TerritoryPlan) and needs_territories

    return tuple(f.model_copy(update={"plans": tuple(p for p in f.plans if keep(p))}) for f in files)


def unpack_results(produced: Any) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Payout lines, quotas and territories from a DataFrame or a result object."""
    if isinstance(produced, pd.DataFrame):
        return produced, None, None
    payout_lines = getattr(produced, "payout_lines", None)
    if not isinstance(payout_lines, pd.DataFrame):
        raise TypeError(
            f"a calculator returns payout lines (a DataFrame) or a result with .payout_lines, "
            f"not {type(produced).__name__}"
        )
    return payout_lines, _frame(getattr(produced, "quotas", None)), _frame(getattr(produced, "territories", None))


def _frame(value: Any) -> pd.DataFrame | None:
    return value if isinstance(value, pd.DataFrame) else None


def _absent_results(test: ir.PlanTest, quotas: pd.DataFrame | None, territories: pd.DataFrame | None
                    ) -> list[str]:
    """The results the test expects that its run did not compute (no quota or territory plan ran)."""
    frames = {"quotas": quotas, "territories": territories, "payout_lines": pd.DataFrame()}
    return sorted({KINDS[e.what].frame for e in test.expect if frames[KINDS[e.what].frame] is None})


_WHY_ABSENT = {
    "quotas": "no quota plan runs (the plan reads the quota rows the test gives, or the quotas table): "
              "expect quotas in a test of the quota plan.",
    "territories": "no territory plan runs (only a comp plan with overlay credit, or a quota plan allocating by "
                   "territory_potential, runs them): expect territories in a test of the territory plan.",
}


def _load(
    plan_files: Sequence[str | Path | ir.PlanFile], schema: Schema
) -> tuple[tuple[ir.PlanFile, ...], TestResult | None]:
    loaded = [f for f in plan_files if isinstance(f, ir.PlanFile)]
    paths = [f for f in plan_files if not isinstance(f, ir.PlanFile)]
    if not paths:
        return tuple(loaded), None
    files, diagnostics, sources = load_checked(paths, schema)
    if has_errors(diagnostics):
        rendered = "\n".join(render_human(d, sources.get(d.span.file) if d.span else None) for d in diagnostics)
        where = ", ".join(str(p) for p in paths)
        return (), TestResult(where, "", "(loading plans)", None, "error", message=rendered)
    return (*loaded, *files), None


def load_checked(
    paths: Sequence[str | Path], schema: Schema = SCHEMA
) -> tuple[tuple[ir.PlanFile, ...], tuple[Diagnostic, ...], dict[str, str]]:
    """Parse, resolve and (when dsl/check.py is there) check plan files."""
    if importlib.util.find_spec("dsl.check") is not None:
        from dsl.project import load_paths

        project = load_paths(paths, schema)
        return project.files, project.diagnostics, project.sources
    from dsl.parse import parse
    from dsl.project import find_plan_files, read_source
    from dsl.resolve import resolve

    found, diagnostics = find_plan_files(paths)
    files, sources = [], {}
    for path in found:
        text, problem = read_source(path)
        if problem is not None:
            diagnostics.append(problem)
            continue
        sources[str(path)] = text
        resolved = resolve(parse(text, str(path)))
        diagnostics.extend(resolved.diagnostics)
        if resolved.plan_file is not None:
            files.append(resolved.plan_file)
    return tuple(files), tuple(sorted(diagnostics, key=sort_key)), sources
