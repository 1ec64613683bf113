"""Stage 2: syntax tree -> typed IR (`resolve(tree) -> Resolved`).

Turns Lark's tree into IR nodes with spans, and reports what the grammar
cannot: unknown plan kinds and periods, statements used in the wrong kind of
plan, repeated or missing header lines, malformed literals. Name and unit
checks come later, in dsl/check.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from lark import Token, Tree

from dsl import ir
from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.parse import SyntaxTree


@dataclasses.dataclass(frozen=True)
class Resolved:
    plan_file: ir.PlanFile | None
    diagnostics: tuple[Diagnostic, ...]


def resolve(syntax: SyntaxTree) -> Resolved:
    """IR for a parsed file, or None with diagnostics when it cannot be built."""
    if syntax.tree is None:
        return Resolved(None, syntax.diagnostics)
    builder = _Builder(syntax.path)
    plan_file = builder.build(syntax.tree)
    return Resolved(plan_file, tuple(builder.diagnostics))


@dataclasses.dataclass
class _Statement:
    """A plan statement before it is placed in a plan of some kind."""

    name: str
    value: object
    span: Span


# Which statements each plan kind accepts, and the IR field they fill.
COMMON = {
    "effective": "effective",
    "period": "period",
    "currency": "currency",
    "owners": "owners",
    "applies_to": "eligibility",
}
ONLY_IN = {
    "comp": {
        "credit", "quota_source", "attainment", "measured", "prorate",
        "paid_on", "fx", "draw", "clawback", "component",
    },
    "quota": {"target", "over_assign", "allocate", "weight", "phasing", "ramp", "override", "rounding"},
    "territory": {"territory", "assign", "move", "tolerance"},
}
REPEATABLE = {
    "credit", "component", "measure", "test", "weight", "override", "territory", "assign", "move", "tolerance",
}
REQUIRED = ("effective", "period", "currency", "owners")
MAX_PLAN_YEARS = 10
FIRST_PLAN_YEAR, LAST_PLAN_YEAR = 1900, 2997  # period labels go to 2999: a plan's run-off takes two years
MAX_VERSION = 2**31 - 1
LITERAL_PLACES = 10  # compiler.exact.SCALE: every value is computed at 10 places
LITERAL_STEP = Decimal(1).scaleb(-LITERAL_PLACES)
PLAN_KINDS = ("comp", "quota", "territory")


class _Builder:
    """One method per tree node (rule or `-> alias`), called as `method(meta, children)`.

    Children are built first (bottom-up), as a Lark Transformer with
    `v_args(meta=True)` would; but the walk is direct: Lark wraps the method
    in a fresh decorator object on every node it visits, which was about a
    quarter of the time to resolve a plan.
    """

    def __init__(self, path: str):
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def build(self, node):
        if not isinstance(node, Tree):
            return node  # a Token: the methods read its text and position
        children = [self.build(child) if isinstance(child, Tree) else child for child in node.children]
        method = getattr(self, node.data, None)
        if method is None:  # not an IR node (none today): keep it, as Lark would
            return Tree(node.data, children, node.meta)
        return method(node.meta, children)

    # ------------------------------------------------------------ helpers

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(
            file=self.path, line=meta.line, column=meta.column, end_line=meta.end_line, end_column=meta.end_column
        )

    def _token_span(self, token: Token) -> Span:
        return Span(
            file=self.path,
            line=token.line,
            column=token.column,
            end_line=token.end_line,
            end_column=token.end_column,
        )

    def _error(self, code: str, message: str, span: Span | None, *hints: str) -> None:
        self.diagnostics.append(Diagnostic(code=code, message=message, span=span, hints=tuple(h for h in hints if h)))

    def _decimal(self, token: Token) -> Decimal:
        return Decimal(str(token).replace(",", "").rstrip("%"))

    def _date(self, token: Token) -> dt.date:
        try:
            return dt.date.fromisoformat(str(token))
        except ValueError:
            self._error("RP110", f"{token} is not a calendar date", self._token_span(token), "dates are YYYY-MM-DD")
            return dt.date(1970, 1, 1)

    def _string(self, token: Token) -> str:
        text = str(token)[1:-1]
        return text.replace('\\"', '"').replace("\\\\", "\\")

    # ------------------------------------------------------------ file

    def start(self, meta, children):
        language, *items = children
        measures = tuple(i.value for i in items if isinstance(i, _Statement))
        plans = tuple(i for i in items if not isinstance(i, _Statement) and i is not None)
        return ir.PlanFile(span=self._span(meta), path=self.path, language=language, measures=measures, plans=plans)

    def language(self, meta, children):
        (version,) = children
        if int(version) not in ir.LANGUAGE_VERSIONS:
            known = ", ".join(str(v) for v in ir.LANGUAGE_VERSIONS)
            self._error(
                "RP101",
                f"unknown language version {version}",
                self._token_span(version),
                f"this revplan understands language version {known}; upgrade revplan to read newer plans",
            )
        return int(version)

    def plan(self, meta, children):
        kind_token, name_token, version_token, *statements = children
        kind = str(kind_token)
        span = self._span(meta)
        if kind not in PLAN_KINDS:
            self._error(
                "RP102",
                f"unknown plan kind '{kind}'",
                self._token_span(kind_token),
                *did_you_mean(kind, PLAN_KINDS),
                "a plan is a comp plan, a quota plan or a territory plan",
            )
            return None
        if int(version_token) > MAX_VERSION:  # stored as a 32-bit integer by every engine
            self._error("RP119", f"version {version_token} is too large", self._token_span(version_token),
                        f"versions count up from 1 (at most {MAX_VERSION:,})")
            return None
        if not self._string(name_token).strip():
            self._error("RP119", "a plan needs a name", self._token_span(name_token),
                        'name it as people call it: comp plan "Enterprise AE" version 1')
            return None
        fields = self._collect(kind, statements, span)
        if fields is None:
            return None
        fields.update(span=span, name=self._string(name_token), version=int(version_token))
        model = {"comp": ir.CompPlan, "quota": ir.QuotaPlan, "territory": ir.TerritoryPlan}[kind]
        return model(**fields)

    def _collect(self, kind: str, statements: list[_Statement], span: Span | None) -> dict | None:
        fields: dict = {}
        seen: dict[str, Span] = {}
        lists: dict[str, list] = {}
        ok = True
        for statement in statements:
            name = statement.name
            if statement.value is None:  # already reported where it was built
                ok = False
                seen.setdefault(name, statement.span)
                fields.setdefault(name, None)
                continue
            owner_kind = next((k for k, names in ONLY_IN.items() if name in names), None)
            if owner_kind is not None and owner_kind != kind:
                ok = False
                self._error(
                    "RP103",
                    f"'{name.replace('_', ' ')}' belongs in a {owner_kind} plan, not a {kind} plan",
                    statement.span,
                    f"move it to a {owner_kind} plan or remove it",
                )
                continue
            if name in REPEATABLE or name == "credit":
                lists.setdefault(name, []).append(statement.value)
                continue
            if name in seen:
                ok = False
                first = seen[name]
                self._error(
                    "RP104",
                    f"'{name.replace('_', ' ')}' is given twice",
                    statement.span,
                    f"the first one is on line {first.line}; keep one",
                )
                continue
            seen[name] = statement.span
            fields[name] = statement.value
        for required in REQUIRED:
            if required not in fields:
                ok = False
                self._error(
                    "RP105",
                    f"{kind} plan is missing its '{required}' line",
                    span,
                    _REQUIRED_HINTS[required],
                )
        if not ok:
            return None
        return self._place(kind, fields, lists)

    def _place(self, kind: str, fields: dict, lists: dict) -> dict:
        start, end = fields.pop("effective")
        placed = dict(
            effective_from=start,
            effective_to=end,
            period=fields.pop("period"),
            currency=fields.pop("currency"),
            owners=fields.pop("owners"),
            eligibility=fields.pop("applies_to", None),
            measures=tuple(lists.pop("measure", ())),
            tests=tuple(lists.pop("test", ())),
        )
        if kind == "comp":
            credits = lists.pop("credit", [])
            if credits:
                crediting = dict(owner=False)
                for credit in credits:
                    crediting.update(credit)
                placed["crediting"] = ir.Crediting(**crediting)
            placed["components"] = tuple(lists.pop("component", ()))
            for name in ("attainment", "prorate", "draw", "clawback", "fx", "paid_on", "measured"):
                if name in fields:
                    placed[_FIELD_OF.get(name, name)] = fields.pop(name)
            if "quota_source" in fields:
                placed["quota"] = fields.pop("quota_source")
        elif kind == "quota":
            for name in ("target", "over_assign", "allocate", "phasing", "ramp", "rounding"):
                if name in fields:
                    placed[_FIELD_OF.get(name, name)] = fields.pop(name)
            placed["weights"] = tuple(lists.pop("weight", ()))
            placed["overrides"] = tuple(lists.pop("override", ()))
        else:
            placed["territories"] = tuple(lists.pop("territory", ()))
            placed["rules"] = tuple(lists.pop("assign", ()))
            placed["moves"] = tuple(lists.pop("move", ()))
            placed["tolerances"] = tuple(lists.pop("tolerance", ()))
        return placed

    # ------------------------------------------------------------ header statements

    def effective(self, meta, children):
        known = len(self.diagnostics)
        start, end = (self._date(t) for t in children)
        statement = _Statement("effective", (start, end), self._span(meta))
        if len(self.diagnostics) > known:  # RP110 said which date is wrong
            return statement
        if end < start:
            self._error("RP111", "the effective range ends before it starts", self._span(meta), "write start to end")
        elif end.year - start.year >= MAX_PLAN_YEARS:  # every period and day of it is computed
            self._error("RP118", f"the effective range spans {end.year - start.year + 1} years",
                        self._span(meta), f"a plan covers at most {MAX_PLAN_YEARS} years: write the day it ends "
                        "(a new version takes over from there), not an open end like 9999-12-31")
        elif start.year < FIRST_PLAN_YEAR or end.year > LAST_PLAN_YEAR:  # a typo; the run's date sums overflow
            self._error("RP118", f"the effective range {start} to {end} is outside the years {FIRST_PLAN_YEAR} "
                        f"to {LAST_PLAN_YEAR}", self._span(meta), "check the year: plans are for the years they pay")
        return statement

    def period(self, meta, children):
        (token,) = children
        try:
            value = ir.Period(str(token))
        except ValueError:
            names = [p.value for p in ir.Period]
            self._error(
                "RP112",
                f"unknown period '{token}'",
                self._token_span(token),
                *did_you_mean(str(token), names),
                "a period is month, quarter, half or year",
            )
            value = ir.Period.QUARTER
        return _Statement("period", value, self._span(meta))

    def currency(self, meta, children):
        return _Statement("currency", str(children[0]), self._span(meta))

    def owners(self, meta, children):
        groups = dict(children)
        span = self._span(meta)
        unknown = [g for g in groups if g not in ("sales", "finance")]
        missing = [g for g in ("sales", "finance") if not groups.get(g, "").strip()]  # an empty name too
        if unknown or missing:
            self._error(
                "RP113",
                "owners must name a sales group and a finance group",
                span,
                'write: owners sales "@org/sales-ops" finance "@org/fpa"',
            )
            return _Statement("owners", None, span)
        return _Statement("owners", ir.Owners(span=span, **groups), span)

    def owner_group(self, meta, children):
        name, group = children
        return str(name), self._string(group)

    def applies_to(self, meta, children):
        return _Statement("applies_to", children[0] if children else None, self._span(meta))

    def credit_owner(self, meta, children):
        return _Statement("credit", {"owner": True}, self._span(meta))

    def credit_splits(self, meta, children):
        return _Statement("credit", {"splits": True}, self._span(meta))

    def credit_overlay(self, meta, children):
        return _Statement("credit", {"overlay": True}, self._span(meta))

    def credit_rollup(self, meta, children):
        depth = int(children[0]) if children else None
        if depth == 0:
            self._error("RP114", "roll-up depth must be at least 1", self._span(meta),
                        "leave out 'depth' for the full hierarchy")
        return _Statement("credit", {"rollup": True, "rollup_depth": depth}, self._span(meta))

    def measure_def(self, meta, children):
        name, expr, *where = children
        measure = ir.Measure(span=self._span(meta), name=str(name), expr=expr, where=where[0] if where else None)
        return _Statement("measure", measure, self._span(meta))

    def quota_from_table(self, meta, children):
        return _Statement("quota_source", ir.QuotaSource(span=self._span(meta)), self._span(meta))

    def quota_from_plan(self, meta, children):
        return _Statement(
            "quota_source", ir.QuotaSource(span=self._span(meta), plan=self._string(children[0])), self._span(meta)
        )

    def attainment(self, meta, children):
        return _Statement("attainment", str(children[0]), self._span(meta))

    def measured_period(self, meta, children):
        return _Statement("measured", ir.Measurement.PERIOD, self._span(meta))

    def measured_ytd(self, meta, children):
        return _Statement("measured", ir.Measurement.YEAR_TO_DATE, self._span(meta))

    def prorate(self, meta, children):
        return _Statement("prorate", True, self._span(meta))

    def paid_on(self, meta, children):
        return _Statement("paid_on", self._choice(children[0], ir.PayoutTiming, "paid on"), self._span(meta))

    def fx(self, meta, children):
        return _Statement("fx", self._choice(children[0], ir.FxDate, "fx at"), self._span(meta))

    def _choice(self, token: Token, enum_type, what: str):
        try:
            return enum_type(str(token))
        except ValueError:
            names = [e.value for e in enum_type]
            self._error(
                "RP115",
                f"unknown choice '{token}' for '{what}'",
                self._token_span(token),
                *did_you_mean(str(token), names),
                f"choose one of: {', '.join(names)}",
            )
            return list(enum_type)[0]

    def draw(self, meta, children):
        amount, *rest = children
        kind_token = rest[-1]
        periods = int(rest[0]) if len(rest) == 2 else None
        if periods == 0:  # as `rollup depth 0` (RP114): a draw for no period is not a draw
            self._error("RP114", "a draw runs for at least 1 period", self._token_span(rest[0]),
                        "leave out 'for N periods' for a draw in every period")
        kinds = ("recoverable", "non_recoverable")
        if str(kind_token) not in kinds:
            self._error(
                "RP115",
                f"unknown draw kind '{kind_token}'",
                self._token_span(kind_token),
                *did_you_mean(str(kind_token), kinds),
                "a draw is recoverable or non_recoverable",
            )
        draw = ir.Draw(
            span=self._span(meta), amount=amount, periods=periods, recoverable=str(kind_token) == "recoverable"
        )
        return _Statement("draw", draw, self._span(meta))

    def clawback(self, meta, children):
        (duration,) = children
        if duration.days == 0:  # as a draw for 0 periods (RP114): a window of no day takes almost nothing back
            self._error("RP114", "a clawback window is at least 1 day", duration.span,
                        "write the days after closing within which a cancelled deal is taken back: within 90 days")
        return _Statement("clawback", ir.Clawback(span=self._span(meta), within_days=duration.days), self._span(meta))

    # ------------------------------------------------------------ components

    def component(self, meta, children):
        name, *rest = children
        base = str(rest.pop(0)) if rest and isinstance(rest[0], Token) else None
        span = self._span(meta)
        if not self._string(name).strip():
            self._error("RP119", "a component needs a name", self._token_span(name),
                        'name it as it shows on a statement: component "New business"')
        payouts = [r for r in rest if r[0] == "payout"]
        parts: dict[str, list] = {}
        for part, value in rest:
            parts.setdefault(part, []).append(value)
        if len(payouts) != 1:
            self._error(
                "RP106",
                f"component {self._string(name)} has {len(payouts)} payout rules; it needs exactly one",
                span,
                "a component pays by one of: rate, tiers, curve, bonus, spiff, mbo; split it into components",
            )
            return _Statement("component", None, span)
        component = ir.Component(
            span=span,
            name=self._string(name),
            base=base,
            payout=parts["payout"][0],
            deal_multipliers=tuple(parts.get("deal_multiplier", ())),
            measure_multipliers=tuple(parts.get("measure_multiplier", ())),
            gates=tuple(parts.get("gate", ())),
            caps=tuple(parts.get("cap", ())),
        )
        return _Statement("component", component, span)

    def rate(self, meta, children):
        return "payout", ir.FlatRate(span=self._span(meta), rate=children[0])

    def tiers(self, meta, children):
        mode, on, *rest = children
        decelerator = bool(rest and rest[0] == "decelerator")
        bands = tuple(r for r in rest if isinstance(r, ir.Band))
        return "payout", ir.Tiers(
            span=self._span(meta), mode=ir.TierMode(str(mode)), on=str(on), decelerator=decelerator, bands=bands
        )

    def decelerator(self, meta, children):
        return "decelerator"

    def band(self, meta, children):
        if len(children) == 3:
            lower, upper, rate = children
        else:
            (lower, rate), upper = children, None
        return ir.Band(span=self._span(meta), lower=lower, upper=upper, rate=rate)

    def curve(self, meta, children):
        on, of, *points = children
        return "payout", ir.Curve(span=self._span(meta), on=str(on), of=str(of), points=tuple(points))

    def curve_point(self, meta, children):
        x, y = children
        return ir.CurvePoint(span=self._span(meta), x=x, y=y)

    def bonus(self, meta, children):
        amount, when = children
        return "payout", ir.Bonus(span=self._span(meta), amount=amount, when=when)

    def spiff(self, meta, children):
        amount, where, start, end = children
        known = len(self.diagnostics)
        start_date, end_date = self._date(start), self._date(end)
        if len(self.diagnostics) == known and end_date < start_date:
            self._error("RP111", "the SPIFF window ends before it starts", self._span(meta), "write from start to end")
        return "payout", ir.Spiff(span=self._span(meta), amount=amount, where=where, start=start_date, end=end_date)

    def mbo(self, meta, children):
        amount, source = children
        return "payout", ir.Mbo(span=self._span(meta), amount=amount, source=str(source))

    def multiplier_deal(self, meta, children):
        factor, where = children
        return "deal_multiplier", ir.DealMultiplier(span=self._span(meta), factor=factor, where=where)

    def multiplier_measure(self, meta, children):
        factor, when = children
        return "measure_multiplier", ir.MeasureMultiplier(span=self._span(meta), factor=factor, when=when)

    def gate(self, meta, children):
        return "gate", ir.Gate(span=self._span(meta), condition=children[0])

    def cap_multiple(self, meta, children):
        multiple, of, *per = children
        return "cap", ir.Cap(
            span=self._span(meta), multiple=self._computable(multiple), of=str(of), per=self._cap_scope(per)
        )

    def cap_amount(self, meta, children):
        amount, *per = children
        return "cap", ir.Cap(span=self._span(meta), amount=amount, per=self._cap_scope(per))

    def _cap_scope(self, per: list) -> ir.CapScope:
        return self._choice(per[0], ir.CapScope, "cap per") if per else ir.CapScope.PERIOD

    # ------------------------------------------------------------ quota plans

    def target(self, meta, children):
        return _Statement("target", children[0], self._span(meta))

    def over_assign(self, meta, children):
        return _Statement("over_assign", children[0], self._span(meta))

    def allocate(self, meta, children):
        return _Statement("allocate", tuple(children), self._span(meta))

    def allocation_term(self, meta, children):
        basis, *share = children
        bases = ("territory_potential", "prior_bookings", "weights", "equal")
        if str(basis) not in bases:
            self._error(
                "RP115",
                f"unknown allocation basis '{basis}'",
                self._token_span(basis),
                *did_you_mean(str(basis), bases),
                f"allocate by one or a blend of: {', '.join(bases)}",
            )
            basis = "equal"
        return ir.AllocationTerm(span=self._span(meta), basis=str(basis), share=share[0] if share else None)

    def weight(self, meta, children):
        rep, value = children
        weight = ir.Weight(span=self._span(meta), rep=self._string(rep), value=value)
        return _Statement("weight", weight, self._span(meta))

    def phasing(self, meta, children):
        return _Statement("phasing", tuple(children), self._span(meta))

    def ramp(self, meta, children):
        return _Statement("ramp", tuple(children), self._span(meta))

    def override(self, meta, children):
        rep, *rest = children
        period = self._string(rest[0]) if len(rest) == 2 else None
        override = ir.Override(span=self._span(meta), rep=self._string(rep), period=period, amount=rest[-1])
        return _Statement("override", override, self._span(meta))

    def _rounding(self, mode: ir.RoundingMode, meta, children):
        rounding = ir.Rounding(span=self._span(meta), mode=mode, step=children[0])
        return _Statement("rounding", rounding, self._span(meta))

    def round_nearest(self, meta, children):
        return self._rounding(ir.RoundingMode.NEAREST, meta, children)

    def round_up(self, meta, children):
        return self._rounding(ir.RoundingMode.UP, meta, children)

    def round_down(self, meta, children):
        return self._rounding(ir.RoundingMode.DOWN, meta, children)

    # ------------------------------------------------------------ territory plans

    def territory(self, meta, children):
        name, *holders = children
        territory = ir.Territory(
            span=self._span(meta),
            name=self._string(name),
            owners=tuple(h for role, h in holders if role == "owner"),
            overlays=tuple(h for role, h in holders if role == "overlay"),
        )
        return _Statement("territory", territory, self._span(meta))

    def _holder(self, role: str, meta, children):
        rep, *start = children
        start_date = self._date(start[0]) if start else None
        return role, ir.Holder(span=self._span(meta), rep=self._string(rep), start=start_date)

    def territory_owner(self, meta, children):
        return self._holder("owner", meta, children)

    def territory_overlay(self, meta, children):
        return self._holder("overlay", meta, children)

    def assign_named(self, meta, children):
        *accounts, territory, priority = children
        rule = ir.AssignRule(
            span=self._span(meta),
            priority=int(priority),
            territory=self._string(territory),
            accounts=tuple(self._string(a) for a in accounts),
        )
        return _Statement("assign", rule, self._span(meta))

    def assign_rule(self, meta, children):
        where, territory, priority = children
        rule = ir.AssignRule(
            span=self._span(meta), priority=int(priority), territory=self._string(territory), where=where
        )
        return _Statement("assign", rule, self._span(meta))

    def move(self, meta, children):
        account, territory, on = children
        move = ir.Move(
            span=self._span(meta), account=self._string(account), territory=self._string(territory), on=self._date(on)
        )
        return _Statement("move", move, self._span(meta))

    def tolerance(self, meta, children):
        name, value = children
        names = ("max_min_ratio", "cv")
        if str(name) not in names:
            self._error(
                "RP115",
                f"unknown tolerance '{name}'",
                self._token_span(name),
                *did_you_mean(str(name), names),
                "tolerances: max_min_ratio (largest/smallest territory potential), cv (coefficient of variation)",
            )
            return _Statement("tolerance", None, self._span(meta))
        tolerance = ir.Tolerance(span=self._span(meta), name=str(name), value=value)
        return _Statement("tolerance", tolerance, self._span(meta))

    # ------------------------------------------------------------ plan tests

    def plan_test(self, meta, children):
        name, *rows = children
        test = ir.PlanTest(
            span=self._span(meta),
            name=self._string(name),
            given=tuple(r for r in rows if isinstance(r, ir.TestRow)),
            expect=tuple(r for r in rows if isinstance(r, ir.Expectation)),
        )
        return _Statement("test", test, self._span(meta))

    def given(self, meta, children):
        table, *values = children
        return ir.TestRow(span=self._span(meta), table=str(table), values=tuple(values))

    def expect(self, meta, children):
        what, *values = children
        return ir.Expectation(span=self._span(meta), what=str(what), values=tuple(values))

    def field_value(self, meta, children):
        name, value = children
        return ir.FieldValue(span=self._span(meta), name=str(name), value=value)

    def negative(self, meta, children):
        (literal,) = children
        if isinstance(literal, ir.Money):
            return literal.model_copy(update={"amount": -literal.amount, "span": self._span(meta)})
        if isinstance(literal, (ir.Number, ir.Percent)):
            return literal.model_copy(update={"value": -literal.value, "span": self._span(meta)})
        self._error("RP116", "only numbers, percentages and money can be negative", self._span(meta))
        return literal

    def null(self, meta, children):
        return ir.Null(span=self._span(meta))

    # ------------------------------------------------------------ expressions

    def number(self, meta, children):
        return ir.Number(span=self._span(meta), value=self._computable(children[0]))

    def percent(self, meta, children):
        return ir.Percent(span=self._span(meta), value=self._computable(children[0], percent=True))

    def money(self, meta, children):
        amount, currency = children
        return ir.Money(span=self._span(meta), amount=self._decimal(amount), currency=str(currency))  # cents: RP316

    def _computable(self, token: Token, percent: bool = False) -> Decimal:
        """A literal's value, refused (RP121) with more places than the calculators keep: it would be rounded."""
        written = self._decimal(token)
        value = written / 100 if percent else written
        if value.as_tuple().exponent < -LITERAL_PLACES and value != value.quantize(LITERAL_STEP):
            places = LITERAL_PLACES - 2 if percent else LITERAL_PLACES
            self._error("RP121", f"{token} has more decimal places than revplan computes with",
                        self._token_span(token), f"write it with at most {places} decimal places"
                        + (" (10 as a fraction: 12.34567891% is 0.1234567891)" if percent else ""))
        return value

    def date(self, meta, children):
        return ir.Date(span=self._span(meta), value=self._date(children[0]))

    def duration(self, meta, children):
        (number,) = children
        value = self._decimal(number)
        if value != value.to_integral_value():
            self._error("RP117", "a duration is a whole number of days", self._span(meta))
        return ir.Duration(span=self._span(meta), days=int(value))

    def string(self, meta, children):
        return ir.Text(span=self._span(meta), value=self._string(children[0]))

    def true(self, meta, children):
        return ir.Boolean(span=self._span(meta), value=True)

    def false(self, meta, children):
        return ir.Boolean(span=self._span(meta), value=False)

    def field_ref(self, meta, children):
        entity, field = children
        return ir.FieldRef(span=self._span(meta), entity=str(entity), field=str(field))

    def name_ref(self, meta, children):
        return ir.NameRef(span=self._span(meta), name=str(children[0]))

    def aggregate(self, meta, children):
        function, entity, *field = children
        return ir.Aggregate(
            span=self._span(meta), function=str(function), entity=str(entity), field=str(field[0]) if field else None
        )

    def _binary(self, op: str, meta, children):
        left, right = children
        return ir.Binary(span=self._span(meta), op=op, left=left, right=right)

    def add(self, meta, children):
        return self._binary("+", meta, children)

    def subtract(self, meta, children):
        return self._binary("-", meta, children)

    def multiply(self, meta, children):
        return self._binary("*", meta, children)

    def divide(self, meta, children):
        return self._binary("/", meta, children)

    def compare(self, meta, children):
        left, op, right = children
        return ir.Compare(span=self._span(meta), op=str(op), left=left, right=right)

    def and_expr(self, meta, children):
        return ir.Logical(span=self._span(meta), op="and", operands=tuple(children))

    def or_expr(self, meta, children):
        return ir.Logical(span=self._span(meta), op="or", operands=tuple(children))

    def not_expr(self, meta, children):
        return ir.Not(span=self._span(meta), operand=children[0])

    def negate(self, meta, children):
        return ir.Negate(span=self._span(meta), operand=children[0])

    def literal_list(self, meta, children):
        return tuple(children)

    def in_list(self, meta, children):
        operand, values = children
        return ir.InList(span=self._span(meta), operand=operand, values=values)

    def not_in_list(self, meta, children):
        operand, values = children
        return ir.InList(span=self._span(meta), operand=operand, values=values, negated=True)

    def is_null(self, meta, children):
        return ir.IsNull(span=self._span(meta), operand=children[0])

    def is_not_null(self, meta, children):
        return ir.IsNull(span=self._span(meta), operand=children[0], negated=True)


_FIELD_OF = {
    "measured": "measurement",
    "fx": "fx_at",
    "allocate": "allocation",
}

_REQUIRED_HINTS = {
    "effective": "add a line like: effective 2027-01-01 to 2027-12-31",
    "period": "add a line like: period quarter",
    "currency": "add a line like: currency USD",
    "owners": 'add a line like: owners sales "@acme/sales-ops" finance "@acme/fpa" (their approval gates changes)',
}

