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


def test_python_writes_its_deal_trace_in_row_groups_the_csv_writer_can_hold(tmp_path, capsys):
    """The CSV writer keeps the trace's order, so it holds a Parquet row group at a time in its 512MB: the
    Python calculator's file was one row group per million rows, and at 1M deals the run stopped with a
    traceback (out of memory) after computing everything. Over 122,880 rows it now has several groups."""
    import pyarrow.parquet as pq

    from dsl.project import load_paths
    from runtime.data import open_data
    from runtime.run import PARQUET_ROW_GROUP, run_plans

    data = tmp_path / "data"
    assert main(["sample-data", "--out", str(data), "--reps", "200", "--deals", "70000", "--format", "parquet"]) == 0
    capsys.readouterr()
    with open_data(data) as source:
        result = run_plans(load_paths([str(ROOT / "plans")]).files, source.connection, engine="python",
                           deals="ids", deals_to=tmp_path)
    (trace,) = [pq.ParquetFile(path).metadata for path in result.payout_deal_files]
    assert trace.num_rows > PARQUET_ROW_GROUP
    assert max(trace.row_group(i).num_rows for i in range(trace.num_row_groups)) <= PARQUET_ROW_GROUP
