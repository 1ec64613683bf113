"""Stage 3: semantic checks (`check(files, schema, sources) -> [Diagnostic]`).

In: the IR of every file of a project (shared measures and plans of all
files see each other), the entity schema (`dsl/schema.py` plus revplan.toml
fields) and, optionally, the source texts (to point carets at single words).
Out: diagnostics. Checks never raise: `RULES` is a tuple of small functions
`rule(context) -> Iterable[Diagnostic]`, and the driver turns a crash inside
one rule into an internal-error diagnostic (RP299) while the others still run.

Codes (see the table in dsl/README.md):
  RP201-RP217  names and units: unknown measures, entities and fields, unit
               errors, wrong kinds of values, currencies, bases, attainment
  RP220-RP223  plan tests: given tables and fields, value types, expectations
  RP301-RP306  tiers, curves, caps
  RP310-RP317  plans of the project: versions, overlapping comp plans, quota sources, the year
  RP320-RP328  quota plans: phasing, allocation, weights, overrides, the year
  RP330-RP332  territory plans: overlapping rules, unknown and duplicate territories
  RP340-RP348  warnings: dates outside a plan, missing territory plans, negations that leave out nulls,
               gaps between versions, part-periods without proration, a version starting within a year,
               a draw for some periods in two versions, components paid on payment or clawed back do not follow,
               a roll-up beside overlay credit
  RP299        a bug in a check (not in the plan)

>>> from dsl.parse import parse
>>> from dsl.resolve import resolve
>>> text = '''revplan 1
... comp plan "P" version 1
...   effective 2027-01-01 to 2027-12-31
...   period quarter
...   currency USD
...   owners sales "@s" finance "@f"
...   component "C" on bokings
...     rate 10%
... '''
>>> plan_file = resolve(parse(text, "p.plan")).plan_file
>>> [(d.code, d.message) for d in check([plan_file], sources={"p.plan": text})]
[('RP201', "unknown measure 'bokings'")]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal

from dsl import ir
from dsl.diagnostics import Diagnostic, Severity, Span, did_you_mean, too_deeply_nested
from dsl.disjoint import can_overlap
from dsl.infer import AMOUNTS, BUILTINS, MEASURE, MeasureScope, Place, Type, Typer, literal_value, show, words_or
from dsl.resolve import FIRST_PLAN_YEAR, LAST_PLAN_YEAR, MAX_PLAN_YEARS
from dsl.schema import SCHEMA, FieldType, Schema

Rule = Callable[["Context"], Iterable[Diagnostic]]


def check(
    files: Iterable[ir.PlanFile], schema: Schema = SCHEMA, sources: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    """Every semantic problem of a project; never raises."""
    try:
        context = Context.build(tuple(files), schema, sources)
    except Exception as error:  # a bug here must still leave the user a diagnostic
        return [_internal_error("preparing the checks", error)]
    diagnostics: list[Diagnostic] = []
    for rule in RULES:
        try:
            diagnostics.extend(rule(context))
        except Exception as error:  # one broken rule must not hide what the others find
            diagnostics.append(_internal_error(rule.__name__, error))
    return list(dict.fromkeys(diagnostics))


def _internal_error(where: str, error: Exception) -> Diagnostic:
    if isinstance(error, RecursionError):
        return too_deeply_nested()
    return Diagnostic(
        code="RP299",
        message=f"internal error in the check '{where}': {type(error).__name__}: {error}",
        hints=(
            "this is a bug in revplan, not in your plans; the other checks ran. "
            "Please report it with the plan that triggers it",
        ),
    )


# ---------------------------------------------------------------- context


@dataclasses.dataclass
class Context:
    """What every rule reads: the project's plans, its measures in scope, a span locator."""

    files: tuple[ir.PlanFile, ...]
    schema: Schema
    locate: Locator
    shared: MeasureScope  # the shared measures of every file
    _scopes: dict[int, MeasureScope] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, files: tuple[ir.PlanFile, ...], schema: Schema, sources: Mapping[str, str] | None) -> Context:
        shared = MeasureScope((m for f in files for m in f.measures), schema)
        return cls(files, schema, Locator(sources or {}), shared)

    @property
    def shared_measures(self) -> list[ir.Measure]:
        return [m for f in self.files for m in f.measures]

    @property
    def plans(self) -> list[ir.CompPlan | ir.QuotaPlan | ir.TerritoryPlan]:
        return [plan for f in self.files for plan in f.plans]

    def plans_of(self, kind: type) -> list:
        return [plan for plan in self.plans if isinstance(plan, kind)]

    def scope(self, plan: ir.PlanBase) -> MeasureScope:
        """The plan's own measures, then the shared ones."""
        if id(plan) not in self._scopes:
            self._scopes[id(plan)] = MeasureScope(plan.measures, self.schema, parent=self.shared)
        return self._scopes[id(plan)]

    def typer(self, plan: ir.PlanBase, report: list[Diagnostic] | None = None) -> Typer:
        return Typer(self.schema, self.scope(plan), plan.currency, report)


class Locator:
    """Narrows spans to the words a diagnostic is about, using the source text when it is at hand.

    The IR keeps some names as plain strings (a component's base, the measure
    tiers run on); their diagnostics point into the statement's first line.
    Without source text, a span covers the rest of the statement's line.
    """

    def __init__(self, sources: Mapping[str, str]):
        self.sources = sources
        self._lines: dict[str, list[str]] = {}

    def _line(self, file: str, number: int) -> str | None:
        if file not in self._lines:
            text = self.sources.get(file)
            # split on "\n" only, as Lark counts lines
            self._lines[file] = [line.rstrip("\r") for line in text.split("\n")] if text is not None else []
        lines = self._lines[file]
        return lines[number - 1] if 1 <= number <= len(lines) else None

    def statement(self, span: Span | None) -> Span | None:
        """The first line of a statement, without its comment."""
        if span is None:
            return None
        line = self._line(span.file, span.line)
        if line is None:
            return Span(file=span.file, line=span.line, column=span.column, end_line=span.line, end_column=span.column)
        end = len(_code_mask(line).rstrip()) + 1
        return _on_line(span, span.column, max(end, span.column + 1))

    def word(self, span: Span | None, word: str, after: str = "") -> Span | None:
        """A whole word (a name, a date) in the statement's first line, outside strings and comments,
        optionally right after a keyword (`on bookings`)."""
        lead = rf"\b{after}\s+" if after else r"(?<![\w.])"
        pattern = re.compile(rf"{lead}({re.escape(word)})(?![\w])")
        return self._search(span, pattern, masked=True)

    def quoted(self, span: Span | None, text: str, after: str = "") -> Span | None:
        """A quoted string (`"Strategic"`), optionally right after a keyword (`to "Strategic"`)."""
        lead = rf"\b{after}\s+" if after else ""
        pattern = re.compile(rf'{lead}("{re.escape(text)}")')
        return self._search(span, pattern, masked=False)

    def line_with(self, span: Span | None, pattern: str) -> Span | None:
        """Group 1 of the first line within the span that matches (e.g. the `attainment =` line)."""
        if span is None:
            return None
        regex = re.compile(pattern)
        for number in range(span.line, span.end_line + 1):
            line = self._line(span.file, number)
            match = regex.search(_code_mask(line)) if line is not None else None
            if match:
                return Span(
                    file=span.file, line=number, column=match.start(1) + 1, end_line=number, end_column=match.end(1) + 1
                )
        return self.statement(span)

    def _search(self, span: Span | None, pattern: re.Pattern, masked: bool) -> Span | None:
        if span is None:
            return None
        line = self._line(span.file, span.line)
        if line is None:
            return self.statement(span)
        haystack = _code_mask(line) if masked else line
        match = pattern.search(haystack, span.column - 1)
        if match is None:
            return self.statement(span)
        group = 1 if pattern.groups else 0
        return _on_line(span, match.start(group) + 1, match.end(group) + 1)


def _on_line(span: Span, column: int, end_column: int) -> Span:
    return Span(file=span.file, line=span.line, column=column, end_line=span.line, end_column=end_column)


def _code_mask(line: str) -> str:
    """The line with string contents masked (not word characters) and the comment cut off."""
    out = []
    in_string = escaped = False
    for char in line:
        if in_string:
            out.append("\x01")
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append("\x01")
        elif char == "#":
            break
        else:
            out.append(char)
    return "".join(out)


def _join(first: Span | None, last: Span | None) -> Span | None:
    """From the start of one span to the end of another (on one line: a precise caret)."""
    if first is None or last is None:
        return first or last
    return Span(
        file=first.file, line=first.line, column=first.column, end_line=last.end_line, end_column=last.end_column
    )


def _at(span: Span | None) -> str:
    return f"{span.file}:{span.line}" if span else "another file"


def _error(code: str, message: str, span: Span | None, *hints: str) -> Diagnostic:
    return Diagnostic(code=code, message=message, span=span, hints=tuple(h for h in hints if h))


def _warning(code: str, message: str, span: Span | None, *hints: str) -> Diagnostic:
    return Diagnostic(
        code=code, message=message, span=span, severity=Severity.WARNING, hints=tuple(h for h in hints if h)
    )


# ---------------------------------------------------------------- expression slots
# Every place in a plan that holds an expression: what it may refer to and
# which types it accepts. `check_expressions` types them all.


@dataclasses.dataclass(frozen=True)
class Slot:
    expr: ir.Expr
    place: Place
    allowed: tuple[Type, ...]  # () : any type
    what: str  # for "the bonus amount must be money, not a percentage"
    hint: str = ""


# What a slot accepts.
CONDITION, MONEY, PERCENT, NUMBER = (Type.BOOL,), (Type.MONEY,), (Type.PERCENT,), (Type.NUMBER,)
FACTOR = (Type.NUMBER, Type.PERCENT)
ELIGIBILITY = Place("'applies to'", entities=frozenset({"rep"}))
DEAL_CONDITION = Place("a deal condition", entities=frozenset({"deal"}))
TERRITORY_RULE = Place("a territory rule", entities=frozenset({"account"}))


def _per_period(what: str) -> Place:
    return Place(what, names=True)


def _fixed(what: str) -> Place:
    return Place(what)


def measure_slots(measure: ir.Measure) -> Iterator[Slot]:
    yield Slot(
        measure.expr, MEASURE, AMOUNTS, f"measure '{measure.name}'", "a measure is an amount, a count or a percentage"
    )
    entities = frozenset(a.entity for a in walk(measure.expr) if isinstance(a, ir.Aggregate))
    if measure.where is not None and entities:  # without aggregates: RP209
        where = f"the where of measure '{measure.name}'"
        yield Slot(measure.where, Place(where, entities=entities), CONDITION, where)


def plan_slots(plan: ir.PlanBase, scope: MeasureScope) -> Iterator[Slot]:
    if plan.eligibility is not None:
        yield Slot(plan.eligibility, ELIGIBILITY, CONDITION, "'applies to'")
    for measure in plan.measures:
        yield from measure_slots(measure)
    yield from _KIND_SLOTS[plan.kind](plan, scope)


def _comp_slots(plan: ir.CompPlan, scope: MeasureScope) -> Iterator[Slot]:
    if plan.draw is not None:
        yield Slot(plan.draw.amount, _fixed("the draw"), MONEY, "the draw")
    for component in plan.components:
        yield from _payout_slots(component.payout, scope)
        for multiplier in component.deal_multipliers:
            yield Slot(multiplier.factor, _fixed("a multiplier"), FACTOR, "a multiplier")
            yield Slot(multiplier.where, DEAL_CONDITION, CONDITION, "a multiplier's where")
        for multiplier in component.measure_multipliers:
            yield Slot(multiplier.factor, _fixed("a multiplier"), FACTOR, "a multiplier")
            yield Slot(multiplier.when, _per_period("a multiplier's condition"), CONDITION, "a multiplier's when")
        for gate in component.gates:
            yield Slot(gate.condition, _per_period("a gate"), CONDITION, "a gate")
        for cap in component.caps:
            if cap.amount is not None:
                yield Slot(
                    cap.amount,
                    _fixed("a cap"),
                    MONEY,
                    "a cap",
                    "write an amount (40,000 USD) or a multiple (2 x target_incentive)",
                )


def _payout_slots(payout: ir.Payout, scope: MeasureScope) -> Iterator[Slot]:
    if isinstance(payout, ir.FlatRate):
        yield Slot(payout.rate, _per_period("the rate"), AMOUNTS, "the rate")
    elif isinstance(payout, ir.Tiers):
        bound = _tier_bound_types(payout.on, scope)
        hint = (
            "bands on attainment are percentages (50% .. 100%); "
            "bands on a money measure are money (0 USD .. 50,000 USD)"
        )
        for band in payout.bands:
            for value in (band.lower, band.upper):
                if value is not None:
                    yield Slot(value, _fixed("a tier bound"), bound, f"a tier bound on {payout.on}", hint)
            yield Slot(band.rate, _per_period("a tier rate"), AMOUNTS, "a tier rate")
    elif isinstance(payout, ir.Curve):
        bound = _tier_bound_types(payout.on, scope)
        for point in payout.points:
            yield Slot(point.x, _fixed("a curve point"), bound, f"a curve point on {payout.on}")
            yield Slot(
                point.y, _fixed("a curve point"), PERCENT, f"the payout of a curve point (a share of {payout.of})"
            )
    elif isinstance(payout, ir.Bonus):
        yield Slot(payout.amount, _per_period("the bonus amount"), MONEY, "the bonus amount")
        yield Slot(payout.when, _per_period("the bonus condition"), CONDITION, "the bonus condition")
    elif isinstance(payout, ir.Spiff):
        yield Slot(payout.amount, _fixed("the SPIFF amount"), MONEY, "the SPIFF amount")
        yield Slot(payout.where, DEAL_CONDITION, CONDITION, "the SPIFF's where")
    elif isinstance(payout, ir.Mbo):
        yield Slot(payout.amount, _fixed("the MBO amount"), MONEY, "the MBO amount")


def _tier_bound_types(on: str, scope: MeasureScope) -> tuple[Type, ...]:
    found = scope.type_of(on)
    return (found,) if found in AMOUNTS else ()


def _quota_slots(plan: ir.QuotaPlan, scope: MeasureScope) -> Iterator[Slot]:
    if plan.target is not None:
        yield Slot(plan.target, _fixed("the target"), MONEY, "the target")
    if plan.over_assign is not None:
        yield Slot(plan.over_assign, _fixed("over_assign"), PERCENT, "over_assign", "write a percentage: 10%")
    for term in plan.allocation:
        if term.share is not None:
            yield Slot(
                term.share, _fixed("an allocation share"), PERCENT, "an allocation share", "write a percentage: 60%"
            )
    for weight in plan.weights:
        yield Slot(weight.value, _fixed("a weight"), NUMBER, "a weight", "write a plain number: 1.2")
    for share in plan.phasing:
        yield Slot(share, _fixed("a phasing share"), PERCENT, "a phasing share", "write a percentage: 25%")
    for step in plan.ramp:
        yield Slot(step, _fixed("a ramp step"), PERCENT, "a ramp step", "write a percentage of quota: 50%")
    for override in plan.overrides:
        yield Slot(override.amount, _fixed("an override"), MONEY, "an override")
    if plan.rounding is not None:
        yield Slot(plan.rounding.step, _fixed("the rounding step"), MONEY, "the rounding step")


def _territory_slots(plan: ir.TerritoryPlan, scope: MeasureScope) -> Iterator[Slot]:
    for rule in plan.rules:
        if rule.where is not None:
            yield Slot(rule.where, TERRITORY_RULE, CONDITION, "a territory rule")
    for tolerance in plan.tolerances:
        allowed = NUMBER if tolerance.name == "max_min_ratio" else PERCENT
        hint = (
            "max_min_ratio is a plain number (3)" if tolerance.name == "max_min_ratio" else "cv is a percentage (25%)"
        )
        yield Slot(tolerance.value, _fixed("a tolerance"), allowed, f"tolerance {tolerance.name}", hint)


_KIND_SLOTS = {"comp": _comp_slots, "quota": _quota_slots, "territory": _territory_slots}

_EXPECTED_HINTS = {
    Type.MONEY: "write money with its currency: 5,000 USD",
    Type.PERCENT: "write a percentage: 10%",
    Type.NUMBER: "write a plain number: 1.5",
    Type.BOOL: "a condition compares something, e.g. attainment >= 50%",
}


def walk(expr: ir.Node) -> Iterator[ir.Node]:
    """An expression and every expression inside it."""
    yield expr
    for name in type(expr).model_fields:
        value = getattr(expr, name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, ir.Node):
                yield from walk(child)


def is_fixed(expr: ir.Node) -> bool:
    """A value the same for every rep and period (literals and arithmetic on them): a fixed amount, which
    `prorate by active_days` scales (the calculators' `per_period`); an amount of quota or TI scales with them."""
    return not any(isinstance(n, (ir.FieldRef, ir.NameRef, ir.Aggregate)) for n in walk(expr))


# ---------------------------------------------------------------- rules: names and units


def check_expressions(ctx: Context) -> Iterator[Diagnostic]:
    """Names, fields and units of every expression (RP201-RP214)."""
    for measure in ctx.shared_measures:
        report: list[Diagnostic] = []
        typer = Typer(ctx.schema, ctx.shared, None, report)
        for slot in measure_slots(measure):
            _type_slot(typer, slot, report)
        yield from report
    for plan in ctx.plans:
        report = []
        typer = ctx.typer(plan, report)
        for slot in plan_slots(plan, ctx.scope(plan)):
            _type_slot(typer, slot, report)
        yield from report


# Money keeps 16 digits before the point (DECIMAL(18,2)); a literal past that cannot be computed exactly.
LARGEST_LITERAL = Decimal(10) ** 16
# Characters a plan's text never means but a copy from a document or chat brings along: format characters
# (zero-width space, joiners, byte order mark, direction overrides), controls and non-breaking spaces.
# "closed\u200bwon" matches no deal.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00a0\u00ad\u200b-\u200f\u202a-\u202f\u2060-\u2064\ufeff]")


def check_literal_values(ctx: Context) -> Iterator[Diagnostic]:
    """Values no plan means: a negative amount, rate or factor where a plan sets pay (RP307), a number too
    large to compute exactly (RP308), money with a fraction of a cent (RP316), text holding an invisible character
    (RP218), division by zero (RP219)."""
    for plan in ctx.plans:
        for slot in plan_slots(plan, ctx.scope(plan)):
            parameter = slot.allowed != CONDITION and slot.place is not MEASURE  # a measure may be negative
            if parameter and (value := _literal_number(slot.expr)) is not None and value < 0:
                yield _error("RP307", f"{slot.what} is negative", slot.expr.span,
                             "it is never negative: a clawback takes pay back, a lower rate pays less")
            elif slot.what == "the rounding step" and _literal_number(slot.expr) == 0:  # audit: a traceback
                yield _error("RP307", "the rounding step is 0", slot.expr.span, "round to a step above 0: 1,000 USD")
            for node in walk(slot.expr):
                yield from _literal_problems(node)
        clawback = getattr(plan, "clawback", None)
        if clawback is not None and clawback.within_days > LONGEST_DURATION_DAYS:  # a number, not a duration node
            yield _error("RP308", f"a clawback window of {clawback.within_days:,} days is too large", clawback.span,
                         f"a window spans at most {LONGEST_DURATION_DAYS:,} days (about 1,100 years: the plans' dates)")
    for measure in ctx.shared_measures:  # outside any plan, the same literals (audit: they went unchecked)
        for part in (measure.expr, measure.where):
            for node in walk(part) if part is not None else ():
                yield from _literal_problems(node)


def _literal_number(node: ir.Node) -> Decimal | None:
    if isinstance(node, ir.Negate):
        value = _literal_number(node.operand)
        return -value if value is not None else None
    if isinstance(node, ir.Money):
        return node.amount
    if isinstance(node, (ir.Number, ir.Percent)):
        return node.value
    return None


CENT = Decimal("0.01")
LONGEST_DURATION_DAYS = 400_000  # from 1900-01-01 past 2999-12-31: no date of a plan or its data is further


def _literal_problems(node: ir.Node) -> Iterator[Diagnostic]:
    value = _literal_number(node)
    if value is not None and abs(value) >= LARGEST_LITERAL:
        yield _error("RP308", f"{show(node)} is too large", node.span,
                     "amounts and numbers keep at most 16 digits before the decimal point")
    if isinstance(node, ir.Duration) and node.days > LONGEST_DURATION_DAYS:  # audit: a traceback, engines apart
        yield _error("RP308", f"a duration of {node.days:,} days is too large", node.span,
                     f"a duration spans at most {LONGEST_DURATION_DAYS:,} days (about 1,100 years: the plans' dates)")
    if isinstance(node, ir.Money) and node.amount != node.amount.quantize(CENT):
        yield _error("RP316", f"{show(node)} has a fraction of a cent", node.span,
                     "money is paid in cents: write "
                     + show(node.model_copy(update={"amount": node.amount.quantize(CENT, ROUND_HALF_UP)})))
    if isinstance(node, ir.Binary) and node.op == "/" and _literal_number(node.right) == 0:
        yield _error("RP219", "division by zero", node.span, "divide by a measure or a value that is not 0")
    if isinstance(node, ir.Text) and (found := _INVISIBLE.search(node.value)):
        character = found.group()
        name = unicodedata.name(character, "a control character")
        yield _error("RP218", f"the text \"{node.value}\" holds an invisible character, U+{ord(character):04X} "
                              f"({name})", node.span,
                     "retype the text: a copy from a document or chat brings such characters along, and the text "
                     "then matches no value in the data")


_EXAMPLES = {MONEY: "5,000 USD", PERCENT: "10%", NUMBER: "1.5", FACTOR: "1.5 or 150%"}  # of a fixed value


def _type_slot(typer: Typer, slot: Slot, report: list[Diagnostic]) -> None:
    example = _EXAMPLES.get(slot.allowed)
    found = typer.infer(slot.expr, dataclasses.replace(slot.place, example=example) if example else slot.place)
    if not slot.allowed or found is Type.UNKNOWN or found in slot.allowed:
        return
    expected = words_or(slot.allowed)
    report.append(
        _error(
            "RP213",
            f"{slot.what} must be {expected}, not {found.words}",
            slot.expr.span,
            slot.hint or _EXPECTED_HINTS.get(slot.allowed[0], ""),
        )
    )


def check_measure_definitions(ctx: Context) -> Iterator[Diagnostic]:
    """Measures defined twice, named like a built-in, or filtering nothing (RP206, RP209)."""
    seen: dict[str, ir.Measure] = {}
    for measure in ctx.shared_measures:
        yield from _measure_name_problems(ctx, measure, seen, shared=None)
        seen.setdefault(measure.name, measure)
    for plan in ctx.plans:
        own: dict[str, ir.Measure] = {}
        for measure in plan.measures:
            yield from _measure_name_problems(ctx, measure, own, shared=seen)
            own.setdefault(measure.name, measure)
    for measure in [*ctx.shared_measures, *(m for plan in ctx.plans for m in plan.measures)]:
        if measure.where is not None and not any(isinstance(n, ir.Aggregate) for n in walk(measure.expr)):
            yield _error(
                "RP209",
                f"the where of measure '{measure.name}' filters nothing: "
                "the measure has no sum(...) or count(...) of its own",
                measure.where.span,
                "put the condition on the measures it is built from, or define it with sum(...) or count(...)",
            )


def _measure_name_problems(
    ctx: Context, measure: ir.Measure, seen: dict[str, ir.Measure], shared: dict[str, ir.Measure] | None
) -> Iterator[Diagnostic]:
    span = ctx.locate.word(measure.span, measure.name)
    if measure.name in BUILTINS:
        yield _error(
            "RP206",
            f"'{measure.name}' is a built-in name; a measure cannot take it",
            span,
            f"choose another name, e.g. my_{measure.name}",
        )
    elif measure.name in seen:
        yield _error(
            "RP206",
            f"measure '{measure.name}' is defined twice",
            span,
            f"the first definition is at {_at(seen[measure.name].span)}; remove one or rename it",
        )
    elif shared is not None and measure.name in shared:
        yield _error(
            "RP206",
            f"measure '{measure.name}' is already a shared measure",
            span,
            f"the shared one is at {_at(shared[measure.name].span)}; use it, or give this one another name",
        )


def check_measure_cycles(ctx: Context) -> Iterator[Diagnostic]:
    """Measures defined in terms of each other (RP207)."""
    shared_graph = {m.name: _names_in(m) & set(ctx.shared.measures) for m in ctx.shared_measures}
    spans = {m.name: ctx.locate.word(m.span, m.name) for m in ctx.shared_measures}
    yield from _cycle_errors(shared_graph, spans)
    for plan in ctx.plans:
        local = set(ctx.scope(plan).measures) | {"attainment"}
        graph = {m.name: _names_in(m) & local for m in plan.measures}
        spans = {m.name: ctx.locate.word(m.span, m.name) for m in plan.measures}
        if isinstance(plan, ir.CompPlan) and plan.attainment in graph:
            graph["attainment"] = {plan.attainment}
            spans["attainment"] = ctx.locate.line_with(plan.span, r"^\s*(attainment)\s*=")
        yield from _cycle_errors(graph, spans)


def _names_in(measure: ir.Measure) -> set[str]:
    nodes = itertools.chain(walk(measure.expr), walk(measure.where) if measure.where else ())
    return {n.name for n in nodes if isinstance(n, ir.NameRef)}


def _cycle_errors(graph: dict[str, set[str]], spans: dict[str, Span | None]) -> Iterator[Diagnostic]:
    reported: set[frozenset[str]] = set()
    for start in graph:
        cycle = _cycle_from(start, graph)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        if len(cycle) == 1:
            message = f"measure '{start}' is defined in terms of itself"
        else:
            names = f"{', '.join(cycle[:-1])} and {cycle[-1]}"
            message = f"measures {names} are defined in terms of each other: {' -> '.join([*cycle, cycle[0]])}"
        yield _error("RP207", message, spans.get(start), "define one of them directly, with sum(...) or count(...)")


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    stack = [(start, [start])]
    visited: set[str] = set()
    while stack:
        name, path = stack.pop()
        for following in sorted(graph.get(name, ())):
            if following == start:
                return path
            if following not in visited:
                visited.add(following)
                stack.append((following, [*path, following]))
    return None


def check_attainment(ctx: Context) -> Iterator[Diagnostic]:
    """What attainment is measured on: a money measure, and stated when used (RP201, RP208, RP215)."""
    for plan in ctx.plans_of(ir.CompPlan):
        scope = ctx.scope(plan)
        if plan.attainment is None:
            use = _first_attainment_use(ctx, plan)
            if use is not None:
                yield _error(
                    "RP208",
                    "this plan uses attainment but does not say what attainment is measured on",
                    use,
                    "add a line to the plan like: attainment = bookings / quota",
                )
            continue
        span = ctx.locate.line_with(plan.span, r"^\s*attainment\s*=\s*([a-z_][a-z0-9_]*)")
        found = scope.type_of(plan.attainment)
        if found is None:
            yield _error(
                "RP201",
                f"unknown measure '{plan.attainment}'",
                span,
                *did_you_mean(plan.attainment, scope.names()),
                f"define it: measure {plan.attainment} = sum(deal.amount) where ...",
            )
        elif plan.attainment in BUILTINS:
            yield _error(
                "RP215",
                f"attainment is measured on a measure of credited bookings, not on '{plan.attainment}'",
                span,
                "write e.g.: attainment = bookings / quota",
            )
        elif found not in (Type.MONEY, Type.UNKNOWN):
            yield _error(
                "RP215",
                f"attainment is measured on {plan.attainment}, which is {found.words}; quota is money",
                span,
                "attainment divides a money measure by quota, e.g. attainment = bookings / quota",
            )


def _first_attainment_use(ctx: Context, plan: ir.CompPlan) -> Span | None:
    uses = [
        n.span
        for slot in plan_slots(plan, ctx.scope(plan))
        for n in walk(slot.expr)
        if isinstance(n, ir.NameRef) and n.name == "attainment" and n.span is not None
    ]
    for component in plan.components:
        payout = component.payout
        if isinstance(payout, (ir.Tiers, ir.Curve)) and payout.on == "attainment":
            uses.append(ctx.locate.word(payout.span, "attainment", after="on"))
    uses = [span for span in uses if span is not None]
    return min(uses, key=lambda s: (s.line, s.column)) if uses else None


def check_component_bases(ctx: Context) -> Iterator[Diagnostic]:
    """What a component pays on, and whether its rate fits it (RP201, RP213, RP215, RP216)."""
    for plan in ctx.plans_of(ir.CompPlan):
        scope, typer = ctx.scope(plan), ctx.typer(plan)
        for component in plan.components:
            yield from _base_problems(ctx, component, scope, typer)


def _base_problems(ctx: Context, component: ir.Component, scope: MeasureScope, typer: Typer) -> Iterator[Diagnostic]:
    payout = component.payout
    pays_on_base = isinstance(payout, (ir.FlatRate, ir.Tiers))
    if component.base is None:
        if pays_on_base:
            yield _error(
                "RP216",
                f'component "{component.name}" pays a rate but does not say on what',
                ctx.locate.statement(component.span),
                f'name the measure it pays on: component "{component.name}" on bookings',
            )
        return
    span = ctx.locate.word(component.span, component.base, after="on")
    base_type = scope.type_of(component.base)
    if base_type is None:
        yield _error(
            "RP201",
            f"unknown measure '{component.base}'",
            span,
            *did_you_mean(component.base, scope.names()),
            f"define it: measure {component.base} = sum(deal.amount) where ...",
        )
        return
    if component.base in BUILTINS:
        yield _error(
            "RP215",
            f"a component pays on a measure of credited deals, not on '{component.base}'",
            span,
            f'e.g. component "{component.name}" on bookings',
        )
        return
    if not pays_on_base or base_type is Type.UNKNOWN:
        return
    if base_type not in (Type.MONEY, Type.NUMBER):
        yield _error(
            "RP215",
            f'component "{component.name}" pays on {component.base}, which is {base_type.words}; '
            "a commission base must be money (or a count, paid per unit)",
            span,
            "base the component on a money measure such as bookings",
        )
        return
    rates = [payout.rate] if isinstance(payout, ir.FlatRate) else [band.rate for band in payout.bands]
    for rate in rates:
        rate_type = typer.infer(rate, _per_period("the rate"))
        problem = _rate_problem(component, base_type, rate_type, rate.span, span)
        if problem is not None:
            yield problem


def _rate_problem(
    component: ir.Component, base_type: Type, rate_type: Type, rate_span: Span | None, base_span: Span | None
) -> Diagnostic | None:
    if rate_type is Type.UNKNOWN:
        return None
    base = component.base
    if base_type is Type.MONEY and rate_type is not Type.PERCENT:
        return _error(
            "RP213",
            f"the rate on {base} (money) must be a percentage, not {rate_type.words}",
            rate_span,
            "a commission on money is a percentage, e.g. rate 10%; "
            "to pay a fixed amount per unit, base the component on a count such as meetings_held",
        )
    if base_type is Type.NUMBER and rate_type is Type.PERCENT:
        return _error(
            "RP215",
            f'component "{component.name}" pays a percentage of {base}, which is a count, not money',
            base_span,
            "pay an amount per unit (rate 50 USD), or base the component on a money measure such as bookings",
        )
    if base_type is Type.NUMBER and rate_type is not Type.MONEY:
        return _error(
            "RP213",
            f"the rate on {base} (a count) must be money per unit, not {rate_type.words}",
            rate_span,
            "e.g. rate 50 USD: 50 USD for each one counted",
        )
    return None


def check_payout_references(ctx: Context) -> Iterator[Diagnostic]:
    """The names tiers and curves run on, what caps and curves multiply, MBO sources (RP201, RP202, RP213)."""
    for plan in ctx.plans_of(ir.CompPlan):
        scope = ctx.scope(plan)
        for component in plan.components:
            payout = component.payout
            if isinstance(payout, (ir.Tiers, ir.Curve)):
                yield from _runs_on_problems(ctx, scope, payout)
            if isinstance(payout, ir.Curve):
                span = ctx.locate.word(payout.span, payout.of, after="of")
                example = "curve on attainment of target_incentive"
                yield from _money_name_problems(scope, payout.of, span, "a curve pays a share of", example)
            if isinstance(payout, ir.Mbo):
                yield from _mbo_source_problems(ctx, payout)
            for cap in component.caps:
                if cap.of is not None:
                    span = ctx.locate.word(cap.span, cap.of, after="x")
                    yield from _money_name_problems(
                        scope, cap.of, span, "a cap is a multiple of", "cap 2 x target_incentive"
                    )


def _runs_on_problems(ctx: Context, scope: MeasureScope, payout: ir.Tiers | ir.Curve) -> Iterator[Diagnostic]:
    what = "tiers run" if isinstance(payout, ir.Tiers) else "a curve runs"
    span = ctx.locate.word(payout.span, payout.on, after="on")
    if scope.type_of(payout.on) is None:
        yield _error(
            "RP201",
            f"unknown measure '{payout.on}'",
            span,
            *did_you_mean(payout.on, scope.names()),
            f"{what} on attainment or on a measure",
        )
    elif payout.on in BUILTINS and payout.on != "attainment":
        yield _error(
            "RP213", f"{what} on attainment or on a measure, not on {payout.on}", span, "write: ... on attainment"
        )


def _money_name_problems(
    scope: MeasureScope, name: str, span: Span | None, what: str, example: str
) -> Iterator[Diagnostic]:
    found = scope.type_of(name)
    if found is None:
        yield _error(
            "RP201",
            f"unknown measure '{name}'",
            span,
            *did_you_mean(name, scope.names()),
            f"{what} target_incentive, quota or a money measure",
        )
    elif found not in (Type.MONEY, Type.UNKNOWN):
        yield _error(
            "RP213",
            f"{what} money (target_incentive, quota or a money measure), not {name}, which is {found.words}",
            span,
            f"e.g. {example}",
        )


def _mbo_source_problems(ctx: Context, payout: ir.Mbo) -> Iterator[Diagnostic]:
    entity = ctx.schema.entity(payout.source)
    if entity is not None and entity.name == "mbo_score":
        return
    span = ctx.locate.word(payout.span, payout.source, after="from")
    table = ctx.schema.entity("mbo_score").table
    yield _error(
        "RP202",
        f"MBO payouts come from the {table} table, not '{payout.source}'",
        span,
        f"write: mbo 2,000 USD from {table}",
    )


def check_component_names(ctx: Context) -> Iterator[Diagnostic]:
    """Two components of one plan with the same name (RP217): payout lines could not be told apart."""
    for plan in ctx.plans_of(ir.CompPlan):
        seen: dict[str, ir.Component] = {}
        for component in plan.components:
            if component.name in seen:
                yield _error(
                    "RP217",
                    f'component "{component.name}" is defined twice in this plan',
                    ctx.locate.quoted(component.span, component.name),
                    f"the first is at {_at(seen[component.name].span)}; give each component its own name",
                )
            seen.setdefault(component.name, component)


# ---------------------------------------------------------------- rules: plan tests

# The expectations `revplan test` understands, and their fields (runtime/plantest.py KINDS; a test keeps them equal).
EXPECTATION_FIELDS = {
    "payout": (
        "rep",
        "period",
        "component",
        "line_type",
        "plan",
        "version",
        "amount",
        "uncapped",
        "base",
        "deal_count",
        "capped",
        "gated",
        "attainment",
        "quota",
        "target_incentive",
        "rate",
        "proration",
    ),
    "attainment": ("rep", "period", "component", "plan", "value"),
    "quota": ("rep", "period", "plan", "amount"),
    "territory": ("account", "date", "plan", "territory", "owner"),
}

# What a `given` value must be for each field type, and how to write one.
GIVEN_LITERALS = {
    FieldType.STRING: (ir.Text, 'text in double quotes: "closed_won"'),
    FieldType.MONEY: (ir.Money, "money with its currency: 5,000 USD"),
    FieldType.NUMBER: (ir.Number, "a number: 1.10"),
    FieldType.PERCENT: (ir.Percent, "a percentage: 60%"),
    FieldType.INTEGER: (ir.Number, "a whole number: 1,000"),
    FieldType.DATE: (ir.Date, "a date: 2027-01-01"),
    FieldType.BOOL: (ir.Boolean, "true or false"),
}


def _name_span(field_value: ir.FieldValue) -> Span | None:
    """A `name value` pair starts with the name."""
    span = field_value.span
    if span is None:
        return None
    return _on_line(span, span.column, span.column + len(field_value.name))


def _all_tests(ctx: Context) -> Iterator[tuple[ir.PlanBase, ir.PlanTest]]:
    for plan in ctx.plans:
        for test in plan.tests:
            yield plan, test


def check_test_rows(ctx: Context) -> Iterator[Diagnostic]:
    """`given` rows: known tables, known fields, values of the field's type (RP220-RP222)."""
    names = [*ctx.schema.entity_names, *(e.table for e in ctx.schema.entities)]
    for _, test in _all_tests(ctx):
        for row in test.given:
            entity = ctx.schema.entity(row.table)
            if entity is None:
                yield _error(
                    "RP220",
                    f"there is no table called '{row.table}' to give rows for",
                    ctx.locate.word(row.span, row.table),
                    *did_you_mean(row.table, names),
                    f"given rows fill one of: {', '.join(ctx.schema.entity_names)}",
                )
                continue
            for field_value in row.values:
                yield from _given_value_problems(entity, field_value)


def _given_value_problems(entity, field_value: ir.FieldValue) -> Iterator[Diagnostic]:
    field = entity.field(field_value.name)
    if field is None:
        yield _error(
            "RP221",
            f"{entity.name} has no field '{field_value.name}'",
            _name_span(field_value),
            *did_you_mean(field_value.name, entity.field_names),
            f"{entity.name} fields: {', '.join(entity.field_names)}",
        )
        return
    value = field_value.value
    node_type, example = GIVEN_LITERALS[field.type]
    if isinstance(value, ir.Null):
        return
    whole = not isinstance(value, ir.Number) or value.value == value.value.to_integral_value()
    if not isinstance(value, node_type) or (field.type is FieldType.INTEGER and not whole):
        yield _error(
            "RP222",
            f"{entity.name}.{field.name} takes {example.split(':')[0]}, not {show(value)}",
            value.span,
            f"write {example}",
        )


def check_expectations(ctx: Context) -> Iterator[Diagnostic]:
    """`expect` rows: known kinds and fields (RP223)."""
    for _, test in _all_tests(ctx):
        for expectation in test.expect:
            fields = EXPECTATION_FIELDS.get(expectation.what)
            if fields is None:
                yield _error(
                    "RP223",
                    f"unknown expectation '{expectation.what}'",
                    ctx.locate.word(expectation.span, expectation.what),
                    *did_you_mean(expectation.what, EXPECTATION_FIELDS),
                    f"expect one of: {', '.join(EXPECTATION_FIELDS)}",
                )
                continue
            for field_value in expectation.values:
                if field_value.name not in fields:
                    yield _error(
                        "RP223",
                        f"expect {expectation.what} has no field '{field_value.name}'",
                        _name_span(field_value),
                        *did_you_mean(field_value.name, fields),
                        f"expect {expectation.what} fields: {', '.join(fields)}",
                    )


# ---------------------------------------------------------------- rules: tiers, curves, caps


def _comparable(values: list[ir.Node]) -> bool:
    """Literals of one kind, so their values can be ordered."""
    return bool(values) and all(literal_value(v) is not None and type(v) is type(values[0]) for v in values)


def check_tier_bands(ctx: Context) -> Iterator[Diagnostic]:
    """Bands without gaps or overlaps, going up; rates that fall only with a decelerator (RP301-RP304)."""
    for plan in ctx.plans_of(ir.CompPlan):
        for component in plan.components:
            if isinstance(component.payout, ir.Tiers):
                yield from _band_problems(ctx, component.payout)


def _band_problems(ctx: Context, tiers: ir.Tiers) -> Iterator[Diagnostic]:
    problems = list(_band_order_problems(tiers))
    yield from problems
    top = tiers.bands[-1] if tiers.bands else None
    if not problems and top is not None and top.upper is not None:  # a table in order that stops short
        yield _warning(
            "RP309",
            f"nothing is paid above {show(top.upper)} of {tiers.on}: the last band ends there",
            _join(top.lower.span, top.rate.span),
            f"if more should pay, end with an open band: {show(top.lower)} .. pays {show(top.rate)}",
        )


def _band_order_problems(tiers: ir.Tiers) -> Iterator[Diagnostic]:
    bands = tiers.bands
    bounds = [b.lower for b in bands] + [b.upper for b in bands if b.upper is not None]
    if not _comparable(bounds):
        return  # a bound of the wrong unit is reported by check_expressions
    for index, band in enumerate(bands):
        span = _join(band.lower.span, band.rate.span)
        last = index == len(bands) - 1
        reversed_band = band.upper is not None and literal_value(band.upper) <= literal_value(band.lower)
        if band.upper is None and not last:
            yield _error(
                "RP303",
                "only the last band can be open-ended",
                span,
                f"give this band an upper bound, e.g. {show(band.lower)} .. {show(bands[index + 1].lower)}",
            )
        elif reversed_band:
            yield _error(
                "RP303",
                f"this band goes from {show(band.lower)} to {show(band.upper)}: its upper bound must be above its "
                "lower bound",
                span,
                f"write the lower bound first: {show(band.upper)} .. {show(band.lower)}"
                if literal_value(band.upper) != literal_value(band.lower)
                else "a band needs room: raise its upper bound",
            )
        if index > 0 and not reversed_band:
            yield from _neighbour_problems(bands[index - 1], band, span, tiers)


def _neighbour_problems(previous: ir.Band, band: ir.Band, span: Span | None, tiers: ir.Tiers) -> Iterator[Diagnostic]:
    lower, previous_lower = literal_value(band.lower), literal_value(previous.lower)
    if lower <= previous_lower:
        yield _error(
            "RP303",
            f"bands must go up: this band starts at {show(band.lower)}, not above the previous band's "
            f"{show(previous.lower)}",
            span,
            "list the bands from the lowest to the highest",
        )
        return
    if previous.upper is not None:
        previous_upper = literal_value(previous.upper)
        if previous_upper < lower:
            yield _error(
                "RP301",
                f"gap between {show(previous.upper)} and {show(band.lower)}: no band covers it, "
                f"so {tiers.on} in between pays nothing",
                span,
                f"start this band at {show(previous.upper)}, where the previous band ends",
            )
        elif previous_upper > lower:
            yield _error(
                "RP302",
                f"this band overlaps the previous one from {show(band.lower)} to {show(previous.upper)}",
                span,
                "bands include their lower bound and stop just below their upper one: start this band at "
                f"{show(previous.upper)}",
            )
    if not tiers.decelerator and _comparable([previous.rate, band.rate]):
        if literal_value(band.rate) < literal_value(previous.rate):
            yield _warning(
                "RP304",
                f"the rate falls from {show(previous.rate)} to {show(band.rate)} as {tiers.on} rises",
                band.rate.span,
                f"if that is intended, say so: {tiers.mode.value} tiers on {tiers.on} with decelerator",
            )


def check_curve_points(ctx: Context) -> Iterator[Diagnostic]:
    """Curve points in rising order (RP305)."""
    for plan in ctx.plans_of(ir.CompPlan):
        for component in plan.components:
            curve = component.payout
            if not isinstance(curve, ir.Curve) or not _comparable([p.x for p in curve.points]):
                continue
            for previous, point in itertools.pairwise(curve.points):
                if literal_value(point.x) <= literal_value(previous.x):
                    yield _error(
                        "RP305",
                        f"curve points must go up in {curve.on}: {show(point.x)} comes after {show(previous.x)}",
                        _join(point.x.span, point.y.span),
                        "list the points from the lowest to the highest, each once",
                    )


def check_repeated_multipliers(ctx: Context) -> Iterator[Diagnostic]:
    """The same multiplier twice in a component (RP314, warning): the two compound, which a copied line
    does not mean."""
    for plan in ctx.plans_of(ir.CompPlan):
        for component in plan.components:
            for multipliers in (component.deal_multipliers, component.measure_multipliers):
                for index, multiplier in enumerate(multipliers):
                    if multiplier in multipliers[:index]:
                        yield _warning(
                            "RP314",
                            f'component "{component.name}" has this multiplier twice: the two compound',
                            multiplier.span,
                            f"to pay {show(multiplier.factor)} once, delete this line; "
                            "to compound, write the product as one factor",
                        )


def check_caps_against_gates(ctx: Context) -> Iterator[Diagnostic]:
    """A cap below what the component pays as soon as it pays at all (RP306)."""
    for plan in ctx.plans_of(ir.CompPlan):
        for component in plan.components:
            for cap in component.caps:
                problem = _cap_problem(component, cap)
                if problem is not None:
                    message, hint = problem
                    yield _error("RP306", message, ctx.locate.statement(cap.span), hint)


def _cap_problem(component: ir.Component, cap: ir.Cap) -> tuple[str, str] | None:
    """(message, hint) when the cap binds for every rep the component pays at all; comparable cases only."""
    payout = component.payout
    cap_text = f"{_number(cap.multiple)} x {cap.of}" if cap.of else show(cap.amount)
    if isinstance(payout, ir.Bonus) and _same_currency(payout.amount, cap.amount):
        if cap.amount.amount < payout.amount.amount:
            return (
                f"the cap of {cap_text} is below the bonus of {show(payout.amount)}: the bonus is never paid in full",
                "raise the cap or lower the bonus",
            )
    if not _multipliers_never_lower(component) or cap.per is not ir.CapScope.PERIOD:
        return None  # what the component pays at its gate is not known
    if isinstance(payout, ir.Curve) and cap.of == payout.of:
        gate = _gate_threshold(component, payout.on)
        at_gate = _curve_value(payout, gate[1]) if gate else None
        if at_gate is not None and cap.multiple < at_gate:
            return (
                f"at the gate ({payout.on} {gate[0]} {show(gate[1])}) the curve already pays "
                f"{_number(at_gate)} x {payout.of}, above the cap of {cap_text}: "
                "every rep who passes the gate is capped",
                "raise the cap, or lower the gate",
            )
    if isinstance(payout, ir.FlatRate) and isinstance(payout.rate, ir.Percent) and component.base:
        gate = _gate_threshold(component, component.base)
        if gate and _same_currency(gate[1], cap.amount):
            at_gate = ir.Money(amount=payout.rate.value * gate[1].amount, currency=cap.amount.currency)
            if cap.amount.amount < at_gate.amount:
                return (
                    f"at the gate ({component.base} {gate[0]} {show(gate[1])}) this component already pays "
                    f"{show(at_gate)}, above its cap of {cap_text}: every rep who passes the gate is capped",
                    "raise the cap, or lower the gate",
                )
    return None


def _same_currency(a: ir.Expr | None, b: ir.Expr | None) -> bool:
    return isinstance(a, ir.Money) and isinstance(b, ir.Money) and a.currency == b.currency


def _multipliers_never_lower(component: ir.Component) -> bool:
    """Every multiplier a fixed factor of at least 1, so the payout at a gate is at least the plain rate's."""
    factors = [m.factor for m in (*component.deal_multipliers, *component.measure_multipliers)]
    return all(isinstance(f, (ir.Number, ir.Percent)) and f.value >= 1 for f in factors)


def _gate_threshold(component: ir.Component, name: str) -> tuple[str, ir.Expr] | None:
    """The lowest value of `name` a gate lets through: `gate name >= 50%` -> ('>=', 50%)."""
    for gate in component.gates:
        condition = gate.condition
        conjuncts = condition.operands if isinstance(condition, ir.Logical) and condition.op == "and" else (condition,)
        for conjunct in conjuncts:
            if (
                isinstance(conjunct, ir.Compare)
                and conjunct.op in (">=", ">")
                and conjunct.left == ir.NameRef(name=name)
                and isinstance(conjunct.right, (ir.Percent, ir.Money, ir.Number))
            ):
                return conjunct.op, conjunct.right
    return None


def _curve_value(curve: ir.Curve, at: ir.Expr) -> Decimal | None:
    """The curve's payout (a fraction of `of`) at a literal point; flat outside its points."""
    if not _comparable([at, *(p.x for p in curve.points)]) or not _comparable([p.y for p in curve.points]):
        return None
    x = literal_value(at)
    points = [(literal_value(p.x), literal_value(p.y)) for p in curve.points]
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _number(value: Decimal | None) -> str:
    return show(ir.Number(value=value)) if value is not None else "?"


# ---------------------------------------------------------------- rules: plans of the project


def _header(ctx: Context, plan: ir.PlanBase) -> Span | None:
    return ctx.locate.statement(plan.span)


def _overlap(a: ir.PlanBase, b: ir.PlanBase) -> tuple[dt.date, dt.date] | None:
    start, end = max(a.effective_from, b.effective_from), min(a.effective_to, b.effective_to)
    return (start, end) if start <= end else None


def check_plan_versions(ctx: Context) -> Iterator[Diagnostic]:
    """Each plan name and version once; versions of one plan in effect one after another, a comp plan's
    without a gap (RP310, RP311, RP343) and a year's measures not cut in two (RP345)."""
    by_key: dict[tuple[str, int], ir.PlanBase] = {}
    by_name: dict[str, list[ir.PlanBase]] = defaultdict(list)
    for plan in ctx.plans:
        key = (plan.name, plan.version)
        if key in by_key:
            yield _error(
                "RP310",
                f'plan "{plan.name}" version {plan.version} is defined twice',
                _header(ctx, plan),
                f"the other is at {_at(by_key[key].span)}; give the changed plan a new version number",
            )
            continue
        by_key[key] = plan
        by_name[plan.name].append(plan)
    for versions in by_name.values():
        sound = [p for p in versions if _sound_dates(p)]  # RP110, RP111, RP118 say the rest (audit: RP299)
        for a, b in itertools.combinations(sorted(sound, key=lambda p: p.version), 2):
            overlap = _overlap(a, b)
            if overlap is None:
                continue
            day_before = b.effective_from - dt.timedelta(days=1)
            hint = (
                f"a new version takes over on a date: end version {a.version} the day before version {b.version} "
                f"starts (effective {a.effective_from} to {day_before})"
                if a.effective_from <= day_before
                else "give each version its own dates, one after the other"
            )
            yield _error(
                "RP311",
                f'versions {a.version} and {b.version} of "{b.name}" are both in effect '
                f"from {overlap[0]} to {overlap[1]}",
                _header(ctx, b),
                hint,
            )
        yield from _version_boundaries(ctx, versions)


def _version_boundaries(ctx: Context, versions: list[ir.PlanBase]) -> Iterator[Diagnostic]:
    """Where one version of a comp plan hands over to the next: days no version is in effect, when a deal
    closed then is paid by none (RP343); a handover inside a calendar year to a version that measures the
    year, which starts the year again (RP345: a cap per year paid twice in 2027, audit)."""
    ordered = sorted((p for p in versions if isinstance(p, ir.CompPlan) and _sound_dates(p)),
                     key=lambda p: p.effective_from)
    for before, after in itertools.pairwise(ordered):
        first_gap_day = before.effective_to + dt.timedelta(days=1)
        if after.effective_from > first_gap_day:
            last_gap_day = after.effective_from - dt.timedelta(days=1)
            yield _warning(
                "RP343",
                f'no version of "{after.name}" is in effect from {first_gap_day} to {last_gap_day}, between '
                f"version {before.version} and version {after.version}",
                _header(ctx, after),
                "deals closed then are paid by no version of this plan: start version "
                f"{after.version} on {first_gap_day}, or end version {before.version} on {last_gap_day}",
            )
        year = after.effective_from.year
        carried = _by_the_year(before, draws=True)  # what the earlier version also counted by the year
        yearly = [what for what in _by_the_year(after, draws=True) if what in carried]
        if yearly and before.effective_to.year == year:
            yield _warning(
                "RP345",
                f'version {after.version} of "{after.name}" starts on {after.effective_from}, inside {year}, and '
                f"{_listed(yearly)}: it counts its year from that day, without version {before.version}'s "
                f"part of {year}",
                _effective_line(ctx, after),
                "each version measures its own year (year to date, caps per year and draws to recover start "
                f"again): to keep one {year}, change the plan from January 1"
                + (f", or lower version {after.version}'s cap by what version {before.version} pays"
                   if "has a cap per year" in yearly else ""),
            )
        if before.draw is not None and after.draw is not None and after.draw.periods is not None:
            periods = after.draw.periods
            yield _warning(
                "RP346",
                f'version {after.version} of "{after.name}" has a draw for {periods} period{"s" * (periods != 1)}, '
                f"counted from its first day ({after.effective_from}): reps already paid version "
                f"{before.version}'s draw are guaranteed {periods} period{'s' * (periods != 1)} again",
                after.draw.span or _header(ctx, after),
                "each version counts its draw's periods from its own first day: to guarantee each rep once, keep "
                f"the draw in one version, or shorten version {after.version}'s by the periods version "
                f"{before.version} has run",
            )


def check_comp_plan_overlaps(ctx: Context) -> Iterator[Diagnostic]:
    """Two comp plans that could pay the same rep at the same time (RP312).

    Plans overlap when their effective dates do and their `applies to` is the
    same condition, or one of them has none (it applies to every rep).
    """
    plans = ctx.plans_of(ir.CompPlan)
    by_condition: dict[ir.Expr, list[int]] = defaultdict(list)
    everyone = []
    for index, plan in enumerate(plans):
        (everyone if plan.eligibility is None else by_condition[plan.eligibility]).append(index)
    pairs = {pair for group in by_condition.values() for pair in itertools.combinations(group, 2)}
    pairs |= {tuple(sorted((i, j))) for i in everyone for j in range(len(plans)) if i != j}
    for i, j in sorted(pairs):
        first, second = plans[i], plans[j]
        overlap = _overlap(first, second)
        if first.name == second.name or overlap is None:
            continue
        everyone_plan = next((p for p in (first, second) if p.eligibility is None), None)
        if everyone_plan is not None:
            hint = (
                f"\"{everyone_plan.name}\" has no 'applies to' line, so it applies to every rep; "
                'add one, e.g. applies to reps where rep.role = "AE"'
            )
        else:
            hint = (
                "both have the same 'applies to' condition; make the conditions exclusive (e.g. by rep.segment), "
                "or the effective dates not overlap"
            )
        yield _error(
            "RP312",
            f'comp plans "{first.name}" and "{second.name}" can both apply to the same rep from {overlap[0]} to '
            f"{overlap[1]}",
            second.eligibility.span if second.eligibility is not None else _header(ctx, second),
            hint,
        )


def check_quota_sources(ctx: Context) -> Iterator[Diagnostic]:
    """`quota from plan "X"` names a quota plan of the project (RP313)."""
    quota_plans = [p.name for p in ctx.plans_of(ir.QuotaPlan)]
    kinds = {p.name: p.kind for p in ctx.plans}
    for plan in ctx.plans_of(ir.CompPlan):
        name = plan.quota.plan
        if name in quota_plans:
            yield from _quota_period_problems(ctx, plan, [p for p in ctx.plans_of(ir.QuotaPlan) if p.name == name])
        if name is None or name in quota_plans:
            continue
        if name in kinds:
            hint = f'"{name}" is a {kinds[name]} plan; quotas come from a quota plan'
        elif did_you_mean(name, quota_plans):
            hint = ""
        elif quota_plans:
            hint = f"quota plans here: {', '.join(repr(n) for n in quota_plans)}"
        else:
            hint = "check the quota plan's file together with this one, e.g. revplan check plans/"
        yield _error(
            "RP313",
            f'there is no quota plan "{name}"',
            ctx.locate.quoted(plan.quota.span, name),
            *did_you_mean(name, quota_plans),
            hint,
        )


def _quota_period_problems(ctx: Context, plan: ir.CompPlan, sources: list[ir.QuotaPlan]) -> Iterator[Diagnostic]:
    """The quota plan's periods are the comp plan's (RP315): attainment of a quarter on a month's quota
    means nothing, and the run would refuse it only after reading the data."""
    for source in sorted({s.period for s in sources} - {plan.period}, key=lambda p: p.value):
        yield _error(
            "RP315",
            f'quota from plan "{sources[0].name}": its quotas are by {source.value}, but this plan measures '
            f"attainment by {plan.period.value}",
            ctx.locate.quoted(plan.quota.span, sources[0].name),
            f"give both plans the same period (period {plan.period.value}), or read another quota plan",
        )
    ordered = sorted(sources, key=lambda s: s.effective_from)
    for before, after in itertools.pairwise(ordered):
        shared = _period_of(after.effective_from, after.period)
        if after.period == before.period and shared == _period_of(before.effective_to, before.period):
            # Which version gives that period's quota would be undefined: the run refused it (RP401, audit).
            yield _error(
                "RP338",
                f'quota from plan "{after.name}": versions {before.version} and {after.version} both give quotas '
                f"for {shared}",
                ctx.locate.quoted(plan.quota.span, after.name),
                f"start version {after.version} on the first day of a {after.period.value} "
                f"(effective {_next_period_start(after.effective_from, after.period)} to ...)",
            )
    for currency in sorted({s.currency for s in sources} - {plan.currency}):
        # The quotas would be read as amounts in this plan's currency: 100,000 EUR as 100,000 USD (audit).
        yield _error(
            "RP336",
            f'quota from plan "{sources[0].name}": its quotas are in {currency}, but this plan pays in '
            f"{plan.currency}",
            ctx.locate.quoted(plan.quota.span, sources[0].name),
            f"give both plans the same currency (currency {plan.currency}), or read another quota plan",
        )


# ---------------------------------------------------------------- rules: quota plans


def _percent_sum(values: Iterable[ir.Expr]) -> Decimal | None:
    values = list(values)
    if not values or not all(isinstance(v, ir.Percent) for v in values):
        return None  # a share of the wrong unit is reported by check_expressions
    return sum((v.value for v in values), Decimal(0))


def _percent_text(value: Decimal) -> str:
    return show(ir.Percent(value=value))


def check_quota_target(ctx: Context) -> Iterator[Diagnostic]:
    """A quota plan without a target allocates nothing (RP326): every quota 0 but the overrides."""
    for plan in ctx.plans_of(ir.QuotaPlan):
        if plan.target is None:
            yield _warning("RP326", f'quota plan "{plan.name}" has no target: every quota is 0.00'
                           + (" but the overrides" if plan.overrides else ""), _header(ctx, plan),
                           "add the amount to allocate, e.g. target 72,000,000 USD")


def check_quota_year(ctx: Context) -> Iterator[Diagnostic]:
    """A quota plan is within one calendar year (RP327): its year row, phasing shares and ramp are by the
    calendar year's periods, so a fiscal year from April put Q2's share on 2027-Q3 and so on."""
    for plan in filter(_sound_dates, ctx.plans_of(ir.QuotaPlan)):  # RP110, RP111, RP118 say the rest
        first, last = plan.effective_from, plan.effective_to
        if first.year != last.year:
            yield _error(
                "RP327",
                f"quota plan \"{plan.name}\" runs from {first} to {last}, across {first.year} and {last.year}: "
                "a quota plan is within one calendar year",
                _effective_line(ctx, plan),
                "its year's quota, phasing and ramp are by calendar periods: write a plan (or a version) per "
                f"calendar year, each with its part of the target, e.g. effective {first} to "
                f"{dt.date(first.year, 12, 31)} and {dt.date(first.year + 1, 1, 1)} to {last}",
            )


def _effective_line(ctx: Context, plan: ir.PlanBase) -> Span | None:
    return ctx.locate.line_with(plan.span, r"^\s*(effective\b.*?)\s*(#.*)?$")


def check_comp_plan_year(ctx: Context) -> Iterator[Diagnostic]:
    """A comp plan measured by the year that runs into a second year starts on January 1 (RP317): year to
    date, a cap per year and a yearly period start again on January 1, so a fiscal year from July paid its
    second half as a new year. From January 1, each year of the plan is a calendar year, as meant."""
    for plan in filter(_sound_dates, ctx.plans_of(ir.CompPlan)):
        first, last = plan.effective_from, plan.effective_to
        yearly = _by_the_year(plan) + (["is paid by year"] if plan.period == ir.Period.YEAR else [])
        if first.year != last.year and (first.month, first.day) != (1, 1) and yearly:
            year_end = dt.date(first.year, 12, 31)
            yield _error(
                "RP317",
                f'comp plan "{plan.name}" runs from {first} to {last}, into {first.year + 1}, and '
                f"{_listed(yearly)}: its year is the calendar year, not one from {first:%B} {first.day}",
                _effective_line(ctx, plan),
                "a fiscal year is not supported yet: year to date and caps per year start again on January 1. "
                f"End this version on {year_end} and start the next on {year_end + dt.timedelta(days=1)} "
                "(from January 1 a version may run for several calendar years); each version measures its own year",
            )


def check_untraced_components(ctx: Context) -> Iterator[Diagnostic]:
    """`paid on payment` and `clawback` act on commission traced to deals: rate and tier components on sums
    and counts of deals. A curve, or a rate or tiers on another base (an average), is paid when earned and never
    taken back (RP347: a curve paid 100,000 for a deal never paid and then cancelled, with no word, audit).
    Bonuses, SPIFFs and MBOs pay per period, as documented."""
    for plan in ctx.plans_of(ir.CompPlan):
        timing = [what for what, used in (("paid on payment", plan.paid_on == ir.PayoutTiming.PAYMENT),
                                          ("clawback", plan.clawback is not None)) if used]
        if not timing:
            continue
        scope = ctx.scope(plan)
        commission = (ir.FlatRate, ir.Tiers, ir.Curve)
        untraced = [c for c in plan.components if isinstance(c.payout, commission) and not _traces_to_deals(c, scope)]
        if not untraced:
            continue
        names = _listed([f'"{c.name}"' for c in untraced])
        yield _warning(
            "RP347",
            f'comp plan "{plan.name}" has {" and ".join(f"`{t}`" for t in timing)}, which component'
            f"{'s' * (len(untraced) != 1)} {names} {'do' if len(untraced) != 1 else 'does'} not follow: "
            "only rate and tier components on sums and counts of deals trace their pay to deals",
            ctx.locate.line_with(plan.span, r"^\s*((paid on payment|clawback)\b.*?)\s*(#.*)?$") or _header(ctx, plan),
            "such a component (a curve, or a rate or tiers on an average) is paid in the period it is earned and "
            "never taken back: base it on a sum of deals, or put it in a plan of its own if that is not meant",
        )


def check_rollup_of_overlays(ctx: Context) -> Iterator[Diagnostic]:
    """A roll-up credits the managers of a deal's owner or split reps, not of its overlay reps (RP348): an SE
    manager's plan with `credit overlay` and `credit rollup` paid the manager 0.00, with no word (audit)."""
    for plan in ctx.plans_of(ir.CompPlan):
        if plan.crediting.overlay and plan.crediting.rollup:
            yield _warning(
                "RP348",
                f'comp plan "{plan.name}" credits overlay reps and rolls up: the roll-up credits the managers of '
                "each deal's owner or split reps, not of its overlay reps",
                ctx.locate.line_with(plan.span, r"^\s*credit\s+(rollup\b.*?)\s*(#.*)?$") or _header(ctx, plan),
                "to pay the managers of overlay reps on their teams' deals, name those managers as overlays of the "
                "territories in the territory plan",
            )


def _traces_to_deals(component: ir.Component, scope) -> bool:
    """Whether the calculators trace a component's pay to deals: a rate or tiers on a base made of deal sums and
    counts added and subtracted (`compiler.sql` `deal_components`)."""
    if not isinstance(component.payout, (ir.FlatRate, ir.Tiers)) or component.base is None:
        return False

    def linear(node: ir.Expr, seen: frozenset[str]) -> bool:
        match node:
            case ir.Aggregate(entity="deal", function="sum" | "count"):
                return True
            case ir.NameRef(name=name) if name not in seen and (measure := scope.find(name)) is not None:
                return linear(measure.expr, seen | {name})
            case ir.Binary(op="+" | "-", left=left, right=right):
                return linear(left, seen) and linear(right, seen)
        return False

    return linear(ir.NameRef(name=component.base), frozenset())


def _by_the_year(plan: ir.CompPlan, draws: bool = False) -> list[str]:
    """What of a comp plan counts by the year, in words: year to date, caps per year (and a draw to recover)."""
    return [what for what, used in (
        ("is measured year to date", plan.measurement == ir.Measurement.YEAR_TO_DATE),
        ("has a cap per year", any(c.per == ir.CapScope.YEAR for part in plan.components for c in part.caps)),
        ("has a recoverable draw", draws and plan.draw is not None and plan.draw.recoverable),
    ) if used]


def _listed(words: list[str]) -> str:
    """'a, b and c'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def check_partial_periods(ctx: Context) -> Iterator[Diagnostic]:
    """A comp plan without proration that starts or ends inside a period pays that period in full (RP344)."""
    for plan in filter(_sound_dates, ctx.plans_of(ir.CompPlan)):
        if plan.prorate or not pays_by_the_period(plan):
            continue
        months = 12 // plan.period.per_year
        inside = []
        if not _opens_period(plan.effective_from, months):
            inside.append(f"starts on {plan.effective_from}")
        if not _opens_period(plan.effective_to + dt.timedelta(days=1), months):
            inside.append(f"ends on {plan.effective_to}")
        if inside:
            yield _warning(
                "RP344",
                f'comp plan "{plan.name}" {" and ".join(inside)}, inside a {plan.period.value}, and does not '
                "prorate: the part-period pays a whole period's target incentive, quota, caps and bonuses",
                _effective_line(ctx, plan),
                "add `prorate by active_days` to pay for the days in force, or start and end the plan on period "
                "boundaries",
            )


def pays_by_the_period(plan: ir.CompPlan) -> bool:
    """Whether a comp plan pays a period something whole: a quota or TI, a fixed amount, a tier table's bands,
    a gate, a cap per period or a draw. A rate on deals (or a SPIFF) pays a part-period for its own deals, unless
    the rate is made of the TI or the quota (`target_incentive / quota` is not: prorated, both scale alike)."""
    return plan.draw is not None or any(
        not isinstance(c.payout, (ir.FlatRate, ir.Spiff)) or c.gates or c.measure_multipliers
        or any(cap.per == ir.CapScope.PERIOD for cap in c.caps)
        or len(payout_inputs(c.payout) & {"target_incentive", "quota"}) == 1  # TI / quota: a ratio of wholes
        for c in plan.components
    )


def payout_inputs(payout: ir.Payout) -> frozenset[str]:
    """The names a payout's amount is computed from (its rate, amount, bands or curve), not its conditions: where
    `target_incentive` or `quota` has no value the amount has none (RP416, RP417), where a condition on one is
    just not met."""
    parts = [getattr(payout, name) for name in ("rate", "amount", "bands", "points") if hasattr(payout, name)]
    nodes = [node for part in parts for node in (part if isinstance(part, tuple) else (part,))]
    names = {n.name for node in nodes for n in walk(node) if isinstance(n, ir.NameRef)}
    return frozenset(names | ({payout.of} if isinstance(payout, ir.Curve) else set()))


def amount_inputs(component: ir.Component) -> frozenset[str]:
    """`payout_inputs`, and what the component's caps are multiples of (`cap 2 x target_incentive`)."""
    return payout_inputs(component.payout) | {cap.of for cap in component.caps if cap.of is not None}


def _sound_dates(plan: ir.PlanBase) -> bool:
    """Effective dates RP110, RP111 and RP118 have not refused (these checks would only add noise)."""
    first, last = plan.effective_from, plan.effective_to
    return first <= last and last.year - first.year < MAX_PLAN_YEARS and FIRST_PLAN_YEAR <= first.year \
        and last.year <= LAST_PLAN_YEAR


def _opens_period(day: dt.date, months: int) -> bool:
    return day.day == 1 and (day.month - 1) % months == 0


def check_phasing_in_plan(ctx: Context) -> Iterator[Diagnostic]:
    """Phasing gives no share to a period outside the plan's dates (RP328): no rep has a quota there, so the
    share would be nobody's (a plan from April lost Q1's 10 % of the target)."""
    for plan in filter(_sound_dates, ctx.plans_of(ir.QuotaPlan)):
        if len(plan.phasing) != plan.period.per_year or plan.effective_from.year != plan.effective_to.year:
            continue  # RP321, RP327
        months = 12 // plan.period.per_year
        for number, share in enumerate(plan.phasing):
            start = dt.date(plan.effective_from.year, number * months + 1, 1)
            end = _period_end(start, months)
            outside = "before the plan starts" if end < plan.effective_from else (
                "after the plan ends" if start > plan.effective_to else None)
            if outside and isinstance(share, ir.Percent) and share.value != 0:
                yield _error(
                    "RP328",
                    f"phasing gives {_percent_text(share.value)} to the {plan.period.value} from {start} to {end}, "
                    f"{outside} (effective {plan.effective_from} to {plan.effective_to})",
                    share.span,
                    "a period outside the plan's dates has no quota, so its share of the target would be nobody's: "
                    "give it 0% and spread it over the plan's periods",
                )


def _period_end(start: dt.date, months: int) -> dt.date:
    following = start.month - 1 + months
    return dt.date(start.year + following // 12, following % 12 + 1, 1) - dt.timedelta(days=1)


def check_phasing(ctx: Context) -> Iterator[Diagnostic]:
    """One phasing share per period, adding up to 100 % (RP320, RP321)."""
    for plan in ctx.plans_of(ir.QuotaPlan):
        if not plan.phasing:
            continue
        span = _join(plan.phasing[0].span, plan.phasing[-1].span)
        periods = plan.period.per_year
        if len(plan.phasing) != periods:
            example = ", ".join([_percent_text(Decimal(1) / periods)] * periods) if periods <= 4 else ""
            yield _error(
                "RP321",
                f"phasing has {len(plan.phasing)} shares, "
                f"but a plan by {plan.period.value} has {periods} periods a year",
                span,
                f"give one share per {plan.period.value}, {periods} in all"
                + (f", e.g. phasing {example}" if example else ", adding up to 100%"),
            )
        total = _percent_sum(plan.phasing)
        if total is not None and total != 1:
            yield _error(
                "RP320",
                f"phasing adds up to {_percent_text(total)}, not 100%",
                span,
                f"the shares split the annual quota: make them add up to 100% ({_percent_text(abs(1 - total))} "
                f"{'too much' if total > 1 else 'missing'})",
            )


def check_allocation(ctx: Context) -> Iterator[Diagnostic]:
    """Allocation blends adding up to 100 %; weights used; one weight or override per rep (RP322, RP323, RP325)."""
    for plan in ctx.plans_of(ir.QuotaPlan):
        yield from _blend_problems(plan)
        bases = {term.basis for term in plan.allocation}
        for weight in plan.weights:
            if "weights" not in bases:
                yield _warning(
                    "RP325",
                    f'the weight for "{weight.rep}" is not used: this plan does not allocate by weights',
                    ctx.locate.statement(weight.span),
                    "add weights to the allocation (allocate by weights), or remove the weight lines",
                )
        yield from _repeated(ctx, plan.weights, lambda w: w.rep, lambda w: f'"{w.rep}" has two weights')
        yield from _repeated(
            ctx,
            plan.overrides,
            lambda o: (o.rep, o.period),
            lambda o: f'"{o.rep}" has two overrides for {f"period {o.period}" if o.period else "the year"}',
        )


def _blend_problems(plan: ir.QuotaPlan) -> Iterator[Diagnostic]:
    terms = plan.allocation
    if not terms:
        return
    span = _join(terms[0].span, terms[-1].span)
    example = "e.g. allocate by territory_potential 60%, prior_bookings 40%"
    if len(terms) == 1:
        share = terms[0].share
        if isinstance(share, ir.Percent) and share.value != 1:
            yield _error(
                "RP322",
                f"a single allocation basis takes the whole target: the share {show(share)} has no effect",
                share.span,
                f"remove the share, or blend {terms[0].basis} with another basis, {example}",
            )
        return
    seen: set[str] = set()
    for term in terms:
        if term.basis in seen:
            yield _error("RP322", f"{term.basis} appears twice in the allocation", term.span, "name each basis once")
        seen.add(term.basis)
        if term.share is None:
            yield _error("RP322", f"each part of a blend needs a share; {term.basis} has none", term.span, example)
    total = _percent_sum(t.share for t in terms if t.share is not None)
    if total is not None and total != 1 and all(t.share is not None for t in terms):
        yield _error(
            "RP322",
            f"the allocation shares add up to {_percent_text(total)}, not 100%",
            span,
            "make the shares of the blend add up to 100%",
        )


def _repeated(ctx: Context, items, key: Callable, message: Callable) -> Iterator[Diagnostic]:
    seen: dict = {}
    for item in items:
        if key(item) in seen:
            yield _error(
                "RP323",
                message(item),
                ctx.locate.statement(item.span),
                f"the first is at {_at(seen[key(item)].span)}; keep one",
            )
        seen.setdefault(key(item), item)


# How each period kind labels its periods: pattern, example, (year, number) -> first and last day.
LABEL_YEAR = r"(19[0-9]{2}|2[0-9]{3})"  # FIRST_PLAN_YEAR to LAST_PLAN_YEAR and its run-off: no plan has others
_PERIOD_LABELS = {
    ir.Period.YEAR: (LABEL_YEAR, "{y}", 1),
    ir.Period.HALF: (LABEL_YEAR + r"-H([12])", "{y}-H1", 6),
    ir.Period.QUARTER: (LABEL_YEAR + r"-Q([1-4])", "{y}-Q1", 3),
    ir.Period.MONTH: (LABEL_YEAR + r"-(0[1-9]|1[0-2])", "{y}-01", 1),
}


def _period_of(day: dt.date, period: ir.Period) -> str:
    """The label of the period a day is in: 2027-05-15 is in 2027-Q2."""
    months = _PERIOD_LABELS[period][2]
    index = (day.month - 1) // months + 1
    return {ir.Period.YEAR: f"{day.year}", ir.Period.HALF: f"{day.year}-H{index}",
            ir.Period.QUARTER: f"{day.year}-Q{index}", ir.Period.MONTH: f"{day.year}-{day.month:02d}"}[period]


def _next_period_start(day: dt.date, period: ir.Period) -> dt.date:
    """The first day of the period after the one `day` is in."""
    months = _PERIOD_LABELS[period][2]
    month = (day.month - 1) // months * months + months  # 0-based month of the next period's start
    return dt.date(day.year + month // 12, month % 12 + 1, 1)


def period_dates(period: ir.Period, label: str) -> tuple[dt.date, dt.date] | None:
    """First and last day of a period label ("2027-Q2"), or None if it is not a label of that period kind.

    >>> period_dates(ir.Period.QUARTER, "2027-Q2")
    (datetime.date(2027, 4, 1), datetime.date(2027, 6, 30))
    """
    pattern, _, months = _PERIOD_LABELS[period]
    match = re.fullmatch(pattern, label)
    if match is None:
        return None
    year = int(match.group(1))
    if period is ir.Period.YEAR:
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    start = dt.date(year, (int(match.group(2)) - 1) * months + 1, 1)
    return start, _period_end(start, months)


def label_dates(label: str) -> tuple[dt.date, dt.date]:
    """First and last day of a period label of any kind; ValueError for anything else.

    >>> label_dates("2027-09"), label_dates(" 2027-H2 ")[1]
    ((datetime.date(2027, 9, 1), datetime.date(2027, 9, 30)), datetime.date(2027, 12, 31))
    """
    text = str(label).strip()
    for kind in ir.Period:
        if (days := period_dates(kind, text)) is not None:
            return days
    raise ValueError(label)


def check_override_periods(ctx: Context) -> Iterator[Diagnostic]:
    """An override's period is a period of the plan (RP324)."""
    for plan in ctx.plans_of(ir.QuotaPlan):
        for override in plan.overrides:
            if override.period is None:
                continue
            span = ctx.locate.quoted(override.span, override.period, after="period")
            dates = period_dates(plan.period, override.period)
            example = _PERIOD_LABELS[plan.period][1].format(y=plan.effective_from.year)
            if dates is None:
                yield _error(
                    "RP324",
                    f'"{override.period}" is not a {plan.period.value} label',
                    span,
                    f'this plan is by {plan.period.value}: name periods like "{example}"',
                )
            elif dates[1] < plan.effective_from or dates[0] > plan.effective_to:
                yield _error(
                    "RP324",
                    f"{override.period} is outside the plan's effective dates ({plan.effective_from} to "
                    f"{plan.effective_to})",
                    span,
                    f'name a period the plan covers, e.g. "{example}"',
                )


# ---------------------------------------------------------------- rules: territory plans


def check_territory_names(ctx: Context) -> Iterator[Diagnostic]:
    """Rules and moves name territories of their plan; each territory once (RP331, RP332)."""
    for plan in ctx.plans_of(ir.TerritoryPlan):
        defined: dict[str, ir.Territory] = {}
        for territory in plan.territories:
            if territory.name in defined:
                yield _error(
                    "RP332",
                    f'territory "{territory.name}" is defined twice',
                    ctx.locate.quoted(territory.span, territory.name),
                    f"the first is at {_at(defined[territory.name].span)}; put its owners and overlays in one block",
                )
            defined.setdefault(territory.name, territory)
            yield from _owners_from_one_day(territory, plan)
            yield from _overlays_twice(territory)
        moved: dict[tuple[str, dt.date], ir.Move] = {}
        for move in plan.moves:  # two moves of an account on one day: the last would silently win (audit)
            first = moved.setdefault((move.account, move.on), move)
            if first is not move:
                yield _error(
                    "RP337",
                    f'account "{move.account}" is moved twice on {move.on.isoformat()}: to "{first.territory}" '
                    f'and to "{move.territory}"',
                    move.span,
                    "an account is in one territory at a time: keep one of the moves, or give the later its own day",
                )
        for statement in [*plan.rules, *plan.moves]:
            if statement.territory not in defined:
                yield _error(
                    "RP331",
                    f'there is no territory "{statement.territory}" in this plan',
                    ctx.locate.quoted(statement.span, statement.territory, after="to"),
                    *did_you_mean(statement.territory, defined),
                    f'define it: territory "{statement.territory}" with its owner on the next line',
                )


def _overlays_twice(territory: ir.Territory) -> Iterator[Diagnostic]:
    """A rep listed twice as an overlay of one territory (RP334): each line credited them the territory's deals,
    so they were paid twice (audit)."""
    seen: set[str] = set()
    for holder in territory.overlays:
        if holder.rep in seen:
            yield _error("RP334", f'"{holder.rep}" is an overlay of territory "{territory.name}" twice', holder.span,
                         "list each overlay once, from the day they start")
        seen.add(holder.rep)


def check_territory_names_across_plans(ctx: Context) -> Iterator[Diagnostic]:
    """Territory plans in force at once define territories of their own names (RP335): owners and overlays are
    found by territory name, so two plans' "West" mixed theirs (audit: every SE was credited both Wests)."""
    plans = ctx.plans_of(ir.TerritoryPlan)
    for first, second in itertools.combinations(plans, 2):
        if first.effective_from > second.effective_to or second.effective_from > first.effective_to:
            continue
        earlier = {t.name for t in first.territories}
        for territory in second.territories:
            if territory.name in earlier:
                yield _error(
                    "RP335",
                    f'territory "{territory.name}" is also a territory of {first.key}, in force at the same time',
                    ctx.locate.quoted(territory.span, territory.name),
                    f'name each plan\'s territories apart ("SE {territory.name}"): their owners and overlays are '
                    "found by territory name",
                )


def _owners_from_one_day(territory: ir.Territory, plan: ir.TerritoryPlan) -> Iterator[Diagnostic]:
    """Owners taking over on the same day (RP333): the last would silently win (overlays may be several)."""
    first: dict[dt.date, ir.Holder] = {}
    for holder in territory.owners:
        day = holder.start or plan.effective_from
        if day in first:
            yield _error(
                "RP333",
                f'territory "{territory.name}" has two owners from {day.isoformat()}: '
                f'"{first[day].rep}" and "{holder.rep}"',
                holder.span,
                "a territory has one owner at a time: give the later one the day it takes over "
                f'(owner "{holder.rep}" from 2027-07-01), or make one an overlay',
            )
        first.setdefault(day, holder)


def check_territory_overlaps(ctx: Context) -> Iterator[Diagnostic]:
    """Rules of equal priority that can match the same account (RP330)."""
    for plan in ctx.plans_of(ir.TerritoryPlan):
        by_priority: dict[int, list[ir.AssignRule]] = defaultdict(list)
        for rule in plan.rules:
            by_priority[rule.priority].append(rule)
        for rules in by_priority.values():
            for first, second in itertools.combinations(rules, 2):
                problem = _rule_overlap(first, second)
                if problem is not None:
                    message, hint = problem
                    span = second.where.span if second.where is not None else ctx.locate.statement(second.span)
                    yield _error("RP330", message, span, hint)


def _rule_overlap(first: ir.AssignRule, second: ir.AssignRule) -> tuple[str, str] | None:
    where = f"line {first.span.line}" if first.span else "another rule"
    priorities = "give them different priorities (the lower number wins)"
    if first.accounts and second.accounts:
        shared = [a for a in second.accounts if a in first.accounts]
        if shared:
            return (
                f'account "{shared[0]}" is named in two rules of priority {second.priority}',
                f"the other rule is on {where}; name the account once, or {priorities}",
            )
        return None
    if first.accounts or second.accounts:
        this, other = ("this named-account rule", "the rule") if second.accounts else ("this rule",
                                                                                      "the named-account rule")
        return (
            f"{this} and {other} on {where} both have priority {second.priority}: a named account could match both",
            f"{priorities}; named accounts usually come first (priority 1)",
        )
    if can_overlap(first.where, second.where):
        return (
            f"this rule and the rule on {where} both have priority {second.priority} and can match the same account",
            f'{priorities}, or make the conditions exclusive (e.g. account.country = "US" and = "CA")',
        )
    return None


# ---------------------------------------------------------------- rules: warnings


def check_dates_in_range(ctx: Context) -> Iterator[Diagnostic]:
    """SPIFF windows, moves and ownership changes inside the plan's effective dates (RP340, warning)."""
    for plan in ctx.plans:
        for day, span, what in _dated_changes(ctx, plan):
            if not plan.effective_from <= day <= plan.effective_to:
                effect = None
                if isinstance(plan, ir.TerritoryPlan):  # compiler/territory.py: held_spans, dated_spans
                    effect = (f"it counts from the plan's first day, {plan.effective_from}" if day < plan.effective_from
                              else "it does not happen in this plan")
                yield _warning(
                    "RP340",
                    f"{what} is outside the plan's effective dates ({plan.effective_from} to {plan.effective_to})",
                    span,
                    effect,
                    "move the date inside the effective dates, or change them",
                )


def _dated_changes(ctx: Context, plan: ir.PlanBase) -> Iterator[tuple[dt.date, Span | None, str]]:
    """(date, span, what happens then) for each dated statement of a plan; a SPIFF window gives both ends."""
    if isinstance(plan, ir.CompPlan):
        for component in plan.components:
            spiff = component.payout
            if isinstance(spiff, ir.Spiff):
                for end, day in (("start", spiff.start), ("end", spiff.end)):
                    yield day, ctx.locate.word(spiff.span, day.isoformat()), f"the SPIFF window's {end} ({day})"
    if isinstance(plan, ir.TerritoryPlan):
        for move in plan.moves:
            yield move.on, ctx.locate.word(move.span, move.on.isoformat()), f"the move on {move.on}"
        for territory in plan.territories:
            holders = [("owner", h) for h in territory.owners] + [("overlay", h) for h in territory.overlays]
            for role, holder in holders:
                if holder.start is not None:
                    span = ctx.locate.word(holder.span, holder.start.isoformat())
                    yield holder.start, span, f'{role} "{holder.rep}" from {holder.start}'


def check_negations_of_optional_fields(ctx: Context) -> Iterator[Diagnostic]:
    """A condition on rows (an `applies to`, a measure's or SPIFF's `where`, a deal multiplier's, a territory
    rule's) that negates a test of an optional field leaves out the rows with no value there (RP342, warning):
    `rep.segment != "SMB"` is unknown for a rep with no segment, and unknown selects no one; `deal.product !=
    "renewal"` left a deal with no product out of bookings (audit). Said once per field and condition, unless
    the condition also tests the field with `is null`."""
    for condition in _row_conditions(ctx):
        tested_for_null = {(n.operand.entity, n.operand.field) for n in walk(condition)
                           if isinstance(n, ir.IsNull) and isinstance(n.operand, ir.FieldRef)}
        reported: set[tuple[str, str]] = set()
        for negation in _negations(condition):
            for ref in (n for n in walk(negation) if isinstance(n, ir.FieldRef)):
                entity = ctx.schema.entity(ref.entity)
                field = entity.field(ref.field) if entity is not None else None
                key = (ref.entity, ref.field)
                if field is None or field.required or key in tested_for_null | reported:
                    continue
                reported.add(key)
                if ref.entity == "rep":
                    hint = f"if they belong in the plan, say so: ... or rep.{ref.field} is null"
                else:
                    hint = f"if they should count, say so: ... or {ref.entity}.{ref.field} is null"
                yield _warning(
                    "RP342",
                    f"{entity.table} with no {ref.field} are left out: for them this is unknown, not true",
                    negation.span,
                    hint,
                )


def _row_conditions(ctx: Context) -> Iterator[ir.Expr]:
    """Every condition on input rows in the project, each once."""
    for measure in ctx.shared_measures:
        if measure.where is not None:
            yield measure.where
    for plan in ctx.plans:
        if plan.eligibility is not None:
            yield plan.eligibility
        if isinstance(plan, ir.CompPlan):
            yield from (m.where for m in plan.measures if m.where is not None)
            for component in plan.components:
                yield from (multiplier.where for multiplier in component.deal_multipliers)
                if isinstance(component.payout, ir.Spiff):
                    yield component.payout.where
        if isinstance(plan, ir.TerritoryPlan):
            yield from (rule.where for rule in plan.rules if rule.where is not None)


def _negations(node: ir.Node) -> Iterator[ir.Node]:
    """The `!=`, `not in` and `not (...)` tests in a condition."""
    for found in walk(node):
        if isinstance(found, ir.Not) or (isinstance(found, ir.Compare) and found.op == "!=") or (
                isinstance(found, ir.InList) and found.negated):
            yield found


def check_territory_dependencies(ctx: Context) -> Iterator[Diagnostic]:
    """Overlay credit and allocation by potential need a territory plan in the project (RP341, warning)."""
    if ctx.plans_of(ir.TerritoryPlan):
        return
    hint = "check the territory plan together with this one, e.g. revplan check plans/"
    for plan in ctx.plans_of(ir.CompPlan):
        if plan.crediting.overlay:
            yield _warning(
                "RP341",
                "overlay credit comes from territory plans, but no territory plan is loaded: nobody is credited as "
                "overlay",
                ctx.locate.line_with(plan.span, r"^\s*credit\s+(overlay)\b"),
                hint,
            )
    for plan in ctx.plans_of(ir.QuotaPlan):
        for term in plan.allocation:
            if term.basis == "territory_potential":
                yield _warning(
                    "RP341",
                    "territory potential comes from territory plans, but no territory plan is loaded",
                    term.span,
                    hint,
                )


RULES: tuple[Rule, ...] = (
    check_expressions,
    check_literal_values,
    check_measure_definitions,
    check_measure_cycles,
    check_attainment,
    check_component_bases,
    check_payout_references,
    check_component_names,
    check_test_rows,
    check_expectations,
    check_tier_bands,
    check_curve_points,
    check_repeated_multipliers,
    check_caps_against_gates,
    check_plan_versions,
    check_comp_plan_overlaps,
    check_quota_sources,
    check_quota_target,
    check_quota_year,
    check_comp_plan_year,
    check_partial_periods,
    check_phasing,
    check_phasing_in_plan,
    check_allocation,
    check_override_periods,
    check_territory_names,
    check_territory_names_across_plans,
    check_territory_overlaps,
    check_dates_in_range,
    check_territory_dependencies,
    check_negations_of_optional_fields,
    check_untraced_components,
    check_rollup_of_overlays,
)
