"""Write a run's results: payout lines, the deals behind them, per-rep statements, manifest (and quotas,
territories, territory report).

Files are written completely into a hidden staging folder inside the output
folder, then renamed into place, `manifest.json` last; a failure on the way
puts the previous run's files back, so a crash never leaves half-written or
mixed outputs: when `manifest.json` is there, the files it lists beside it
are whole and from its run. Only a run's own files are ever replaced or
removed: other files and folders beside them (`out/demo/`) are left alone.
The manifest records what is needed to reproduce a payout: plan files
(hashes, git commit), data fingerprint, revplan version and engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from compiler.sql import LINE_TYPES
from dsl.diagnostics import Diagnostic, RevplanError

MONEY_COLUMNS = ("base", "uncapped", "amount", "quota", "target_incentive")
WRITER_MEMORY = "512MB"  # DuckDB's, to write a big table: the 20M-row trace of 10M deals took 9 s at 256MB, 6 s here


def statements(payout_lines: pd.DataFrame) -> pd.DataFrame:
    """Per rep and period: payout by line type, and the total. Every line type has its column, 0.00 where a
    rep has none, whatever the run holds: a payroll import maps columns once.

    >>> lines = pd.DataFrame({"rep_id": ["A", "A"], "period": ["2027-Q1"] * 2, "currency": ["USD"] * 2,
    ...     "line_type": ["commission", "bonus"], "amount": [Decimal("10.00"), Decimal("5.00")]})
    >>> statements(lines)[["rep_id", "commission", "bonus", "clawback", "total"]].to_dict("records")
    [{'rep_id': 'A', 'commission': Decimal('10.00'), 'bonus': Decimal('5.00'), 'clawback': Decimal('0.00'), \
'total': Decimal('15.00')}]
    """
    keys = ["rep_id", "period", "currency"]
    if payout_lines.empty:
        return pd.DataFrame(columns=[*keys, *LINE_TYPES, "total"])
    # Whole cents as Python integers (object, not int64, which wraps past 2**63): exact sums, back to Decimal cents.
    cents = payout_lines["amount"].map(_whole_cents).astype(object)
    by_type = cents.groupby([payout_lines[k] for k in [*keys, "line_type"]], sort=True).sum().unstack("line_type")
    by_type = by_type.reindex(columns=list(LINE_TYPES)).fillna(0)
    by_type["total"] = by_type.sum(axis=1)
    by_type = by_type.apply(lambda column: column.map(lambda c: Decimal(int(c)).scaleb(-2)))
    by_type.columns.name = None
    return by_type.reset_index()


def _whole_cents(amount: Decimal) -> int:
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():  # payout lines are rounded to cents; anything else is a bug
        raise ValueError(f"payout amount {amount} is not in whole cents")
    return int(cents)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(folder: Path, paths: Sequence[Path] = ()) -> dict[str, object] | None:
    """The commit the plan files come from, whether they differ from it, and each file's path in the
    repository (`git show COMMIT:PATH` gives the file back, whatever folder the run was started from).

    `paths` are the plan files (all of them, wherever they sit below
    `folder`); without them, everything below `folder` counts.
    """
    targets = [str(Path(p).resolve()) for p in paths] or ["."]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head, root = git("rev-parse", "HEAD"), Path(git("rev-parse", "--show-toplevel")).resolve()
        dirty = git("status", "--porcelain", "--", *targets)
        committed = set(git("ls-files", "--full-name", "--", *targets).splitlines()) if paths else set()
    except (OSError, subprocess.CalledProcessError):
        return None
    files = [Path(p).resolve() for p in paths]
    in_repository = [f.relative_to(root).as_posix() if f.is_relative_to(root) else None for f in files]
    # A git-ignored plan file is not in `git status` at all, yet the run used it (audit).
    outside = any(path not in committed for path in in_repository)
    return {"commit": head, "uncommitted_changes": bool(dirty) or outside, "paths": in_repository}


def build_manifest(
    *,
    plan_paths: Sequence[Path],
    data_fingerprint: str,
    engine: str,
    revplan_version: str,
    periods: Sequence[str],
    payout_lines: pd.DataFrame,
    data_source: str | None = None,
    period_filter: str | None = None,
) -> dict[str, object]:
    """What a run needs to be reproduced: plan files and commit, data, version, engine; and its totals."""
    plan_paths = [Path(p) for p in plan_paths]
    folders = [str(p.resolve().parent) for p in plan_paths]
    return {
        "revplan_version": revplan_version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "engine": engine,
        "period_filter": period_filter,
        "periods": list(periods),
        "plans": [{"path": str(p), "sha256": file_sha256(p)} for p in plan_paths],
        "git": git_commit(Path(os.path.commonpath(folders)), plan_paths) if folders else None,
        "data_source": data_source,
        "data_fingerprint": data_fingerprint,
        "payout_lines": int(len(payout_lines)),
        "total_payout": _total(payout_lines),
    }


def _total(payout_lines: pd.DataFrame) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for currency, amount in zip(payout_lines.get("currency", []), payout_lines.get("amount", []), strict=False):
        totals[currency] = totals.get(currency, Decimal("0.00")) + amount
    return {currency: str(total) for currency, total in sorted(totals.items())}


MANIFEST = "manifest.json"
# What a run writes; a manifest lists its own files, this is for older ones.
KNOWN_OUTPUTS = ("payout_lines.csv", "statements.csv", "territories.csv", "quotas.csv", "territory_report.csv",
                 "payout_deals.csv")


def write_run(out_dir: Path, tables: Mapping[str, pd.DataFrame | ParquetRows], manifest: Mapping[str, object],
              progress: Callable[[str], None] = lambda _: None) -> Path:
    """Write each table as `<name>.csv` (exact decimal text) plus manifest.json into `out_dir`, atomically;
    `progress` hears each file's name before it is written.

    `ParquetRows` (the big tables) are copied by DuckDB's CSV writer, in the same
    format as the DataFrames: plain decimals with their scale, empty for missing.

    A previous run's files in `out_dir` (those its manifest lists) are
    replaced as a whole: after a failure they are all still there, unchanged,
    and no temporary file is left. Raises `RevplanError` RP403 for an
    `out_dir` that is a file or holds output-named files no run wrote, RP408
    when the files cannot be written (disk full, no permission).
    """
    out_dir = Path(out_dir).resolve()
    previous = previous_outputs(out_dir)
    names = [f"{name}.csv" for name in tables] + [MANIFEST]
    manifest = {**manifest, "files": names}
    created = not out_dir.exists()
    staging = out_dir / f".revplan-new-{os.getpid()}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name, frame in tables.items():
            progress(f"{name}.csv")
            write_csv(frame, staging / f"{name}.csv")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _swap_in(staging, out_dir, names, previous)
    except OSError as error:  # disk full, no permission: the user's to fix, not a crash
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        unchanged = "the previous outputs there are unchanged" if previous else "nothing was written"
        raise RevplanError([Diagnostic(code="RP408", message=f"cannot write the outputs to {out_dir}: {error}",
                                       file=str(out_dir), hints=(unchanged,))]) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def previous_outputs(out_dir: Path) -> list[str]:
    """The files of the run `out_dir` holds (manifest.json first); [] for a new or unrelated folder.

    Refuses (RP403) a path that is a file, and output-named files without a
    manifest: they were not written by a run, and writing would replace them.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return []
    if not out_dir.is_dir():
        raise _output_error(out_dir, f"{out_dir} exists and is not a folder")
    if not (out_dir / MANIFEST).is_file():
        foreign = [name for name in KNOWN_OUTPUTS if (out_dir / name).exists()]
        if foreign:
            raise _output_error(out_dir, f"{out_dir} holds {', '.join(foreign)} but no {MANIFEST}: "
                                         "not a revplan run's outputs, and writing would replace them")
        return []
    try:
        listed = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        listed = KNOWN_OUTPUTS
    own = [n for n in listed if isinstance(n, str) and n == Path(n).name and n != MANIFEST and not n.startswith(".")]
    return [MANIFEST, *(n for n in own if (out_dir / n).is_file())]


def check_output_folder(out_dir: Path, data: str | None = None) -> None:
    """Fail early (RP403) if `write_run` would refuse `out_dir`, or if it is the data folder `data`: the outputs
    would be the next run's inputs (the quota plans' `quotas.csv` read as the quotas table: audit)."""
    out_dir = Path(out_dir).resolve()
    if data is not None and Path(data).is_dir() and Path(data).resolve() == out_dir:
        raise _output_error(out_dir, f"--out {out_dir} is the data folder: the next run would read the outputs "
                                     "as data (quotas.csv as the quotas table)")
    previous_outputs(out_dir)


def _output_error(out_dir: Path, message: str) -> RevplanError:
    return RevplanError([Diagnostic(code="RP403", message=message, file=str(out_dir),
                                    hints=("give --out a new folder, or one a previous run wrote",))])


def _swap_in(staging: Path, out_dir: Path, names: Sequence[str], previous: Sequence[str]) -> None:
    """Move the previous run's files aside (manifest first), the new ones in (manifest last); undo on failure."""
    backup = out_dir / f".revplan-old-{os.getpid()}"
    shutil.rmtree(backup, ignore_errors=True)
    backup.mkdir()
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in previous:
            os.replace(out_dir / name, backup / name)
            moved_out.append(name)
        for name in sorted(names, key=lambda n: n == MANIFEST):
            os.replace(staging / name, out_dir / name)
            moved_in.append(name)
    except BaseException:
        for name in reversed(moved_in):
            os.replace(out_dir / name, staging / name)
        for name in reversed(moved_out):  # the manifest goes back last
            os.replace(backup / name, out_dir / name)
        with contextlib.suppress(OSError):  # empty again; had restoring failed, the old files would stay here
            backup.rmdir()
        raise
    shutil.rmtree(backup, ignore_errors=True)


def write_csv(table: pd.DataFrame | ParquetRows, path: Path) -> None:
    """DuckDB's CSV writer for every table: DataFrames as text columns (`text_table`), the big
    tables streamed from their Parquet files, decimals cast to text first (its writer drops the 0
    of 0.5), in the files' order. Its own small memory: copying rows needs little."""
    config = {"memory_limit": WRITER_MEMORY, "temp_directory": str(path.parent / ".spill")}
    with duckdb.connect(config=config) as connection:
        if isinstance(table, pd.DataFrame):
            relation = connection.from_arrow(text_table(table))
        elif not table.files:  # no plan traced deals: the header alone
            relation = connection.from_arrow(table.schema.empty_table())
        else:
            relation = connection.read_parquet([str(f) for f in table.files])
        columns = [
            duckdb.ColumnExpression(name).cast(duckdb.sqltypes.VARCHAR).alias(name)
            if str(kind).startswith("DECIMAL")
            else duckdb.ColumnExpression(name)
            for name, kind in zip(relation.columns, relation.types, strict=True)
        ]
        relation.select(*columns).write_csv(str(path), header=True)


@dataclasses.dataclass(frozen=True)
class ParquetRows:
    """Rows in Parquet files (in order): written without loading them."""

    files: tuple[Path, ...]
    schema: pa.Schema


def text_table(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame as the columns DuckDB's CSV writer should print: strings, whole numbers, dates and
    booleans as they are (`true`/`false`), Decimals as text in plain notation with their own scale
    (`0.0000000000`, never `0E-10`), anything else as text; missing values null (empty in the file).

    >>> text_table(pd.DataFrame({"a": [Decimal("0E-10"), None], "b": [True, False], "c": ["R1", None]})).to_pydict()
    {'a': ['0.0000000000', None], 'b': [True, False], 'c': ['R1', None]}
    """
    return pa.table({name: _column(frame[name]) for name in frame.columns})


NATIVE = {str: pa.string(), int: pa.int64(), bool: pa.bool_(), dt.date: pa.date32()}  # printed as they are


def _column(series: pd.Series) -> pa.Array:
    if isinstance(series.dtype, pd.StringDtype):  # pandas' text: Arrow already (a Python list of it took 0.6 s a run)
        return pa.array(series).cast(pa.string())
    values = series.tolist()
    kinds = set(map(type, values)) - {type(None)}
    if len(kinds) == 1 and next(iter(kinds)) in NATIVE:
        return pa.array(values, NATIVE[next(iter(kinds))])
    if kinds == {float} and all(v != v or v.is_integer() for v in values if v is not None):
        # whole numbers pandas made floats for a missing value (a gap's priority): 4, not 4.0
        return pa.array([None if v is None or v != v else int(v) for v in values], pa.int64())
    if not kinds:
        return pa.array(values, pa.string())
    return pa.array([_cell(v) for v in values], pa.string())


def _cell(value: object) -> str | None:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)
