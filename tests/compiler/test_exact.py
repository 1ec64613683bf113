"""Exact decimal arithmetic in SQL: no float anywhere near money, on any dialect."""

from decimal import Decimal

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from compiler.exact import dec, div, mul, py_div
from revplan.cli import DIALECTS

# Near the top of what the exact division takes (a product below 10^18, compiler/exact.py),
# and ties at half a unit of the last place.
CASES = [
    ("99999999999999.9999999999", "3"),
    ("-99999999999999.9999999999", "7"),
    ("0.0000000001", "2"),  # 0.00000000005: a tie, away from zero
    ("-0.0000000001", "2"),
    ("12345678901234.12", "-0.37"),
    ("0", "5"),
    ("5", "0"),  # NULL
    # Ties DuckDB's decimal_division rounds to the even digit (2 x 10^-10): away from zero, 3 x 10^-10.
    ("0.0000000005", "2"),
    ("-0.0000000005", "2"),
    ("0.0000000005", "-2"),
    ("-0.0000000005", "-2"),
    ("0.0000000003", "-2"),  # -0.00000000015: its even digit is also away from zero
    ("2", "-3"),
]


def quotient(numerator: str, denominator: str, dialect: str) -> exp.Expression:
    return div(exp.Literal.number(numerator), exp.Literal.number(denominator), dialect)


@pytest.mark.parametrize("numerator, denominator", CASES)
def test_division_on_duckdb_is_the_exact_python_quotient(numerator, denominator):
    sql = exp.select(quotient(numerator, denominator, "duckdb")).sql(dialect="duckdb")
    result = duckdb.sql(sql)
    assert result.types == ["DECIMAL(38,10)"]  # not a DOUBLE that happens to compare equal (0.5 == Decimal("0.5"))
    assert result.fetchall()[0][0] == py_div(Decimal(numerator), Decimal(denominator))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_division_uses_no_float_and_no_sign_function(dialect):
    """SIGN is a float on some engines (DuckDB takes the sign of a DOUBLE copy, Spark returns DOUBLE)."""
    sql = exp.select(quotient(*CASES[0], dialect)).sql(dialect=dialect)
    tree = sqlglot.parse_one(sql, read=dialect)
    assert not list(tree.find_all(exp.Sign))
    floats = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}
    assert not [t for t in tree.find_all(exp.DataType) if t.this in floats]


def every_query(dialect: str) -> list[str]:
    """The SQL of every sample plan: payouts (the deal trace reads the same CTEs), quota and territory plans."""
    from compiler import territory
    from compiler.quota import quota_table
    from dsl.project import load_paths
    from runtime.run import compile_all, quota_plans, sql_text, territory_plans

    files = load_paths(["plans"]).files
    territories = territory_plans(files)
    queries = [sql for _, sql in compile_all(files, dialect)]
    queries += [sql_text(quota_table(plan, territories, dialect), dialect) for plan in quota_plans(files)]
    queries.append(sql_text(territory.territory_table(list(territories), dialect), dialect))
    return queries


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_sample_plan_query_uses_a_float_or_the_sign_function(deep_sql, dialect):
    """What a payout passes through, end to end: no DOUBLE or FLOAT cast and no SIGN in any query."""
    floats = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}
    decimals = (exp.DataType.Type.BIGDECIMAL, exp.DataType.Type.DECIMAL)
    for sql in every_query(dialect):
        tree = sqlglot.parse_one(sql, read=dialect)
        assert not list(tree.find_all(exp.Sign))
        assert not [t for t in tree.find_all(exp.DataType) if t.this in floats]
        if dialect == "bigquery":  # every decimal cast rounds (test_bigquery_rounds_where_other_dialects_cast)
            assert all(isinstance(c.parent, exp.Round) for c in tree.find_all(exp.Cast) if c.to.this in decimals)


def test_bigquery_rounds_where_other_dialects_cast():
    """BigQuery takes no precision in a CAST (sqlglot prints a bare BIGNUMERIC, 38 places), so the rounding to
    10 places and to cents the casts do elsewhere is a ROUND there (audit: 15,005.01 where others pay 15,005.02)."""
    from compiler.exact import for_dialect

    query = exp.select(mul(exp.column("amount"), exp.column("rate")), dec(exp.column("x")),
                       exp.Cast(this=exp.column("y"), to=exp.DataType.build("DECIMAL(18, 2)")))
    assert for_dialect(query.copy(), "duckdb").sql("duckdb") == query.sql("duckdb")
    assert for_dialect(query, "bigquery").sql("bigquery") == (
        "SELECT ROUND(CAST(amount * rate AS BIGNUMERIC), 10), ROUND(CAST(x AS BIGNUMERIC), 10), "
        "ROUND(CAST(y AS BIGNUMERIC), 2)")
