"""Output files: every table is written as the same exact text, whichever writer writes it."""

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtime.outputs import LINE_TYPES, ParquetRows, statements, write_csv, write_run
from runtime.run import write_rows


def test_big_tables_are_written_in_the_same_text_as_small_ones(tmp_path):
    """Parquet rows go through DuckDB's CSV writer; the text must match the DataFrame path cell for cell."""
    frame = pd.DataFrame(
        {
            "deal_id": ["D1", "D,2", 'D"3', None],
            "version": [1, 2, 3, 4],
            "credited_base": [Decimal("0.5000000000"), Decimal("-0.0000000001"), None, Decimal("0E-10")],
        }
    )
    table = pa.Table.from_pandas(frame, schema=pa.schema(
        [("deal_id", pa.string()), ("version", pa.int64()), ("credited_base", pa.decimal128(38, 10))]
    ), preserve_index=False)
    write_csv(frame, tmp_path / "small.csv")
    pq.write_table(table, tmp_path / "rows.parquet")
    write_csv(ParquetRows((tmp_path / "rows.parquet",), table.schema), tmp_path / "big.csv")
    assert (tmp_path / "big.csv").read_text() == (tmp_path / "small.csv").read_text()
    assert "0.5000000000" in (tmp_path / "big.csv").read_text()


@pytest.mark.parametrize(("values", "written"), [
    ([1.0, float("nan"), 4.0], ["1", "", "4"]),  # a gap account's priority: pandas made the column float
    ([0.0], ["0"]),
    ([0.5, float("nan")], ["0.5", ""]),  # not whole: as it is
])
def test_whole_numbers_pandas_made_floats_are_written_as_whole_numbers(tmp_path, values, written):
    write_csv(pd.DataFrame({"priority": values}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == ["priority", *written]


def test_the_deals_an_engine_returns_are_written_in_the_writers_small_memory(tmp_path):
    """PostgreSQL and Spark return each plan's deals whole. As one Parquet row group per plan
    (pyarrow's default holds up to 1M rows), two plans' files did not fit the CSV writer's memory
    together (at 1M deals: 791k and 413k rows). Written by `write_rows`, they stream."""
    files = []
    for plan, count in (("Sales Manager", 1_000_000), ("Commercial AE", 1_000_000)):
        table = pa.table(
            {
                "plan": pa.array([plan] * count),
                "version": pa.array([1] * count, pa.int64()),
                "component": pa.array(["Bookings"] * count),
                "rep_id": pa.array([f"R{n % 10_000:05d}" for n in range(count)]),
                "period": pa.array([f"2027-Q{n % 4 + 1}" for n in range(count)]),
                "deal_id": pa.array([f"D{n * 7919 % count:07d}" for n in range(count)]),
                "credited_base": pa.array(
                    [Decimal(n * 7919 % 10**9).scaleb(-2) for n in range(count)], pa.decimal128(38, 10)
                ),
            }
        )
        files.append(tmp_path / f"deals-{len(files)}.parquet")
        write_rows(table, files[-1])
    write_csv(ParquetRows(tuple(files), table.schema), tmp_path / "deals.csv")
    with open(tmp_path / "deals.csv") as written:
        assert sum(1 for _ in written) == 1 + 2_000_000


def test_writing_a_run_says_which_file_it_writes(tmp_path):
    """What the live line of `revplan run` shows while the outputs are written (the deals take seconds at 10M)."""
    heard = []
    tables = {"payout_lines": pd.DataFrame({"rep_id": ["R1"]}), "statements": pd.DataFrame({"rep_id": ["R1"]})}
    write_run(tmp_path / "out", tables, {"engine": "duckdb"}, progress=heard.append)
    assert heard == ["payout_lines.csv", "statements.csv"]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["manifest.json", "payout_lines.csv", "statements.csv"]


@pytest.mark.parametrize("line_types", [["commission"], ["clawback", "draw"], []])
def test_statements_have_every_line_type_column_whatever_the_run_holds(line_types):
    """A payroll import maps statements.csv's columns once: a quarter without draws keeps the draw column."""
    lines = pd.DataFrame({"rep_id": "R1", "period": "2027-Q1", "currency": "USD", "line_type": line_types,
                          "amount": [Decimal("1.25")] * len(line_types)})
    table = statements(lines)
    assert list(table.columns) == ["rep_id", "period", "currency", *LINE_TYPES, "total"]
    for _, row in table.iterrows():
        assert [row[t] for t in LINE_TYPES] == [Decimal("1.25") if t in line_types else Decimal("0.00")
                                                for t in LINE_TYPES]
        assert row["total"] == Decimal("1.25") * len(line_types)


def test_statement_totals_are_exact_past_what_64_bits_hold():
    """Audit: cents summed as int64 wrapped, a total of 108e15 printed as -76,467,440,737,095,516.16."""
    huge = Decimal("9000000000000000.00")  # a line within DECIMAL(18, 2); twelve of them pass 2**63 cents
    lines = pd.DataFrame({"rep_id": "R1", "period": "2027-Q1", "currency": "USD",
                          "line_type": ["commission"] * 6 + ["bonus"] * 6, "amount": [huge] * 12})
    (row,) = statements(lines).to_dict("records")
    assert (row["commission"], row["bonus"], row["total"]) == (huge * 6, huge * 6, huge * 12)
