"""The worked examples (shared/examples/worked-examples.md), each a plan with its test block.

`tests/examples/*.plan` hold W1-W13, Q1 and T1 with the examples' inputs and
expected results exactly as the shared file states them. Every test block
runs through the SQL runtime (`runtime.run.run_plans`) on DuckDB, on a
real PostgreSQL server and on Spark (pyspark, local mode), and must pass to
the cent on each. The plans' own tests in plans/ run the same way (but for
Spark, see SAMPLE_ENGINES).

Each example file is its own project: the examples define the same plan
shapes and measure names over and over, as separate companies would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dsl.project
from dsl import ir
from runtime.plantest import build_tables, load_checked, run_plan_tests, validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "tests" / "examples").glob("*.plan"))
SAMPLE_PLANS = ROOT / "plans"
GOOD_PLANS = ROOT / "tests" / "plans" / "good"
POSTGRES_URL = os.environ.get("REVPLAN_TEST_POSTGRES_URL")
ENGINES = [
    "duckdb",
    pytest.param("postgres", marks=pytest.mark.postgres),
    "python",  # the Python calculator (compiler/python.py): same tests, same cents
    pytest.param("spark", marks=pytest.mark.spark),  # the Spark SQL on pyspark, local mode
]
# The sample plans' tests skip Spark: each costs Spark seconds, and the whole sample company is
# compared line by line on Spark and DuckDB in tests/runtime/test_engines.py.
SAMPLE_ENGINES = [engine for engine in ENGINES if getattr(engine, "values", (engine,))[0] != "spark"]

# Every worked example of the shared file has a plan here.
EXAMPLE_IDS = [f"W{n}" for n in range(1, 14)] + ["Q1", "T1"]


def sql_calculator(engine: str):
    """The runtime on the test's DuckDB connection (SQL, or the Python calculator on its tables),
    or on PostgreSQL with the same tables."""
    from runtime.run import run_plans

    if engine == "postgres" and not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must provide a PostgreSQL server (REVPLAN_TEST_POSTGRES_URL); see .ci/run")
        pytest.skip("no PostgreSQL server: set REVPLAN_TEST_POSTGRES_URL (source .ci/postgres.sh; start_postgres)")
    return lambda plan_files, connection: run_plans(plan_files, connection, engine=engine, url=POSTGRES_URL)


def load_project(*paths: Path) -> tuple[ir.PlanFile, ...]:
    files, diagnostics, _ = load_checked(list(paths))
    errors = [d for d in diagnostics if d.is_error]
    assert not errors, "\n".join(f"{d.where}: {d.message}" for d in errors)
    return files


def blocks_of(files: tuple[ir.PlanFile, ...]) -> list[tuple[ir.PlanBase, ir.PlanTest]]:
    return [(plan, test) for f in files for plan in f.plans for test in plan.tests]


def example_cases() -> list:
    cases = []
    for path in EXAMPLES:
        try:
            blocks = blocks_of(load_project(path))
        except AssertionError:  # reported by test_example_tests_are_well_formed
            continue
        for plan, test in blocks:
            cases.append(pytest.param(path, plan.name, test.name, id=f"{path.stem}: {test.name}"))
    return cases


def sample_cases() -> list:
    try:
        blocks = blocks_of(load_project(SAMPLE_PLANS))
    except AssertionError:  # reported by test_sample_plan_tests_are_well_formed
        return []
    return [pytest.param(plan.name, test.name, id=f"{plan.name}: {test.name}") for plan, test in blocks]


def test_every_worked_example_has_a_plan():
    names = " ".join(path.stem.split("_")[0].upper() for path in EXAMPLES)
    for example in EXAMPLE_IDS:
        number = example[1:]
        wanted = f"{example[0]}{int(number):02d}" if example[0] == "W" else example
        assert wanted in names, f"no plan for worked example {example} in tests/examples/"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_tests_are_well_formed(path: Path):
    """Every given row builds typed tables and every expectation is valid (no calculator needed)."""
    blocks = blocks_of(load_project(path))
    assert blocks, f"{path.name} has no test block"
    for plan, test in blocks:
        assert test.expect, f"{test.name}: expects nothing"
        build_tables(test, plan)
        for expectation in test.expect:
            validate(expectation)


def test_sample_plan_tests_are_well_formed():
    blocks = blocks_of(load_project(SAMPLE_PLANS))
    assert {plan.name for plan, _ in blocks} >= {
        "Enterprise AE",
        "Commercial AE",
        "SDR",
        "Sales Manager",
        "Solutions Engineer",
        "Customer Success",
        "FY27 AE Quotas",
        "FY27 CSM Quotas",
        "FY27 Territories",
    }
    for plan, test in blocks:
        build_tables(test, plan)
        for expectation in test.expect:
            validate(expectation)


def run_one(paths: list[Path], plan_name: str, test_name: str, engine: str):
    results = run_plan_tests(
        paths, sql_calculator(engine), select=lambda plan, test: plan.name == plan_name and test.name == test_name
    )
    assert len(results) == 1, [str(r) for r in results]
    (result,) = results
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.passed, str(result)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("path", "plan_name", "test_name"), example_cases())
def test_worked_example(path: Path, plan_name: str, test_name: str, engine: str, request):
    if engine == "spark":
        request.getfixturevalue("spark_session")  # one session for the whole test run
    run_one([path], plan_name, test_name, engine)


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_the_good_corpus_plan_tests_pass(engine: str):
    """tests/plans/good (the language's every construct, with custom fields in its revplan.toml) has test blocks
    too: they must hold, as the examples' do (one expected a rate a paid-on-payment line does not carry)."""
    project = dsl.project.load_paths([GOOD_PLANS])
    assert not [d for d in project.diagnostics if d.is_error]
    results = run_plan_tests(project.files, sql_calculator(engine), schema=project.schema)
    assert len(results) >= 5 and all(r.passed for r in results), "\n".join(str(r) for r in results if not r.passed)


@pytest.mark.parametrize("engine", SAMPLE_ENGINES)
@pytest.mark.parametrize(("plan_name", "test_name"), sample_cases())
def test_sample_company_plan(plan_name: str, test_name: str, engine: str):
    run_one([SAMPLE_PLANS], plan_name, test_name, engine)
