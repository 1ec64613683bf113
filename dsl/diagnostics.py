"""One `Diagnostic` type for every user mistake: in a plan, in data, in config.

A diagnostic has a stable code (tests and docs name it), a severity, a
message, where it happened and hints. Plan mistakes carry a `Span` (file,
line, column); data mistakes carry a `DataLocation` (file, row, column name).
Renderers never raise: a diagnostic is the last thing that may fail.

>>> d = Diagnostic(code="RP201", message="unknown measure 'bokings'",
...                span=Span(file="a.plan", line=1, column=9, end_line=1, end_column=16),
...                hints=("did you mean 'bookings'?",))
>>> print(render_human(d, "measure bokings = 1"))
a.plan:1:9: error[RP201]: unknown measure 'bokings'
  1 | measure bokings = 1
    |         ^^^^^^^
  = hint: did you mean 'bookings'?
"""

from __future__ import annotations

import difflib
import enum
import json
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Span(BaseModel):
    """A region of plan text; lines and columns start at 1, end is exclusive."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class DataLocation(BaseModel):
    """A place in input data: file (or table), 1-based data row, column name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)


class Diagnostic(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    message: str
    severity: Severity = Severity.ERROR
    span: Span | None = None
    data: DataLocation | None = None
    file: str | None = None  # for problems with a whole file (empty, not UTF-8)
    hints: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def where(self) -> str:
        if self.span is not None:
            return str(self.span)
        if self.data is not None:
            return str(self.data)
        return self.file or ""


class RevplanError(Exception):
    """Raised to stop a stage with diagnostics; the CLI renders them."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(f"{d.where}: {d.message}" for d in self.diagnostics))


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def did_you_mean(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """A hint naming the closest known name, if any is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return (f"did you mean '{matches[0]}'?",) if matches else ()


def sort_key(d: Diagnostic) -> tuple:
    if d.span is not None:
        return (d.span.file, d.span.line, d.span.column, d.code)
    return (d.where, 0, 0, d.code)


def render_human(d: Diagnostic, source: str | None = None) -> str:
    """`file:line:col: severity[code]: message`, the source line, a caret, hints."""
    where = f"{d.where}: " if d.where else ""
    lines = [f"{where}{d.severity.value}[{d.code}]: {d.message}"]
    if d.span is not None and source is not None:
        lines.extend(_caret_lines(d.span, source))
    lines.extend(f"  = hint: {hint}" for hint in d.hints)
    return "\n".join(lines)


def _caret_lines(span: Span, source: str) -> list[str]:
    source_lines = source.splitlines()
    if not 1 <= span.line <= len(source_lines):
        return []
    text = source_lines[span.line - 1].expandtabs(1)
    width = len(str(span.line))
    if span.end_line == span.line and span.end_column > span.column:
        length = span.end_column - span.column
    else:
        length = max(1, len(text.rstrip()) - span.column + 1)
    gutter = " " * width
    return [
        f"  {span.line} | {text}",
        f"  {gutter} | {' ' * (span.column - 1)}{'^' * max(1, length)}",
    ]


def render_github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command, shown as an annotation on the PR diff."""
    kind = "error" if d.is_error else "warning"
    props = []
    if d.span is not None:
        props = [
            f"file={d.span.file}",
            f"line={d.span.line}",
            f"col={d.span.column}",
            f"endColumn={d.span.end_column}" if d.span.end_line == d.span.line else "",
        ]
    elif d.data is not None:
        props = [f"file={d.data.file}"]
    elif d.file:
        props = [f"file={d.file}"]
    props.append(f"title=revplan {d.code}")
    message = d.message + "".join(f" (hint: {h})" for h in d.hints)
    return f"::{kind} {','.join(p for p in props if p)}::{_escape_github(message)}"


def _escape_github(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.model_dump(mode="json") for d in diagnostics], indent=2)


def too_deeply_nested(path: str | None = None, text: str | None = None) -> Diagnostic:
    """RP120: an expression past Python's recursion limit (a chain of hundreds of terms): the plan's to change.
    With the file's `text`, at its longest line: statements are one line each, and that one holds the chain."""
    span = None
    if path is not None and text is not None:
        lines = text.split("\n")
        number = max(range(len(lines)), key=lambda i: len(lines[i])) + 1
        line = lines[number - 1]
        start = len(line) - len(line.lstrip()) + 1
        span = Span(file=path, line=number, column=start, end_line=number, end_column=len(line) + 1)
    return Diagnostic(
        code="RP120",
        message="an expression is nested too deeply for revplan (a chain of hundreds of terms or conditions)",
        span=span, file=path if span is None else None,
        hints=("split it into named measures of a few dozen terms each, and add those up",),
    )
