"""Load a set of plan files: find, read, parse, resolve and check them.

`load_paths(paths) -> Project` is what every command starts with. A file
that cannot be read, parsed or resolved contributes diagnostics, never an
exception; `Project.files` holds the IR of every file that resolved.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from dsl import ir
from dsl.diagnostics import Diagnostic, has_errors, sort_key, too_deeply_nested
from dsl.parse import parse
from dsl.resolve import resolve
from dsl.schema import SCHEMA, ConfigError, Schema, load_schema

PLAN_SUFFIX = ".plan"
CONFIG_NAME = "revplan.toml"


@dataclasses.dataclass(frozen=True)
class Project:
    files: tuple[ir.PlanFile, ...]
    sources: dict[str, str]  # path -> text, for carets in diagnostics
    diagnostics: tuple[Diagnostic, ...]
    schema: Schema = SCHEMA

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def plans(self) -> tuple[ir.CompPlan | ir.QuotaPlan | ir.TerritoryPlan, ...]:
        return tuple(plan for plan_file in self.files for plan in plan_file.plans)

    @property
    def shared_measures(self) -> dict[str, ir.Measure]:
        return {m.name: m for plan_file in self.files for m in plan_file.measures}


def find_plan_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Plan files named directly, or `*.plan` below named directories."""
    found: list[Path] = []
    diagnostics: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            below = _plan_files_below(path)
            if not below:
                diagnostics.append(
                    Diagnostic(
                        code="RP005",
                        message=f"no plan files ({PLAN_SUFFIX}) in directory {path}",
                        file=str(path),
                        hints=(f"plan files end in {PLAN_SUFFIX}; see plans/ in the revplan repository for examples",),
                    )
                )
            found.extend(below)
        elif path.is_file():
            found.append(path)
        else:
            diagnostics.append(
                Diagnostic(code="RP006", message=f"no such file or directory: {path}", file=str(path))
            )
    unique = list(dict.fromkeys(found))
    return unique, diagnostics


def _plan_files_below(folder: Path) -> list[Path]:
    """`*.plan` files (any case, as data files) below `folder`, readable or not (a dangling link is read, and
    reported). Linked folders are followed, each once: a team's plans linked in are paid too (Path.rglob skips
    them, and a run left them out with no word: audit)."""
    found, seen = [], set()
    for root, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up, or a second link to one folder
            folders.clear()
            continue
        seen.add(real)
        found += [Path(root, name) for name in files if Path(name).suffix.lower() == PLAN_SUFFIX]
    return sorted(found)


def find_config(paths: Sequence[str | Path]) -> Path | None:
    """The nearest revplan.toml above the first path (stopping at a git root)."""
    try:
        start = Path(paths[0]).resolve() if paths else Path.cwd()
    except (OSError, RuntimeError):  # a symlink loop: reading the file reports it
        start = Path(paths[0]).absolute()
    for folder in [start, *start.parents]:
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
        if (folder / ".git").exists():
            break
    cwd_config = Path.cwd() / CONFIG_NAME
    return cwd_config if cwd_config.is_file() else None


def read_source(path: Path) -> tuple[str | None, Diagnostic | None]:
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, Diagnostic(code="RP006", message=f"cannot read {path}: {error.strerror}", file=str(path))
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return None, Diagnostic(
            code="RP004",
            message=f"{path} is not UTF-8 text (bad byte at line {line})",
            file=str(path),
            hints=("save the file as UTF-8",),
        )


def load_texts(texts: Iterable[tuple[str, str]], schema: Schema = SCHEMA) -> Project:
    """A project from (path, text) pairs: what tests and `revplan diff` use."""
    files: list[ir.PlanFile] = []
    sources: dict[str, str] = {}
    diagnostics: list[Diagnostic] = []
    syntax_ok = True
    for path, text in texts:
        sources[path] = text
        syntax = parse(text, path)
        syntax_ok &= not syntax.diagnostics
        try:
            resolved = resolve(syntax)
        except RecursionError:  # one file's chain of hundreds of terms: said there, the other files still checked
            diagnostics.append(too_deeply_nested(path, text))
            syntax_ok = False
            continue
        diagnostics.extend(resolved.diagnostics)
        if resolved.plan_file is not None:
            files.append(resolved.plan_file)
    if syntax_ok:
        from dsl.check import check  # check is the last stage; it imports this module's peers

        diagnostics.extend(check(files, schema, sources))
    return Project(tuple(files), sources, tuple(sorted(diagnostics, key=sort_key)), schema)


def load_paths(paths: Sequence[str | Path], schema: Schema | None = None) -> Project:
    plan_paths, diagnostics = find_plan_files(paths)
    if schema is None:
        try:
            schema = load_schema(find_config(paths))
        except ConfigError as error:
            diagnostics.append(Diagnostic(code="RP007", message=str(error), file=CONFIG_NAME))
            schema = SCHEMA
    texts = []
    for path in plan_paths:
        text, problem = read_source(path)
        if problem is not None:
            diagnostics.append(problem)
        else:
            texts.append((str(path), text))
    project = load_texts(texts, schema)
    all_diagnostics = tuple(sorted((*diagnostics, *project.diagnostics), key=sort_key))
    return dataclasses.replace(project, diagnostics=all_diagnostics)
