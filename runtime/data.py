"""Open input data as DuckDB views named after the schema's tables.

In: a data source, one of
  - a folder with one file per table: `reps.csv`, `deals.parquet`, or a
    folder `deals/` of Parquet parts (`deals/*.parquet`);
  - a DuckDB database file (`*.duckdb`) holding tables named `reps`, `deals`...;
  - a PostgreSQL URL (`postgresql://user@host:5432/db`), read with psycopg;
  - Arrow tables in memory (`open_tables`: a plan test's given rows).
Out: a `DataSet`: a DuckDB connection with one typed view per table of the
schema (`reps`, `deals`, `deal_splits`, ...), where each table came from, and
a fingerprint of the input for run manifests.

What always holds:
  - every schema table has a view, with every schema column, in its exact
    type: money DECIMAL(18,2), number DECIMAL(28,10), percent DECIMAL(9,6)
    (a fraction: 0.6 is 60 %), integer BIGINT, date DATE. An optional table or
    column that is missing is an empty view or a NULL column. Columns the
    schema does not know (custom CRM fields) pass through unchanged.
  - Parquet and DuckDB tables are queried in place; nothing is copied into
    Python. CSV files (small by convention) are parsed once into DuckDB,
    every cell as text, so a bad cell never stops the loader: the view turns
    it into NULL and `runtime.contract.check_data` reports it with file, row
    and column. Run `check_data` before trusting the views.
  - Nothing is dropped silently: CSV lines that cannot be parsed are kept in
    `DataSet.load_diagnostics`, which `check_data` reports first.
  - A source that cannot be opened at all raises `RevplanError` (code RD001).

Diagnostic codes are documented in `runtime/contract.py`.

>>> from runtime.sample_data import generate_sample_company
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> _ = generate_sample_company(folder, reps=20, deals=100)
>>> with open_data(folder) as data:
...     data.connection.sql("SELECT typeof(amount) FROM deals LIMIT 1").fetchall()
[('DECIMAL(18,2)',)]
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import duckdb
import pyarrow as pa

from dsl.diagnostics import DataLocation, Diagnostic, RevplanError, Severity
from dsl.schema import SCHEMA, Entity, Field, FieldType, Schema
from runtime.csv_shape import DELIMITER_NAMES, CsvShape, header_below, line_of, odd_line, read_shape, row_of_reject

SQL_TYPES: dict[FieldType, str] = {
    FieldType.STRING: "VARCHAR",
    FieldType.MONEY: "DECIMAL(18,2)",
    # 10 places: an fx rate into USD of a currency such as IDR (0.0000614) has 3 significant digits at 6
    FieldType.NUMBER: "DECIMAL(28,10)",
    FieldType.PERCENT: "DECIMAL(9,6)",
    FieldType.INTEGER: "BIGINT",
    FieldType.DATE: "DATE",
    FieldType.BOOL: "BOOLEAN",
}

# Decimal places each exact type keeps; a value with more would be rounded.
SCALES: dict[FieldType, int] = {FieldType.MONEY: 2, FieldType.NUMBER: 10, FieldType.PERCENT: 6}

ROW = "_rp_row"  # 1-based data row in the source file (CSV: line = row + 1)
FILE = "_rp_file"  # the file a row came from (a folder of Parquet parts has several)

# Files this big are fingerprinted by size and modification time, not content.
_HASH_CONTENT_LIMIT = 64 * 1024 * 1024

_CSV_MAX_REJECTS = 1000  # rejected CSV lines kept per table (the rest are counted)
_SNIFFED_BYTES = 1 << 25  # more than DuckDB's CSV sniffer samples (20,480 rows) at any plausible row length
_BLANKS = "' ' || chr(9) || chr(10) || chr(13)"  # SQL: what a blank cell may hold (TRIM alone strips spaces only)


class Conversion(enum.Enum):
    """How a source column becomes its schema type in the view."""

    SAME = "same"  # already the schema type: used as is
    CAST = "cast"  # an exact type that converts (integer -> decimal, ...)
    PARSE = "parse"  # text parsed per cell (CSV); bad cells become NULL
    WRONG_TYPE = "wrong_type"  # a type that cannot hold the value exactly: NULL
    MISSING = "missing"  # no such column in the source: NULL


@dataclass(frozen=True)
class ColumnSource:
    """One schema column of one table, and how the source provides it."""

    field: Field
    source_type: str | None  # DuckDB type in the source; None when missing
    conversion: Conversion
    blanks: bool = False  # optional text with blank cells (' ', '' in Parquet), which read as empty

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.field.type]

    def raw(self, alias: str = "t") -> str:
        """The source cell, as stored (text for CSV)."""
        return f"{alias}.{quote(self.name)}"

    def typed(self, alias: str = "t") -> str:
        """SQL for the cell in its schema type; NULL where it does not convert."""
        raw = self.raw(alias)
        if self.source_type is not None and self.source_type.startswith("ENUM("):  # text to every engine
            raw = f"CAST({raw} AS VARCHAR)"
        if self.conversion in (Conversion.MISSING, Conversion.WRONG_TYPE):
            return f"CAST(NULL AS {self.sql_type})"
        if self.blanks:
            # A blank cell (' ' in CSV, '' in Parquet) is empty, as for a required column (`is_blank`): read as a
            # value, segment ' ' took a rep out of a plan for `rep.segment is null` (audit). A required one is RD008.
            return f"CASE WHEN {self.is_blank(alias)} THEN NULL ELSE {raw} END"
        if self.conversion is Conversion.SAME:
            return raw
        if self.conversion is Conversion.PARSE:
            if self.field.type is FieldType.STRING:
                return f"NULLIF({raw}, '')"
            if self.field.type is FieldType.INTEGER:  # DuckDB would round '12.5' to 13
                return (f"CASE WHEN regexp_full_match(TRIM({raw}), '[-+]?[0-9]+')"
                        f" THEN TRY_CAST(TRIM({raw}) AS {self.sql_type}) END")
            if self.field.type is FieldType.DATE:
                # A date, at most with a midnight no time zone moves: DuckDB also reads '27-01-30' as the year 27,
                # '2027-03-31T23:30:00-08:00' as the 31st whatever the zone, 'infinity' as after every other date.
                year = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"  # from 1: year 0 is 1 BC
                day = year + r"[-/][0-9]{1,2}[-/][0-9]{1,2}([T ]00:00(:00(\.0+)?)?)?"
                return (f"CASE WHEN regexp_full_match(TRIM({raw}), '{day}')"
                        f" THEN TRY_CAST(TRIM({raw}) AS DATE) END")
            if self.field.type in (FieldType.MONEY, FieldType.NUMBER, FieldType.PERCENT):
                # DuckDB also reads '1_000.00' as 1000 (a typo that pays ten times over); an exponent is RD006's.
                number = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"
                return (f"CASE WHEN regexp_full_match(TRIM({raw}), '{number}')"
                        f" THEN TRY_CAST(TRIM({raw}) AS {self.sql_type}) END")
            return f"TRY_CAST(NULLIF(TRIM({raw}), '') AS {self.sql_type})"
        return f"TRY_CAST({raw} AS {self.sql_type})"

    def is_blank(self, alias: str = "t") -> str:
        """SQL: the source cell is empty (NULL, or only spaces in text)."""
        raw = self.raw(alias)
        if self.source_type == "VARCHAR":
            # Only text below '!' can be blank (spaces, tabs); the cheap comparison
            # spares TRIM on almost every row (CASE evaluates TRIM only where needed).
            return f"({raw} IS NULL OR CASE WHEN {raw} < '!' THEN TRIM({raw}, {_BLANKS}) = '' ELSE false END)"
        return f"{raw} IS NULL"


@dataclass(frozen=True)
class TableSource:
    """Where one table's rows come from, for views and error messages."""

    entity: Entity
    kind: str  # "csv" | "parquet" | "duckdb" | "postgres" | "arrow" | "missing"
    location: str  # how messages name it: "data/deals.csv", "shop.duckdb:deals"
    paths: tuple[Path, ...]  # files read (empty for a missing table or a database)
    columns: dict[str, ColumnSource]  # schema columns, by name
    extra_columns: tuple[str, ...]  # source columns the schema does not declare
    broken: bool = False  # unreadable: rows are placeholders, checks skip it
    rejected: int = 0  # CSV lines that could not be parsed and are not in the view
    line_offsets: tuple[tuple[int, int], ...] = ()  # CSV: where rows stop being on line row + 1 (csv_shape)

    @property
    def table(self) -> str:
        return self.entity.table

    @property
    def present(self) -> bool:
        return self.kind != "missing"

    @property
    def raw_view(self) -> str:
        """Internal view: source cells as stored, plus `_rp_file` and `_rp_row`."""
        return quote(f"_raw_{self.table}")

    @property
    def shows_lines(self) -> bool:
        """CSV files: messages give the line too (row + 1, after the header, unless blank lines intervene)."""
        return self.kind == "csv"

    def line(self, row: int) -> int:
        """The CSV file line data row `row` starts on."""
        return line_of(row, self.line_offsets)


@dataclass
class DataSet:
    """Input data opened in DuckDB: one typed view per schema table."""

    source: str  # as the user named it (a URL without its password)
    connection: duckdb.DuckDBPyConnection
    schema: Schema
    tables: dict[str, TableSource]  # by table name: "deals"
    fingerprint: str  # sha256 hex of what was read; for run manifests
    load_diagnostics: tuple[Diagnostic, ...] = ()  # unreadable lines and files
    _temp_dirs: list[Path] = field(default_factory=list, repr=False)

    def files(self) -> dict[str, tuple[Path, ...]]:
        """The files each table was read from (empty for databases and missing tables)."""
        return {name: source.paths for name, source in self.tables.items()}

    def close(self) -> None:
        self.connection.close()
        for folder in self._temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._temp_dirs.clear()

    def __enter__(self) -> DataSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier (names come from our schema or a file header)."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal; only for file paths in view definitions, which take no parameters."""
    return "'" + value.replace("'", "''") + "'"


def open_data(source: str | Path, schema: Schema = SCHEMA) -> DataSet:
    """Open a folder of CSV/Parquet files, a DuckDB file or a PostgreSQL URL.

    Raises `RevplanError` (RD001) only when the source itself cannot be used;
    problems inside the data are for `runtime.contract.check_data`.
    """
    text = str(source)
    if re.match(r"^postgres(ql)?://", text):
        return _open_postgres(text, schema)
    if "://" in text:
        raise _source_error(shown_source(text), f"unsupported data source URL {shown_source(text)!r}",
                            "use a folder of CSV or Parquet files, a .duckdb file or a postgresql:// URL")
    path = Path(source)
    if not path.exists() and re.search(r"\b(host|dbname|user|password)=", text):  # libpq's key=value form
        shown = re.sub(r"password=\S*", "password=***", text)
        raise _source_error(shown, f"data source {shown!r} does not exist",
                            "give a PostgreSQL database as a URL: postgresql://user:password@host:port/db")
    if not path.exists():
        raise _source_error(text, f"data source {text!r} does not exist",
                            "give a folder of CSV or Parquet files, a .duckdb file or a postgresql:// URL")
    try:
        if path.is_dir():
            return _open_folder(path, schema)
        if path.suffix.lower() in (".duckdb", ".ddb", ".db"):
            return _open_duckdb_file(path, schema)
    except OSError as error:  # a folder or file we may not read
        raise _source_error(text, f"cannot read {error.filename or text}: {error.strerror or error}") from None
    raise _source_error(text, f"cannot read {text!r} as a data source",
                        "give a folder of CSV or Parquet files (reps.csv, deals.csv, ...), "
                        "a .duckdb file or a postgresql:// URL")


# --- folders of CSV and Parquet files ---------------------------------------------


def _open_folder(folder: Path, schema: Schema) -> DataSet:
    connection = _connect()
    tables: dict[str, TableSource] = {}
    diagnostics: list[Diagnostic] = []
    try:
        entries = sorted(folder.iterdir())
        for entity in schema.entities:
            found = _table_files(entries, entity.table)
            if len(found) > 1:
                names = " and ".join(str(p) for p in found)
                raise _source_error(str(folder), f"table {entity.table!r} is given twice: {names}",
                                    "keep one file per table")
            if not found:
                tables[entity.table] = _missing_table(connection, entity, str(folder / f"{entity.table}.csv"))
                continue
            path = found[0]
            if path.suffix.lower() == ".csv":
                table, problems = _load_csv(connection, entity, path, str(path))
            else:
                table, problems = _attach_parquet(connection, entity, path)
            tables[entity.table] = table
            diagnostics.extend(problems)
        _create_typed_views(connection, tables.values())
    except BaseException:
        connection.close()
        raise
    diagnostics = _unread_files(entries, tables) + diagnostics
    files = [p for t in tables.values() for p in t.paths]
    return DataSet(
        source=str(folder),
        connection=connection,
        schema=schema,
        tables=tables,
        fingerprint=_fingerprint_files(files, folder),
        load_diagnostics=tuple(diagnostics),
    )


def _table_files(entries: list[Path], table: str) -> list[Path]:
    """The files of a folder that could hold `table`: csv, parquet or a folder of parts, named in any case
    (Excel on Windows writes `Deals.CSV`)."""
    names = (f"{table}.csv", f"{table}.parquet")
    found = [p for p in entries if p.name.lower() in names and p.is_file()]
    found += [p for p in entries if p.name.lower() == table and p.is_dir() and any(_parquet_below(p))]
    return found


def _parquet_below(folder: Path) -> list[Path]:
    """Parquet files in a folder of parts and below it, named in any case (part-1.PARQUET)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".parquet" and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _unread_files(entries: list[Path], tables: dict[str, TableSource]) -> list[Diagnostic]:
    """RD029 for each file of the folder revplan does not read. Named after a table in another format
    (`quotas.txt`, `deals.xlsx`): an error when the table has no file revplan reads (the data it was meant to
    give would be missing), a warning beside one (a leftover, most often). Any other file: a warning, with
    the table it may have been meant for (`deal_split.csv`), as an optional table's file misnamed is read
    as no table at all."""
    read = {path for table in tables.values() for path in table.paths}
    found = []
    for path in entries:
        if path.is_symlink() and not path.exists():  # a link to nothing would read as no table at all
            found.append(Diagnostic(code="RD029", message=f"{path.name} is a link to a file that does not exist",
                                    data=DataLocation(file=str(path)), hints=("link it to the file, or remove it",)))
            continue
        # Hidden files and Office's lock files (~$deals.xlsx, while Excel has the file open) are no one's data.
        if path in read or path.name.startswith((".", "~$")) or not path.is_file():
            continue
        stem = path.name.lower().split(".")[0]
        table = tables.get(stem)
        if table is not None:
            message = f"{path.name} is not read: revplan reads {stem}.csv or {stem}.parquet" + (
                ", which is here" if table.present else "")
            hint = ("remove it, or move it out of the data folder" if table.present
                    else f"save it as CSV named {stem}.csv (in Excel: Save As, 'CSV UTF-8')")
        else:
            meant = difflib.get_close_matches(stem, list(tables), n=1, cutoff=0.75)
            message = f"{path.name} is not read: no table is named {stem!r}"
            hint = (f"did you mean {meant[0]}.csv? rename it" if meant
                    else f"the tables are {', '.join(tables)}; move other files out of the data folder")
        error = table is not None and not table.present
        found.append(Diagnostic(code="RD029", severity=Severity.ERROR if error else Severity.WARNING,
                                message=message, data=DataLocation(file=str(path)), hints=(hint,)))
    return found


def _quoting(connection: duckdb.DuckDBPyConnection, path: Path, delimiter: str) -> str:
    """read_csv's quote option: DuckDB guesses the quote character, and from a value such as 'legacy it took '
    and read the rows up to the next such value as one cell (audit). A CSV quotes with " or not at all. Where
    DuckDB cannot guess (malformed lines), read_csv reports the lines itself. DuckDB guesses from a sample at the
    file's start: without an apostrophe there, nothing to ask (the sniffer costs a run 10 ms a table)."""
    with open(path, "rb") as handle:
        if b"'" not in handle.read(_SNIFFED_BYTES):
            return ""
    try:
        (sniffed,) = first_row(connection.execute(
            f"SELECT Quote FROM sniff_csv({literal(str(path))}, delim = {literal(delimiter)})"))
    except duckdb.Error:
        return ""
    return "" if sniffed in ('"', "(empty)") else ", quote = '\"'"


def _load_csv(
    connection: duckdb.DuckDBPyConnection, entity: Entity, path: Path, location: str, kind: str = "csv"
) -> tuple[TableSource, list[Diagnostic]]:
    """Parse a CSV file into a DuckDB table, every cell as text.

    Lines DuckDB cannot parse (wrong number of fields, bad UTF-8) are kept
    out of the table and reported, and the row numbers of the lines after
    them stay those of the file. What DuckDB would forgive silently (a
    repeated column name, a row shifted by an unquoted comma) is reported
    from `runtime.csv_shape`, whose delimiter DuckDB is given.
    """
    table = entity.table
    unreadable = _unreadable(path, entity, location)
    if unreadable:
        return _broken_table(connection, entity, kind, location, (path,)), [unreadable]
    below = header_below(path, entity.field_names)
    if below is not None:  # else every row has "more fields than the header", with a hint about quoting commas
        problem = Diagnostic(code="RD005", data=DataLocation(file=location),
                             message=f"the first line of {location} is not its header: line {below} names the columns",
                             hints=(f"remove the line{'s' * (below > 2)} above the column names",))
        return _broken_table(connection, entity, kind, location, (path,)), [problem]
    shape = read_shape(path, entity.field_names)
    loaded = quote(f"_csv_{table}")
    rejects, scans = f"_csv_rejects_{table}", f"_csv_scans_{table}"
    quoting = _quoting(connection, path, shape.delimiter)
    try:
        connection.execute(
            f"CREATE TABLE {loaded} AS SELECT * FROM read_csv({literal(str(path))}, header = true,"
            f" all_varchar = true, delim = {literal(shape.delimiter)}{quoting},"
            f" store_rejects = true, rejects_table = {literal(rejects)},"
            f" rejects_scan = {literal(scans)}, rejects_limit = {_CSV_MAX_REJECTS})"
        )
    except duckdb.Error as error:
        hint = odd_line(path)
        problem = Diagnostic(code="RD005", message=f"cannot read {location}: {first_line(error)}",
                             data=DataLocation(file=location), hints=(hint,) if hint else ())
        return _broken_table(connection, entity, kind, location, (path,)), [problem]
    rejected = [(row_of_reject(line, shape.blank_offsets), error_type, text.lstrip("\r\n")) for line, error_type, text
                in connection.execute(f"SELECT line, min(error_type), min(csv_line) FROM {quote(rejects)}"
                                      f" GROUP BY line ORDER BY line").fetchall()]
    if _header_has_a_spare_delimiter(connection, loaded, shape, rejected):
        name = DELIMITER_NAMES[shape.delimiter]
        problem = Diagnostic(
            code="RD005", data=DataLocation(file=location),
            message=f"the header ends with a {name} its rows do not have: it names {len(shape.header)} columns, "
                    f"the last one empty, and no row has that many fields",
            hints=(f"remove the {name} at the end of the header line",))
        return _broken_table(connection, entity, kind, location, (path,)), [problem]
    row_number, shifted = "t.rowid + 1", ""
    if rejected:
        # DuckDB numbers the table's rows without the rejected lines; put them back.
        # Accepted row k (0-based) comes after the i-th rejected data row r_i
        # exactly when r_i - i <= k; an ASOF join finds the last such i.
        after = {row - i: i for i, (row, _, _) in enumerate(rejected, start=1)}
        values = ", ".join(f"({k}, {i})" for k, i in after.items())
        row_number = "t.rowid + 1 + coalesce(s.before, 0)"
        shifted = f" ASOF LEFT JOIN (VALUES {values}) AS s(k, before) ON t.rowid >= s.k"
    connection.execute(
        f"CREATE VIEW {quote('_raw_' + table)} AS SELECT {literal(location)} AS {FILE},"
        f" {row_number} AS {ROW}, t.* FROM {loaded} AS t{shifted}"
    )
    source = _table_source(connection, entity, kind, location, (path,), rejected=len(rejected),
                           line_offsets=shape.line_offsets)
    problems = [_rejected_line(source, row, error_type, text) for row, error_type, text in rejected]
    return source, _shape_problems(source, shape) + problems


def _header_has_a_spare_delimiter(connection: duckdb.DuckDBPyConnection, loaded: str, shape: CsvShape,
                                  rejected: list) -> bool:
    """`id,name,` over rows `R1,Ada`: every row one field short of a header whose last name is empty. One
    message for the header, rather than one per row."""
    return (len(shape.header) > 1 and not shape.header[-1].strip() and bool(rejected)
            and all(error_type == "MISSING COLUMNS" for _, error_type, _ in rejected)
            and first_row(connection.execute(f"SELECT count(*) FROM {loaded}"))[0] == 0)


def _unreadable(path: Path, entity: Entity, location: str) -> Diagnostic | None:
    """RD005 for a file no CSV reader should try: empty, or UTF-16 (Excel's "Unicode Text")."""
    with open(path, "rb") as handle:
        start = handle.read(2)
    if not start:
        return Diagnostic(code="RD005", message=f"{location} is empty", data=DataLocation(file=location),
                          hints=("the first line must name the columns: " + ",".join(entity.field_names),))
    if start in (b"\xff\xfe", b"\xfe\xff"):
        return Diagnostic(code="RD005", message=f"{location} is UTF-16 text, not UTF-8",
                          data=DataLocation(file=location),
                          hints=("save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8 (Comma delimited)')",))
    return None


def _shape_problems(source: TableSource, shape: CsvShape) -> list[Diagnostic]:
    """RD005 for what DuckDB's reader forgives: a repeated column name, rows shifted by an unquoted delimiter."""
    location = source.location
    problems = [
        Diagnostic(code="RD005", message=f"the header names column {name!r} {len(places)} times "
                                         f"({_spelled(shape.header, places)})",
                   data=DataLocation(file=location, column=name),
                   hints=("keep one column of each name: which of them is meant cannot be guessed",))
        for name, places in shape.duplicate_columns
    ]
    for row in shape.shifted_rows:
        problems.append(Diagnostic(
            code="RD005",
            message=f"line {source.line(row.row)} has {row.fields} fields, the header {len(shape.header)}: "
                    f"{row.text[:80]!r}",
            data=DataLocation(file=location, row=row.row),
            hints=(f"a value with an unquoted {DELIMITER_NAMES[shape.delimiter]} moves the values after it into "
                   "the next columns: quote such values" + (' ("Acme, Inc.")' if shape.delimiter == "," else ""),),
        ))
    if shape.shifted_total > len(shape.shifted_rows):
        problems.append(Diagnostic(
            code="RD005", message=f"{shape.shifted_total - len(shape.shifted_rows):,} more rows with more fields "
                                  f"than the header (the first {len(shape.shifted_rows)} are listed)",
            data=DataLocation(file=location)))
    return problems


def _spelled(header: tuple[str, ...], places: tuple[int, ...]) -> str:
    """Where a repeated column name is, and how each is spelt when they differ (names match in any case).

    >>> _spelled(("id", "amount", "Amount"), (2, 3)), _spelled(("a", "a"), (1, 2))
    ("column 2 'amount', column 3 'Amount'", 'columns 1, 2')
    """
    spellings = [header[place - 1].strip() for place in places]
    if len(set(spellings)) == 1:
        return f"columns {', '.join(map(str, places))}"
    return ", ".join(f"column {place} {spelling!r}" for place, spelling in zip(places, spellings, strict=True))


_CSV_ERRORS = {  # DuckDB's reject error type -> (what is wrong, how to fix it)
    "TOO MANY COLUMNS": ("has more fields than the header", 'quote values that contain commas: "Acme, Inc."'),
    "MISSING COLUMNS": ("has fewer fields than the header", "give every column a value, even an empty one"),
    "INVALID ENCODING": ("is not valid UTF-8", "save the file as UTF-8"),
    "UNQUOTED VALUE": ("has a stray quote", 'put quotes around the whole value and double inner quotes: "a ""b"""'),
}


def _rejected_line(source: TableSource, row: int, error_type: str, text: str) -> Diagnostic:
    reason, hint = _CSV_ERRORS.get(error_type, (f"cannot be read ({error_type.lower()})", "check the line"))
    where = f"line {source.line(row)}" if source.shows_lines else f"row {row}"
    return Diagnostic(code="RD005", message=f"{where} {reason}: {text[:80]!r}",
                      data=DataLocation(file=source.location, row=row), hints=(hint,))


def _repeated_column(connection: duckdb.DuckDBPyConnection, file_list: str, entity: Entity) -> Diagnostic | None:
    """RD005: a Parquet file with two columns of one name, in any case (`amount`, `Amount`). DuckDB would read the
    first and rename the second; a CSV header like it is refused the same way (csv_shape)."""
    repeated = first_row(connection.execute(
        "SELECT file_name, lower(name) FROM parquet_schema(" + file_list + ") WHERE list_contains(?, lower(name))"
        " GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 1",
        [[f.lower() for f in entity.field_names]],
    ))
    if repeated is None:
        return None
    part, column = repeated
    return Diagnostic(code="RD005", message=f"{part} has two columns named {column!r} (in any case)",
                      data=DataLocation(file=part, column=column),
                      hints=("keep one of them: revplan cannot tell which holds the values",))


def _part_without_a_column(connection: duckdb.DuckDBPyConnection, file_list: str, entity: Entity
                           ) -> Diagnostic | None:
    """RD041: a part without a column of the table that other parts have. Read together, its rows would have
    the column empty (an older export without cancel_date: its cancellations never clawed back, audit)."""
    fields = [f.lower() for f in entity.field_names]
    gap = first_row(connection.execute(
        "WITH c AS (SELECT DISTINCT file_name, lower(name) AS name FROM parquet_schema(" + file_list + ")"
        " WHERE list_contains(?, lower(name))),"
        " f AS (SELECT DISTINCT file_name FROM parquet_schema(" + file_list + "))"
        " SELECT f.file_name, n.name, min(c.file_name) FILTER (WHERE c.name = n.name) AS other"
        " FROM f CROSS JOIN (SELECT DISTINCT name FROM c) AS n"
        " LEFT JOIN c AS own ON own.file_name = f.file_name AND own.name = n.name"
        " JOIN c ON c.name = n.name WHERE own.name IS NULL GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1",
        [fields],
    ))
    if gap is None:
        return None
    part, column, other = gap
    return Diagnostic(code="RD041", message=f"{part} has no column {column!r}, which {other} has",
                      data=DataLocation(file=part, column=column),
                      hints=("write every part of a table with the same columns: read together, this part's rows "
                             f"would have {column} empty",))


def _attach_parquet(
    connection: duckdb.DuckDBPyConnection, entity: Entity, path: Path
) -> tuple[TableSource, list[Diagnostic]]:
    """A view over Parquet file(s), read in place: a file, or the parts directly in a folder. Parts in its
    subfolders (a partitioned table, deals/region=NA/...) are not read, and are an error: they would be
    missing rows."""
    below = _parquet_below(path) if path.is_dir() else [path]
    files = [p for p in below if p.parent == path] if path.is_dir() else below
    location = str(path) + ("/" if path.is_dir() else "")
    nested = [p for p in below if p not in files]
    if nested:
        more = f", nor {len(nested) - 1:,} more Parquet files in subfolders of {location}" if len(nested) > 1 else ""
        problem = Diagnostic(
            code="RD029", message=f"{nested[0]} is not read{more}",
            data=DataLocation(file=str(nested[0])),
            hints=(f"revplan reads the Parquet parts directly in {location}: move them there (a partitioned "
                   "table's partition values are not read)",))
        return _broken_table(connection, entity, "parquet", location, tuple(below)), [problem]
    file_list = "[" + ", ".join(literal(str(f)) for f in files) + "]"
    try:
        problem = _repeated_column(connection, file_list, entity) or (
            _part_without_a_column(connection, file_list, entity) if len(files) > 1 else None)
        if problem is not None:
            return _broken_table(connection, entity, "parquet", location, tuple(files)), [problem]
        connection.execute(
            f"CREATE VIEW {quote('_raw_' + entity.table)} AS SELECT filename AS {FILE},"
            f" file_row_number + 1 AS {ROW}, * EXCLUDE (filename, file_row_number)"
            f" FROM read_parquet({file_list}, filename = true, file_row_number = true, union_by_name = true)"
        )
        return _table_source(connection, entity, "parquet", location, tuple(files)), []
    except duckdb.Error as error:
        problem = Diagnostic(code="RD005", message=f"cannot read {location}: {first_line(error)}",
                             data=DataLocation(file=location))
        return _broken_table(connection, entity, "parquet", location, tuple(files)), [problem]


# --- databases --------------------------------------------------------------------


def _open_duckdb_file(path: Path, schema: Schema) -> DataSet:
    connection = _connect()
    try:
        connection.execute(f"ATTACH {literal(str(path))} AS src (READ_ONLY)")
    except duckdb.Error as error:
        connection.close()
        raise _source_error(str(path), f"cannot open {path} as a DuckDB database: {first_line(error)}") from None
    try:
        # Names in any case (`Deals`): DuckDB's identifiers match so.
        objects = {name.lower(): kind for name, kind in connection.execute(
            "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = 'src' AND schema_name = 'main'"
            " UNION ALL SELECT view_name, 'view' FROM duckdb_views()"
            " WHERE database_name = 'src' AND schema_name = 'main' AND NOT internal"
        ).fetchall()}
        tables: dict[str, TableSource] = {}
        for entity in schema.entities:
            location = f"{path}:{entity.table}"
            kind = objects.get(entity.table)
            if kind is None:
                tables[entity.table] = _missing_table(connection, entity, location)
                continue
            # Views have no rowid; their rows are numbered in the order they come.
            row_number = "rowid + 1" if kind == "table" else "row_number() OVER ()"
            try:
                connection.execute(
                    f"CREATE VIEW {quote('_raw_' + entity.table)} AS SELECT {literal(location)} AS {FILE},"
                    f" {row_number} AS {ROW}, * FROM src.main.{quote(entity.table)}"
                )
            except duckdb.Error as error:  # a view over a table dropped since, say
                raise _source_error(str(path), f"cannot read {location}: {first_line(error)}",
                                    f"fix or drop the {kind} {entity.table} in {path}") from None
            tables[entity.table] = _table_source(connection, entity, "duckdb", location, ())
        _create_typed_views(connection, tables.values())
    except BaseException:
        connection.close()
        raise
    return DataSet(source=str(path), connection=connection, schema=schema, tables=tables,
                   fingerprint=_fingerprint_files([path, *path.parent.glob(path.name + ".wal")], path.parent))


def open_tables(tables: Mapping[str, pa.Table], source: str, location: Callable[[Entity], str],
                schema: Schema = SCHEMA) -> DataSet:
    """Arrow tables already in their schema types (a plan test's given rows) as a DataSet, so `check_data`
    checks them as it checks files: data row n of a table is its n-th row, and a table not in `tables` is
    missing, as a file left out of a folder is. `location(entity)` is how messages name a table."""
    connection = _connect()
    try:
        for name, table in tables.items():  # every table registered before any is described (a query left open)
            numbered = table.append_column(ROW, pa.array(range(1, table.num_rows + 1), pa.int64()))
            connection.register(f"_rp_arrow_{name}", numbered)
            connection.execute(
                f"CREATE VIEW {quote('_raw_' + name)} AS SELECT {literal(location(schema.entity(name)))} AS {FILE},"
                f" * FROM {quote('_rp_arrow_' + name)}"
            )
        sources = {
            e.table: _table_source(connection, e, "arrow", location(e), ()) if e.table in tables
            else _missing_table(connection, e, location(e))
            for e in schema.entities
        }
        _create_typed_views(connection, sources.values())
    except BaseException:
        connection.close()
        raise
    return DataSet(source=source, connection=connection, schema=schema, tables=sources, fingerprint="")


def _open_postgres(url: str, schema: Schema) -> DataSet:
    """Copy each table out of PostgreSQL as CSV (COPY ... TO STDOUT), then load it like a CSV file.

    DuckDB's postgres extension would read in place, but it is not available
    offline; COPY streams at server speed and keeps bad cells as text, so
    the contract check reports them like a CSV file's. The text loses the
    column types, so they are checked from the catalog first: a REAL amount
    or a TIMESTAMPTZ date is refused (RD004) as in a DuckDB file. Rows are
    numbered in key order.
    """
    shown = shown_source(url)
    try:
        import psycopg  # noqa: F401  (here: a clear message when it is missing)
    except ImportError:
        raise _source_error(shown, "reading PostgreSQL needs psycopg",
                            "pip install 'psycopg[binary]' (or: pip install 'revplan[postgres]')") from None
    folder = Path(tempfile.mkdtemp(prefix="revplan-pg-"))
    connection = _connect()
    digest = hashlib.sha256(shown.encode())
    try:
        pg = connect_postgres(url, lambda message: _source_error(shown, message))
        with pg:
            # Dates as 2027-03-01 whatever the server's DateStyle; the text is what DuckDB parses.
            pg.execute("SET DateStyle TO ISO, YMD")
            pg.execute("SET TimeZone TO 'UTC'")
            # A row-level security policy would hide rows, silently: off, a query it would filter is an error.
            pg.execute("SET row_security TO off")
            relations = _pg_relations(pg, shown, [e.table for e in schema.entities])
            tables: dict[str, TableSource] = {}
            diagnostics: list[Diagnostic] = []
            for entity in schema.entities:
                relation = relations.get(entity.table)
                if relation is None:
                    tables[entity.table] = _missing_table(connection, entity, f"{shown} table {entity.table}")
                    continue
                tables[entity.table], problems = _read_pg_table(
                    pg, connection, entity, relation, shown, folder / f"{entity.table}.csv", digest)
                diagnostics += problems
        _create_typed_views(connection, tables.values())
    except BaseException:
        connection.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return DataSet(source=shown, connection=connection, schema=schema, tables=tables,
                   fingerprint=digest.hexdigest(), load_diagnostics=tuple(diagnostics), _temp_dirs=[folder])


def _read_pg_table(pg, connection: duckdb.DuckDBPyConnection, entity: Entity, relation: _PgRelation, shown: str,
                   path: Path, digest) -> tuple[TableSource, list[Diagnostic]]:
    """One table: its readable columns copied out to `path`, loaded as CSV, its types checked."""
    import psycopg

    location = f"{shown} table {relation.shown_name}"
    columns, problems = _pg_columns(pg, relation, entity, location)
    try:
        _copy_out(pg, relation, entity, [c for c in columns if c.readable], path, digest)
    except psycopg.Error as error:
        policy = "row-level security" in str(error)
        hints = ("revplan reads all of a table's rows or none: exempt the user from the policy "
                 "(ALTER ROLE ... BYPASSRLS) or read a table without one",) if policy else ()
        raise _source_error(shown, f"cannot read {location}: {first_line(error)}", *hints) from None
    table, loaded = _load_csv(connection, entity, path, location, kind="postgres")
    return _with_pg_types(_without_paths(table), columns), problems + loaded


@dataclass(frozen=True)
class _PgRelation:
    oid: int
    schema: str
    name: str  # as the catalog spells it (`Deal_Splits`)
    shown_name: str  # schema-qualified when outside the first schema of search_path


@dataclass(frozen=True)
class _PgColumn:
    name: str
    type_name: str  # as PostgreSQL names it: `real`, `numeric(18,2)`, `timestamp with time zone`
    duckdb_type: str  # what the same column would be in DuckDB, for `conversion`
    readable: bool


def _pg_relations(pg, shown: str, tables: list[str]) -> dict[str, _PgRelation]:
    """The relation each table is read from: any table, view, materialized view, partitioned or foreign
    table the search path finds, named in any case. A table the user may not read is an error: read as
    missing, the run would pay without it."""
    current = pg.execute("SELECT current_schema()").fetchone()[0]
    rows = pg.execute(
        "SELECT c.oid, n.nspname, c.relname, has_any_column_privilege(c.oid, 'SELECT')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND pg_table_is_visible(c.oid)"
        " AND lower(c.relname) = ANY(%s) ORDER BY c.relname",
        (tables,),
    ).fetchall()
    found: dict[str, _PgRelation] = {}
    for table in tables:
        exact = [row for row in rows if row[2] == table]
        matches = exact or [row for row in rows if row[2].lower() == table]
        if not matches:
            continue
        if len(matches) > 1:
            names = " and ".join(f"{row[1]}.{row[2]}" for row in matches)
            raise _source_error(shown, f"table {table!r} is in {shown} twice, in different cases: {names}",
                                "rename or drop one of them, or take one's schema off the search path")
        oid, namespace, name, readable = matches[0]
        shown_name = name if namespace == current else f"{namespace}.{name}"
        if not readable:
            raise _source_error(shown, f"the user of {shown} may not read table {shown_name}",
                                f"GRANT SELECT ON {shown_name} TO the user revplan connects as")
        found[table] = _PgRelation(oid, namespace, name, shown_name)
    _refuse_schemas_out_of_reach(pg, shown, [t for t in tables if t not in found], nothing_found=not found)
    return found


def _refuse_schemas_out_of_reach(pg, shown: str, missing: list[str], nothing_found: bool) -> None:
    """RD001 when a table revplan did not find is in a schema of the search path the user may not use:
    PostgreSQL skips such a schema, and the table would be read as missing. Also when no table is found at
    all and the search path names a schema the database does not have (a misspelt `search_path`)."""
    setting, user = pg.execute("SELECT current_setting('search_path'), current_user").fetchone()
    schemas = [name.strip().strip('"').replace("$user", user) for name in setting.split(",")]
    hidden = pg.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE lower(c.relname) = ANY(%s) AND n.nspname = ANY(%s) AND NOT has_schema_privilege(n.oid, 'USAGE')"
        " ORDER BY n.nspname, c.relname",
        (missing, schemas),
    ).fetchall()
    if hidden:
        namespace, name = hidden[0]
        raise _source_error(shown, f"the user of {shown} may not use schema {namespace}, on its search path, "
                                   f"which holds table {name}", f"GRANT USAGE ON SCHEMA {namespace} TO the user")
    existing = {name for (name,) in pg.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (schemas,))}
    absent = [name for name in schemas if name not in existing and name != user]  # "$user" rarely exists
    if absent and nothing_found:
        raise _source_error(shown, f"the search path of {shown} names schema {absent[0]}, which is not in the "
                                   "database, and no table revplan reads is found",
                            "check the schema in the URL (?options=-csearch_path%3Dcrm)")


def _pg_columns(pg, relation: _PgRelation, entity: Entity, location: str
                ) -> tuple[list[_PgColumn], list[Diagnostic]]:
    """The relation's columns with their types (a domain as its base type) and whether the user may read
    them. A schema column the user may not read is an error; any other such column is left out with an
    RD034 warning (a CRM grants only some columns, keeping personal data back)."""
    rows = pg.execute(
        "SELECT a.attname, format_type(b.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),"
        " b.typcategory, has_column_privilege(a.attrelid, a.attnum, 'SELECT')"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (relation.oid,),
    ).fetchall()
    columns = [_PgColumn(name, type_name, _duckdb_type(type_name, category), readable)
               for name, type_name, category, readable in rows]
    fields = {name.lower() for name in entity.field_names}
    hidden = [c.name for c in columns if not c.readable and c.name.lower() in fields]
    if hidden:
        raise _source_error(location, f"the user may not read column(s) {', '.join(hidden)} of {location}",
                            f"GRANT SELECT ({', '.join(hidden)}) ON {relation.shown_name} TO the user")
    problems = [
        Diagnostic(code="RD034", severity=Severity.WARNING, data=DataLocation(file=location, column=c.name),
                   message=f"column {c.name!r} of {location} is not read: the user may not read it",
                   hints=("a plan cannot use it; GRANT SELECT on it if one should",))
        for c in columns if not c.readable
    ]
    return columns, problems


_PG_TYPES = {  # PostgreSQL types whose DuckDB name differs, for `conversion`
    "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "real": "FLOAT",
    "double precision": "DOUBLE", "date": "DATE", "boolean": "BOOLEAN", "uuid": "VARCHAR",
    "timestamp without time zone": "TIMESTAMP", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
}


def _duckdb_type(type_name: str, category: str) -> str:
    """The DuckDB type of a PostgreSQL column (its `format_type`, its `typcategory`).

    >>> _duckdb_type("numeric(18,2)", "N"), _duckdb_type("real", "N"), _duckdb_type("money", "N")
    ('DECIMAL(18,2)', 'FLOAT', 'MONEY')
    >>> _duckdb_type("character varying(20)", "S"), _duckdb_type("deal_stage", "E")
    ('VARCHAR', 'VARCHAR')
    """
    if category in ("S", "E"):  # text of any kind, and enums: their text is their value
        return "VARCHAR"
    numeric = re.fullmatch(r"numeric(?:\((\d+),(\d+)\))?", type_name)
    if numeric:
        return f"DECIMAL({numeric.group(1)},{numeric.group(2)})" if numeric.group(1) else "DECIMAL"
    return _PG_TYPES.get(re.sub(r"\(\d+\)", "", type_name), type_name.upper())


def _with_pg_types(table: TableSource, columns: list[_PgColumn]) -> TableSource:
    """Refuse (RD004) the schema columns whose PostgreSQL type cannot hold their values exactly; the
    others are parsed from COPY's text like a CSV file's."""
    types = {c.name.lower(): c for c in columns}
    refused = {}
    for name, column in table.columns.items():
        pg_column = types.get(name.lower())
        if pg_column and conversion(column.field.type, pg_column.duckdb_type) is Conversion.WRONG_TYPE:
            refused[name] = ColumnSource(column.field, pg_column.type_name.upper(), Conversion.WRONG_TYPE)
    return dataclasses.replace(table, columns={**table.columns, **refused})


def _copy_out(pg, relation: _PgRelation, entity: Entity, columns: list[_PgColumn], path: Path, digest) -> None:
    """Stream one table's readable columns to a CSV file; key order makes row numbers repeatable. A char(n)
    value loses the blanks that pad it, as PostgreSQL compares it (`'closed_won    '` is `closed_won`)."""
    from psycopg import sql

    def cell(column: _PgColumn):
        name = sql.Identifier(column.name)
        padded = column.type_name.startswith("character(")
        return sql.SQL("rtrim({}) AS {}").format(name, name) if padded else name

    named = {c.name.lower(): c.name for c in columns}
    order = [sql.Identifier(named[k]) for k in entity.key if k in named]
    query = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(cell(c) for c in columns),
        sql.Identifier(relation.schema, relation.name),
        sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order) if order else sql.SQL(""),
    )
    digest.update(entity.table.encode())
    with pg.cursor() as cursor, open(path, "wb") as out:
        with cursor.copy(query) as copy:
            for chunk in copy:
                out.write(chunk)
                digest.update(chunk)


def _without_paths(table: TableSource) -> TableSource:
    """A database table has no file the user could open: the temporary CSV is ours."""
    return dataclasses.replace(table, paths=())


# --- views --------------------------------------------------------------------------


def _table_source(
    connection: duckdb.DuckDBPyConnection, entity: Entity, kind: str, location: str, paths: tuple[Path, ...],
    rejected: int = 0, line_offsets: tuple[tuple[int, int], ...] = (),
) -> TableSource:
    """Describe the raw view and decide how each schema column converts."""
    described = connection.execute(f"DESCRIBE SELECT * FROM {quote('_raw_' + entity.table)}").fetchall()
    source_types = {name: type_ for name, type_, *_ in described if name not in (ROW, FILE)}
    # Column names match in any case (`ID`, `Amount` from a CRM export), as DuckDB's identifiers do.
    named = {name.lower(): name for name in source_types}
    found = {f.name: named.get(f.name.lower()) for f in entity.fields}
    columns = {
        f.name: ColumnSource(f, source_types.get(found[f.name]), conversion(f.type, source_types.get(found[f.name])))
        for f in entity.fields
    }
    extra = tuple(name for name in source_types if name not in found.values())
    columns = _with_blanks(connection, entity, columns)
    return TableSource(entity=entity, kind=kind, location=location, paths=paths, columns=columns,
                       extra_columns=extra, rejected=rejected, line_offsets=line_offsets)


def _with_blanks(connection: duckdb.DuckDBPyConnection, entity: Entity, columns: dict[str, ColumnSource]
                 ) -> dict[str, ColumnSource]:
    """Mark the optional text columns that hold blank cells. Only those read through a test for blanks: on
    a clean column it would cost a 10M-deal run seconds (a column read through an expression is read whole)."""
    texts = [c for c in columns.values()
             if c.field.type is FieldType.STRING and c.source_type == "VARCHAR" and not c.field.required]
    if not texts:
        return columns
    blank = [f"bool_or({c.is_blank()} AND {c.raw()} IS NOT NULL)" for c in texts]
    found = first_row(connection.execute(f"SELECT {', '.join(blank)} FROM {quote('_raw_' + entity.table)} AS t"))
    marked = {c.name: dataclasses.replace(c, blanks=True) for c, has in zip(texts, found, strict=True) if has}
    return {**columns, **marked}


def _missing_table(connection: duckdb.DuckDBPyConnection, entity: Entity, location: str) -> TableSource:
    _create_placeholder(connection, entity)
    columns = {f.name: ColumnSource(f, None, Conversion.MISSING) for f in entity.fields}
    return TableSource(entity=entity, kind="missing", location=location, paths=(), columns=columns, extra_columns=())


def _broken_table(
    connection: duckdb.DuckDBPyConnection, entity: Entity, kind: str, location: str, paths: tuple[Path, ...]
) -> TableSource:
    _create_placeholder(connection, entity)
    columns = {f.name: ColumnSource(f, None, Conversion.MISSING) for f in entity.fields}
    return TableSource(entity=entity, kind=kind, location=location, paths=paths, columns=columns,
                       extra_columns=(), broken=True)


def _create_placeholder(connection: duckdb.DuckDBPyConnection, entity: Entity) -> None:
    """An empty raw view, so every table can be queried the same way."""
    cells = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote(f.name)}" for f in entity.fields)
    connection.execute(
        f"CREATE VIEW {quote('_raw_' + entity.table)} AS SELECT CAST(NULL AS VARCHAR) AS {FILE},"
        f" CAST(NULL AS BIGINT) AS {ROW}, {cells} WHERE false"
    )


def _create_typed_views(connection: duckdb.DuckDBPyConnection, tables) -> None:
    """The public views: schema columns in their exact types, then custom columns as they are."""
    for table in tables:
        cells = [f"{c.typed('t')} AS {quote(name)}" for name, c in table.columns.items()]
        cells += [f"t.{quote(name)}" for name in table.extra_columns]
        connection.execute(
            f"CREATE VIEW {quote(table.table)} AS SELECT {', '.join(cells)} FROM {table.raw_view} AS t"
        )


def conversion(field_type: FieldType, source_type: str | None) -> Conversion:
    """How a source column of `source_type` (a DuckDB type name) becomes `field_type`.

    Binary floating point (FLOAT, DOUBLE) never holds money exactly, so it
    is a wrong type for every exact decimal; timestamps are not dates (the
    time zone decides the day).

    >>> conversion(FieldType.MONEY, "DOUBLE")
    <Conversion.WRONG_TYPE: 'wrong_type'>
    >>> conversion(FieldType.MONEY, "DECIMAL(18,2)")
    <Conversion.SAME: 'same'>
    """
    if source_type is None:
        return Conversion.MISSING
    target = SQL_TYPES[field_type]
    if source_type == target:
        return Conversion.SAME
    if source_type == "VARCHAR" or source_type.startswith("ENUM("):
        return Conversion.PARSE
    if source_type == '"NULL"':  # a column with no value at all: pandas and pyarrow write it with no type
        return Conversion.CAST
    family = _type_family(source_type)
    accepted = {
        FieldType.STRING: {"integer"},
        FieldType.MONEY: {"integer", "decimal"},
        FieldType.NUMBER: {"integer", "decimal"},
        FieldType.PERCENT: {"integer", "decimal"},
        FieldType.INTEGER: {"integer"},
        FieldType.DATE: set(),
        FieldType.BOOL: {"integer"},
    }[field_type]
    if family in accepted or (field_type is FieldType.INTEGER and re.fullmatch(r"DECIMAL\(\d+,0\)", source_type)):
        return Conversion.CAST
    return Conversion.WRONG_TYPE


def _type_family(source_type: str) -> str:
    if source_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
                       "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "integer"
    if source_type.startswith("DECIMAL"):
        return "decimal"
    return source_type.lower()


def decimal_scale(source_type: str | None) -> int | None:
    """The scale of a DECIMAL(p,s) type name, else None."""
    match = re.fullmatch(r"DECIMAL\(\d+,(\d+)\)", source_type or "")
    return int(match.group(1)) if match else None


# --- fingerprint and helpers ---------------------------------------------------------


def _fingerprint_files(files: list[Path], root: Path) -> str:
    """sha256 over each file's name and content (big files: size and mtime).

    Names are relative to the source, so the same data in another checkout
    has the same fingerprint.
    """
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        try:
            name = str(path.relative_to(root))
        except ValueError:
            name = path.name
        digest.update(f"{name}\0{stat.st_size}\0".encode())
        if stat.st_size <= _HASH_CONTENT_LIMIT:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()


def _connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB; no progress bar (it would draw on the user's terminal)."""
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    return connection


def shown_source(source: str) -> str:
    """How messages, manifests and progress lines name a data source: a URL as scheme, host and database
    only, never its user, password or query (`?password=` is legal there), whatever characters a
    password holds; a service name (pg_service.conf), which says which database, stays.

    >>> shown_source("postgresql://me:p@ss:w/rd#1@db:5432/crm?password=x"), shown_source("data/")
    ('postgresql://db:5432/crm', 'data/')
    >>> shown_source("postgresql:///?service=crm&password=x")
    'postgresql:///?service=crm'
    """
    if "://" not in source:
        return source
    scheme, rest = source.split("://", 1)
    where, _, query = rest.rsplit("@", 1)[-1].split("#", 1)[0].partition("?")
    service = [value for name, value in parse_qsl(query) if name == "service"]
    return f"{scheme}://{where}" + (f"?service={service[0]}" if service else "")


def connect_postgres(url: str, failure: Callable[[str], Exception], **options):
    """psycopg.connect; a failure is `failure(message)`, a message that never quotes the URL's password
    (libpq's parse errors quote the URL, or the piece of a password it could not read)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    shown = shown_source(url)
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        raise failure(f"cannot read {shown} as a PostgreSQL URL: write postgresql://user:password@host:port/db, "
                      "with any @ : / # ? % in the password percent-encoded (%40 for @)") from None
    try:
        return psycopg.connect(url, connect_timeout=10, **options)
    except psycopg.Error as error:
        message = first_line(error).replace(password, "***") if password else first_line(error)
        raise failure(f"cannot connect to {shown}: {message}") from None


def first_row(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a DuckDB query just executed, or None, read to the end: a result read with fetchone()
    stays open, and the connection's next `sql()` or `table()` raises ResourceInUseException (audit: RD026's
    check made every run that warned of it exit with a traceback). For queries of one row, or LIMIT 1."""
    rows = result.fetchall()
    return rows[0] if rows else None


def first_line(error: BaseException) -> str:
    """An engine's error message without its details and advice."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _source_error(source: str, message: str, *hints: str) -> RevplanError:
    return RevplanError([Diagnostic(code="RD001", message=message, file=source, hints=tuple(hints))])

