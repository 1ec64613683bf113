import os
import sys

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False, help="rewrite golden files")


@pytest.fixture
def deep_sql():
    """For a test that parses printed SQL back: sqlglot recurses per nesting level, and BigQuery's (each decimal
    cast a ROUND of a cast: compiler/exact.py, for_dialect) nests past Python's default 1,000 frames. Only for
    that test: others check that revplan's own chains of hundreds of terms stop at the default (RP120)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5_000))  # Python 3.11 runs Python-to-Python calls off the C stack
    yield
    sys.setrecursionlimit(limit)


@pytest.fixture(scope="session")
def spark_session():
    """One local SparkSession for the whole test run: starting one takes seconds, a query on it about one."""
    from runtime import spark

    if not spark.available():
        if os.environ.get("CI"):
            pytest.fail("CI must install pyspark for the spark tests (it is in the test extra)")
        pytest.skip("pyspark is not installed: pip install -e '.[spark]'")
    session = spark.session()
    yield session
    spark.stop()
