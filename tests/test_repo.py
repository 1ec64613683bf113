"""Repository rules that keep revplan's shape: layout, import direction, CI = README."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Which of our packages each package may import (design brief: one direction).
ALLOWED_IMPORTS = {
    "dsl": set(),
    "compiler": {"dsl"},
    "runtime": {"dsl", "compiler"},
    "reports": {"dsl", "runtime"},
    "revplan": {"dsl", "compiler", "runtime", "reports"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED_IMPORTS)


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_imports_flow_one_way(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        forbidden = imported_packages(path) - ALLOWED_IMPORTS[package] - {package}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_duckdb_results_are_read_to_their_end(package):
    """DuckDB 2 keeps a result read with fetchone() open, and the connection's next `sql()` raises: a run that
    warned RD026 exited with a traceback. `runtime.data.first_row` reads one row safely (psycopg's `pg.` is fine)."""
    for path in sorted((ROOT / package).rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if ".fetchone()" in line and "pg.execute" not in line and not line.lstrip().startswith(('"""', "#")):
                pytest.fail(f"{path.relative_to(ROOT)}:{number} reads a DuckDB result with fetchone(): use first_row")


def test_the_readmes_plan_passes_its_own_test(tmp_path):
    """A newcomer copies README.md's plan first (audit: its test failed: the rep was in no plan)."""
    from runtime.plantest import run_plan_tests
    from runtime.run import run_plans

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (plan,) = [block.strip().removeprefix("text").strip() for block in text.split("```")[1::2]
               if block.lstrip().startswith("revplan 1")]
    (tmp_path / "readme.plan").write_text(plan + "\n", encoding="utf-8")
    results = run_plan_tests([tmp_path / "readme.plan"], lambda files, connection: run_plans(files, connection))
    assert [r.status for r in results] == ["passed"], [str(r) for r in results]


def test_layout_is_as_fixed():
    for name in ("dsl", "compiler", "plans", "runtime", "reports", "tests", ".github", "pyproject.toml", "README.md"):
        assert (ROOT / name).exists(), name


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    return [line.strip() for block in blocks for line in block.splitlines() if "python3 -m venv" in line]


def test_ci_runs_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "python3 -m venv" in line]
    assert ci_lines, ".ci/run must run the README's test command"
    assert ci_lines[-1] in readme_commands()


def test_readme_has_setup_and_run_command():
    assert any("revplan demo" in command for command in readme_commands())
