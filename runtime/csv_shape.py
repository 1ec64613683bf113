"""The shape of a CSV file, checked before DuckDB reads it: what DuckDB's reader would forgive silently.

In: a CSV file and the column names its table expects. Out: `CsvShape`, its
delimiter (found from the header, not guessed from a sample of rows), its
header, the lines whose fields do not line up with the header although
DuckDB would accept them, and where each data row starts in the file.

    shape = read_shape(Path("deals.csv"), ("id", "owner_rep_id", ...))
    shape.delimiter, shape.duplicate_columns, shape.shifted_rows, line_of(row, shape.line_offsets)

Why a pass of our own:
  - DuckDB drops a row's surplus fields when they are empty. A row whose
    unquoted comma (`Polar Field, Labs`) pushes an empty last field one place
    further is read as a row of the right width with every value after the
    comma in the wrong column: a payout computed on shifted data. pyarrow's
    reader counts every row's fields; its single-threaded scan costs about
    0.3 s per million rows.
  - DuckDB renames a repeated column name (`amount`, `amount_1`) and reads
    the first copy: which of two amounts pays must not be a guess (names are
    compared ignoring case and surrounding spaces, as DuckDB compares them).
  - Data rows are numbered as DuckDB numbers them (blank lines skipped, a
    quoted value spanning lines is one row); messages also give the line a
    text editor shows, which differs after a blank line or a multi-line value.
"""

from __future__ import annotations

import bisect
import collections
import csv
import dataclasses
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
csv.field_size_limit(2**31 - 1)  # a cell of a CRM export can hold a long text; the module's default is 128 KB
SHOWN_ROWS = 20  # shifted rows kept for messages; the rest are counted


@dataclasses.dataclass(frozen=True)
class ShiftedRow:
    row: int  # 1-based data row
    fields: int  # how many fields it has (the header has fewer)
    text: str


@dataclasses.dataclass(frozen=True)
class CsvShape:
    delimiter: str
    header: tuple[str, ...]
    duplicate_columns: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (name, 1-based positions)
    shifted_rows: tuple[ShiftedRow, ...] = ()  # the first SHOWN_ROWS
    shifted_total: int = 0
    # (first data row, lines before it beyond the header): where rows stop being on line row + 1
    line_offsets: tuple[tuple[int, int], ...] = ()
    # (first data row, blank lines above it, before the header too): where rows stop being on reject line row + 1
    blank_offsets: tuple[tuple[int, int], ...] = ()


def line_of(row: int, line_offsets: tuple[tuple[int, int], ...]) -> int:
    """The file line data row `row` (1-based) starts on, given `CsvShape.line_offsets`.

    >>> line_of(3, ()), line_of(3, ((2, 1),)), line_of(1, ((2, 1),))
    (4, 5, 2)
    """
    at = bisect.bisect_right(line_offsets, row, key=lambda offset: offset[0]) - 1  # the last one at or before row
    return row + 1 + (line_offsets[at][1] if at >= 0 else 0)


def row_of_reject(line: int, blank_offsets: tuple[tuple[int, int], ...]) -> int:
    """The data row (1-based) of the line DuckDB's rejects table names: it counts blank lines, and a value
    spanning lines as one line, so after a blank line its line is not row + 1.

    >>> row_of_reject(5, ()), row_of_reject(5, ((2, 1),)), row_of_reject(2, ((2, 1),))
    (4, 3, 1)
    """
    for first_row, blanks in reversed(blank_offsets):
        if first_row + 1 + blanks <= line:
            return line - 1 - blanks
    return line - 1


def read_shape(path: Path, expected: tuple[str, ...]) -> CsvShape:
    """The shape of the CSV file at `path` (not empty, UTF-8 or UTF-8 with a BOM) for a table of `expected` columns."""
    leading = 0  # empty lines before the header, which DuckDB skips too
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        header_line = handle.readline()
        while header_line and not header_line.strip("\r\n"):
            leading, header_line = leading + 1, handle.readline()
    delimiter = find_delimiter(header_line, expected)
    header = tuple(next(csv.reader([header_line.rstrip("\r\n")], delimiter=delimiter), []))
    shape = CsvShape(delimiter=delimiter, header=header, duplicate_columns=_duplicates(header))
    if len(header) < 2:  # one column: DuckDB reads it as it is, and the missing columns are reported
        return shape
    try:
        shifted, total, records = _shifted_rows(path, delimiter, len(header), leading)
    except pa.ArrowInvalid:  # a quote pyarrow cannot pair: DuckDB reads the file its own way and reports lines
        return shape
    line_offsets, blank_offsets = _line_offsets(path, delimiter, records)
    return dataclasses.replace(shape, shifted_rows=shifted, shifted_total=total, line_offsets=line_offsets,
                               blank_offsets=blank_offsets)


def header_below(path: Path, expected: tuple[str, ...], lines: int = 10) -> int | None:
    """The line of the column names when the first line is not it (a title above the table, as reports
    exported to CSV have): the first of the next `lines` lines naming more expected columns than line 1."""
    wanted = {name.lower() for name in expected}

    def names(line: str) -> int:
        return max(sum(f.strip().lower() in wanted for f in next(csv.reader([line.rstrip("\r\n")], delimiter=d), []))
                   for d in DELIMITERS)

    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = [(number, line) for number, line in zip(range(1, lines + 2), handle, strict=False)
                 if line.strip("\r\n")]  # blank lines DuckDB skips
    if not first or names(first[0][1]) >= 2:
        return None
    return next((number for number, line in first[1:] if names(line) >= 2), None)


def find_delimiter(header_line: str, expected: tuple[str, ...]) -> str:
    """The delimiter that splits the header into the most expected column names; a comma when none does.

    >>> find_delimiter("id;name;amount\\n", ("id", "amount"))
    ';'
    >>> find_delimiter("Id, Name\\n", ("id", "name"))
    ','
    """
    wanted = {name.lower() for name in expected}

    def matches(delimiter: str) -> int:
        fields = next(csv.reader([header_line.rstrip("\r\n")], delimiter=delimiter), [])
        return sum(field.strip().lower() in wanted for field in fields)

    best = max(DELIMITERS, key=lambda d: (matches(d), d == ","))
    return best if matches(best) else ","


def _duplicates(header: tuple[str, ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Column names given more than once, ignoring case and surrounding spaces (DuckDB's reader renames both)."""
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        if name.strip():
            positions.setdefault(name.strip().lower(), []).append(position)
    return tuple((header[places[0] - 1].strip(), tuple(places)) for places in positions.values() if len(places) > 1)


def _shifted_rows(path: Path, delimiter: str, width: int, leading: int
                  ) -> tuple[tuple[ShiftedRow, ...], int, int]:
    """Rows with more fields than the header whose surplus is empty (those DuckDB accepts, shifted), how many
    there are, and how many data rows the file has. When every row is longer than the header, each ends in
    a delimiter: then only rows longer than most are shifted."""
    over: list[tuple[int, int, str]] = []
    skipped = 0

    def invalid(row) -> str:
        nonlocal skipped
        skipped += 1
        if row.actual_columns > width:  # read as Latin-1, which any byte is: back to UTF-8 for messages
            over.append((row.number - 1 - leading, row.actual_columns,
                         row.text.encode("latin-1").decode("utf-8", errors="replace")))
        return "skip"

    names = [f"c{i}" for i in range(width)]
    table = pa_csv.read_csv(
        path,
        # Latin-1: a byte that is not UTF-8 (DuckDB reports its line) must not stop the count of fields.
        read_options=pa_csv.ReadOptions(use_threads=False, skip_rows=leading + 1, column_names=names,
                                        encoding="latin-1"),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=invalid),
        convert_options=pa_csv.ConvertOptions(include_columns=names[:1], column_types={names[0]: pa.binary()}),
    )
    records = table.num_rows + skipped
    usual = width
    if over and len(over) == records:  # a trailing delimiter on every row
        usual = collections.Counter(fields for _, fields, _ in over).most_common(1)[0][0]
    shifted = [ShiftedRow(row, fields, text) for row, fields, text in over
               if fields > usual and _surplus_empty(text, delimiter, width)]
    return tuple(shifted[:SHOWN_ROWS]), len(shifted), records


def _surplus_empty(text: str, delimiter: str, width: int) -> bool:
    """The fields past the header's are empty (DuckDB rejects a row whose surplus holds even a space)."""
    fields = next(csv.reader([text], delimiter=delimiter), [])
    return all(field == "" for field in fields[width:])


def _line_offsets(path: Path, delimiter: str, records: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Where data rows stop starting on line row + 1, and where they stop being on DuckDB's reject line row + 1
    (DuckDB counts blank lines but a multi-line value as one line): only a file with blank lines or multi-line
    values has either."""
    with open(path, "rb") as handle:
        newlines = carriage_returns = 0
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            newlines, carriage_returns = newlines + chunk.count(b"\n"), carriage_returns + chunk.count(b"\r")
        handle.seek(-1, io.SEEK_END)
        ends = handle.read(1)
    lines = (newlines or carriage_returns) + (ends not in b"\r\n")  # old Mac files end lines with CR alone
    if lines <= records + 1:
        return (), ()
    line_offsets: list[tuple[int, int]] = []
    blank_offsets: list[tuple[int, int]] = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        blanks = 0
        for fields in reader:  # the header, after any empty lines
            if fields:
                break
            blanks += 1
        row, before = 0, reader.line_num
        for fields in reader:
            if fields:
                row += 1
                _add_step(line_offsets, row, before + 1 - (row + 1))
                _add_step(blank_offsets, row, blanks)
            else:
                blanks += 1
            before = reader.line_num
    return tuple(line_offsets), tuple(blank_offsets)


def _add_step(steps: list[tuple[int, int]], row: int, offset: int) -> None:
    """Append (row, offset) when the offset differs from the last one: a step function over rows."""
    if offset != (steps[-1][1] if steps else 0):
        steps.append((row, offset))


def odd_line(path: Path) -> str | None:
    """What may have stopped DuckDB's reader from making sense of a file (it says only "error when
    sniffing"): a line that ends with CR LF among lines ending with LF, or the reverse, or a line of blanks
    only. Read only when that error happens."""
    endings: dict[bytes, int] = {}  # line ending -> the first line with it
    counts: collections.Counter[bytes] = collections.Counter()
    blank = None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            ending = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""
            if ending:
                counts[ending] += 1
                endings.setdefault(ending, number)
            if blank is None and line.strip(b"\r\n") and not line.strip():
                blank = number
    if len(counts) == 2:
        rare = min(counts, key=lambda ending: (counts[ending], -endings[ending]))  # a tie: the one that comes later
        name, other = ("CR LF", "LF") if rare == b"\r\n" else ("LF", "CR LF")
        return f"line {endings[rare]} ends with {name}, the others with {other}: make every line end the same way"
    if blank is not None:
        return f"line {blank} holds only blanks: remove it"
    return None
