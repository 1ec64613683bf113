"""Output files: every table is written as the same exact text, whichever writer writes it."""

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runtime.outputs import ParquetRows, write_csv


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
