"""The `revplan` command line: the only place that knows every package.

Each subcommand is a small function `cmd_<name>(args) -> exit code`.
Exit codes: 0 success, 1 the plans or data have errors (or a check failed),
2 the command line itself was wrong. User mistakes are printed as
diagnostics; a traceback means a bug in revplan (run with REVPLAN_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dsl.diagnostics import Diagnostic, RevplanError, render_github, render_human, render_json

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


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
    from dsl.project import load_paths

    project = load_paths(args.paths)
    print_diagnostics(project.diagnostics, project.sources, args.format)
    if args.format == "human":
        checked = f"checked {len(project.files)} file{'s' * (len(project.files) != 1)}, {len(project.plans)} plans"
        print(summary_line(project.diagnostics, checked), file=sys.stderr)
    return EXIT_OK if project.ok else EXIT_ERRORS


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
    """Write to a temporary file beside the target, then rename over it."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


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
    check.set_defaults(handler=cmd_check)

    fmt = commands.add_parser("fmt", help="rewrite plan files in the canonical layout")
    fmt.add_argument("paths", nargs="+", metavar="PATH")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    fmt.set_defaults(handler=cmd_fmt)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("revplan")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except RevplanError as error:
        print_diagnostics(error.diagnostics, getattr(error, "sources", {}))
        return EXIT_ERRORS
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        if os.environ.get("REVPLAN_DEBUG"):
            raise
        import traceback

        print("revplan: internal error (a bug in revplan, not in your plans). Details:", file=sys.stderr)
        traceback.print_exc()
        return 3


if __name__ == "__main__":
    sys.exit(main())
