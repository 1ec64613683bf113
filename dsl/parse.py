"""Stage 1: plan text -> syntax tree (`parse(text, path) -> SyntaxTree`).

Lark's LALR parser with an indentation post-lexer. Syntax errors never
escape as exceptions: each becomes a `Diagnostic` with a caret-ready span
and a hint. After an error the parser blanks the offending statement and
tries again, so one run reports every independent mistake in a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
from functools import cache
from pathlib import Path

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from dsl.diagnostics import Diagnostic, Span, did_you_mean

GRAMMAR_PATH = Path(__file__).with_name("revplan.lark")
MAX_SYNTAX_ERRORS = 20


@dataclasses.dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str  # including the leading '#'
    trailing: bool  # after code on the same line


@dataclasses.dataclass(frozen=True)
class SyntaxTree:
    """The parse tree of one file, with its comments (for the formatter)."""

    path: str
    text: str
    tree: Tree | None
    comments: tuple[Comment, ...]
    diagnostics: tuple[Diagnostic, ...]


class _IndentError(Exception):
    def __init__(self, line: int, column: int, message: str):
        self.line, self.column, self.message = line, column, message


class _PlanIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types: list[str] = []
    CLOSE_PAREN_types: list[str] = []
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4

    def handle_NL(self, token: Token):
        indent_str = token.rsplit("\n", 1)[1]
        if "\t" in indent_str:
            raise _IndentError(token.end_line, 1, "tab used for indentation")
        indent = len(indent_str)
        yield token
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            return
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
        if indent != self.indent_level[-1]:
            raise _IndentError(
                token.end_line, indent + 1, f"this line is indented by {indent}, which matches no enclosing block"
            )


@cache
def _parser() -> Lark:
    return build_parser(parser_cache_dir())


# How the parser is built; part of the cache key, as a saved parser keeps them.
_LARK_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=False)


def build_parser(cache_dir: Path | None) -> Lark:
    """The LALR parser, loaded from `cache_dir` when it was saved there before.

    Computing the parse tables takes ~0.1 s, a fifth of a whole `revplan
    check` of the sample plans; loading a saved parser takes ~0.01 s. The
    file is keyed by a digest of the grammar, the options, Lark's version and
    Python's (in its name and on its first line), so an edited grammar or an
    upgraded Lark never loads a stale parser. It is written under a temporary
    name and renamed, so a concurrent run never reads half of it. Without a
    cache directory, or with an unreadable file, the parser is built anew.
    """
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    if cache_dir is None:
        return Lark(grammar, postlex=_PlanIndenter(), **_LARK_OPTIONS)
    always_accept = _PlanIndenter().always_accept  # the one thing Lark reads from the post-lexer when building
    identity = repr((grammar, sorted(_LARK_OPTIONS.items()), always_accept, lark.__version__, sys.version_info[:2]))
    key = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    path = cache_dir / f"grammar-{key[:24]}.lark"
    try:
        with path.open("rb") as file:
            if file.readline().rstrip(b"\n") == key.encode("ascii"):
                return Lark.load(file)
    except Exception:  # missing, truncated, unpicklable: whatever the reason, build anew
        pass
    parser = Lark(grammar, postlex=_PlanIndenter(), **_LARK_OPTIONS)
    partial = cache_dir / f".{path.name}.{os.getpid()}.tmp"
    try:
        with partial.open("wb") as file:
            file.write(key.encode("ascii") + b"\n")
            parser.save(file)
        os.replace(partial, path)
    except OSError:  # a full disk or a read-only cache: the parser works all the same
        with contextlib.suppress(OSError):
            partial.unlink()
    _forget_old_parsers(cache_dir)
    return parser


KEEP_PARSERS = 8  # saved parsers of other grammars (other checkouts, edits) kept in the cache


def _forget_old_parsers(cache_dir: Path) -> None:
    """Each edit of the grammar saves a new parser (~120 kB); keep the most recent few."""
    with contextlib.suppress(OSError):
        saved = sorted(cache_dir.glob("grammar-*.lark"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in saved[KEEP_PARSERS:]:
            old.unlink()


def parser_cache_dir() -> Path | None:
    """Where the parser tables are cached: $REVPLAN_CACHE_DIR, else the user's cache directory.

    A pickle is loaded from there, so the directory must be private: owned by
    the user and not writable by others (never a shared temp directory).
    REVPLAN_CACHE_DIR set to an empty value turns the cache off.
    """
    configured = os.environ.get("REVPLAN_CACHE_DIR")
    try:
        if configured is not None:
            if not configured:
                return None
            folder = Path(configured)
        else:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            folder = Path(base) / "revplan"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
    except (OSError, RuntimeError, KeyError):  # no home directory, read-only file system, ...
        return None
    if os.name == "posix" and (status.st_uid != os.getuid() or status.st_mode & 0o022):
        return None
    return folder


def parse(text: str, path: str = "<text>") -> SyntaxTree:
    """Parse one file. Errors come back as diagnostics, never as exceptions.

    >>> parse('revplan 1\\nmeasure b = sum(deal.amount)\\n').diagnostics
    ()
    """
    text = text.removeprefix("\ufeff")  # a byte order mark (Windows editors write one) is not text
    comments = tuple(find_comments(text))
    only_comments = all(not line.strip() or line.lstrip().startswith("#") for line in text.split("\n"))
    if only_comments:  # the parser would say "unexpected end of file" at the first comment
        empty = Diagnostic(
            code="RP003",
            message="empty file" if not text.strip() else "the file holds only comments",
            file=path,
            hints=("a plan file starts with the language line `revplan 1`, then measures and plans",),
        )
        return SyntaxTree(path, text, None, comments, (empty,))
    source = text if text.endswith("\n") else text + "\n"
    diagnostics: list[Diagnostic] = []
    tree = None
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            tree = _parser().parse(source)
            break
        except (UnexpectedInput, _IndentError) as error:
            if diagnostics and _is_cascade(error):
                break  # an earlier blanked statement left a block empty
            diagnostic = _syntax_diagnostic(error, source, path)
            diagnostics.append(diagnostic)
            blanked = _blank_statement(source, diagnostic.span.line)
            if blanked == source:
                break
            source = blanked
    if tree is not None:
        diagnostics.extend(_reserved_names(tree, path))
        diagnostics.extend(_huge_numbers(tree, path))
    return SyntaxTree(path, text, None if diagnostics else tree, comments, tuple(diagnostics))


# ---------------------------------------------------------------- comments


def find_comments(text: str) -> list[Comment]:
    """Comments are '#' to end of line, outside strings (strings are one line).

    Lines are split on '\\n' only, as Lark counts them (str.splitlines would
    also split inside a comment on characters such as U+2028).

    >>> [c.text for c in find_comments('a = "x\\\\"#y" # z\\n')]
    ['# z']
    """
    comments = []
    if "#" not in text:
        return comments
    for number, line in enumerate(text.split("\n"), start=1):
        if "#" not in line:
            continue
        if '"' not in line:  # no string that could hold a '#'
            index = line.index("#")
            comments.append(Comment(number, index + 1, line[index:].rstrip(), bool(line[:index].strip())))
            continue
        in_string = escaped = False
        for index, char in enumerate(line):
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "#":
                trailing = bool(line[:index].strip())
                comments.append(Comment(number, index + 1, line[index:].rstrip(), trailing))
                break
    return comments


# ---------------------------------------------------------------- errors

# How terminals read in an error message.
_TERMINAL_NAMES = {
    "_NL": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "end of the block",
    "$END": "end of file",
    "NAME": "a name",
    "STRING": 'a quoted string ("...")',
    "INT": "a whole number",
    "NUMBER": "a number",
    "PERCENT": "a percentage (8%)",
    "DATE": "a date (2027-01-01)",
    "CURRENCY": "a currency code (USD)",
    "COMPARE": "a comparison (=, !=, <, <=, >, >=)",
    "AGGREGATE": "an aggregate (sum, count, avg, min, max, count_distinct)",
    "TIER_MODE": "graduated or retroactive",
}

# Known mistakes and what to say about them, keyed by the offending text.
_MISTAKE_HINTS = {
    ":": "blocks have no ':'; indent the lines that belong to the block instead",
    "==": "use a single '=' to compare",
    "%": "write percentages without a space: 8%",
    "$": "write money as an amount and a currency code: 5,000 USD",
    "'": 'strings use double quotes: "closed_won"',
    "=": "compare with a single '=' (not '==')",
    "{": "blocks are indented, not wrapped in braces",
}


# Words a measure cannot be named: in an expression they are always read as
# the literal or the operator, so the measure could never be used. (Every
# other keyword is an ordinary name where a name is expected: `measure rate`,
# `fx_rate.from`; the contextual lexer only reads a keyword where the grammar
# can take it.)
RESERVED_NAMES = ("true", "false", "not")


def _reserved_names(tree: Tree, path: str) -> list[Diagnostic]:
    """A measure named by a reserved word: a syntax error with the reason."""
    found = []
    for measure in tree.find_data("measure_def"):
        name = measure.children[0]
        if isinstance(name, Token) and name.value in RESERVED_NAMES:
            found.append(
                Diagnostic(
                    code="RP001",
                    message=f"'{name.value}' is a reserved word; it cannot name a measure",
                    span=_token_span(path, name, ""),
                    hints=(
                        "in an expression true and false are values and not is an operator, so a measure "
                        f"of that name could never be used; choose another name, e.g. my_{name.value}",
                    ),
                )
            )
    return sorted(found, key=lambda d: (d.span.line, d.span.column))


MAX_DIGITS = 30  # far past any amount (16 digits: RP308 in check) or count; Python's int() refuses 4,300


def _huge_numbers(tree: Tree, path: str) -> list[Diagnostic]:
    """RP308 for a number no plan means, before any stage turns it into an int (audit: 5,000 digits crashed
    check, fmt and test with a traceback)."""
    found = []
    for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type in ("NUMBER", "INT", "PERCENT")):
        digits = sum(c.isdigit() for c in token.value)
        if digits > MAX_DIGITS:
            found.append(Diagnostic(code="RP308", message=f"a number of {digits:,} digits is too large",
                                    span=_token_span(path, token, ""),
                                    hints=("amounts have at most 16 digits before the decimal point",)))
    return found


def _is_cascade(error: Exception) -> bool:
    token = getattr(error, "token", None)
    return isinstance(error, UnexpectedEOF) or (token is not None and token.type in ("_DEDENT", "$END"))


def _syntax_diagnostic(error: Exception, source: str, path: str) -> Diagnostic:
    if isinstance(error, _IndentError):
        return Diagnostic(
            code="RP002",
            message=f"bad indentation: {error.message}",
            span=_point(path, error.line, error.column, source),
            hints=("indent each block by the same number of spaces (two is the canonical layout)",),
        )
    if isinstance(error, UnexpectedCharacters):
        char = source[error.pos_in_stream] if error.pos_in_stream < len(source) else ""
        hint = _MISTAKE_HINTS.get(char) or _MISTAKE_HINTS.get(source[error.pos_in_stream : error.pos_in_stream + 2])
        if char.isalpha() and char.isupper():
            hint = hint or "names are lowercase (bookings, deal.amount); currency codes are three capitals (USD)"
        if char.isdigit() and not char.isascii():  # Python's \d would read it as a number: the grammar does not
            hint = "write numbers with the digits 0-9"
        line_rest = source[error.pos_in_stream + 1 :].split("\n", 1)[0]
        if char == '"' and '"' not in line_rest:  # a string is one line: its closing quote is missing
            return Diagnostic(
                code="RP001",
                message="unterminated string",
                span=_point(path, error.line, error.column, source),
                hints=('end the text with a closing " on the same line',),
            )
        return Diagnostic(
            code="RP001",
            message=f"unexpected character {char!r}",
            span=_point(path, error.line, error.column, source),
            hints=(hint,) if hint else _expected_hint(error.allowed),
        )
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        hints = _token_hints(token, error.accepts or error.expected)
        found = _describe_token(token)
        line, column = token.line, token.column
        if token.type == "_INDENT":  # the token is the newline before it: the line to point at is the next code
            line, column = _next_code(source, token.line)
        elif token.type in ("_NL", "_DEDENT"):
            line, column = _end_of_previous_code(source, token)
        return Diagnostic(
            code="RP001",
            message=f"unexpected {found}",
            span=_token_span(path, token, source) if token.type not in ("_NL", "_DEDENT", "_INDENT")
            else _point(path, line, column, source),
            hints=hints,
        )
    expected = getattr(error, "expected", set())
    last_line = max(1, len(source.rstrip("\n").splitlines()))
    return Diagnostic(
        code="RP001",
        message="unexpected end of file",
        span=_point(path, last_line, 1, source),
        hints=_expected_hint(expected) if isinstance(error, (UnexpectedEOF, UnexpectedToken)) else (),
    )


def _describe_token(token: Token) -> str:
    if token.type in ("_NL",):
        return "end of line"
    if token.type == "_INDENT":
        return "indented block"
    if token.type == "_DEDENT":
        return "end of block"
    return f"{token.value!r}"


def _token_hints(token: Token, expected: set[str]) -> tuple[str, ...]:
    if token.value in _MISTAKE_HINTS:
        return (_MISTAKE_HINTS[token.value],)
    if token.type == "_INDENT":
        return ("this line is indented more than the line before; only block headers take indented lines",)
    keywords = [_keyword(name) for name in expected if _keyword(name)]
    if token.type == "NAME" and keywords:
        close = did_you_mean(token.value, keywords)
        if close:
            return close
    if token.type == "NUMBER" and "PERCENT" in expected:
        return (f"did you mean '{token.value}%'?",)
    if token.type == "NAME" and token.value in ("usd", "eur", "gbp"):
        return (f"currency codes are capitals: {token.value.upper()}",)
    return _expected_hint(expected)


def _keyword(terminal: str) -> str | None:
    """Lark names keyword terminals after their text, in capitals."""
    if terminal in _TERMINAL_NAMES or terminal.startswith("_") or terminal.startswith("__"):
        return None
    pattern = _parser().get_terminal(terminal).pattern
    if pattern.type == "str" and pattern.value.isidentifier():
        return pattern.value
    return None


def _expected_hint(expected: set[str] | frozenset[str]) -> tuple[str, ...]:
    names = sorted({_expected_name(e) for e in expected} - {None})
    if not names:
        return ()
    if len(names) > 12:
        names = names[:12] + ["..."]
    return ("expected " + ", ".join(names),)


def _expected_name(terminal: str) -> str | None:
    if terminal in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[terminal]
    if terminal.startswith("__"):
        return None
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal.lower()


def _point(path: str, line: int, column: int, source: str) -> Span:
    lines = source.splitlines()
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    end = column + 1 if column <= len(text) else column + 1
    return Span(file=path, line=line, column=column, end_line=line, end_column=end)


def _token_span(path: str, token: Token, source: str) -> Span:
    end_column = token.end_column if token.end_line == token.line else token.column + len(token.value)
    return Span(file=path, line=token.line, column=token.column, end_line=token.line, end_column=end_column)


def _next_code(source: str, after: int) -> tuple[int, int]:
    """The first line with code below line `after` (comments and blank lines skipped), at its first character."""
    lines = source.splitlines()
    for number in range(after + 1, len(lines) + 1):
        text = lines[number - 1]
        if text.strip() and not text.strip().startswith("#"):
            return number, len(text) - len(text.lstrip()) + 1
    return after, 1


def _end_of_previous_code(source: str, token: Token) -> tuple[int, int]:
    """Where a statement stopped short: just after the last code on its line."""
    lines = source.splitlines()
    line = token.line
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    code = text.split("#", 1)[0].rstrip() if '"' not in text else text.rstrip()
    return line, len(code) + 1


def _blank_statement(source: str, line: int) -> str:
    """Replace the bad line and its indented children by blank lines."""
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        return source
    indent = _indent_of(lines[line - 1])
    lines[line - 1] = ""
    for index in range(line, len(lines)):
        text = lines[index]
        if text.strip() and _indent_of(text) <= indent:
            break
        lines[index] = ""
    return "\n".join(lines)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
