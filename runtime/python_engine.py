"""`--engine python`: payout lines from the Python calculator, on the same tables as DuckDB.

In: checked plan files and a DuckDB connection holding the contract tables
(what `runtime.run.run_plans` takes). Out: a `RunResult` like the SQL
engines': payout lines and the deals behind them computed by
`compiler/python.py` (an independent implementation of the payout semantics,
which must agree with the SQL to the cent), territory assignments computed in
Python too. Quota plans' derivation tables and the territory report are
reports, not payouts: they come from the same queries the DuckDB engine runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from dsl import ir
from dsl.schema import SCHEMA, Schema


def run_python(
    files: Sequence[ir.PlanFile],
    connection: duckdb.DuckDBPyConnection,
    schema: Schema = SCHEMA,
    deals: bool | str = False,
):
    from compiler.python import run_files
    from runtime.run import RunResult, deal_rows, normalise, run_plans

    computed = run_files(files, connection, schema, deals=bool(deals))
    feeding = [
        f.model_copy(update={"plans": tuple(p for p in f.plans if not isinstance(p, ir.CompPlan))}) for f in files
    ]
    reports = None
    if any(p for f in feeding for p in f.plans):
        reports = run_plans(feeding, connection, engine="duckdb", schema=schema)
    return RunResult(
        normalise(computed.payout_lines, [p for f in files for p in f.plans if isinstance(p, ir.CompPlan)]),
        computed.plans + (reports.plans if reports is not None else ()),
        computed.territories,
        reports.quotas if reports is not None else None,
        reports.territory_report if reports is not None else None,
        deal_rows([computed.payout_deals], shares=deals is True) if computed.payout_deals is not None else None,
    )
