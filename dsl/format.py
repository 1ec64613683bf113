"""`revplan fmt`: one canonical layout for plan text, comments kept.

`format_text(text, path) -> Formatted` parses the text and prints the Lark
parse tree back out; `format_file(syntax) -> str` does the printing. The
printer works from the syntax tree, not the IR, so nothing the author wrote
is lost: comments, blank lines between statements, the order of statements
and the parentheses in expressions all survive. What changes is layout:

- two spaces of indentation per block level;
- one space around operators and keywords, `(x)` and `sum(deal.amount)`
  without inner spaces, `a, b` lists;
- numbers group thousands with commas (`5,000 USD`, `1,000`); digits after
  the decimal point stay as written (`10,100.00 USD`, `1.50`); whole-number
  slots (`version 3`, `priority 10`, `depth 2`) stay plain;
- tier bands and curve points line up in columns within their table;
- full-line comments sit at the indentation of the block they are in;
  trailing comments follow their statement after two spaces;
- runs of blank lines become one; no blank line at the start of a file or a
  block, none at the end; a blank line always separates top-level items
  (except consecutive measures) and comes before and after each component
  and each test block.

Every statement of the language is exactly one line (a newline ends it and
parentheses do not continue a line), so the printer works line by line:
it renders each statement from its tree node, then weaves the comment lines
and blank lines of the source back in between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lark import Token, Tree

from dsl.diagnostics import Diagnostic, too_deeply_nested
from dsl.parse import SyntaxTree, parse
from dsl.resolve import resolve

INDENT = "  "
TRAILING_COMMENT_GAP = "  "


@dataclasses.dataclass(frozen=True)
class Formatted:
    text: str  # the formatted text, or the input unchanged when it does not parse
    diagnostics: list[Diagnostic]  # syntax errors; empty when the text was formatted


def format_text(text: str, path: str = "<text>") -> Formatted:
    """Format one file. A file that does not parse comes back unchanged, with its diagnostics."""
    syntax = parse(text, path)
    if syntax.tree is None:
        return Formatted(text, list(syntax.diagnostics))
    try:
        formatted = format_file(syntax)
        _assert_same_meaning(syntax, formatted)
    except RecursionError:  # left as it is, and said where, as check says it
        return Formatted(text, [too_deeply_nested(path, text)])
    return Formatted(formatted, [])


def format_file(syntax: SyntaxTree) -> str:
    """The canonical text of a parsed file (its tree must not be None)."""
    assert syntax.tree is not None, "format_file needs a file without syntax errors"
    source = _Source(syntax)
    statements = _Printer(source).lines(syntax.tree)
    return "\n".join(_weave(statements, source)) + "\n"


def _assert_same_meaning(syntax: SyntaxTree, formatted: str) -> None:
    """Like black's safe mode: a formatter bug must not silently change a plan."""
    again = parse(formatted, syntax.path)
    same_ir = again.tree is not None and resolve(again).plan_file == resolve(syntax).plan_file
    same_comments = [c.text for c in again.comments] == [c.text for c in syntax.comments]
    if not (same_ir and same_comments):
        raise RuntimeError(f"revplan fmt would change the meaning or comments of {syntax.path}; file left unchanged")


# ---------------------------------------------------------------- source lines


class _Source:
    """The source by line number: each line's code part and its comment (from dsl/parse.py)."""

    def __init__(self, syntax: SyntaxTree):
        # Split on '\n' only, as Lark and find_comments count lines.
        self.lines = syntax.text.split("\n")
        self._comments = {c.line: c for c in syntax.comments}

    def code(self, number: int) -> str:
        comment = self._comments.get(number)
        return self.lines[number - 1][: comment.column - 1] if comment else self.lines[number - 1]

    def comment(self, number: int) -> str | None:
        comment = self._comments.get(number)
        return comment.text if comment else None

    def is_blank(self, number: int) -> bool:
        return not self.lines[number - 1].strip()

    def indent(self, number: int) -> int:
        line = self.lines[number - 1]
        return len(line) - len(line.lstrip(" \t"))


def _paren_pairs(code: str) -> set[tuple[int, int]]:
    """(open, close) 0-based indexes of matching parentheses outside strings."""
    pairs, stack = set(), []
    in_string = escaped = False
    for index, char in enumerate(code):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "(":
            stack.append(index)
        elif char == ")" and stack:
            pairs.add((stack.pop(), index))
    return pairs


# ---------------------------------------------------------------- statements


@dataclasses.dataclass(frozen=True)
class _Line:
    """One statement as printed: where it was, how deep it is, what it says."""

    source_line: int
    depth: int
    kind: str  # the tree node name (plan, component, measure_def, ...)
    text: str


# Nodes with an indented block of statements under them. `tiers` also holds
# a `decelerator` node, which is part of its header line.
BLOCKS = {"plan", "component", "tiers", "curve", "territory", "plan_test"}


class _Printer:
    def __init__(self, source: _Source):
        self.source = source
        self._pairs: dict[int, set[tuple[int, int]]] = {}

    # ------------------------------------------------------------ lines

    def lines(self, start: Tree) -> list[_Line]:
        out: list[_Line] = []
        for item in start.children:
            self._visit(item, 0, self.statement(item), out)
        return out

    def _visit(self, node: Tree, depth: int, text: str, out: list[_Line]) -> None:
        out.append(_Line(node.meta.line, depth, node.data, text))
        if node.data not in BLOCKS:
            return
        children = [c for c in node.children if isinstance(c, Tree) and c.data != "decelerator"]
        align = ALIGNED_BLOCKS.get(node.data)
        texts = align(self, children) if align else [self.statement(c) for c in children]
        for child, child_text in zip(children, texts, strict=True):
            self._visit(child, depth + 1, child_text, out)

    def statement(self, node: Tree) -> str:
        return STATEMENTS[node.data](self, *node.children)

    # ------------------------------------------------------------ expressions

    def expr(self, node: Tree, min_precedence: int = 0) -> str:
        """An expression, in parentheses when the tree needs them or the author wrote them."""
        precedence, render = EXPRESSIONS[node.data]
        text = render(self, *node.children)
        if precedence < min_precedence or self._written_in_parens(node):
            return f"({text})"
        return text

    def _written_in_parens(self, node: Tree) -> bool:
        # Lark drops the parentheses of `"(" expr ")"`; node spans exclude
        # them, so the author's parentheses are the matching pair that hugs
        # the node's span on its (single) line.
        meta = node.meta
        if meta.empty or meta.line != meta.end_line:
            return False
        code = self.source.code(meta.line)
        before = code[: meta.column - 1].rstrip()
        after = code[meta.end_column - 1 :].lstrip()
        if not (before.endswith("(") and after.startswith(")")):
            return False
        if meta.line not in self._pairs:
            self._pairs[meta.line] = _paren_pairs(code)
        return (len(before) - 1, len(code) - len(after)) in self._pairs[meta.line]

    def literal(self, node: Tree) -> str:
        return EXPRESSIONS[node.data][1](self, *node.children)

    def literals(self, nodes) -> str:
        return ", ".join(self.literal(n) for n in nodes)


# ---------------------------------------------------------------- literals


def _grouped(token: Token | str) -> str:
    """A number with its whole part grouped in thousands; the fraction as written."""
    whole, dot, fraction = str(token).replace(",", "").partition(".")
    return f"{int(whole):,}{dot}{fraction}"


def _percent(p: _Printer, token: Token) -> str:
    return _grouped(str(token).rstrip("%")) + "%"


def _duration(p: _Printer, number: Token) -> str:
    # "day" or "days" is not kept in the tree; the value decides.
    return f"{_grouped(number)} {'day' if _grouped(number) == '1' else 'days'}"


def _aggregate(p: _Printer, function: Token, entity: Token, *field: Token) -> str:
    target = f"{entity}.{field[0]}" if field else str(entity)
    return f"{function}({target})"


def _joined(separator: str, min_precedence: int):
    return lambda p, *operands: separator.join(p.expr(o, min_precedence) for o in operands)


def _binary(op: str, left_min: int, right_min: int):
    return lambda p, left, right: f"{p.expr(left, left_min)} {op} {p.expr(right, right_min)}"


# Precedence, loosest first, as in dsl/revplan.lark: or 1, and 2, not 3,
# comparisons 4, + - 5, * / 6, unary minus 7, atoms 9. A child in a slot that
# needs a tighter-binding expression than it is gets parentheses.
ATOM = 9
EXPRESSIONS: dict[str, tuple[int, Callable[..., str]]] = {
    "or_expr": (1, _joined(" or ", 2)),
    "and_expr": (2, _joined(" and ", 3)),
    "not_expr": (3, lambda p, operand: f"not {p.expr(operand, 3)}"),
    "compare": (4, lambda p, left, op, right: f"{p.expr(left, 5)} {op} {p.expr(right, 5)}"),
    "in_list": (4, lambda p, operand, values: f"{p.expr(operand, 5)} in ({p.literals(values.children)})"),
    "not_in_list": (4, lambda p, operand, values: f"{p.expr(operand, 5)} not in ({p.literals(values.children)})"),
    "is_null": (4, lambda p, operand: f"{p.expr(operand, 5)} is null"),
    "is_not_null": (4, lambda p, operand: f"{p.expr(operand, 5)} is not null"),
    "add": (5, _binary("+", 5, 6)),
    "subtract": (5, _binary("-", 5, 6)),
    "multiply": (6, _binary("*", 6, 7)),
    "divide": (6, _binary("/", 6, 7)),
    "negate": (7, lambda p, operand: f"-{p.expr(operand, 7)}"),
    "field_ref": (ATOM, lambda p, entity, field: f"{entity}.{field}"),
    "name_ref": (ATOM, lambda p, name: str(name)),
    "aggregate": (ATOM, _aggregate),
    # literals
    "number": (ATOM, lambda p, token: _grouped(token)),
    "percent": (ATOM, _percent),
    "money": (ATOM, lambda p, amount, currency: f"{_grouped(amount)} {currency}"),
    "date": (ATOM, lambda p, token: str(token)),
    "duration": (ATOM, _duration),
    "string": (ATOM, lambda p, token: str(token)),
    "true": (ATOM, lambda p: "true"),
    "false": (ATOM, lambda p: "false"),
    # test-row values
    "negative": (ATOM, lambda p, literal: f"-{p.literal(literal)}"),
    "null": (ATOM, lambda p: "null"),
}


# ---------------------------------------------------------------- statement rules


def _optional(prefix: str, part: object | None) -> str:
    return f" {prefix}{part}" if part is not None else ""


def _plan(p: _Printer, kind: Token, name: Token, version: Token, *statements: Tree) -> str:
    return f"{kind} plan {name} version {int(version)}"


def _owners(p: _Printer, *groups: Tree) -> str:
    return "owners " + " ".join(f"{g.children[0]} {g.children[1]}" for g in groups)


def _applies_to(p: _Printer, *where: Tree) -> str:
    return "applies to reps" + (f" where {p.expr(where[0])}" if where else "")


def _measure_def(p: _Printer, name: Token, expr: Tree, *where: Tree) -> str:
    return f"measure {name} = {p.expr(expr)}" + (f" where {p.expr(where[0])}" if where else "")


def _draw(p: _Printer, amount: Tree, *rest: Token) -> str:
    *periods, kind = rest
    return f"draw {p.expr(amount)} per period" + (f" for {int(periods[0])} periods" if periods else "") + f" {kind}"


def _component(p: _Printer, name: Token, *rest) -> str:
    base = rest[0] if rest and isinstance(rest[0], Token) else None
    return f"component {name}" + _optional("on ", base)


def _tiers(p: _Printer, mode: Token, on: Token, *rest: Tree) -> str:
    decelerator = any(r.data == "decelerator" for r in rest)
    return f"{mode} tiers on {on}" + (" with decelerator" if decelerator else "")


def _cap_multiple(p: _Printer, multiple: Token, of: Token, *per: Token) -> str:
    return f"cap {_grouped(multiple)} x {of}" + _optional("per ", per[0] if per else None)


def _cap_amount(p: _Printer, amount: Tree, *per: Token) -> str:
    return f"cap {p.expr(amount)}" + _optional("per ", per[0] if per else None)


def _allocation_term(p: _Printer, term: Tree) -> str:
    basis, *share = term.children
    return f"{basis}" + (f" {p.expr(share[0])}" if share else "")


def _override(p: _Printer, rep: Token, *rest) -> str:
    period = f" period {rest[0]}" if len(rest) == 2 else ""
    return f"override {rep}{period} {p.expr(rest[-1])}"


def _holder(role: str):
    return lambda p, rep, *start: f"{role} {rep}" + _optional("from ", start[0] if start else None)


def _assign_named(p: _Printer, *children: Token) -> str:
    *accounts, territory, priority = children
    return f"assign named accounts {', '.join(accounts)} to {territory} priority {int(priority)}"


def _test_row(verb: str):
    def render(p: _Printer, what: Token, *values: Tree) -> str:
        cells = ", ".join(f"{v.children[0]} {p.literal(v.children[1])}" for v in values)
        return f"{verb} {what} {cells}"

    return render


def _list_of(keyword: str):
    return lambda p, *items: f"{keyword} " + ", ".join(p.expr(i) for i in items)


def _one_expr(keyword: str):
    return lambda p, expr: f"{keyword} {p.expr(expr)}"


def _fixed(text: str):
    return lambda p: text


# One renderer per statement node, keyed by the tree node name (the rule or
# its `-> alias` in dsl/revplan.lark). Keywords are not in the tree (Lark
# filters anonymous tokens), so each renderer spells its own.
STATEMENTS: dict[str, Callable[..., str]] = {
    "language": lambda p, version: f"revplan {int(version)}",
    "measure_def": _measure_def,
    "plan": _plan,
    # header
    "effective": lambda p, start, end: f"effective {start} to {end}",
    "period": lambda p, name: f"period {name}",
    "currency": lambda p, code: f"currency {code}",
    "owners": _owners,
    "applies_to": _applies_to,
    # comp plans
    "credit_owner": _fixed("credit owner"),
    "credit_splits": _fixed("credit splits"),
    "credit_overlay": _fixed("credit overlay"),
    "credit_rollup": lambda p, *depth: "credit rollup" + _optional("depth ", int(depth[0]) if depth else None),
    "quota_from_table": _fixed("quota from quotas"),
    "quota_from_plan": lambda p, name: f"quota from plan {name}",
    "attainment": lambda p, measure: f"attainment = {measure} / quota",
    "measured_period": _fixed("measured per period"),
    "measured_ytd": _fixed("measured year_to_date with true_up"),
    "prorate": _fixed("prorate by active_days"),
    "paid_on": lambda p, when: f"paid on {when}",
    "fx": lambda p, when: f"fx at {when}",
    "draw": _draw,
    "clawback": lambda p, duration: f"clawback cancelled deals within {p.literal(duration)}",
    # components
    "component": _component,
    "rate": _one_expr("rate"),
    "tiers": _tiers,
    "curve": lambda p, on, of, *points: f"curve on {on} of {of}",
    "bonus": lambda p, amount, when: f"bonus {p.expr(amount)} when {p.expr(when)}",
    "spiff": lambda p, amount, where, start, end: (
        f"spiff {p.expr(amount)} per deal where {p.expr(where)} from {start} to {end}"
    ),
    "mbo": lambda p, amount, source: f"mbo {p.expr(amount)} from {source}",
    "multiplier_deal": lambda p, factor, where: f"multiplier {p.expr(factor)} where {p.expr(where)}",
    "multiplier_measure": lambda p, factor, when: f"multiplier {p.expr(factor)} when {p.expr(when)}",
    "gate": _one_expr("gate"),
    "cap_multiple": _cap_multiple,
    "cap_amount": _cap_amount,
    # quota plans
    "target": _one_expr("target"),
    "over_assign": _one_expr("over_assign"),
    "allocate": lambda p, *terms: "allocate by " + ", ".join(_allocation_term(p, t) for t in terms),
    "weight": lambda p, rep, value: f"weight {rep} {p.expr(value)}",
    "phasing": _list_of("phasing"),
    "ramp": _list_of("ramp"),
    "override": _override,
    "round_nearest": _one_expr("round to nearest"),
    "round_up": _one_expr("round up to"),
    "round_down": _one_expr("round down to"),
    # territory plans
    "territory": lambda p, name, *holders: f"territory {name}",
    "territory_owner": _holder("owner"),
    "territory_overlay": _holder("overlay"),
    "assign_named": _assign_named,
    "assign_rule": lambda p, where, territory, priority: (
        f"assign accounts where {p.expr(where)} to {territory} priority {int(priority)}"
    ),
    "move": lambda p, account, territory, on: f"move account {account} to {territory} on {on}",
    "tolerance": lambda p, name, value: f"tolerance {name} {p.expr(value)}",
    # plan tests
    "plan_test": lambda p, name, *rows: f"test {name}",
    "given": _test_row("given"),
    "expect": _test_row("expect"),
}


# ---------------------------------------------------------------- aligned tables


def _columns(rows: list[list[str]]) -> list[str]:
    """Left-align every column but the last; a column empty in every row is dropped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False) if width] + [row[-1]]
        lines.append(" ".join(cells))
    return lines


def _bands(p: _Printer, bands: list[Tree]) -> list[str]:
    rows = []
    for band in bands:
        lower, *upper, rate = band.children
        rows.append([p.literal(lower), "..", p.literal(upper[0]) if upper else "", "pays", p.expr(rate)])
    return _columns(rows)


def _curve_points(p: _Printer, points: list[Tree]) -> list[str]:
    return _columns([[p.literal(x), "pays", p.literal(y)] for x, y in (point.children for point in points)])


ALIGNED_BLOCKS: dict[str, Callable[[_Printer, list[Tree]], list[str]]] = {
    "tiers": _bands,
    "curve": _curve_points,
}


# ---------------------------------------------------------------- comments and blank lines

# Statements set apart by a blank line from their neighbours in a plan.
SPACED_IN_PLAN = {"component", "plan_test"}


def _needs_blank(previous: _Line | None, line: _Line) -> bool:
    if previous is None:
        return False
    if line.depth == 0:  # top level: everything but a run of measures
        return not (previous.kind == line.kind == "measure_def")
    return previous.kind in SPACED_IN_PLAN or line.kind in SPACED_IN_PLAN


def _weave(statements: list[_Line], source: _Source) -> list[str]:
    """The output lines: each statement, with the source's comments and blank lines between."""
    out: list[str] = []
    previous: _Line | None = None  # the previous statement line
    siblings: dict[int, _Line] = {}  # the last statement seen at each depth, in the open blocks
    indents: dict[int, int] = {}  # source indentation of each open depth
    for line in [*statements, None]:
        start = previous.source_line + 1 if previous else 1
        end = line.source_line if line else len(source.lines) + 1
        gap = range(start, end)
        depth = line.depth if line else 0
        sibling = siblings.get(depth) if previous and line and depth <= previous.depth else None
        out.extend(
            _gap_lines(gap, source, previous, line, indents, forced=line is not None and _needs_blank(sibling, line))
        )
        if line is None:
            break
        if previous and line.source_line <= previous.source_line:
            raise RuntimeError(f"two statements on line {line.source_line}; revplan fmt cannot lay them out")
        for deeper in [d for d in siblings if d > depth]:
            del siblings[deeper]
        siblings[depth] = line
        indents[depth] = source.indent(line.source_line)
        out.append(INDENT * depth + line.text + _trailing(source.comment(line.source_line)))
        previous = line
    return out


def _trailing(comment: str | None) -> str:
    return TRAILING_COMMENT_GAP + comment if comment else ""


def _gap_lines(
    gap: range, source: _Source, previous: _Line | None, line: _Line | None, indents: dict[int, int], forced: bool
) -> list[str]:
    """Comment and blank lines between two statements, re-indented, blank runs collapsed."""
    next_depth = line.depth if line else 0
    # (depth, text) for a comment, None for a blank line.
    items: list[tuple[int, str] | None] = []
    ceiling = _comment_ceiling(previous, line)
    for number in gap:
        if source.is_blank(number):
            items.append(None)
            continue
        comment = source.comment(number)
        if comment is None or source.code(number).strip():
            raise RuntimeError(f"line {number} is not a statement, a comment or blank; revplan fmt cannot lay it out")
        depth = _comment_depth(source.indent(number), next_depth, ceiling, indents)
        ceiling = depth  # once out of a block, a later comment cannot go back in
        items.append((depth, comment))
    # Comments deeper than the next statement close the previous block; the
    # blank line that separates the next statement goes after them.
    split = max((i + 1 for i, item in enumerate(items) if item and item[0] > next_depth), default=0)
    head, tail = items[:split], items[split:]
    if forced:
        tail.insert(0, None)
    items = head + tail
    if previous is None or (line is not None and line.depth > previous.depth):
        items = _drop_leading_blanks(items)  # start of the file or of a block
    if line is None:
        items = _drop_leading_blanks(items[::-1])[::-1]  # end of the file
    rendered, last_blank = [], False
    for item in items:
        if item is None:
            if not last_blank:
                rendered.append("")
            last_blank = True
        else:
            depth, text = item
            rendered.append(INDENT * depth + text)
            last_blank = False
    return rendered


def _comment_ceiling(previous: _Line | None, line: _Line | None) -> int:
    """The deepest a comment in the gap may go: inside the blocks the previous statement closes."""
    if previous is None:
        return 0
    if line is not None and line.depth > previous.depth:
        return line.depth  # a header, then its first statement: the comment is in the block
    return previous.depth


def _comment_depth(indent: int, next_depth: int, ceiling: int, indents: dict[int, int]) -> int:
    """The deepest open block, no shallower than the next statement, that the comment's indentation reaches."""
    for depth in range(ceiling, next_depth, -1):
        if indents.get(depth, 0) <= indent:
            return depth
    return next_depth


def _drop_leading_blanks(items: list) -> list:
    while items and items[0] is None:
        items = items[1:]
    return items
