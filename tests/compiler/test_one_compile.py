"""A run compiles each plan once: the payout query and the query of the deals behind its lines
come from one tree, and the second carries only the CTEs it reads."""

import pytest
import sqlglot
from sqlglot import exp

from compiler.sql import ASSIGNMENTS, compile_payouts_and_deal_ids, compile_plan
from dsl.project import load_paths
from revplan.cli import DIALECTS
from runtime.run import comp_plans, quota_plans, shared_measures, territory_plans

FILES = load_paths(["plans"]).files
PLANS = comp_plans(FILES)
# As a run compiles them: quota plans and territory assignments already computed into tables.
COMPUTED = {plan.key: f"quotas_{index}" for index, plan in enumerate(quota_plans(FILES))} | {ASSIGNMENTS: "assigned"}


def compile_both(plan, dialect: str) -> tuple[str, str]:
    return compile_payouts_and_deal_ids(
        plan, shared_measures(FILES), dialect, territory_plans(FILES), quota_plans(FILES), COMPUTED
    )


def compile_alone(plan, dialect: str, detail) -> str:
    query = compile_plan(
        plan, shared_measures(FILES), dialect, territory_plans(FILES), quota_plans(FILES), detail, COMPUTED
    )
    return query.sql(dialect=dialect)


# Every plan in DuckDB's SQL; every dialect for the plan with a recursive CTE (the manager chain).
CASES = [(plan, "duckdb") for plan in PLANS] + [
    (plan, dialect) for plan in PLANS if plan.crediting.rollup for dialect in DIALECTS if dialect != "duckdb"
]


@pytest.mark.parametrize("plan, dialect", CASES, ids=lambda value: getattr(value, "name", value))
def test_one_compile_prints_what_two_compiles_print(plan, dialect):
    assert compile_both(plan, dialect) == (compile_alone(plan, dialect, False), compile_alone(plan, dialect, "ids"))


def cte_names(sql: str) -> set[str]:
    return {cte.alias for cte in sqlglot.parse_one(sql, read="duckdb").find_all(exp.CTE)}


def test_the_deals_query_carries_only_the_ctes_it_reads():
    """Sales Manager: deals credited up the manager chain (split_rollup adds up the shares of a manager of
    two split reps of a deal), joined to the rep-periods; no payout arithmetic."""
    plan = next(p for p in PLANS if p.name == "Sales Manager")
    payouts, deals = compile_both(plan, "duckdb")
    assert {"measures", "earned_lines", "c0"} <= cte_names(payouts)
    assert cte_names(deals) == {
        "periods", "rep_intervals", "rep_periods", "links", "chain", "split_rollup", "days", "fx", "deal_rows",
    }
