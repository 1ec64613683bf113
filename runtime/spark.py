"""Run compiled plans on Spark: pyspark in local mode, one session per process.

In: the SQL texts of a run (compiled with sqlglot's `spark` dialect) and the
DuckDB connection holding the contract tables. Out: one pandas DataFrame per
query, money as `Decimal` (never floats), like the DuckDB path.

    spark_session(connection, schema)         -> a run's session: .run(sql), .add_table(name, arrow)
    session()                                 -> the process's SparkSession (started on first use)

How: every contract table goes from DuckDB to Spark through Arrow
(DECIMAL(18,2) stays DECIMAL(18,2)), as temporary views of a fresh
`newSession()` (its own views and SQL settings, the shared SparkContext), so
runs in one process never see each other's tables. Results come back
through Arrow too.

Exactness: the compiled SQL keeps every intermediate value DECIMAL(38, 10)
(compiler/exact.py). Spark's default `allowPrecisionLoss=true` would cut a
DECIMAL(38,10) x DECIMAL(38,10) product to 6 places, so the runs here set
it to false: products keep all 20 places before the cast back to 10, as on
DuckDB. ANSI mode is on, so a value that does not fit its decimal raises an
error instead of turning into NULL. Limits that follow: a product must stay
below 10^18 (as on DuckDB), a quotient below 10^17 and a divisor below
5 x 10^11 (the exact division works on integers scaled by 10^10, the
divisor's twice in a DECIMAL(22, 0)).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa

from dsl.diagnostics import Diagnostic, RevplanError
from dsl.schema import Schema
from runtime.data import first_line

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Static settings of the process's session: small, local, quiet.
SESSION_CONF = {
    "spark.master": "local[2]",
    "spark.app.name": "revplan",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",  # big query plans; the 1g default ran out building broadcasts
    "spark.sql.adaptive.enabled": "false",  # plans are small; re-planning costs more than it saves
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Spark's SQL parser keeps an ANTLR cache that grows with every long query it reads: our plans'
    # queries took it to 400 MB over a few runs, and a broadcast then ran out of heap (Spark 4.x).
    "spark.sql.parser.manageParserCaches": "true",
    "spark.sql.parser.parserDfaCacheFlushRatio": "5",  # flush past 5 % of the driver's memory
}
# Per-run SQL settings (set on every run's own session): exact decimals, loud overflow.
RUN_CONF = {
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
INSTALL_HINT = "pip install 'revplan[spark]' (pyspark; it needs Java 17 or later on the PATH or in JAVA_HOME)"
# Spark's own start-up logging goes to stderr at INFO/WARN; a run shows only errors.
LOG4J2 = """\
# pyspark counts as a shell: Spark sets the root level to the level of the shell's logger (WARN when
# nothing names it) and says so on stderr; naming org.apache at the root's level keeps it quiet.
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.apache.name = org.apache
logger.apache.level = error
"""

_lock = threading.Lock()
_session: SparkSession | None = None


def available() -> bool:
    """pyspark can be imported (Java is only found when a session starts)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def session() -> SparkSession:
    """The process's SparkSession: an active one (a notebook's, a test fixture's) or a new local one."""
    global _session
    with _lock:
        if _session is not None and not _stopped(_session):
            return _session
        _session = _start()
        return _session


def stop() -> None:
    """Stop the session this module started (tests call it at the end)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


@contextlib.contextmanager
def spark_session(connection: duckdb.DuckDBPyConnection, schema: Schema):
    """A fresh session holding the contract tables as temporary views, dropped on close."""
    spark = session().newSession()
    for key, value in RUN_CONF.items():
        spark.conf.set(key, value)
    run = SparkRun(spark)
    try:
        for entity in schema.entities:
            run.add_table(entity.table, connection.table(entity.table).to_arrow_table())
        yield run
    finally:
        for name in run.views:
            spark.catalog.dropTempView(name)


class SparkRun:
    def __init__(self, spark: SparkSession):
        self.spark, self.views = spark, []

    def run(self, sql: str) -> pd.DataFrame:
        return _collect(self.spark.sql(sql))

    run_arrow = run

    def write_parquet(self, sql: str, path, schema: pa.Schema) -> None:
        from runtime.run import exact_table, write_rows

        write_rows(exact_table(self.run(sql), schema), path)

    def add_table(self, name: str, rows: pa.Table) -> None:
        _to_spark(self.spark, rows).createOrReplaceTempView(name)
        self.views.append(name)


# ---------------------------------------------------------------- helpers


def _start() -> SparkSession:
    try:
        with warnings.catch_warnings():  # pyspark warns about pandas versions it has not been tested with
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession
    except ImportError:
        raise RevplanError(
            [Diagnostic(code="RP402", message="--engine spark needs pyspark", hints=(INSTALL_HINT,))]
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log_config()}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spark = builder.getOrCreate()
    except Exception as error:  # no Java, a JVM that does not start: say what to install
        raise RevplanError(
            [Diagnostic(code="RP402", message=f"cannot start Spark: {first_line(error)}", hints=(INSTALL_HINT,))]
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _stopped(spark: SparkSession) -> bool:
    context = spark.sparkContext
    return context._jsc is None  # set to None by SparkContext.stop()


def _log_config() -> str:
    """A log4j2 file for the JVM, written whole (another process may be starting Spark too)."""
    path = os.path.join(tempfile.gettempdir(), "revplan-spark-log4j2.properties")
    try:
        with open(path) as handle:
            if handle.read() == LOG4J2:
                return path
    except OSError:
        pass
    handle, staging = tempfile.mkstemp(prefix="revplan-log4j2-", dir=tempfile.gettempdir())
    with os.fdopen(handle, "w") as out:
        out.write(LOG4J2)
    os.replace(staging, path)
    return path


def _to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    """An Arrow table as a Spark DataFrame with the same column types (decimals keep precision and scale)."""
    if _pyspark_major() >= 4:  # Arrow in directly
        return spark.createDataFrame(table)
    from pyspark.sql.pandas.types import from_arrow_schema  # 3.5: pandas with an explicit schema

    return spark.createDataFrame(table.to_pandas(), schema=from_arrow_schema(table.schema))


def _collect(frame: DataFrame) -> pd.DataFrame:
    """Rows as pandas, converted from Arrow as the DuckDB path does (Decimal objects, dates as dates)."""
    if _pyspark_major() >= 4:
        return frame.toArrow().to_pandas()
    return frame.toPandas()  # 3.5: through Arrow too (spark.sql.execution.arrow.pyspark.enabled)


def _pyspark_major() -> int:
    import pyspark

    return int(pyspark.__version__.split(".")[0])
