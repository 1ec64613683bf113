"""Run compiled plans on Spark: pyspark in local mode, one session per process.

In: the SQL texts of a run (compiled with sqlglot's `spark` dialect) and the
DuckDB connection holding the contract tables. Out: one pandas DataFrame per
query, money as `Decimal` (never floats), like the DuckDB path.

    spark_session(connection, schema)         -> a run's session: .run(sql), .add_table(name, arrow)
    session()                                 -> the process's SparkSession (started on first use)

How: every contract table goes from DuckDB to Spark with its types
(DECIMAL(18,2) stays DECIMAL(18,2)) as a temporary view of a fresh
`newSession()` (its own views and SQL settings, the shared SparkContext), so
runs in one process never see each other's tables. Small tables go through
Arrow, in memory; tables of more than IN_MEMORY_ROWS rows as Parquet files in
a scratch folder: Spark keeps data handed over in memory in the driver's heap,
where 1M deals left too little room to build a join's broadcast (and files
cost a small table's queries time). Results come back through Arrow.

Exactness: the compiled SQL keeps every intermediate value DECIMAL(38, 10)
(compiler/exact.py). Spark's default `allowPrecisionLoss=true` would cut a
DECIMAL(38,10) x DECIMAL(38,10) product to 6 places, so the runs here set
it to false: products keep all 20 places before the cast back to 10, as on
DuckDB. ANSI mode is on, so a value that does not fit its decimal raises an
error instead of turning into NULL. Limits that follow: a product must stay
below 10^18 (as on DuckDB), a quotient below 10^17, a dividend below
5 x 10^17 and a divisor below 5 x 10^11 (the exact division works on
integers scaled by 10^10: the dividend's twice times 10^10 in a
DECIMAL(38, 0), the divisor's twice in a DECIMAL(22, 0)).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    "spark.sql.adaptive.enabled": "false",  # plans are small; re-planning costs more than it saves
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Spark's SQL parser keeps an ANTLR cache that grows with every long query it reads: our plans'
    # queries took it to 400 MB over a few runs, and a broadcast then ran out of heap (Spark 4.x).
    "spark.sql.parser.manageParserCaches": "true",
    "spark.sql.parser.parserDfaCacheFlushRatio": "5",  # flush past 5 % of the driver's memory
}
# The driver's heap, where local mode runs everything: REVPLAN_SPARK_DRIVER_MEMORY, else 4g (our query plans
# are big: the 1g default ran out building broadcasts on the sample, 2g on 1M deals, where 4g took 205 s).
# A maximum, taken as needed. Read when revplan starts Spark, not later.
DRIVER_MEMORY = "4g"
# Tables of more rows go to Spark as Parquet files (see above).
IN_MEMORY_ROWS = 100_000
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
    with tempfile.TemporaryDirectory(prefix="revplan-spark-") as folder:
        run = SparkRun(spark, Path(folder))
        try:
            for entity in schema.entities:
                relation = connection.table(entity.table)
                if _row_count(relation) <= IN_MEMORY_ROWS:
                    run.add_table(entity.table, relation.to_arrow_table())
                else:
                    path = run.folder / f"{entity.table}.parquet"
                    relation.write_parquet(str(path))
                    run.add_view(entity.table, path)
            yield run
        except Exception as error:
            if not _out_of_memory(error):
                raise
            memory = spark.sparkContext.getConf().get("spark.driver.memory", DRIVER_MEMORY)
            raise RevplanError([Diagnostic(
                code="RP414",
                message=f"Spark ran out of memory with a {memory} driver: {_java_message(error)}",
                hints=("give the driver more, e.g. REVPLAN_SPARK_DRIVER_MEMORY=8g revplan run ... (local mode "
                       "runs everything in the driver), or run on DuckDB, which spills to disk",),
            )]) from None
        finally:
            for name in run.views:
                spark.catalog.dropTempView(name)


class SparkRun:
    def __init__(self, spark: SparkSession, folder: Path):
        self.spark, self.folder, self.views = spark, folder, []

    def run(self, sql: str) -> pd.DataFrame:
        return _collect(self.spark.sql(sql))

    run_arrow = run

    def write_parquet(self, sql: str, path, schema: pa.Schema) -> None:
        """The rows as Arrow, not pandas: no Python object per decimal of a plan's deals (millions at scale)."""
        from runtime.run import exact_table, write_rows

        write_rows(exact_table(_collect_arrow(self.spark.sql(sql)), schema), path)

    def add_table(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows <= IN_MEMORY_ROWS:
            _to_spark(self.spark, rows).createOrReplaceTempView(name)
            self.views.append(name)
        else:
            pq.write_table(rows, self.folder / f"{name}.parquet")
            self.add_view(name, self.folder / f"{name}.parquet")

    def add_view(self, name: str, path: Path) -> None:
        self.spark.read.parquet(str(path)).createOrReplaceTempView(name)
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
    builder = builder.config("spark.driver.memory", os.environ.get("REVPLAN_SPARK_DRIVER_MEMORY", DRIVER_MEMORY))
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


# What Spark says when the driver's heap is too small: for a broadcast it builds, or anywhere.
OUT_OF_MEMORY = ("Not enough memory to build and broadcast", "java.lang.OutOfMemoryError")


def _out_of_memory(error: BaseException) -> bool:
    return any(sign in str(error) for sign in OUT_OF_MEMORY)


def _java_message(error: BaseException) -> str:
    """The line of a Java stack trace that says what ran out, without the rest (or the advice to tune joins)."""
    for line in str(error).splitlines():
        for sign in OUT_OF_MEMORY:
            if sign in line:
                return line[line.index(sign):].split(". As a workaround")[0]
    return first_line(error)


def _row_count(relation: duckdb.DuckDBPyRelation) -> int:
    return relation.aggregate("count(*)").fetchall()[0][0]


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


def _collect_arrow(frame: DataFrame) -> pa.Table:
    if _pyspark_major() >= 4:
        return frame.toArrow()
    return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)  # 3.5 has no public Arrow collect


def _pyspark_major() -> int:
    import pyspark

    return int(pyspark.__version__.split(".")[0])
