"""The `revplan` command line: the only place that knows every package.

Each subcommand is a small function `cmd_<name>(args) -> exit code`.
Exit codes: 0 success, 1 the plans or data have errors (or a check failed),
2 the command line itself was wrong, 3 a bug in revplan (a traceback; run
with REVPLAN_DEBUG=1), 130 Ctrl-C, 143 SIGTERM. User mistakes are printed as
diagnostics.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from dsl.diagnostics import (
    Diagnostic,
    RevplanError,
    Severity,
    did_you_mean,
    has_errors,
    render_github,
    render_human,
    render_json,
    too_deeply_nested,
)

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as shells report them


# ---------------------------------------------------------------- output helpers


def print_diagnostics(diagnostics: Sequence[Diagnostic], sources: dict[str, str], fmt: str = "human") -> None:
    if fmt == "json":
        print(render_json(diagnostics))
        return
    for diagnostic in diagnostics:
        if fmt == "github":
            print(render_github(diagnostic))
        else:
            source = sources.get(diagnostic.span.file) if diagnostic.span else None
            print(render_human(diagnostic, source), file=sys.stderr)
            print(file=sys.stderr)


def summary_line(diagnostics: Sequence[Diagnostic], what: str) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{what}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


# ---------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    import gc

    from dsl.project import load_paths

    # Checking builds many long-lived trees and IR nodes; the default threshold (700)
    # rescans them constantly (about 20 % of a 1,000-plan check).
    gc.set_threshold(50_000)
    project = load_paths(args.paths)
    diagnostics = strict_errors(project.diagnostics) if args.strict else project.diagnostics
    print_diagnostics(diagnostics, project.sources, args.format)
    if args.format == "human":
        checked = f"checked {len(project.files)} file{'s' * (len(project.files) != 1)}, {len(project.plans)} plans"
        print(summary_line(diagnostics, checked), file=sys.stderr)
    return EXIT_ERRORS if has_errors(diagnostics) else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from dsl.format import format_text
    from dsl.project import find_plan_files, read_source

    paths, diagnostics = find_plan_files(args.paths)
    sources: dict[str, str] = {}
    unformatted: list[Path] = []
    for path in paths:
        text, problem = read_source(path)
        if problem is not None:
            diagnostics.append(problem)
            continue
        sources[str(path)] = text
        result = format_text(text, str(path))
        if result.diagnostics:
            diagnostics.extend(result.diagnostics)
            continue
        if result.text == text:
            continue
        unformatted.append(path)
        if not args.check:
            write_atomically(path, result.text)
    print_diagnostics(diagnostics, sources)
    for path in unformatted:
        print(f"{'would reformat' if args.check else 'reformatted'} {path}", file=sys.stderr)
    if any(d.is_error for d in diagnostics):
        return EXIT_ERRORS
    if args.check and unformatted:
        print(f"{len(unformatted)} file(s) need `revplan fmt`", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside the target, then rename over it: a linked plan where it lives (the link
    stays a link), with the file's own permissions (audit: a 0640 plan became 0644, a link a copy)."""
    target = path.resolve()
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    shutil.copymode(target, temporary)
    os.replace(temporary, target)


# ---------------------------------------------------------------- loading plans


def load_project(paths: Sequence[str | Path], print_warnings: bool = True):
    """Load and check plan files; a project with errors stops the command with its diagnostics."""
    from dsl.project import load_paths

    project = load_paths(paths)
    if not project.ok:
        raise _with_sources(RevplanError(project.diagnostics), project.sources)
    if print_warnings:
        print_diagnostics(project.diagnostics, project.sources)
    return project


def strict_errors(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """--strict: every warning is an error (payroll CI stops on a value that only differs in case)."""
    return [d.model_copy(update={"severity": Severity.ERROR}) for d in diagnostics]


def stop_if_strict(strict: bool, warnings: Sequence[Diagnostic], sources: dict[str, str]) -> None:
    """With --strict, warnings so far stop the command before it writes anything."""
    if strict and warnings:
        errors = strict_errors(warnings)
        error = _with_sources(RevplanError(errors), sources)
        error.summary = (summary_line(errors, "--strict: warnings are errors")
                         + "; nothing was written: fix them, or run without --strict")
        raise error


def _with_sources(error: RevplanError, sources: dict[str, str]) -> RevplanError:
    error.sources = sources  # main() renders carets from them
    return error


def usage_error(code: str, message: str, *hints: str) -> RevplanError:
    """A mistake on the command line or in its arguments: one line and a hint, exit 1."""
    return RevplanError([Diagnostic(code=code, message=message, hints=hints)])


def default_plans_folder(given: str | None, fallback_to_repo: bool = False) -> str:
    """`plans/` in the current folder (or the repository's, for the demo); a clear error if neither is there."""
    if given is not None:
        return given
    if Path("plans").is_dir():
        return "plans"
    repo_plans = Path(__file__).resolve().parents[1] / "plans"
    if fallback_to_repo and repo_plans.is_dir():
        return str(repo_plans)
    raise usage_error("RP006", f"no plans/ folder in {Path.cwd()}",
                      "run from the repository root, or pass --plans DIR")


# ---------------------------------------------------------------- sample-data


def cmd_sample_data(args: argparse.Namespace) -> int:
    written = generate_sample(Path(args.out), args.reps, args.deals, args.seed, args.format)
    print(f"wrote the sample company ({args.reps:,} reps, {args.deals:,} deals, seed {args.seed}) to {args.out}:")
    print_files(written)
    print(f"next: revplan run --data {args.out}")
    return EXIT_OK


def generate_sample(out: Path, reps: int, deals: int, seed: int, fmt: str = "auto") -> dict[str, Path]:
    from revplan.progress import Steps
    from runtime.sample_data import generate_sample_company

    with Steps(stopped=lambda: bool(_stopped_by)) as steps:
        steps.start(f"generating the sample company in {out}")

        def on_table(table: str) -> None:
            if not steps.quiet:  # a live line per table on a terminal; one line in logs
                steps.start(f"writing {table}")

        return generate_sample_company(out, reps=reps, deals=deals, seed=seed, fmt=fmt, progress=on_table)


def print_files(written: dict[str, Path]) -> None:
    """One line per table: name, file (in full, to copy), rows, size."""
    rows = [(name, str(path), f"{_row_count(path):,}", _size(path.stat().st_size)) for name, path in written.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for name, path, count, size in rows:
        print(f"  {name:<{widths[0]}}  {path:<{widths[1]}}  {count:>{widths[2]}} rows  {size:>{widths[3]}}")


def _row_count(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:  # our CSV files hold no line breaks inside values
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# ---------------------------------------------------------------- compile


DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "spark", "databricks", "trino")


def cmd_compile(args: argparse.Namespace) -> int:
    from compiler.exact import for_dialect
    from compiler.sql import CompileError, compile_plan
    from runtime.run import comp_plans, quota_plans, territory_plans

    project = load_project(args.paths)
    plans = comp_plans(project.files)
    if args.plan is not None:
        chosen = [p for p in plans if args.plan in (p.name, p.key)]
        if not chosen:
            names = sorted({p.name for p in plans})
            raise usage_error("RP405", f"no comp plan named {args.plan!r} in {', '.join(args.paths)}",
                              *did_you_mean(args.plan, names), f"comp plans: {', '.join(names) or 'none'}")
        plans = chosen
    if not plans:
        raise usage_error("RP406", f"no comp plans in {', '.join(args.paths)}",
                          "compile turns comp plans into SQL; quota and territory plans feed them")
    measures, territories = project.shared_measures, territory_plans(project.files)
    problems = []
    for plan in plans:
        try:
            with _sqlglot_warnings() as notes:
                query = compile_plan(plan, measures, args.dialect, territories, quota_plans=quota_plans(project.files),
                                     converted=project.schema.converted_fields())
                sql = for_dialect(query, args.dialect).sql(dialect=args.dialect, pretty=True)
        except CompileError as error:
            hint = error.hint or f"this construct cannot be compiled to {args.dialect} yet"
            problems.append(Diagnostic(code="RP401", message=f"{plan.key}: {error}", span=plan.span, hints=(hint,)))
            continue
        problems += [Diagnostic(code="RP407", severity=Severity.WARNING, span=plan.span,
                                message=f"{plan.key}: {args.dialect}: {note}",
                                hints=("the SQL was written without it; check the results on this engine",))
                     for note in dict.fromkeys(notes)]
        where = plan.span.file if plan.span else ""
        print(f"-- {plan.key} ({where}), dialect {args.dialect}\n{sql};\n")
    print_diagnostics(problems, project.sources)
    return EXIT_ERRORS if has_errors(problems) else EXIT_OK


@contextlib.contextmanager
def _sqlglot_warnings():
    """Collect what sqlglot logs while generating SQL (a construct a dialect lacks) instead of printing it."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(" ".join(record.getMessage().split()))

    logger, handler = logging.getLogger("sqlglot"), Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield notes
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# ---------------------------------------------------------------- run


ENGINES = ("duckdb", "postgres", "python", "spark")


def cmd_run(args: argparse.Namespace) -> int:
    check_engine(args.engine, args.url)
    if args.period is not None:
        period_range(args.period)  # a malformed label fails before any work
    plans = default_plans_folder(args.plans)
    summary = run_and_write(plans, args.data, Path(args.out), args.engine, args.url, args.period,
                            memory_limit=args.memory_limit, strict=args.strict)
    print_summary(summary)
    return EXIT_OK


def check_engine(engine: str, url: str | None) -> None:
    """--engine postgres needs a reachable --url; --url means nothing to DuckDB."""
    if engine == "postgres" and not url:
        raise usage_error("RP402", "--engine postgres needs --url",
                          "e.g. --url postgresql://user@localhost:5432/db")
    if engine != "postgres" and url:
        raise usage_error("RP402", f"--url is for --engine postgres; the {engine} engine is embedded",
                          "add --engine postgres, or drop --url")
    if engine == "postgres":
        _check_postgres(url)
    if engine == "spark":
        from runtime.spark import INSTALL_HINT, available

        if not available():
            raise usage_error("RP402", "--engine spark needs pyspark", INSTALL_HINT)


def _check_postgres(url: str) -> None:
    from runtime.data import connect_postgres

    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise usage_error("RP402", "--engine postgres needs psycopg",
                          "pip install 'psycopg[binary]' (or: pip install 'revplan[postgres]')") from None
    connect_postgres(url, lambda message: usage_error("RP402", message,
                                                      "check the URL, and that the server is running")).close()


@dataclasses.dataclass(frozen=True)
class RunSummary:
    payout_lines: object  # pandas DataFrame
    plans: tuple[tuple[str, int], ...]  # (name, version) of every comp plan that ran, lines or not
    out_dir: Path
    files: tuple[Path, ...]
    engine: str
    notes: tuple[str, ...] = ()  # one line each: quotas, territories


# DuckDB's memory when --memory-limit is not given: 400MB, or 40 bytes per deal for more than 10M deals,
# at most DuckDB's own default (80% of RAM). Past it DuckDB spills to the run's scratch folder. At 10M
# deals a whole run then stays under 1 GiB and takes about as long as without a limit; what cannot spill
# grows with the deals (a 1M-deal run needs 100-200MB, 10M 200-400MB), hence the per-deal part.
MEMORY_FLOOR_MB = 400
MEMORY_PER_DEAL = 40  # bytes


def default_memory_limit(connection) -> str:
    import duckdb

    try:
        deals = connection.execute('SELECT count(*) FROM "deals"').fetchall()[0][0]
    except duckdb.Error:  # no deals table: the contract check says so
        deals = 0
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"{min(max(MEMORY_FLOOR_MB, MEMORY_PER_DEAL * deals // 2**20), ram_mb * 8 // 10)}MB"


def run_and_write(plans: str, data: str, out_dir: Path, engine: str, url: str | None,
                  period: str | None = None, memory_limit: str | None = None, strict: bool = False) -> RunSummary:
    """Load plans, open and check data, run, filter to a period, write outputs; stop with diagnostics."""
    import tempfile

    # Scratch space: the deal trace on its way to the CSV, and what DuckDB spills past --memory-limit.
    with tempfile.TemporaryDirectory(prefix="revplan-run-") as scratch:
        return _run_and_write(plans, data, out_dir, engine, url, period, Path(scratch), memory_limit, strict)


def out_of_memory(limit: str, error: Exception) -> RevplanError:
    """RP414: a need the memory limit cannot hold (most steps spill past it), not a bug."""
    detail = str(error).splitlines()[0].removeprefix("Out of Memory Error: ")
    return usage_error("RP414", f"DuckDB ran out of memory at --memory-limit {limit}: {detail}",
                       "raise it, e.g. --memory-limit 4GB (most steps spill to disk past the limit; "
                       "this one needed the memory itself)")


def limit_memory(connection, limit: str, spill: Path) -> None:
    import duckdb

    try:
        connection.execute("SET temp_directory = ?", [str(spill)])  # first: a small limit spills at once
        connection.execute("SET memory_limit = ?", [limit])
    except duckdb.Error as error:
        # DuckDB's first line says what is wrong ("Failed to change memory limit to 1000: could not free up
        # enough memory ..."); the last is a link.
        raise usage_error("RP413", f"--memory-limit {limit}: {str(error).splitlines()[0]}",
                          "a size such as 500MB or 2GB") from None


def _run_and_write(plans: str, data: str, out_dir: Path, engine: str, url: str | None, period: str | None,
                   scratch: Path, memory_limit: str | None, strict: bool) -> RunSummary:
    import duckdb

    from revplan.progress import Steps
    from runtime.contract import (
        check_data,
        check_mbo_coverage,
        check_near_miss_values,
        check_plan_inputs,
        check_plan_rates,
        check_plan_references,
        check_plans_reach_reps,
        check_quota_bases,
        check_quota_coverage,
        check_quota_plan_reps,
        check_run_off,
        check_split_periods,
        part_periods,
        quota_labels,
    )
    from runtime.data import open_data, shown_source
    from runtime.outputs import ParquetRows, build_manifest, check_output_folder, statements, write_run
    from runtime.run import comp_plans, deal_schema, run_plans

    check_output_folder(out_dir, data)  # before the work, not after it
    warnings: list[Diagnostic] = []  # printed once the progress lines are done
    with Steps(stopped=lambda: bool(_stopped_by)) as steps:
        steps.start(f"loading plans from {plans}")
        project = load_project([plans], print_warnings=False)
        warnings.extend(project.diagnostics)
        comp = comp_plans(project.files)
        if not comp:
            raise usage_error("RP406", f"no comp plans in {plans}", "run computes payouts of comp plans")
        if period is not None:
            check_period_in_plans(comp, period)  # before minutes of work at 10M deals
        steps.start(f"opening data in {shown_source(data)}")  # a URL's password never reaches a CI log
        dataset = open_data(data, project.schema)
        limit = memory_limit or default_memory_limit(dataset.connection)
        try:
            limit_memory(dataset.connection, limit, scratch / "spill")
            steps.start("checking the data contract")
            company = _company_currency(comp)
            diagnostics = [*check_data(dataset, base_currency=company),
                           *check_plan_rates([*comp, *_quota_plans(project.files)], dataset, company)]
            if has_errors(diagnostics):
                error = RevplanError(diagnostics)
                error.summary = (summary_line(diagnostics, f"{dataset.source} breaks the data contract")
                                 + "; fix the rows above (README.md: 'Data contract')")
                raise error
            warnings.extend(diagnostics)
            warnings.extend(check_plan_references(project.files, dataset))
            warnings.extend(check_near_miss_values(project.files, dataset))
            warnings.extend(check_run_off(comp, dataset))
            warnings.extend(check_plan_inputs(project.files, dataset))
            stop_if_strict(strict, warnings, project.sources)  # before minutes of work at 10M deals
            steps.start(f"running {len(comp)} comp plan{'s' * (len(comp) != 1)} on {engine}")
            # With --period, only the deals behind that period's lines: a quarter's trace, not the year's.
            result = run_plans(project.files, dataset.connection, engine=engine, url=url, schema=project.schema,
                               deals="ids", deals_to=scratch,
                               deals_in=labels_within(period) if period is not None else None,
                               progress=steps.detail)
            warnings.extend(check_plans_reach_reps(comp, result.payout_lines, dataset))
            warnings.extend(check_quota_plan_reps(project.files, result.quotas, dataset))
            warnings.extend(check_quota_bases(project.files, result.quotas))
            warnings.extend(check_mbo_coverage(comp, result.payout_lines, dataset))
            unpaid_reps = reps_in_no_plan(comp, result.payout_lines, dataset.connection)
            parts = part_periods(comp, dataset.connection)
            quota_periods = quota_labels(dataset)
        except duckdb.OutOfMemoryException as error:
            raise out_of_memory(limit, error) from None
        finally:
            dataset.close()
        lines = result.payout_lines
        _check_amounts(lines)
        if period is not None:
            steps.start(f"selecting period {period}")
            lines = filter_period(lines, period)
            parts = parts[parts["period"].isin(labels_within(period))]
        warnings.extend(check_quota_coverage(comp, lines, quota_periods))
        warnings.extend(check_split_periods(comp, parts))
        stop_if_strict(strict, warnings, project.sources)
        # The deals behind each commission line (of the kept periods): Parquet files the engine wrote,
        # copied into the CSV without loading them (16M rows at 10M deals).
        deals = ParquetRows(result.payout_deal_files, deal_schema(shares=False))
        steps.start(f"writing outputs to {out_dir}")
        periods = sorted(set(lines["period"]), key=_period_order)
        manifest = build_manifest(
            plan_paths=[Path(p) for p in project.sources], data_fingerprint=dataset.fingerprint, engine=engine,
            revplan_version=_version(), periods=periods, payout_lines=lines, data_source=dataset.source,
            period_filter=period,
        )
        tables = {"payout_lines": lines, "statements": statements(lines), "payout_deals": deals}
        territories = getattr(result, "territories", None)
        if territories is not None:
            tables["territories"] = territories
        notes = [note] if period is not None and (note := period_note(result.payout_lines, lines, period)) else []
        quotas = getattr(result, "quotas", None)
        if quotas is not None:
            tables["quotas"] = quotas
            notes.append(quota_note(quotas))
        report = getattr(result, "territory_report", None)
        if report is not None:
            tables["territory_report"] = report.to_frame()
            notes.append(report.summary())
        if unpaid_reps:
            notes.append(unpaid_reps)
        write_run(out_dir, tables, manifest, progress=steps.detail)
    print_diagnostics(warnings, project.sources)
    files = tuple(out_dir / f"{name}.csv" for name in tables) + (out_dir / "manifest.json",)
    ran = tuple(sorted({(plan.name, plan.version) for plan in comp}))
    return RunSummary(lines, ran, out_dir, files, engine, tuple(notes))


def quota_note(quotas) -> str:
    """`quotas: FY27 AE Quotas v1 94 reps, 79,200,000 (to allocate 79,200,000); ...`: one line for the summary."""
    parts = []
    for (plan, version), rows in quotas.groupby(["plan", "version"], sort=True):
        annual = rows[rows["period_kind"] == "year"]
        if annual.empty:  # a yearly plan: its one period is the year
            annual = rows
        total = sum(annual["amount"], Decimal("0.00"))
        target = annual["to_allocate"].iloc[0] if len(annual) else None
        parts.append(f"{plan} v{version} {rows['rep_id'].nunique():,} reps, annual total {total:,.2f}"
                     + (f" (to allocate {target:,.2f})" if target is not None else ""))
    return "quotas: " + ("; ".join(parts) if parts else "no quota plan")


def reps_in_no_plan(plans, lines, connection) -> str | None:
    """`reps in no comp plan: 12 of 205 ...`: the reps employed while the plans are in force whom no plan
    pays (a rep in a plan has a line in each of its periods), by role; None when there are none. A role no
    `applies to` names (a new CRM title) pays its reps nothing, and payroll must see that."""
    first, last = min(p.effective_from for p in plans), max(p.effective_to for p in plans)
    employed = connection.execute(
        'SELECT id, role FROM "reps" WHERE hire_date <= ? AND (termination_date IS NULL OR termination_date >= ?)',
        [last, first],
    ).fetchall()
    paid = set(lines["rep_id"])
    roles = Counter(role for rep, role in employed if rep not in paid)
    if not roles:
        return None
    by_role = ", ".join(f"{role} {count:,}" for role, count in sorted(roles.items(), key=lambda item: str(item[0])))
    return (f"reps in no comp plan: {sum(roles.values()):,} of {len(employed):,} employed from {first} to {last} "
            f"(by role: {by_role})")


def _company_currency(plans) -> str:
    """The currency most comp plans pay in: the one every other currency needs fx rates to."""
    counts = Counter(plan.currency for plan in plans)
    return counts.most_common(1)[0][0] if counts else "USD"


def _check_amounts(lines) -> None:
    """A payout line without an amount is a calculator bug: stop before writing wrong files."""
    missing = lines[lines["amount"].isna()]
    if missing.empty:
        return
    row = missing.iloc[0]
    raise RevplanError([Diagnostic(
        code="RP409",
        message=f"{len(missing)} payout line(s) have no amount, first: plan {row['plan']!r}, component "
                f"{row['component']!r}, rep {row['rep_id']!r}, period {row['period']!r}",
        hints=("this is a bug in revplan's calculator, not in your data; please report it",))])


PERIOD_FORMS = "periods look like 2027, 2027-H1, 2027-Q1 or 2027-01"


def period_range(label: str) -> tuple[dt.date, dt.date]:
    """First and last day of a period label: `2027`, `2027-H1`, `2027-Q1`, `2027-01`.

    >>> period_range("2027-Q2")
    (datetime.date(2027, 4, 1), datetime.date(2027, 6, 30))
    """
    from dsl.check import label_dates

    try:
        return label_dates(label)
    except ValueError:
        raise usage_error("RP404", f"{label!r} is not a period", PERIOD_FORMS) from None


def _length(label: str) -> int:
    start, end = period_range(label)
    return (end - start).days


def _period_order(label: str) -> tuple:
    """Months, then quarters, halves, years; each in date order."""
    start, end = period_range(label)
    return ((end - start).days > 31, (end - start).days > 92, (end - start).days > 184, start)


def labels_within(period: str) -> frozenset[str]:
    """The labels of every period that lies within `period` (`2027-Q1`: 2027-Q1 and 2027-01..03).

    >>> sorted(labels_within("2027-H2"), key=_period_order)[:3], len(labels_within("2027"))
    (['2027-07', '2027-08', '2027-09'], 19)
    """
    start, end = period_range(period)
    labels = []
    for year in range(start.year, end.year + 1):
        labels += [str(year), f"{year}-H1", f"{year}-H2", *(f"{year}-Q{q}" for q in range(1, 5))]
        labels += [f"{year}-{month:02d}" for month in range(1, 13)]
    return frozenset(label for label in labels if holds(period, label))


def holds(outer: str, inner: str) -> bool:
    """Whether period `outer` holds period `inner` (`2027-Q1` holds `2027-03`, and itself).

    >>> holds("2027-Q1", "2027-03"), holds("2027-03", "2027-Q1")
    (True, False)
    """
    (start, end), (first, last) = period_range(outer), period_range(inner)
    return start <= first and last <= end


def filter_period(lines, period: str):
    """The lines of periods that lie within `period` (`2027-Q1` keeps 2027-Q1 and 2027-01..03)."""
    inside = labels_within(period)
    if not inside & set(lines["period"]):
        known = sorted(set(lines["period"]), key=_period_order)
        raise usage_error("RP404", f"no payout period {period!r} in this run", *_periods_holding(period, known),
                          f"periods: {', '.join(known) or 'none (no payout lines)'}")
    return lines[lines["period"].isin(inside)].reset_index(drop=True)


def check_period_in_plans(comp, period: str) -> None:
    """RP404 for a `--period` no comp plan can have a line in: outside every plan's periods and run-off."""
    from compiler.calendar import line_periods

    periods = [p for plan in comp for p in line_periods(plan)]
    start, end = period_range(period)
    first, last = min(p.start for p in periods), max(p.end for p in periods)
    if end < first or start > last:
        raise usage_error("RP404", f"no comp plan has a period in {period!r}",
                          f"the plans' periods run from {first} to {last} (with the run-off of plans paid on "
                          "payment or with a clawback)")


def _periods_holding(period: str, known: list[str]) -> list[str]:
    """A hint naming the known periods that hold `period` (`2027-Q1` for `2027-03`), if any."""
    try:
        holding = [label for label in known if holds(label, period)]
    except RevplanError:  # not a period label at all: the message says so, and lists the known ones
        return []
    holding.sort(key=lambda label: period_range(label)[1] - period_range(label)[0])  # the shortest first
    return [f"{period} is within {', '.join(holding)}: use --period {holding[0]}"] if holding else []


def period_note(all_lines, kept, period: str) -> str | None:
    """The plans `--period` left without lines although they have lines in a longer period holding it, and
    which: a month's run of quarterly plans is empty by design, and the summary must not read as if nobody
    earned anything. (A plan with no line around the period, such as one that ended before it, is not named.)"""
    every = list(zip(all_lines["plan"], all_lines["version"], strict=True))
    unpaid = set(every) - set(zip(kept["plan"], kept["version"], strict=True))
    holding = all_lines[[key in unpaid and holds(label, period)
                         for key, label in zip(every, all_lines["period"], strict=True)]]
    if holding.empty:
        return None
    left_out = sorted(set(zip(holding["plan"], holding["version"], strict=True)))
    plans = ", ".join(f"{plan} v{version}" for plan, version in left_out)
    where = ", ".join(sorted(set(holding["period"]), key=_period_order))
    return f"--period {period} holds no whole period of {plans}, so they have no lines here; their lines are in {where}"


def print_summary(summary: RunSummary, title: str = "payouts") -> None:
    from rich.console import Console
    from rich.table import Table

    lines = summary.payout_lines
    periods = set(lines["period"])
    # By date, whatever the kinds: monthly and quarterly plans' lines run from 2027-Q1 (or 2027-01) to 2028-02.
    first = min(periods, key=lambda label: (period_range(label)[0], -_length(label)), default=None)
    last = max(periods, key=lambda label: (period_range(label)[1], _length(label)), default=None)
    span = "no lines" if first is None else first if first == last else f"{first} to {last}"
    # A plan paid on payment has lines after its year (its run-off): the title says which periods the totals hold.
    table = Table(title=f"{title}, {span}, on {summary.engine}", title_justify="left")
    table.add_column("plan")
    table.add_column("reps", justify="right")
    table.add_column("lines", justify="right")
    table.add_column("total payout", justify="right")
    groups = dict(list(lines.groupby(["plan", "version"], sort=True)))
    for plan, version in sorted(set(summary.plans) | set(groups)):
        group = groups.get((plan, version), lines.iloc[0:0])
        table.add_row(f"{plan} v{version}", f"{group['rep_id'].nunique():,}", f"{len(group):,}", _money(group))
    table.add_section()
    table.add_row("all plans", f"{lines['rep_id'].nunique():,}", f"{len(lines):,}", _money(lines), style="bold")
    console = Console(soft_wrap=True)
    console.print(table)
    for note in summary.notes:
        console.print(note, highlight=False)
    console.print(f"outputs in {summary.out_dir}:")
    for path in summary.files:
        console.print(f"  {path}", highlight=False)


def _money(lines) -> str:
    totals: dict[str, Decimal] = {}
    for currency, amount in zip(lines["currency"], lines["amount"], strict=True):
        totals[currency] = totals.get(currency, Decimal("0.00")) + amount
    return "\n".join(f"{total:,.2f} {currency}" for currency, total in sorted(totals.items())) or "0.00"


# ---------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plans = default_plans_folder(args.plans, fallback_to_repo=True)
    data = out / "data"
    generate_sample(data, args.reps, args.deals, args.seed)
    summary = run_and_write(plans, str(data), out / "results", "duckdb", None)
    print_summary(summary, title=f"payouts of the sample company ({args.reps:,} reps, {args.deals:,} deals)")
    print(f"sample data in {data}")
    revplan = _command_name()
    next_steps = [
        (f"{revplan} run --data {data} --period 2027-Q1", "one quarter's payouts, written to out/"),
        (f"{revplan} test {plans}", "the plans' test blocks"),
        (f'{revplan} compile {plans} --plan "Enterprise AE" --dialect snowflake', "the SQL of a plan"),
        (f"{revplan} explain --quota R0027 --data {data}", "how a rep's quota was derived"),
        (f"{revplan} explain --account A00218 --data {data}", "which territory holds an account, and why"),
    ]
    width = max(len(command) for command, _ in next_steps)
    print("try next:")
    for command, what in next_steps:
        print(f"  {command.ljust(width)}  # {what}")
    return EXIT_OK


def _command_name() -> str:
    """How to type revplan here: `revplan` when it is on the PATH, else the path it was started by
    (`.venv/bin/revplan` after the README's quick start, whose venv is not activated)."""
    started, on_path = Path(sys.argv[0]), shutil.which("revplan")
    if started.name != "revplan" or (on_path is not None and Path(on_path).resolve() == started.resolve()):
        return "revplan"
    try:
        return str(started.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(started)


# ---------------------------------------------------------------- test


def cmd_test(args: argparse.Namespace) -> int:
    from runtime.plantest import run_plan_tests
    from runtime.run import run_plans

    check_engine(args.engine, args.url)
    paths = args.paths or [default_plans_folder(None)]
    project = load_project(paths)

    def calculator(files, connection):
        return run_plans(files, connection, engine=args.engine, url=args.url, schema=project.schema)

    results = run_plan_tests(project.files, calculator, schema=project.schema)
    counts = Counter(result.status for result in results)
    for result in results:
        if result.status != "passed" or args.verbose:
            print(str(result) if result.status != "passed" else f"PASSED {result.title}")
    parts = [f"{counts['passed']} passed", f"{counts['failed']} failed"]
    parts += [f"{counts[s]} {name}" for s, name in (("error", "errors"), ("skipped", "skipped")) if counts[s]]
    where = ", ".join(str(p) for p in paths)
    note = "" if results else f" (no test blocks in {where})"
    print(", ".join(parts) + f" on {args.engine}{note}")
    return EXIT_ERRORS if counts["failed"] or counts["error"] else EXIT_OK


# ---------------------------------------------------------------- explain


# What `revplan explain` explains: one option each, mutually exclusive.
EXPLAIN_TARGETS = {
    "rep": "a rep's payout lines (plan, component, base, rate, attainment)",
    "quota": "how a rep's quota was derived (weights, share, phasing, ramp, override, rounding)",
    "account": "which territory holds an account, by which rule, and its owner",
}


def cmd_explain(args: argparse.Namespace) -> int:
    import tempfile

    import duckdb

    from reports import explain
    from runtime.contract import check_data, check_plan_rates
    from runtime.data import open_data
    from runtime.run import run_plans

    check_engine(args.engine, args.url)
    what = next(name for name in EXPLAIN_TARGETS if getattr(args, name) is not None)
    name = getattr(args, what)
    if args.date is not None and what != "account":
        raise usage_error("RP411", "--date is for --account (the day of the territory assignment)",
                          "for a rep or a quota, name the period: --period 2027-Q1")
    if args.format == "json" and what != "rep":
        raise usage_error("RP411", "--format json is for --rep", f"--{what} prints text")
    if args.period is not None and what == "account":
        raise usage_error("RP411", "--period is for --rep and --quota", "for an account, name a day: --date 2027-07-01")
    day = _parse_day(args.date) if args.date is not None else None
    plans = default_plans_folder(args.plans)
    project = load_project([plans], print_warnings=False)
    files = _explain_files(project.files, what)
    dataset = open_data(args.data, project.schema)
    limit = args.memory_limit or default_memory_limit(dataset.connection)  # a run's: the same plans and data
    try:
        with tempfile.TemporaryDirectory(prefix="revplan-explain-") as scratch:
            limit_memory(dataset.connection, limit, Path(scratch) / "spill")
            comp = _comp_plans(project.files)
            company = _company_currency(comp)
            diagnostics = [*check_data(dataset, base_currency=company),
                           *check_plan_rates([*comp, *_quota_plans(project.files)], dataset, company)]
            if has_errors(diagnostics):
                error = RevplanError(diagnostics)
                error.summary = summary_line(diagnostics, f"{dataset.source} breaks the data contract")
                raise error
            result = run_plans(files, dataset.connection, engine=args.engine, url=args.url, schema=project.schema,
                               deals=what == "rep", deals_of=name if what == "rep" else None)
            roster = _roster_entry(dataset.connection, name) if what in ("rep", "quota") else None
    except duckdb.OutOfMemoryException as error:
        raise out_of_memory(limit, error) from None
    finally:
        dataset.close()
    try:
        if what == "quota":
            if result.quotas is None:
                raise usage_error("RP412", f"no quota plans in {plans}", "explain --quota explains quota plans' quotas")
            lines = explain.quota_lines(result.quotas, name, args.period, roster[0] if roster else None)
        elif what == "account":
            if result.territories is None:
                raise usage_error("RP412", f"no territory plans in {plans}",
                                  "explain --account explains territory plans' assignments")
            overlaps = result.territory_report.overlaps if result.territory_report is not None else None
            lines = explain.account_lines(result.territories, overlaps, _territory_plans(project.files),
                                          project.sources, name, day)
        else:
            from reports import payout_explain

            explained = payout_explain.explain_rep(
                result.payout_lines, result.payout_deals, _comp_plans(project.files), project.sources, name,
                args.period, rep_name=roster[0] if roster else None,
            )
            return _print_rep_explanation(explained, args.format)
    except explain.NotFound as missing:
        on_roster = what in ("rep", "quota") and missing.name == name and roster is not None
        if missing.name == args.period:  # a month of quarterly lines is in its quarter, not a look-alike label
            hints = _periods_holding(args.period, missing.known)
        else:
            hints = [] if on_roster else list(did_you_mean(missing.name, missing.known))
        if on_roster:
            kind = "comp" if what == "rep" else "quota"
            hints.insert(0, f"{name} is on the roster (role {roster[1]}), but no {kind} plan applies to them")
        if missing.known:
            shown = ", ".join(missing.known[:8]) + (f", ... ({len(missing.known)} in all)" if len(missing.known) > 8
                                                     else "")
            hints.append(f"known: {shown}")
        raise usage_error("RP410", str(missing), *hints) from None
    print("\n".join(lines))
    return EXIT_OK


def _print_rep_explanation(explained, form: str) -> int:
    from rich.console import Console

    from reports import payout_explain

    if form == "json":
        print(payout_explain.to_json(explained))
    else:
        console = Console(highlight=False)
        if console.is_terminal:
            console.print(payout_explain.render(explained))
        else:  # a file or a pipe: wide enough that rules and their lines stay on one line, no colour, no padding
            print(payout_explain.render_text(explained, width=120), end="")
    return EXIT_OK


def _parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise usage_error("RP404", f"{text!r} is not a date", "write dates as 2027-07-01") from None


def _comp_plans(files):
    from runtime.run import comp_plans

    return comp_plans(files)


def _territory_plans(files):
    from runtime.run import territory_plans

    return territory_plans(files)


def _quota_plans(files):
    from runtime.run import quota_plans

    return quota_plans(files)


def _explain_files(files, what: str):
    """Only the plans an explanation needs: a quota needs quota and territory plans, an account territory plans."""
    from dsl import ir

    keep = {"rep": (ir.CompPlan, ir.QuotaPlan, ir.TerritoryPlan), "quota": (ir.QuotaPlan, ir.TerritoryPlan),
            "account": (ir.TerritoryPlan,)}[what]
    return tuple(f.model_copy(update={"plans": tuple(p for p in f.plans if isinstance(p, keep))}) for f in files)


def _roster_entry(connection, rep: str) -> tuple[str, str] | None:
    """(name, role) of a rep in the data, or None."""
    from runtime.data import first_row

    row = first_row(connection.execute('SELECT "name", "role" FROM "reps" WHERE "id" = ?', [rep]))
    return (str(row[0]), str(row[1])) if row else None


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revplan",
        description="Sales compensation, quota and territory plans as code.",
    )
    parser.add_argument("--version", action="version", version=f"revplan {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check", help="parse and check plan files; exit 1 on errors")
    check.add_argument("paths", nargs="+", metavar="PATH", help="plan files or directories")
    check.add_argument("--format", choices=("human", "json", "github"), default="human")
    check.add_argument("--strict", action="store_true", help="warnings are errors: exit 1 on any")
    check.set_defaults(handler=cmd_check)

    fmt = commands.add_parser("fmt", help="rewrite plan files in the canonical layout")
    fmt.add_argument("paths", nargs="+", metavar="PATH")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    fmt.set_defaults(handler=cmd_fmt)

    sample = commands.add_parser("sample-data", help="write a sample company's data (reps, deals, ...) to a folder")
    sample.add_argument("--out", required=True, metavar="DIR", help="folder to write one file per table into")
    _add_size_options(sample)
    sample.add_argument("--seed", type=_natural, default=42, metavar="S", help="same seed, same bytes (default 42)")
    sample.add_argument("--format", choices=("auto", "csv", "parquet"), default="auto",
                        help="file format (default auto: CSV up to 200,000 deals, Parquet above)")
    sample.set_defaults(handler=cmd_sample_data)

    compile_ = commands.add_parser("compile", help="print the SQL of comp plans in a warehouse dialect")
    compile_.add_argument("paths", nargs="+", metavar="PLAN_FILE_OR_DIR")
    compile_.add_argument("--plan", metavar="NAME", help="only this comp plan (its name)")
    compile_.add_argument("--dialect", choices=DIALECTS, default="duckdb", help="SQL dialect (default duckdb)")
    compile_.set_defaults(handler=cmd_compile)

    run = commands.add_parser("run", help="run the comp plans on data; write payout lines, statements, manifest")
    run.add_argument("--data", required=True, metavar="SRC",
                     help="folder of CSV/Parquet files, a .duckdb file or a postgresql:// URL")
    run.add_argument("--plans", metavar="DIR", help="plan files or folder (default plans/)")
    run.add_argument("--period", metavar="P", type=str.strip,  # " 2027-Q1" from a CI variable is 2027-Q1
                     help="only payouts of this period: 2027, 2027-H1, 2027-Q1, 2027-01")
    run.add_argument("--out", default="out", metavar="DIR", help="output folder (default out/)")
    run.add_argument("--strict", action="store_true",
                     help="warnings (plans or data) are errors: stop with exit 1 and write nothing")
    _add_engine_options(run)
    _add_memory_limit(run)
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="generate the sample company, run plans/ on it, print the payouts")
    demo.add_argument("--out", default=str(Path("out") / "demo"), metavar="DIR",
                      help="DIR/data gets the sample data, DIR/results the outputs (default out/demo)")
    demo.add_argument("--plans", metavar="DIR", help="plan files or folder (default plans/)")
    _add_size_options(demo)
    demo.add_argument("--seed", type=_natural, default=42, metavar="S", help="random seed (default 42)")
    demo.set_defaults(handler=cmd_demo)

    test = commands.add_parser("test", help="run the plans' test blocks; exit 1 on a failure")
    test.add_argument("paths", nargs="*", metavar="PATH", help="plan files or folders (default plans/)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passed tests too")
    _add_engine_options(test)
    test.set_defaults(handler=cmd_test)

    explain = commands.add_parser("explain", help="explain a rep's payouts, a quota, or an account's territory")
    target = explain.add_mutually_exclusive_group(required=True)
    target.add_argument("--rep", metavar="REP", help=EXPLAIN_TARGETS["rep"])
    target.add_argument("--quota", metavar="REP", help=EXPLAIN_TARGETS["quota"])
    target.add_argument("--account", metavar="ACCOUNT", help=EXPLAIN_TARGETS["account"])
    explain.add_argument("--period", metavar="P", type=str.strip,
                         help="with --rep or --quota: one period (2027, 2027-Q1)")
    explain.add_argument("--date", metavar="D", help="with --account: the assignment on this day (2027-07-01)")
    explain.add_argument("--data", required=True, metavar="SRC",
                         help="folder of CSV/Parquet files, a .duckdb file or a postgresql:// URL")
    explain.add_argument("--plans", metavar="DIR", help="plan files or folder (default plans/)")
    explain.add_argument("--format", choices=("text", "json"), default="text",
                         help="with --rep: a statement to read (default) or JSON (amounts as exact strings)")
    _add_engine_options(explain)
    _add_memory_limit(explain)
    explain.set_defaults(handler=cmd_explain)
    return parser


def _add_memory_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="the embedded DuckDB's memory (500MB, 2GB); past it, it spills to a temporary folder "
                             f"(default {MEMORY_FLOOR_MB}MB, or {MEMORY_PER_DEAL} bytes per deal above 10M deals, "
                             "at most 80%% of RAM)")


def _add_size_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=_natural, default=200, metavar="N", help="reps on the roster (default 200)")
    parser.add_argument("--deals", type=_natural, default=20_000, metavar="N", help="deals (default 20,000)")


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="duckdb",
                        help="where the plans run: duckdb, postgres (with --url), python or spark "
                             "(pyspark, local mode) (default duckdb)")
    parser.add_argument("--url", metavar="URL", help="PostgreSQL server for --engine postgres: postgresql://...")


def _natural(text: str) -> int:
    """A whole number >= 0, also written 20,000 or 20_000."""
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("revplan")
    except PackageNotFoundError:
        return "0+unknown"


_stopped_by: list[signal.Signals] = []  # the signal that asked this command to stop, once one has


def _stop(signum: int, frame: object) -> None:
    """Ctrl-C (SIGINT) or a cancelled CI job (SIGTERM): unwind as Ctrl-C does, so temporary files and
    tables are removed. The exception may come out of a library as another one (DuckDB's "Query
    interrupted", pydantic's SchemaError); the flag says what it was. Once unwinding, later signals do not
    raise again (DuckDB re-sends the interrupt it turned into its own error), so the cleanup finishes."""
    _stopped_by.append(signal.Signals(signum))
    if len(_stopped_by) == 1:
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and threading.current_thread() is threading.main_thread():  # the command line, not a test
        for stop in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop, _stop)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code = args.handler(args)
    except (Exception, KeyboardInterrupt) as error:
        code = EXIT_INTERRUPTED if _stopped_by else _failed(error)
    if _stopped_by:
        terminated = _stopped_by[0] == signal.SIGTERM
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    return code


def _failed(error: BaseException) -> int:
    """Report what stopped a command and give its exit code."""
    if isinstance(error, RevplanError):
        print_diagnostics(error.diagnostics, getattr(error, "sources", {}))
        if getattr(error, "summary", None):
            print(error.summary, file=sys.stderr)
        return EXIT_ERRORS
    if isinstance(error, RecursionError):  # a pathological plan, at any stage (parse, check, compile)
        print_diagnostics([too_deeply_nested()], {})
        return EXIT_ERRORS
    if isinstance(error, KeyboardInterrupt):  # main() called in-process, with Python's own handler
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):  # the reader went away (`revplan compile ... | head`): not our error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERRORS
    if os.environ.get("REVPLAN_DEBUG"):
        raise error
    import traceback

    print("revplan: internal error (a bug in revplan, not in your plans). Details:", file=sys.stderr)
    traceback.print_exception(error)
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
