"""The Spark engine's own guarantees: exact decimal arithmetic and tables that cross over unchanged.

The payout semantics on Spark are tested by the worked examples and the
sample company (tests/examples, tests/runtime/test_engines.py); these are the
pieces under them, each one query on the shared session.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlglot import exp

from compiler.exact import div, mul, number, py_div

pytestmark = pytest.mark.spark

QUOTIENTS = [
    (Decimal("1"), Decimal("3")),
    (Decimal("-2"), Decimal("3")),
    (Decimal("2"), Decimal("-3")),
    (Decimal("0.00000000005"), Decimal("1")),  # a tie at the 10th place: half away from zero
    (Decimal("-0.00000000005"), Decimal("1")),
    (Decimal("150000000.55"), Decimal("123456789.01")),  # a denominator above 10^8
    (Decimal("999999999.9999999999"), Decimal("999999999.9999999998")),
    (Decimal("270000") * 50, Decimal("90")),
    (Decimal("5"), Decimal("0")),  # NULL, as on every engine
    # quotients of 10^10 and more: the sample company's total territory potential, a quota over a tiny
    # share (they overflowed Spark's DECIMAL(38, 18) quotient before the divisor was a DECIMAL(22, 0))
    (Decimal("15772651635.00"), Decimal("1")),
    (Decimal("79200000"), Decimal("0.000123")),
    (Decimal("-99999999999999999.9999999999"), Decimal("1")),  # near the numerator limit, 5 x 10^17
    (Decimal("1"), Decimal("499999999999.9999999999")),  # the largest divisor
    (Decimal("7000000000"), Decimal("6000000000")),  # a target of billions: a divisor
]


def _run(spark_session, expressions: list[exp.Expression]) -> list:
    from runtime.spark import RUN_CONF

    spark = spark_session.newSession()
    for key, value in RUN_CONF.items():
        spark.conf.set(key, value)
    select = exp.select(*[e.as_(f"v{i}") for i, e in enumerate(expressions)])
    row = spark.sql(select.sql(dialect="spark")).collect()[0]
    return [row[f"v{i}"] for i in range(len(expressions))]


def test_quotients_are_exact_and_round_half_away_from_zero(spark_session):
    got = _run(spark_session, [div(number(a), number(b), "spark") for a, b in QUOTIENTS])
    assert got == [py_div(a, b) for a, b in QUOTIENTS]


@pytest.mark.parametrize("numerator, denominator", [
    (Decimal("1000000000000"), Decimal("0.00001")),  # a quotient of 10^17
    (Decimal("1"), Decimal("500000000000")),  # a divisor of 5 x 10^11
])
def test_a_quotient_or_divisor_too_big_for_spark_fails_loudly(spark_session, numerator, denominator):
    """Past the limits (runtime/spark.py) Spark's decimals overflow: an error, never NULL or a wrong digit."""
    with pytest.raises(Exception, match="(?i)overflow|out of range|cannot be represented"):
        _run(spark_session, [div(number(numerator), number(denominator), "spark")])


def test_products_keep_ten_places(spark_session):
    """allowPrecisionLoss=false: DECIMAL(38,10) x DECIMAL(38,10) is not cut to 6 places first."""
    got = _run(spark_session, [mul(number(Decimal("12345.67")), number(Decimal("0.0123456789")))])
    assert got == [Decimal("152.4156776254")]


@pytest.mark.parametrize("pyspark_major", [4, 3], ids=["arrow", "pandas (pyspark 3.5)"])
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:The copy keyword is deprecated")  # pyspark on pandas 3
def test_tables_cross_over_with_their_types(spark_session, monkeypatch, pyspark_major):
    from runtime import spark as spark_engine

    monkeypatch.setattr(spark_engine, "_pyspark_major", lambda: pyspark_major)
    table = pa.table(
        {
            "id": pa.array(["D1", "D2", None], pa.string()),
            "amount": pa.array([Decimal("199999.99"), Decimal("-0.01"), None], pa.decimal128(18, 2)),
            "rate": pa.array([Decimal("0.060000"), None, Decimal("1.5")], pa.decimal128(9, 6)),
            "close_date": pa.array([dt.date(2027, 3, 31), None, dt.date(2028, 2, 29)], pa.date32()),
            "seats": pa.array([3, None, 0], pa.int64()),
            "new_logo": pa.array([True, False, None], pa.bool_()),
        }
    )
    spark = spark_session.newSession()
    frame = spark_engine._to_spark(spark, table)
    types = dict(frame.dtypes)
    assert types["amount"] == "decimal(18,2)" and types["rate"] == "decimal(9,6)"
    assert types["close_date"] == "date" and types["seats"] == "bigint"
    back = spark_engine._collect(frame.orderBy("amount"))
    rows = sorted(back.to_dict("records"), key=lambda r: str(r["id"]))
    assert rows[0]["amount"] == Decimal("199999.99") and isinstance(rows[0]["amount"], Decimal)
    assert rows[0]["close_date"] == dt.date(2027, 3, 31)
    assert rows[1]["amount"] == Decimal("-0.01")


def test_revplan_run_on_spark_writes_what_duckdb_writes(spark_session, tmp_path, capsys):
    """`revplan run --engine spark`: payout lines and the deals behind them, byte for byte as on DuckDB."""
    from revplan.cli import main

    data, plans = tmp_path / "data", tmp_path / "plans"
    assert main(["sample-data", "--out", str(data), "--reps", "20", "--deals", "300", "--seed", "5"]) == 0
    plans.mkdir()
    (plans / "flat.plan").write_text(FLAT)
    outputs = {}
    for engine in ("duckdb", "spark"):
        assert (
            main(
                ["run", "--data", str(data), "--plans", str(plans), "--out", str(tmp_path / engine), "--engine", engine]
            )
            == 0
        )
        outputs[engine] = {
            name: (tmp_path / engine / name).read_bytes()
            for name in ("payout_lines.csv", "payout_deals.csv", "statements.csv")
        }
    capsys.readouterr()
    assert outputs["spark"] == outputs["duckdb"]
    assert outputs["spark"]["payout_deals.csv"].count(b"\n") > 50


FLAT = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Flat" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"

  component "Commission" on bookings
    rate 7.5%
    multiplier 1.25 when bookings >= 100,000 USD
    cap 20,000 USD per period
"""


def test_an_overflow_on_spark_is_a_diagnostic(spark_session, tmp_path):
    """What ANSI mode raises (SQLSTATE 22003) reaches the user as RP415, without Spark's advice to turn ANSI
    off (which would make the overflow a NULL)."""
    from dsl.diagnostics import RevplanError
    from runtime.data import open_data
    from runtime.run import open_session
    from runtime.sample_data import generate_sample_company

    generate_sample_company(tmp_path, reps=10, deals=10, seed=1)
    too_big = exp.select(div(number(Decimal("1")), number(Decimal("500000000000")), "spark")).sql(dialect="spark")
    with open_data(tmp_path) as data, pytest.raises(RevplanError) as raised:
        with open_session("spark", data.connection, None, data.schema) as session:
            session.run(too_big)
    [problem] = raised.value.diagnostics
    assert problem.code == "RP415" and "too big for exact decimal arithmetic on spark" in problem.message
    assert "ansi" not in problem.message.lower()


# The line of pyspark's error that said what failed at 1M deals in a 2g driver, before the big tables went
# over as files; the error carries it among Java stack frames.
BROADCAST_FAILED = """\tat org.apache.spark.sql.classic.Dataset.collectAsArrowToPython(Dataset.scala:2242)
Caused by: org.apache.spark.SparkException: Not enough memory to build and broadcast the table to all worker nodes. \
As a workaround, you can either disable broadcast by setting spark.sql.autoBroadcastJoinThreshold to -1 or increase \
the spark driver memory by setting spark.driver.memory to a higher value"""


@pytest.mark.parametrize("raised", [BROADCAST_FAILED, "java.lang.OutOfMemoryError: Java heap space"])
def test_a_driver_out_of_memory_is_a_diagnostic_that_says_how_to_give_it_more(spark_session, tmp_path, raised):
    """Spark's message for a heap too small (raised here, not provoked: that takes gigabytes and can take the
    shared JVM down) reaches the user as RP414 with the driver's size and the way to raise it, not as a Java
    stack trace; any other error passes through as it is."""
    from dsl.diagnostics import RevplanError
    from runtime.data import open_data
    from runtime.run import open_session
    from runtime.sample_data import generate_sample_company

    generate_sample_company(tmp_path, reps=10, deals=10, seed=1)
    with open_data(tmp_path) as data:
        with pytest.raises(RevplanError) as caught, open_session("spark", data.connection, None, data.schema):
            raise RuntimeError(raised)
        with pytest.raises(RuntimeError, match="something else"), open_session(
            "spark", data.connection, None, data.schema
        ):
            raise RuntimeError("something else")
    [problem] = caught.value.diagnostics
    memory = spark_session.sparkContext.getConf().get("spark.driver.memory")
    assert problem.code == "RP414" and problem.message.startswith(f"Spark ran out of memory with a {memory} driver: ")
    assert problem.message.endswith(("Not enough memory to build and broadcast the table to all worker nodes",
                                     "java.lang.OutOfMemoryError: Java heap space"))
    assert "REVPLAN_SPARK_DRIVER_MEMORY=8g" in problem.hints[0]
