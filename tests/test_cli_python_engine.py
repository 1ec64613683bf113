"""`revplan run --engine python` and `revplan test --engine python` as a user runs them.

The Python calculator (compiler/python.py) must write the same files as DuckDB, byte for byte
(only the manifest names the engine), and pass every plan test of the sample plans.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from revplan.cli import main
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    assert main(["sample-data", "--out", str(folder), "--reps", "40", "--deals", "2000"]) == 0
    return folder


def test_run_on_python_writes_what_duckdb_writes(sample, tmp_path, capsys):
    for engine in ("duckdb", "python"):
        code, out, _ = run_cli(capsys, "run", "--data", sample, "--plans", ROOT / "plans",
                               "--out", tmp_path / engine, "--engine", engine)
        assert code == 0
    written = sorted(p.name for p in (tmp_path / "python").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "duckdb").iterdir())
    for name in written:
        if name != "manifest.json":
            assert (tmp_path / "python" / name).read_bytes() == (tmp_path / "duckdb" / name).read_bytes(), name
    assert json.loads((tmp_path / "python" / "manifest.json").read_text())["engine"] == "python"


def test_plan_tests_pass_on_python(capsys):
    code, out, _ = run_cli(capsys, "test", ROOT / "plans", "--engine", "python")
    assert code == 0, out
    assert " 0 failed on python" in out


def test_python_engine_takes_no_url(capsys):
    code, _, err = run_cli(capsys, "test", ROOT / "plans", "--engine", "python", "--url", "postgresql://x@y/z")
    assert code == 1
    assert "--url is for --engine postgres" in err
