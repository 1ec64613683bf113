"""Exact decimal arithmetic as sqlglot expressions, the same on every engine.

Every intermediate value is DECIMAL(38, 10); no value passes through a
float. Sums and differences are exact everywhere; a product is rounded half
away from zero to 10 places by a cast; a quotient is never the SQL `/` of two
decimals (DuckDB's is a DOUBLE, PostgreSQL picks its own scale) but integer
division, or on DuckDB its exact `decimal_division` (DECIMAL in and out),
rounded half away from zero to 10 places. Money is rounded to cents once, at
the payout line, with ROUND(x, 2). The Python calculator mirrors these rules
(`compiler/python.py`), which is why both agree to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlglot import exp

SCALE = 10
STEP = Decimal(1).scaleb(-SCALE)  # 0.0000000001
DECIMAL = exp.DataType.build(f"DECIMAL(38, {SCALE})")
INTEGER = exp.DataType.build("DECIMAL(38, 0)")
SPARK_DIALECTS = ("spark", "spark2", "databricks")


class OutOfRange(ArithmeticError):
    """A value too big for its output column (DECIMAL(18, 2) money): the Python calculator's version of the
    SQL engines' overflow, so that every engine refuses the same runs (RP415)."""


def for_dialect(query: exp.Expression, dialect: str) -> exp.Expression:
    """`query` as `dialect` must be given it. BigQuery allows no precision in a CAST, so sqlglot prints
    `CAST(x AS DECIMAL(38, 10))` as a bare BIGNUMERIC (38 places) and the rounding to 10 places the cast does
    everywhere else would not happen (audit: 15,005.01 where every other engine pays 15,005.02): there each
    such cast is ROUND(CAST(x AS BIGNUMERIC), places), half away from zero as the casts round. In place."""
    if dialect != "bigquery":
        return query
    for cast in list(query.find_all(exp.Cast)):
        to = cast.to
        if to.this == exp.DataType.Type.DECIMAL and len(to.expressions) == 2:
            places = int(to.expressions[1].this.name)
            cast.set("to", exp.DataType.build("BIGNUMERIC", dialect="bigquery"))
            rounded = exp.Round(decimals=exp.Literal.number(places))
            cast.replace(rounded)
            rounded.set("this", cast)  # the cast itself, not a copy: the casts inside it are in the list too
    return query


def wrap(node: exp.Expression) -> exp.Expression:
    """Parenthesise an operator node used as an operand (sqlglot prints trees as built)."""
    return exp.paren(node, copy=False) if isinstance(node, (exp.Binary, exp.Neg)) else node


def op(kind: type[exp.Binary], left: exp.Expression, right: exp.Expression) -> exp.Expression:
    return kind(this=wrap(left), expression=wrap(right))


def dec(value: exp.Expression) -> exp.Expression:
    return exp.Cast(this=value, to=DECIMAL.copy())


def number(value: Decimal | int) -> exp.Expression:
    """A decimal literal, typed so every engine reads it as DECIMAL(38, 10)."""
    text = format(Decimal(value).quantize(STEP, ROUND_HALF_UP), "f")
    return dec(exp.Literal.number(text))


def add(*terms: exp.Expression) -> exp.Expression:
    result = terms[0]
    for term in terms[1:]:
        result = op(exp.Add, result, term)
    return result


def sub(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    return op(exp.Sub, left, right)


def mul(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    # x 1 is common (no multiplier, full credit); skipping it saves a 38-digit product per row.
    if is_one(right):
        return dec(left)
    if is_one(left):
        return dec(right)
    return dec(op(exp.Mul, left, right))


def is_one(node: exp.Expression) -> bool:
    """True for the literal `number(1)` builds."""
    return isinstance(node, exp.Cast) and node.this.is_number and Decimal(node.this.name) == 1


def neg(value: exp.Expression) -> exp.Expression:
    return exp.Neg(this=wrap(value))


def div(numerator: exp.Expression, denominator: exp.Expression, dialect: str) -> exp.Expression:
    """numerator / denominator rounded half away from zero to SCALE places; NULL when dividing by 0.

    With A and B the operands scaled to integers (both have SCALE places),
    the result is sign x floor((2|A| 10^S + |B|) / (2|B|)) x 10^-S.
    """
    if dialect == "duckdb":
        return _duckdb_div(numerator, denominator)
    a = _as_integer(numerator)
    b = exp.Nullif(this=_as_integer(denominator), expression=exp.Literal.number(0))
    twice_a = op(exp.Mul, exp.Abs(this=a), exp.Literal.number(2 * 10**SCALE))
    top = op(exp.Add, twice_a, exp.Abs(this=b.copy()))
    bottom = op(exp.Mul, exp.Abs(this=b.copy()), exp.Literal.number(2))
    magnitude = _floor_div(top, bottom, dialect)
    signs = op(exp.Mul, sign(a.copy()), sign(b.copy()))
    scaled = op(exp.Mul, exp.Cast(this=op(exp.Mul, signs, magnitude), to=INTEGER.copy()), number(STEP))
    return dec(scaled)


def _duckdb_div(numerator: exp.Expression, denominator: exp.Expression) -> exp.Expression:
    """DuckDB's exact `decimal_division`: several times faster there than scaling to integers (its casts
    of 38-digit decimals to fewer places divide bit by bit). It rounds a tie (a remainder of exactly half
    a unit) to the even digit; such a quotient moves one unit away from zero. The numerator as
    DECIMAL(28, 10) (below 10^18, as elsewhere) keeps the quotient's type within 38 digits."""
    x = exp.Cast(this=dec(numerator), to=exp.DataType.build("DECIMAL(28, 10)"))
    y = exp.Nullif(this=dec(denominator), expression=exp.Literal.number(0))
    even = exp.Anonymous(this="decimal_division", expressions=[x, y, exp.Literal.number(SCALE)])
    remainder = op(exp.Sub, x.copy(), op(exp.Mul, even.copy(), y.copy()))  # exact: 20 places
    twice = op(exp.Mul, exp.Abs(this=remainder), exp.Literal.number(2))
    half_unit = op(exp.EQ, twice, op(exp.Mul, exp.Abs(this=y.copy()), number(STEP)))
    toward_zero = op(exp.EQ, _positive(remainder.copy()), _positive(x.copy()))
    away = exp.Case().when(op(exp.EQ, _positive(x.copy()), _positive(y.copy())), number(STEP)).else_(number(-STEP))
    return dec(op(exp.Add, even, exp.Case().when(exp.and_(half_unit, toward_zero), away).else_(number(0))))


def _positive(value: exp.Expression) -> exp.Expression:
    return op(exp.GT, value, exp.Literal.number(0))


def round_cents(value: exp.Expression) -> exp.Expression:
    return exp.Cast(this=exp.Round(this=value, decimals=exp.Literal.number(2)), to=exp.DataType.build("DECIMAL(18, 2)"))


def _as_integer(value: exp.Expression) -> exp.Expression:
    return exp.Cast(this=op(exp.Mul, dec(value), exp.Literal.number(10**SCALE)), to=INTEGER.copy())


def sign(value: exp.Expression) -> exp.Expression:
    """-1, 0 or 1 by comparing with 0: exact everywhere. (SIGN is not: DuckDB takes the sign of a
    DOUBLE copy of a decimal, Spark returns a DOUBLE.)"""
    zero = exp.Literal.number(0)
    return (
        exp.Case()
        .when(op(exp.GT, value, zero), exp.Literal.number(1), copy=False)
        .when(op(exp.LT, value.copy(), zero.copy()), exp.Literal.number(-1), copy=False)
        .else_(zero.copy(), copy=False)
    )


def _decimal_div(top: exp.Expression, bottom: exp.Expression) -> exp.Expression:
    """top / bottom as the engine divides decimals: typed, so sqlglot does not make it a DOUBLE division
    (its Trino printer casts an untyped division's operand to DOUBLE)."""
    return exp.Div(this=wrap(top), expression=wrap(bottom), typed=True)


def _floor_div(top: exp.Expression, bottom: exp.Expression, dialect: str) -> exp.Expression:
    """floor(top / bottom) for non-negative integers, exactly, on the given engine."""
    if dialect == "duckdb":  # DuckDB divides decimals in DOUBLE; HUGEINT division is exact
        hugeint = exp.DataType.build("HUGEINT", dialect="duckdb")
        return exp.IntDiv(this=exp.Cast(this=top, to=hugeint), expression=exp.Cast(this=bottom, to=hugeint.copy()))
    if dialect == "postgres":  # DIV(numeric, numeric) truncates exactly
        return exp.IntDiv(
            this=exp.Cast(this=top, to=INTEGER.copy()), expression=exp.Cast(this=bottom, to=INTEGER.copy())
        )
    if dialect in SPARK_DIALECTS:
        # Take off the remainder (exact), then the division of a multiple is exact: top and bottom are
        # written twice, not seven times as below (nested quotients made SQL Spark's parser ran out of memory on).
        # The divisor as DECIMAL(22, 0): Spark types a quotient by its divisor's precision, and over a
        # DECIMAL(38, 0) one it keeps 18 places and 20 digits, too few for 10^-10 units of a total territory
        # potential. Over DECIMAL(22, 0) it keeps 27 digits: quotients below 10^17, divisors below 5 x 10^11.
        divisor = exp.Cast(this=bottom, to=exp.DataType.build("DECIMAL(22, 0)"))
        return _decimal_div(op(exp.Sub, top, op(exp.Mod, top.copy(), divisor)), divisor.copy())
    # Elsewhere decimal division is exact to a few places: floor it, then correct the last unit.
    one = exp.Literal.number(1)
    guess = exp.Cast(this=exp.Floor(this=_decimal_div(top, bottom)), to=INTEGER.copy())
    too_big = op(exp.GT, op(exp.Mul, guess, bottom.copy()), top.copy())
    too_small = op(exp.LTE, op(exp.Mul, op(exp.Add, guess.copy(), one), bottom.copy()), top.copy())
    return (
        exp.Case()
        .when(too_big, op(exp.Sub, guess.copy(), one.copy()), copy=False)
        .when(too_small, op(exp.Add, guess.copy(), one.copy()), copy=False)
        .else_(guess.copy(), copy=False)
    )


def py_div(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """The Python twin of `div`: exact integer arithmetic, half away from zero."""
    if denominator == 0:
        return None
    a = int(numerator.scaleb(SCALE).to_integral_value(ROUND_HALF_UP))
    b = int(denominator.scaleb(SCALE).to_integral_value(ROUND_HALF_UP))
    magnitude = (2 * abs(a) * 10**SCALE + abs(b)) // (2 * abs(b))
    signs = (a > 0) - (a < 0)
    signs *= (b > 0) - (b < 0)
    return Decimal(signs * magnitude).scaleb(-SCALE)
