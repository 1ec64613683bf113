"""Comp plan IR -> one SQL query (a sqlglot expression tree) that computes payout lines.

In: a checked `ir.CompPlan`, the measures in scope, a sqlglot dialect.
Out: `exp.Select` over the contract tables (reps, deals, deal_splits,
quotas, fx_rates, activities, mbo_scores, rep_assignments) returning one row per payout line
(see PAYOUT_COLUMNS). `compile_plan(...).sql(dialect)` is the SQL text.

The query is a chain of CTEs, one job each:

    periods      the plan's periods (literal rows)
    rep_intervals  the days each rep is in the plan by role (rep_assignments, else the reps row)
    rep_periods  reps x periods they are in the plan and employed in, prorated quota and TI
    links, chain each rep's dated manager; the dated manager closure (recursive), only for roll-up credit
    days, fx     every day of the plan's periods and the period it is in; each currency's rate on each day
    credits      (rep, deal, share), only for plans with several credit sources
    split_rollup (manager, deal, share) of split deals, for a roll-up alone: a manager of two
                 of a deal's split reps is credited once, their shares added
    deal_rows    credited deals in each period, amounts in plan currency; one
                 credit source credits deals as they are read (splits as a left
                 join, roll-up through chain, overlay through the territories)
    cancelled_rows  the same for cancelled deals only: what clawbacks trace
    deal_aggs, activity_aggs   every aggregate the plan uses, per rep-period
    measures     rep_periods + aggregates: what every component reads
    c<n>         one row per rep-period per component: base, payout, gate, caps
    lines        all payout lines: components, draws, clawbacks

Semantics (the shared worked examples are the reference): money is DECIMAL
end to end, exact (compiler/exact.py); tier bands are half-open; payout
lines are rounded to cents once. Plan text reaches SQL only as literals;
column names are our own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Sequence

from sqlglot import exp

from compiler.calendar import PlanPeriod, has_run_off, pay_periods, plan_periods
from compiler.exact import add, dec, div, mul, neg, number, op, round_cents, sub, wrap
from dsl import ir
from dsl.check import is_fixed, payout_inputs

# Every kind of payout line either calculator writes, in the order statements and explain show them.
LINE_TYPES = ("commission", "bonus", "spiff", "mbo", "clawback", "draw", "draw_recovery")

PAYOUT_COLUMNS = (
    "plan",
    "version",
    "component",
    "line_type",
    "rep_id",
    "period",
    "currency",
    "base",
    "rate",
    "amount",
    "uncapped",
    "capped",
    "gated",
    "attainment",
    "quota",
    "target_incentive",
    "proration",
    "deal_count",
)
# A deal behind a line: the line is (plan, component, line_type, rep_id, line_period). `period` is the one the deal was
# earned in; `line_period` that of the line: the same, or for a plan paid on payment the period the deal is paid in
# (empty until then), or on a clawback line the period it was cancelled in.
DEAL_COLUMNS = (
    "plan", "version", "component", "line_type", "rep_id", "period", "line_period", "deal_id", "credited_base",
    "share_of_line",
)
DEAL_ID_COLUMNS = DEAL_COLUMNS[:-1]  # what `revplan run` writes: shares need each deal's line (explain has them)
BUILTINS = ("attainment", "quota", "target_incentive")
ASSIGNMENTS = "territory assignments"  # the key of `computed` naming a run's table of them (territory.assigned)
ASSIGNED_FIELDS = ("role", "segment", "region")  # rep fields rep_assignments date; the others are the reps row's
COMMISSION_RULES = (ir.FlatRate, ir.Tiers, ir.Curve)
ZERO = number(0)
LITERALS = (ir.Number, ir.Percent, ir.Money, ir.Date, ir.Duration, ir.Text, ir.Boolean, ir.Null)


@dataclasses.dataclass
class Credited:
    """Where deal rows come from: a table, the joins that credit reps, the credited rep and share."""

    rows: exp.Table
    rep: exp.Expression
    share: exp.Expression
    joins: list[tuple[exp.Table, exp.Expression, str]]


class CompileError(Exception):
    """A plan construct this calculator cannot compute: refused loudly, never skipped. `hint` says what to do
    when the plans loaded, not the calculator, are short of something (a territory plan, a quota plan)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint



def no_territory_plan() -> CompileError:
    return CompileError("`credit overlay` needs a territory plan (none was loaded)",
                        "load the territory plan too: --plans a folder that holds it, such as plans/")


def no_quota_plan(name: str, known: str) -> CompileError:
    return CompileError(f'quota from plan "{name}": there is no such quota plan ({known})',
                        "load the quota plan too (--plans a folder that holds it, such as plans/), or check its name")


def compile_plan(
    plan: ir.CompPlan,
    measures: dict[str, ir.Measure],
    dialect: str = "duckdb",
    territories: tuple[ir.TerritoryPlan, ...] = (),
    quota_plans: tuple[ir.QuotaPlan, ...] = (),
    detail: bool | str = False,
    computed: dict[str, str] | None = None,
    converted: frozenset[str] = frozenset(),
) -> exp.Select:
    """The payout-line query of a comp plan; `territories` feed `credit overlay` (and quota
    plans' territory potential); `quota_plans` feed `quota from plan "NAME"`.

    `computed` names tables holding what a run has already computed, read instead of computing it
    again: quota plans' rows (`compiler.quota.quota_table`) by quota plan key, and the territory
    assignments (`compiler.territory.assignments`) under `ASSIGNMENTS`.

    With `detail="ids"` the query returns the deals behind the commission lines
    (DEAL_ID_COLUMNS: each deal's credited base; one pass over the deals, what
    `revplan run` writes); with `detail=True` it also returns their shares
    instead (DEAL_COLUMNS): each deal's credited base and exact share of its line.

    `converted`: the custom money fields of deals (`Schema.converted_fields`), converted into the plan
    currency and credited by share as the amount is.
    """
    return _PlanCompiler(plan, measures, dialect, territories, quota_plans, computed, converted).query(detail)


def compile_part_periods(plan: ir.CompPlan, dialect: str = "duckdb") -> exp.Select:
    """The (rep_id, period) of `plan` its reps are in for part of their employed days (`_PlanCompiler.part_periods`)."""
    return _PlanCompiler(plan, {}, dialect).part_periods()


def compile_payouts_and_deal_ids(
    plan: ir.CompPlan,
    measures: dict[str, ir.Measure],
    dialect: str = "duckdb",
    territories: tuple[ir.TerritoryPlan, ...] = (),
    quota_plans: tuple[ir.QuotaPlan, ...] = (),
    computed: dict[str, str] | None = None,
    rep: str | None = None,
    periods: Collection[str] | None = None,
    converted: frozenset[str] = frozenset(),
) -> tuple[str, str]:
    """The SQL texts of `compile_plan` and of `compile_plan(detail="ids")`, from one compile: the
    second query takes the CTEs it reads from the first, so a run builds each plan's tree once.
    With `rep` or `periods` (labels), the second has only the deals behind those lines (`deals_behind`)."""
    compiler = _PlanCompiler(plan, measures, dialect, territories, quota_plans, computed, converted)
    payouts = compiler.query().sql(dialect=dialect, copy=False)  # printed before its CTEs join the second tree
    deals = deals_behind(compiler.deal_ids_query(compiler.ctes), rep, periods)
    return payouts, deals.sql(dialect=dialect, copy=False)


# ---------------------------------------------------------------- small builders


def identifier(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    # Built directly: exp.column() parses its arguments, which adds up over thousands of columns.
    return exp.Column(this=identifier(name), table=identifier(table) if table else None)


def text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def date(value) -> exp.Expression:
    return exp.Cast(this=text(value.isoformat()), to=exp.DataType(this=exp.DataType.Type.DATE))


def table(name: str, alias: str | None = None) -> exp.Table:
    node = exp.Table(this=identifier(name))
    return node.as_(alias, quoted=True, copy=False) if alias else node


def alias(expression: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(expression, name, quoted=True, copy=False)


def eq(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    return exp.EQ(this=left, expression=right)


def and_(*conditions: exp.Expression) -> exp.Expression:
    return exp.and_(*conditions, copy=False) if len(conditions) > 1 else conditions[0]


def case(condition: exp.Expression, then: exp.Expression, otherwise: exp.Expression) -> exp.Expression:
    return exp.Case().when(condition, then, copy=False).else_(otherwise, copy=False)


def greatest(*values: exp.Expression) -> exp.Expression:
    if len(values) == 1:  # Spark refuses GREATEST / LEAST of one argument
        return values[0]
    return _null_if_any_null(exp.Greatest(this=values[0], expressions=list(values[1:]), ignore_nulls=True), values)


def least(*values: exp.Expression) -> exp.Expression:
    if len(values) == 1:
        return values[0]
    return _null_if_any_null(exp.Least(this=values[0], expressions=list(values[1:]), ignore_nulls=True), values)


def _null_if_any_null(function: exp.Expression, values: tuple[exp.Expression, ...]) -> exp.Expression:
    """GREATEST / LEAST that is NULL when an argument is NULL, on every engine.

    Engines disagree on NULL arguments (DuckDB, PostgreSQL and Spark skip them;
    BigQuery, Snowflake and Trino return NULL) and sqlglot spells the NULL rule
    out for DuckDB only, so one plan paid differently on DuckDB and PostgreSQL
    (tiers read on a measure with no value). Spelled out here, the function
    never sees a NULL, and every engine computes what DuckDB always did.
    """
    unknown = [
        exp.Is(this=wrap(v.copy()), expression=exp.null())
        for v in values
        if not (isinstance(v, exp.Literal) or (isinstance(v, exp.Cast) and isinstance(v.this, exp.Literal)))
    ]
    if not unknown:
        return function
    return exp.Case().when(exp.or_(*unknown, copy=False), exp.null(), copy=False).else_(function, copy=False)


def coalesce(*values: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=values[0], expressions=list(values[1:]))


def is_true(condition: exp.Expression) -> exp.Expression:
    return coalesce(exp.paren(condition, copy=False), exp.false())


def days_between(start: exp.Expression, end: exp.Expression) -> exp.Expression:
    return exp.DateDiff(this=end, expression=start, unit=exp.var("DAY"))


def window(function: exp.Expression, partition: list[exp.Expression], order: list[exp.Expression],
           spec: exp.WindowSpec | None = None) -> exp.Window:
    # Order keys are never NULL; NULLS FIRST stated is what BigQuery's windows take (sqlglot drops a NULLS LAST
    # it cannot translate there, with a warning), and the same on every engine.
    ordered = [exp.Ordered(this=o, nulls_first=True) for o in order]
    return exp.Window(this=function, partition_by=partition, order=exp.Order(expressions=ordered), spec=spec)


def union_all(selects: list[exp.Select]) -> exp.Expression:
    result: exp.Expression = selects[0]
    for select in selects[1:]:
        result = exp.union(result, select, distinct=False, copy=False)
    return result


# ---------------------------------------------------------------- aggregates


@dataclasses.dataclass(frozen=True)
class AggregateKey:
    function: str
    entity: str
    field: str | None
    condition: ir.Expr | None  # the measure filters that apply, and-ed
    multipliers: tuple[ir.DealMultiplier, ...]  # deal multipliers scale what is summed or counted


class RowCompiler:
    """Expressions over one input row (a deal, an activity, an account): conditions and arithmetic."""

    def __init__(self, dialect: str, converted: frozenset[str] = frozenset()):
        self.dialect = dialect
        self.converted = converted  # custom money fields of deals (`Schema.converted_fields`)

    def literal(self, node: ir.Expr) -> exp.Expression:
        match node:
            case ir.Number(value=v) | ir.Percent(value=v):
                return number(v)
            case ir.Money(amount=v):
                return number(v)
            case ir.Text(value=v):
                return text(v)
            case ir.Date(value=v):
                return date(v)
            case ir.Boolean(value=v):
                return exp.true() if v else exp.false()
            case ir.Null():
                return exp.null()
        raise CompileError(f"{type(node).__name__} is not a literal")

    def row(self, node: ir.Expr, entity: str, alias_: str | None, credited: bool = False) -> exp.Expression:
        """An expression over one input row (a deal, an activity, a rep, an account)."""
        match node:
            case ir.FieldRef(entity=e, field=field):
                if e != entity:
                    raise CompileError(f"{e}.{field} cannot be used in a condition on {entity} rows")
                if entity == "deal" and field == "amount":
                    return col("amount" if credited else "amount_fx", alias_)
                if entity == "deal" and field in self.converted and credited:  # converted in `deal_rows`
                    return mul(col(field, alias_), col("share", alias_))
                return col(field, alias_)
            case ir.NameRef() | ir.Aggregate():
                raise CompileError("a row condition cannot use measures")
        if isinstance(node, LITERALS):
            return self.literal(node)
        return self.operators(node, lambda child: self.row(child, entity, alias_))

    def operators(self, node: ir.Expr, inner) -> exp.Expression:
        match node:
            case ir.Binary(op="+" | "-" as o, left=l, right=ir.Duration(days=d)):  # a date some days on
                return days_after(inner(l), d if o == "+" else -d)
            case ir.Binary(op="+", left=ir.Duration(days=d), right=r):
                return days_after(inner(r), d)
            case ir.Binary(op="+", left=l, right=r):
                return add(inner(l), inner(r))
            case ir.Binary(op="-", left=l, right=r):
                return sub(inner(l), inner(r))
            case ir.Binary(op="*", left=l, right=r):
                return mul(inner(l), inner(r))
            case ir.Binary(op="/", left=l, right=r):
                return div(inner(l), inner(r), self.dialect)
            case ir.Negate(operand=o):
                return neg(inner(o))
            case ir.Compare(op=o, left=l, right=r):
                return op(COMPARISONS[o], inner(l), inner(r))
            case ir.Logical(op=o, operands=operands):
                parts = [exp.paren(inner(x), copy=False) for x in operands]
                return exp.and_(*parts, copy=False) if o == "and" else exp.or_(*parts, copy=False)
            case ir.Not(operand=o):
                return exp.Not(this=exp.paren(inner(o), copy=False))
            case ir.InList(operand=o, values=values, negated=negated):
                node_in = exp.In(this=wrap(inner(o)), expressions=[inner(v) for v in values])
                return exp.Not(this=node_in) if negated else node_in
            case ir.IsNull(operand=o, negated=negated):
                test = exp.Is(this=wrap(inner(o)), expression=exp.null())
                return exp.Not(this=test) if negated else test
        raise CompileError(f"cannot compile {type(node).__name__} here")


COMPARISONS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


def row_condition(node: ir.Expr, entity: str, alias_: str, dialect: str) -> exp.Expression:
    """A condition on one row, NULL-safe (unknown is false)."""
    return is_true(RowCompiler(dialect).row(node, entity, alias_))


class _PlanCompiler(RowCompiler):
    def __init__(
        self,
        plan: ir.CompPlan,
        measures: dict[str, ir.Measure],
        dialect: str,
        territories: tuple[ir.TerritoryPlan, ...] = (),
        quota_plans: tuple[ir.QuotaPlan, ...] = (),
        computed: dict[str, str] | None = None,
        converted: frozenset[str] = frozenset(),
    ):
        super().__init__(dialect, converted)
        self.computed = computed or {}
        self.plan, self.territories = plan, territories
        self.measures = {**measures, **{m.name: m for m in plan.measures}}  # shared, then the plan's own
        self.quota_plans = quota_plans
        self.aggregates: dict[AggregateKey, str] = {}
        self.yearly_windows: list[tuple[str, exp.Expression]] = []  # columns of `measures`: `own_period`, ...
        self.multipliers: tuple[ir.DealMultiplier, ...] = ()  # of the component being compiled
        self.ytd = plan.measurement == ir.Measurement.YEAR_TO_DATE
        self.pay_inputs = frozenset().union(*(payout_inputs(c.payout) for c in plan.components)) & GAPS.keys()
        self.uses_attainment = False
        self.ctes: list[tuple[str, exp.Expression]] = []  # of the last query built, by name

    # ------------------------------------------------------------ the query

    def query(self, detail: bool | str = False) -> exp.Select:
        plan = self.plan
        if plan.crediting.overlay and not self.territories:
            raise no_territory_plan()
        # Compile every payout first: they register the aggregates the CTEs below compute.
        components = [self.component(index, c) for index, c in enumerate(plan.components)]
        draws = self.draws() if plan.draw is not None else None
        traced = detail or has_run_off(plan)
        # Clawbacks alone trace only cancelled deals: their own small rows, so deal_rows is read once.
        clawbacks_only = not detail and plan.paid_on != ir.PayoutTiming.PAYMENT
        traced_rows = "cancelled_rows" if clawbacks_only else "deal_rows"
        deal_shares = self.deal_shares(traced_rows) if traced else None
        clawbacks = self.clawbacks() if plan.clawback is not None and deal_shares is not None else None
        paid = self.paid_lines() if plan.paid_on == ir.PayoutTiming.PAYMENT else None
        plan_range = (plan.effective_from, plan.effective_to, plan.period)
        ctes: list[tuple[str, exp.Expression]] = [("periods", self.periods(plan_periods(*plan_range)))]
        if has_run_off(plan):  # lines also in the run-off
            ctes.append(("pay_periods", self.periods(pay_periods(*plan_range))))
        if plan.quota.plan is not None:  # `quota from plan "NAME"`: the quota plan's output, not the quotas table
            from compiler import quota

            body = quota.plan_quotas(
                plan.quota.plan, self.quota_plans, self.territories, self.dialect, plan.period, self.computed
            )
            ctes.append(("plan_quotas", body))
        ctes += [("days", self.days()), ("fx", self.fx())]  # the rep-periods convert TIs
        ctes.append(("rep_intervals", self.rep_intervals()))
        ctes.append(("rep_periods", self.rep_periods()))
        if plan.crediting.rollup:
            ctes += [("links", self.links()), ("chain", self.chain())]
        if plan.crediting.overlay:
            from compiler import territory

            territories = list(self.territories)
            ctes += [
                ("assignments", territory.assigned(territories, self.dialect, self.computed.get(ASSIGNMENTS))),
                ("holders", territory.holders(territories)),
            ]
        if self.credits_table_needed():
            ctes.append(("credits", self.credits()))
        elif plan.crediting.rollup:
            ctes.append(("split_rollup", self.split_rollup()))
        ctes.append(("deal_rows", self.deal_rows()))
        if deal_shares is not None and traced_rows == "cancelled_rows":
            ctes.append(("cancelled_rows", self.deal_rows(only_cancelled=True)))
        ctes += [("activity_rows", self.activity_rows())]
        ctes += [
            ("deal_aggs", self.entity_aggregates("deal", "deal_rows")),
            ("activity_aggs", self.entity_aggregates("activity", "activity_rows")),
            ("measures", self.measures_cte()),
        ]
        for index, (select, _) in enumerate(components):
            ctes.append((f"c{index}", select))
        line_selects = [line for _, lines in components for line in lines]
        ctes.append(("earned_lines", union_all(line_selects)))
        if deal_shares is not None:
            ctes.append(("deal_shares", deal_shares))
        ctes.append(
            (
                "component_lines",
                paid if paid is not None else exp.select("*", copy=False).from_(table("earned_lines"), copy=False),
            )
        )
        final = ["component_lines"]
        self.ctes = ctes
        if detail == "ids":
            return self.deal_ids_query(ctes)
        if detail:
            return self.detail_query(ctes, deal_shares)
        for name, body in (("draws", draws), ("clawbacks", clawbacks)):
            if body is not None:
                ctes.append((name, body))
                final.append(name)
        outer = union_all(
            [exp.select(*[col(c) for c in PAYOUT_COLUMNS], copy=False).from_(table(name), copy=False) for name in final]
        )
        select = exp.select("*", copy=False).from_(
            exp.Subquery(this=outer, alias=exp.TableAlias(this=exp.to_identifier("all_lines"))), copy=False
        )
        line_order = [col(name) for name in ("rep_id", "period", "line_type", "component")]
        return self.with_ctes(select, ctes).order_by(*line_order, copy=False)

    # ------------------------------------------------------------ calendar and roster

    def periods(self, periods: list[PlanPeriod]) -> exp.Expression:
        rows = [
            exp.Tuple(
                expressions=[
                    text(p.label),
                    date(p.start),
                    date(p.end),
                    exp.Literal.number(p.index),
                    date(p.year_start),
                    exp.Literal.number(p.days),
                ]
            )
            for p in periods
        ]
        names = ["period", "period_start", "period_end", "period_index", "year_start", "period_days"]
        values = exp.Values(
            expressions=rows,
            alias=exp.TableAlias(
                this=exp.to_identifier("p"), columns=[exp.to_identifier(n, quoted=True) for n in names]
            ),
        )
        return exp.select(*[col(n) for n in names], copy=False).from_(values, copy=False)

    def rep_intervals(self) -> exp.Select:
        """(rep_id, first_day, last_day): the days a rep is in the plan by role, within its effective range.

        A rep without rep_assignments rows has one interval, the whole range,
        judged on the reps row (as always). A rep with rows has one per
        assignment, judged on the assignment's role, segment and region (other
        fields from the reps row); days no assignment covers are in no plan.
        Intervals of one rep never overlap (the contract refuses overlapping
        assignments, RD021), so joining a deal to them finds at most one.
        Employment does not clip them: it clips active days (rep_periods), and
        deals count as they always did, whether or not the rep was employed.
        """
        plan = self.plan
        intervals = roster_intervals(plan.effective_from, plan.effective_to, eligibility_fields(plan.eligibility))
        keep = exp.LTE(this=col("first_day", "iv"), expression=col("last_day", "iv"))
        if plan.eligibility is not None:
            keep = and_(keep, is_true(self.row(plan.eligibility, "rep", "iv")))
        return (
            exp.select(
                col("rep_id", "iv"), col("first_day", "iv"), col("last_day", "iv"), col("interval_ti", "iv"), copy=False
            )
            .from_(intervals, copy=False)
            .where(keep, copy=False)
        )

    def in_plan_on(self, rep: exp.Expression, day: exp.Expression) -> exp.Expression:
        """Join condition: `day` falls in one of `rep`'s in-plan intervals (alias i)."""
        return and_(
            eq(col("rep_id", "i"), rep),
            exp.Between(this=day, low=col("first_day", "i"), high=col("last_day", "i")),
        )

    def rep_periods(self) -> exp.Select:
        """Active days per rep and period: the in-plan intervals clipped to the period and employment, added up."""
        plan = self.plan
        interval_days = employed_days(col("first_day", "i"), col("last_day", "i"))
        active_days = exp.Cast(this=exp.Sum(this=interval_days), to=exp.DataType.build("BIGINT"))
        # TI x days over the rep's intervals: one TI, or each interval's by its days (a promotion mid-period).
        ti_days = exp.Sum(this=mul(dec(col("interval_ti", "i")), interval_days.copy()))
        # A TI is in the rep's pay currency: it converts at the rate in force on the period's last day.
        currency = col("currency", "r")
        home = exp.or_(exp.Is(this=currency, expression=exp.null()), eq(currency.copy(), text(plan.currency)))
        ti_rate = case(home, number(1), col("rate", "tfx"))
        on_rate = and_(eq(col("from", "tfx"), currency.copy()), eq(col("day", "tfx"), col("period_end", "p")))
        keys = [
            alias(col("id", "r"), "rep_id"),
            col("period", "p"),
            col("period_start", "p"),
            col("period_end", "p"),
            col("period_index", "p"),
            col("year_start", "p"),
            col("period_days", "p"),
            alias(ti_rate, "ti_rate"),
        ]
        inner = (
            exp.select(*keys, alias(active_days, "active_days"), alias(ti_days, "ti_days"), copy=False)
            .from_(table("rep_intervals", "i"), copy=False)
            .join(table("reps", "r"), on=eq(col("id", "r"), col("rep_id", "i")), copy=False)
            .join(table("periods", "p"), join_type="cross", copy=False)
            .join(table("fx", "tfx"), join_type="left", on=on_rate, copy=False)
            .group_by(*[(k.this if isinstance(k, exp.Alias) else k).copy() for k in keys], copy=False)
        )
        days, per_year = col("active_days", "e"), exp.Literal.number(plan.period.per_year)
        ti_days = mul(dec(col("ti_days", "e")), col("ti_rate", "e"))  # in the plan currency
        # The annual TI of the period: the days-weighted TI of its intervals (the TI itself when there is one).
        annual_ti = div(ti_days, dec(days.copy()), self.dialect)
        if plan.prorate:  # quota and TI scale with the days worked
            quota = div(mul(dec(col("amount", "q")), dec(days.copy())), dec(col("period_days", "e")), self.dialect)
            ti = div(
                ti_days.copy(),
                dec(exp.Mul(this=col("period_days", "e"), expression=per_year)),
                self.dialect,
            )
            proration = div(dec(days.copy()), dec(col("period_days", "e")), self.dialect)
        else:  # the same values without the exact divisions by the period's own length
            quota = dec(col("amount", "q"))
            ti = div(ti_days.copy(), dec(exp.Mul(this=days.copy(), expression=per_year)), self.dialect)
            proration = number(1)
        return (
            exp.select(
                *[
                    col(n, "e")
                    for n in (
                        "rep_id",
                        "period",
                        "period_start",
                        "period_end",
                        "period_index",
                        "year_start",
                        "period_days",
                        "active_days",
                    )
                ],
                alias(annual_ti, "annual_ti"),
                alias(quota, "period_quota"),
                alias(ti, "period_ti"),
                alias(proration, "proration"),
                copy=False,
            )
            .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("e", quoted=True))), copy=False)
            .join(
                table("plan_quotas" if plan.quota.plan is not None else "quotas", "q"),
                join_type="left",
                on=and_(eq(col("rep_id", "q"), col("rep_id", "e")), eq(col("period", "q"), col("period", "e"))),
                copy=False,
            )
            .where(exp.GT(this=col("active_days", "e"), expression=exp.Literal.number(0)), copy=False)
        )

    def part_periods(self) -> exp.Select:
        """(rep_id, period): reps in the plan on some but fewer of a period's days than they were employed in it
        (a role change or a new version mid-period): a plan that does not prorate pays them the whole period."""
        plan = self.plan
        in_plan = exp.Sum(this=employed_days(col("first_day", "i"), col("last_day", "i")))
        employment = [col("id", "r"), col("hire_date", "r"), col("termination_date", "r")]
        period = [col("period", "p"), col("period_start", "p"), col("period_end", "p")]
        select = (
            exp.select(alias(col("id", "r"), "rep_id"), col("period", "p"), copy=False)
            .from_(table("rep_intervals", "i"), copy=False)
            .join(table("reps", "r"), on=eq(col("id", "r"), col("rep_id", "i")), copy=False)
            .join(table("periods", "p"), join_type="cross", copy=False)
            .group_by(*employment, *period, copy=False)
            .having(and_(exp.GT(this=in_plan, expression=exp.Literal.number(0)),
                         exp.LT(this=in_plan.copy(), expression=employed_days())), copy=False)
        )
        ctes = [
            ("periods", self.periods(plan_periods(plan.effective_from, plan.effective_to, plan.period))),
            ("rep_intervals", self.rep_intervals()),
        ]
        return self.with_ctes(select, ctes).order_by(col("rep_id"), col("period"), copy=False)

    def links(self) -> exp.Select:
        """(rep_id, manager_id, first_day, last_day): each rep's manager over the plan's range, dated by
        rep_assignments where a rep has them (days no assignment covers have no manager), else the reps row's."""
        plan = self.plan
        intervals = roster_intervals(plan.effective_from, plan.effective_to, [])
        return (
            exp.select(
                col("rep_id", "iv"),
                alias(col("interval_manager", "iv"), "manager_id"),
                col("first_day", "iv"),
                col("last_day", "iv"),
                copy=False,
            )
            .from_(intervals, copy=False)
            .where(
                and_(
                    exp.LTE(this=col("first_day", "iv"), expression=col("last_day", "iv")),
                    exp.Not(this=exp.Is(this=col("interval_manager", "iv"), expression=exp.null())),
                ),
                copy=False,
            )
        )

    def chain(self) -> exp.Expression:
        """(rep, manager, depth, first_day, last_day) for every manager above a rep and the days that
        holds (each link's days, intersected up the chain); recursion stops at 64 levels (a cycle)."""
        base = exp.select(
            col("rep_id"), col("manager_id"), alias(exp.Literal.number(1), "depth"), col("first_day"),
            col("last_day"), copy=False,
        ).from_(table("links"), copy=False)
        overlap = and_(
            eq(col("rep_id", "l"), col("manager_id", "c")),
            exp.LTE(this=col("first_day", "l"), expression=col("last_day", "c")),
            exp.GTE(this=col("last_day", "l"), expression=col("first_day", "c")),
        )
        step = (
            exp.select(
                col("rep_id", "c"),
                alias(col("manager_id", "l"), "manager_id"),
                alias(exp.Add(this=col("depth", "c"), expression=exp.Literal.number(1)), "depth"),
                alias(greatest(col("first_day", "c"), col("first_day", "l")), "first_day"),
                alias(least(col("last_day", "c"), col("last_day", "l")), "last_day"),
                copy=False,
            )
            .from_(table("chain", "c"), copy=False)
            .join(table("links", "l"), on=overlap, copy=False)
            .where(exp.LT(this=col("depth", "c"), expression=exp.Literal.number(64)), copy=False)
        )
        return exp.union(base, step, distinct=False, copy=False)

    def on_chain(self, rep: exp.Expression, day: exp.Expression) -> exp.Expression:
        """Join condition: chain row h is a manager above `rep` on `day`, within the roll-up depth."""
        within = exp.Between(this=day, low=col("first_day", "h"), high=col("last_day", "h"))
        on = and_(eq(col("rep_id", "h"), rep), within)
        depth = self.plan.crediting.rollup_depth
        if depth is not None:
            on = and_(on, exp.LTE(this=col("depth", "h"), expression=exp.Literal.number(depth)))
        return on

    # ------------------------------------------------------------ crediting

    def credits(self) -> exp.Expression:
        crediting = self.plan.crediting
        owner = exp.select(
            alias(col("owner_rep_id"), "rep_id"), alias(col("id"), "deal_id"), alias(number(1), "share"), copy=False
        ).from_(table("deals"), copy=False)
        split_deals = exp.select(col("deal_id"), copy=False).from_(table("deal_splits"), copy=False)
        splits = exp.select(col("rep_id"), col("deal_id"), alias(dec(col("percent")), "share"), copy=False).from_(
            table("deal_splits"), copy=False
        )
        unsplit = owner.copy().where(exp.Not(this=exp.In(this=col("id"), query=exp.Subquery(this=split_deals))),
                                     copy=False)  # a copy: `owner` credits split deals too
        split_credit = union_all([unsplit, splits])  # a split deal's split reps, else its owner
        direct = split_credit if crediting.splits else owner
        direct_sub = exp.Subquery(this=direct, alias=exp.TableAlias(this=exp.to_identifier("d", quoted=True)))
        # A roll-up follows the deal's credit: the managers of its split reps, each with their share.
        rollup_sub = exp.Subquery(this=split_credit.copy(), alias=exp.TableAlias(this=exp.to_identifier("d",
                                                                                                   quoted=True)))
        selects = []
        if crediting.owner or crediting.splits:
            selects.append(
                exp.select(col("rep_id", "d"), col("deal_id", "d"), col("share", "d"), copy=False).from_(
                    direct_sub, copy=False
                )
            )
        if crediting.rollup:  # the managers above the credited rep on the deal's booking date
            selects.append(
                exp.select(alias(col("manager_id", "h"), "rep_id"), col("deal_id", "d"), col("share", "d"), copy=False)
                .from_(rollup_sub, copy=False)
                .join(table("deals", "dd"), on=eq(col("id", "dd"), col("deal_id", "d")), copy=False)
                .join(table("chain", "h"), on=self.on_chain(col("rep_id", "d"), self.booking_date("dd")), copy=False)
            )
        if crediting.overlay:
            overlay = exp.select(
                col("rep_id", "h"), alias(col("id", "d"), "deal_id"), alias(number(1), "share"), copy=False
            ).from_(table("deals", "d"), copy=False)
            for join_table, on, kind in self.overlay_joins("d"):
                overlay = overlay.join(join_table, on=on, join_type=kind, copy=False)
            selects.append(overlay)
        credited = exp.Subquery(this=union_all(selects), alias=exp.TableAlias(this=exp.to_identifier("u", quoted=True)))
        # Only reps on this plan matter: filtering here keeps the deal join small.
        on_plan = exp.In(
            this=col("rep_id"),
            query=exp.Subquery(this=exp.select(col("rep_id"), copy=False).from_(table("rep_periods"), copy=False)),
        )
        return (
            exp.select(col("rep_id"), col("deal_id"), alias(dec(exp.Sum(this=col("share"))), "share"), copy=False)
            .from_(credited, copy=False)
            .where(on_plan, copy=False)
            .group_by(col("rep_id"), col("deal_id"), copy=False)
        )

    def split_rollup(self) -> exp.Select:
        """For a roll-up alone: each manager of a split deal's reps on its booking date, with their shares added
        (a manager of two of them is credited once). Split deals are few; only those the plan counts are read
        (`deal_rows`' filter)."""
        return (
            exp.select(col("manager_id", "h"), col("deal_id", "s"), alias(dec(exp.Sum(this=col("percent", "s"))),
                                                                          "share"), copy=False)
            .from_(table("deal_splits", "s"), copy=False)
            .join(table("deals", "d"), on=eq(col("id", "d"), col("deal_id", "s")), copy=False)
            .join(table("chain", "h"), on=self.on_chain(col("rep_id", "s"), self.booking_date("d")), copy=False)
            .where(and_(self.in_force(self.booking_date("d")), self.deal_filter()), copy=False)
            .group_by(col("manager_id", "h"), col("deal_id", "s"), copy=False)
        )

    def booking_date(self, deal: str) -> exp.Expression:
        """Credit and attainment count a deal when it closes (paid on payment only delays the pay)."""
        return col("close_date", deal)

    def in_window(self, day: exp.Expression, rep_period: str) -> exp.Expression:
        start = col("year_start" if self.ytd else "period_start", rep_period)
        return exp.Between(this=day, low=start, high=col("period_end", rep_period))

    def in_force(self, day: exp.Expression) -> exp.Expression:
        """A deal or activity counts in the plan version in force on its date (versions split a period)."""
        return exp.Between(this=day, low=date(self.plan.effective_from), high=date(self.plan.effective_to))

    def deal_rows(self, only_cancelled: bool = False) -> exp.Expression:
        """Each credited deal in each rep-period it counts in, with its amount in plan currency.

        `only_cancelled` keeps the deals a clawback can take back: a second, small
        set of rows, so the big one is read once and never materialised."""
        return union_all([self.deal_rows_of(credited, only_cancelled) for credited in self.credited_deals()])

    def deal_rows_of(self, credited: Credited, only_cancelled: bool) -> exp.Select:
        """`deal_rows` of one way deals are credited."""
        currency = self.plan.currency

        def converted(money: exp.Expression) -> exp.Expression:  # a money field in the plan currency
            return case(eq(col("currency", "d"), text(currency)), dec(money), mul(dec(money.copy()), col("rate", "fx")))

        amount_fx = converted(col("amount", "d"))
        # Only the deal fields the plan reads: deal rows are the big intermediate.
        always = ["id", "close_date", "cancel_date", "paid_date"]
        deal_fields = [
            alias(converted(col(name, "d")), name) if name in self.converted else col(name, "d")
            for name in [*always, *self.used_fields("deal", exclude={*always, "amount"})]
        ]
        select = exp.select(
            alias(credited.rep, "rep_id"),
            col("period", "p"),
            col("period_index", "p"),
            *deal_fields,
            alias(credited.share, "share"),
            alias(amount_fx, "amount_fx"),
            alias(credited_amount(amount_fx.copy(), credited.share.copy()), "amount"),
            copy=False,
        ).from_(credited.rows, copy=False)
        for join_table, on, kind in credited.joins:
            select = select.join(join_table, on=on, join_type=kind, copy=False)
        # Deals are matched to periods (a handful of rows), not to rep-periods: aggregates
        # are joined to the plan's reps afterwards, which keeps the big join cheap. By their day, where a
        # day is in one period; year to date, a day counts in every later period too, and the engine
        # best multiplies the deals by their periods last, as it does a range join.
        if self.ytd:
            in_periods = self.in_window(self.booking_date("d"), "p")
            select = select.join(table("periods", "p"), on=in_periods, copy=False)
        else:
            on_day = eq(col("day", "dd"), self.booking_date("d"))
            select = select.join(table("days", "dd"), on=on_day, copy=False).join(
                table("periods", "p"), on=eq(col("period_index", "p"), col("period_index", "dd")), copy=False
            )
        # A deal counts for a rep only on a day the rep is in the plan (their role that day): this
        # join also keeps only the plan's reps.
        in_plan = self.in_plan_on(credited.rep.copy(), self.booking_date("d"))
        select = select.join(table("rep_intervals", "i"), on=in_plan, copy=False)
        fx_day = self.booking_date("d")
        if self.plan.fx_at == ir.FxDate.PERIOD_END and not self.ytd:  # the rate of the deal's period's end
            fx_day = col("period_end", "p")
        elif self.plan.fx_at == ir.FxDate.PERIOD_END:  # of its own period, not of every later one it counts in
            fx_day = col("period_end", "bp")
            select = select.join(table("periods", "bp"), join_type="left", on=in_period(self.booking_date("d"), "bp"),
                                 copy=False)
        on_rate = and_(eq(col("from", "fx"), col("currency", "d")), eq(col("day", "fx"), fx_day))
        select = select.join(table("fx", "fx"), join_type="left", on=on_rate, copy=False)
        where = [self.in_force(self.booking_date("d")), self.deal_filter()]
        if self.plan.crediting.follows_splits:  # a 0 % split row credits nothing: no deal to count either
            where.append(exp.NEQ(this=credited.share.copy(), expression=ZERO.copy()))
        if only_cancelled:
            where.append(exp.Not(this=exp.Is(this=col("cancel_date", "d"), expression=exp.null())))
        return select.where(and_(*where), copy=False)

    def credited_deals(self) -> list[Credited]:
        """How deal rows find their credited reps: from the deals themselves whenever one source
        credits them (owner, splits as a left join of the few splits, roll-up through the manager
        chain, overlay through the territories), else from the credits table, which adds up the
        shares of a rep credited twice for one deal. A roll-up alone reads unsplit and split deals apart."""
        crediting = self.plan.crediting
        deals = table("deals", "d")
        if self.credits_table_needed():
            on_id = eq(col("id", "d"), col("deal_id", "c"))
            return [Credited(table("credits", "c"), col("rep_id", "c"), col("share", "c"), [(deals, on_id, "inner")])]
        if crediting.rollup:
            return self.rolled_up_deals()
        joins, rep, share = [], col("owner_rep_id", "d"), number(1)
        if crediting.follows_splits:  # a split deal credits its split reps
            joins.append((table("deal_splits", "s"), eq(col("deal_id", "s"), col("id", "d")), "left"))
            rep = coalesce(col("rep_id", "s"), col("owner_rep_id", "d"))
            share = case(exp.Is(this=col("deal_id", "s"), expression=exp.null()), number(1), dec(col("percent", "s")))
        if crediting.overlay:
            joins += self.overlay_joins("d")
            rep = col("rep_id", "h")
        return [Credited(deals, rep, share, joins)]

    def rolled_up_deals(self) -> list[Credited]:
        """A roll-up alone: an unsplit deal credits its owner's managers through the small manager chain, as it
        is read; a split deal its split reps' managers, from `split_rollup` (a manager of two of them once)."""
        deals = table("deals", "d")
        splits = (table("deal_splits", "s"), eq(col("deal_id", "s"), col("id", "d")), "left")
        # The owner of an unsplit deal, in the join itself: as a filter, DuckDB makes the left join an anti
        # join and builds its hash table on the deals.
        owner = case(exp.Is(this=col("deal_id", "s"), expression=exp.null()), col("owner_rep_id", "d"), exp.null())
        owners_managers = (table("chain", "h"), self.on_chain(owner, self.booking_date("d")), "inner")
        split_managers = (table("split_rollup", "r"), eq(col("deal_id", "r"), col("id", "d")), "inner")
        return [
            Credited(deals, col("manager_id", "h"), number(1), [splits, owners_managers]),
            Credited(deals, col("manager_id", "r"), col("share", "r"), [split_managers]),
        ]

    def credits_table_needed(self) -> bool:
        """Whether a rep can be credited twice for one deal by two sources (the credits table adds their shares
        up: one row, the deal counted once). A roll-up alone adds up only its split deals (`split_rollup`)."""
        crediting = self.plan.crediting
        return sum([crediting.owner or crediting.splits, crediting.rollup, crediting.overlay]) > 1

    def overlay_joins(self, deal: str) -> list[tuple[exp.Table, exp.Expression, str]]:
        """The territory holding the deal's account on its close date, and that territory's overlay reps."""
        on_close = lambda t: exp.Between(this=col("close_date", deal), low=col("start", t), high=col("end", t))  # noqa: E731
        territory_of_account = and_(eq(col("account_id", "t"), col("account_id", deal)), on_close("t"))
        overlay_holder = and_(
            eq(col("territory", "h"), col("territory", "t")), eq(col("role", "h"), text("overlay")), on_close("h")
        )
        return [
            (table("assignments", "t"), territory_of_account, "inner"),
            (table("holders", "h"), overlay_holder, "inner"),
        ]

    def days(self) -> exp.Select:
        """(day, period_index): every day a deal can count on, from the first period's window to the last
        period's end, with the index of the period it is in (-1 for none: days of a year-to-date window
        before the plan starts). Deals find their period by an equality join on the day, which every
        engine runs as a hash join: a range join on the periods sorted millions of deals by date (2.6 s
        of the SDR plan's 2.9 s at 10M deals)."""
        periods = plan_periods(self.plan.effective_from, self.plan.effective_to, self.plan.period)
        first, last = min(periods[0].year_start, periods[0].start), periods[-1].end
        index = {p.start + dt.timedelta(days=n): p.index for p in periods for n in range((p.end - p.start).days + 1)}
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[date(day), exp.Literal.number(index.get(day, -1))]) for day in days],
            alias=exp.TableAlias(
                this=exp.to_identifier("v"),
                columns=[exp.to_identifier(n, quoted=True) for n in ("day", "period_index")],
            ),
        )
        return exp.select(col("day"), col("period_index"), copy=False).from_(values, copy=False)

    def fx(self) -> exp.Select:
        """One rate into the plan currency per currency and day of the plan's periods.

        A rate holds from its date until the next one (an as-of lookup). Expanding
        the ranges over the plan's days (a few hundred) lets deals find their
        rate with an equality join, which every engine runs as a hash join.
        """
        following = window(exp.Lead(this=col("date")), [col("from")], [col("date")])
        day_before = exp.Cast(
            this=exp.DateAdd(this=following, expression=exp.Literal.number(-1), unit=exp.var("DAY")),
            to=exp.DataType.build("DATE"),
        )
        ranges = (
            exp.select(
                col("from"),
                alias(dec(col("rate")), "rate"),
                alias(col("date"), "valid_from"),
                alias(coalesce(day_before, date(dt.date(9999, 12, 31))), "valid_to"),
                copy=False,
            )
            .from_(table("fx_rates"), copy=False)
            .where(eq(col("to"), text(self.plan.currency)), copy=False)
        )
        return (
            exp.select(col("from", "r"), col("day", "v"), col("rate", "r"), copy=False)
            .from_(ranges.subquery("r"), copy=False)
            .join(
                table("days", "v"),
                on=exp.Between(this=col("day", "v"), low=col("valid_from", "r"), high=col("valid_to", "r")),
                copy=False,
            )
        )

    def used_fields(self, entity: str, exclude: set[str]) -> list[str]:
        """Fields of `entity` rows (deal, activity) the plan or its measures refer to."""
        used = set()
        for node in [*_walk(self.plan), *(n for m in self.measures.values() for n in _walk(m))]:
            if isinstance(node, (ir.FieldRef, ir.Aggregate)) and node.entity == entity and node.field:
                used.add(node.field)
        return sorted(used - exclude)

    def deal_filter(self) -> exp.Expression:
        """Rows no deal aggregate counts can be dropped before the joins (NULL-safe OR of their filters).

        A filter on the converted amount cannot run before conversion; its other conjuncts can."""
        conditions = []
        for key in self.aggregates:
            if key.entity != "deal":
                continue
            pushable = [c for c in _conjuncts(key.condition) if not _reads_money(c, self.converted)]
            if not pushable:  # no filter, or only one on the converted amount: every row may count
                return exp.true()
            # In WHERE, unknown already drops the row: a plain condition can be pushed into the scan.
            conditions.append(and_(*[exp.paren(self.row(c, "deal", "d"), copy=False) for c in pushable]))
        if not conditions:
            return exp.false()
        unique = list({c.sql(): c for c in conditions}.values())
        return exp.or_(*[exp.paren(c, copy=False) for c in unique], copy=False) if len(unique) > 1 else unique[0]

    def activity_rows(self) -> exp.Select:
        fields = ["id", "type", "date", "points", "account_id"]
        fields += self.used_fields("activity", exclude={*fields, "rep_id", "period"})  # custom fields (revplan.toml)
        return (
            exp.select(col("rep_id", "rp"), col("period", "rp"), *[col(name, "a") for name in fields], copy=False)
            .from_(table("activities", "a"), copy=False)
            .join(
                table("rep_periods", "rp"),
                on=and_(eq(col("rep_id", "rp"), col("rep_id", "a")), self.in_window(col("date", "a"), "rp")),
                copy=False,
            )
            .join(table("rep_intervals", "i"), on=self.in_plan_on(col("rep_id", "a"), col("date", "a")), copy=False)
            .where(self.in_force(col("date", "a")), copy=False)
        )

    # ------------------------------------------------------------ measures

    def entity_aggregates(self, entity: str, rows: str) -> exp.Select:
        # Components compile first, so every aggregate they use is registered by now.
        columns = [
            alias(self.aggregate_sql(key), name) for key, name in self.aggregates.items() if key.entity == entity
        ]
        if not columns:
            columns = [alias(exp.Count(this=exp.Star()), "row_count")]
        return (
            exp.select(col("rep_id"), col("period"), *columns, copy=False)
            .from_(table(rows), copy=False)
            .group_by(col("rep_id"), col("period"), copy=False)
        )

    def aggregate_sql(self, key: AggregateKey) -> exp.Expression:
        condition = self.row(key.condition, key.entity, None) if key.condition is not None else exp.true()
        weight = self.deal_weight(key.multipliers)
        if key.function == "count":
            return dec(exp.Sum(this=case(condition, weight, ZERO.copy())))
        if key.function == "count_distinct":
            value = self.row(ir.FieldRef(entity=key.entity, field=key.field), key.entity, None)
            return dec(exp.Count(this=exp.Distinct(expressions=[case(condition, value, exp.null())])))
        value = self.row(ir.FieldRef(entity=key.entity, field=key.field), key.entity, None, credited=True)
        if key.function == "sum":
            return dec(exp.Sum(this=case(condition, mul(dec(value), weight), exp.null())))
        if key.function in ("min", "max"):
            kind = exp.Min if key.function == "min" else exp.Max
            return dec(kind(this=case(condition, dec(value), exp.null())))
        raise CompileError(f"aggregate {key.function} is not supported")

    def deal_weight(self, multipliers: tuple[ir.DealMultiplier, ...], alias_: str | None = None) -> exp.Expression:
        weight: exp.Expression = number(1)
        for multiplier in multipliers:
            factor = case(is_true(self.row(multiplier.where, "deal", alias_)), self.value(multiplier.factor), number(1))
            weight = mul(weight, factor)
        return weight

    def measures_cte(self) -> exp.Select:
        inner = self.measure_columns()
        if not self.uses_attainment:
            return inner
        value = div(self.attainment_measure(), col("quota"), self.dialect)
        return exp.select("*", alias(value, "attainment_value"), copy=False).from_(
            inner.subquery("m", copy=False), copy=False
        )

    def measure_columns(self) -> exp.Select:
        agg_columns = [col(name, "da" if key.entity == "deal" else "aa") for key, name in self.aggregates.items()]
        ytd = [col("period_quota", "rp"), col("period_ti", "rp")]
        gaps = []
        if self.ytd:
            partition = [col("rep_id", "rp"), col("year_start", "rp")]
            ytd = [
                window(exp.Sum(this=col("period_quota", "rp")), partition, [col("period_index", "rp")]),
                window(exp.Sum(this=col("period_ti", "rp")), partition, [col("period_index", "rp")]),
            ]
            # Periods of the year so far without a quota (or a zero one) or TI: the sums skip them, so an amount
            # made of them has none (`unknown`).
            for name in sorted(self.pay_inputs):
                value = col("period_quota" if name == "quota" else "period_ti", "rp")
                count = exp.Sum(this=case(lacks(name, value), exp.Literal.number(1), exp.Literal.number(0)))
                gaps.append(alias(window(count, partition, [col("period_index", "rp")]), GAPS[name]))
        keys = ("rep_id", "period")
        select = exp.select(
            *[col(n, "rp") for n in ("rep_id", "period", "period_index", "year_start", "annual_ti", "proration",
                                      "active_days", "period_days")],
            alias(ytd[0], "quota"),
            alias(ytd[1], "target_incentive"),
            *gaps,
            alias(dec(col("score", "s")), "mbo_score"),
            *agg_columns,
            copy=False,
        ).from_(table("rep_periods", "rp"), copy=False)
        for name, value in self.yearly_windows:
            select = select.select(alias(value, name), copy=False)
        used = {key.entity for key in self.aggregates}
        # Only the aggregates the plan uses: an engine computes a left-joined table even when unread.
        for entity, name, alias_ in (("deal", "deal_aggs", "da"), ("activity", "activity_aggs", "aa")):
            if entity in used:
                on = and_(*[eq(col(k, alias_), col(k, "rp")) for k in keys])
                select = select.join(table(name, alias_), on=on, join_type="left", copy=False)
        on_score = and_(*[eq(col(k, "s"), col(k, "rp")) for k in keys])
        return select.join(table("mbo_scores", "s"), on=on_score, join_type="left", copy=False)

    def measure_value(self, name: str, condition: ir.Expr | None) -> exp.Expression:
        if name == "attainment":
            return self.attainment()
        if name in ("quota", "target_incentive"):
            return col(name)
        measure = self.measures.get(name)
        if measure is None:
            raise CompileError(f"unknown measure {name!r}")
        return self.value(measure.expr, _and(condition, measure.where))

    def attainment_measure(self) -> exp.Expression:
        if self.plan.attainment is None:
            raise CompileError(f"{self.plan.key} uses attainment but has no `attainment = MEASURE / quota` line")
        return self.measure_value(self.plan.attainment, None)

    def attainment(self) -> exp.Expression:
        """Computed once per rep-period in the measures CTE; components read the column."""
        saved, self.multipliers = self.multipliers, ()  # multipliers never change attainment
        try:
            self.attainment_measure()  # registers the aggregates it needs
        finally:
            self.multipliers = saved
        self.uses_attainment = True
        return col("attainment_value")

    # ------------------------------------------------------------ expressions

    def value(self, node: ir.Expr, condition: ir.Expr | None = None) -> exp.Expression:
        """An expression at rep-period level (measures, built-ins, literals)."""
        if isinstance(node, LITERALS):
            return self.literal(node)
        match node:
            case ir.NameRef(name=name):
                return self.measure_value(name, condition)
            case ir.Aggregate():
                return self.aggregate_column(node, condition)
            case ir.FieldRef(entity="rep", field=field):
                return col(field, "r")
            case ir.Compare(op=o, left=ir.NameRef(name="attainment"), right=r):
                return self.attainment_compared(o, r, condition)
            case ir.Compare(op=o, left=l, right=ir.NameRef(name="attainment")):
                return self.attainment_compared(ir.FLIPPED[o], l, condition)
        return self.operators(node, lambda child: self.value(child, condition))

    def attainment_compared(self, o: str, other: ir.Expr, condition: ir.Expr | None) -> exp.Expression:
        """`attainment >= 50%` as measure >= 50% x quota, exact as tier bands are (`tier_variable`): attainment
        itself is rounded to 10 places, so a rep 3 x 10^-11 short of a gate passed it (audit: a 30 billion IDR
        quota). A quota of 0 or none leaves the comparison unknown, as attainment is."""
        measure, quota = self.tier_variable("attainment")
        return op(COMPARISONS[o], measure, mul(self.value(other, condition), quota))

    def aggregate_column(self, node: ir.Aggregate, condition: ir.Expr | None) -> exp.Expression:
        if node.entity not in ("deal", "activity"):
            raise CompileError(f"aggregates over {node.entity} rows are not supported; use deal or activity")
        weighted = node.entity == "deal" and node.function in ("sum", "count")
        multipliers = self.multipliers if weighted else ()
        key = AggregateKey(
            node.function if node.function != "avg" else "sum", node.entity, node.field, condition, multipliers
        )
        if node.function == "avg":
            count = AggregateKey("count", node.entity, None, condition, ())
            return div(self._register(key), self._register(count), self.dialect)
        value = self._register(key)
        return coalesce(value, ZERO.copy()) if node.function in ("sum", "count", "count_distinct") else value

    def _register(self, key: AggregateKey) -> exp.Expression:
        name = self.aggregates.setdefault(key, f"agg{len(self.aggregates)}")
        return col(name)

    # ------------------------------------------------------------ components

    def component(self, index: int, component: ir.Component) -> tuple[exp.Select, list[exp.Select]]:
        """The component's CTE (one row per rep-period) and the payout-line selects over it."""
        self.multipliers = component.deal_multipliers
        rule = component.payout
        base = self.base(component)
        self.multipliers = ()
        raw, rate = self.rule_payout(component, rule, base)
        for multiplier in component.measure_multipliers:
            raw = case(is_true(self.value(multiplier.when)), mul(raw, self.value(multiplier.factor)), raw)
        gates = [self.value(g.condition) for g in component.gates]
        gated = exp.Not(this=is_true(and_(*gates))) if gates else exp.false()
        # No TI or quota where the amount is made of it: no amount (RP416, RP417), never 0.00 for a gap in the data.
        inputs = payout_inputs(rule) & GAPS.keys()
        unknown = [self.unknown(name) for name in sorted(inputs)]
        known = coalesce(raw.copy(), ZERO.copy())
        if unknown:
            lost = exp.or_(*unknown)
            if isinstance(rule, ir.FlatRate):  # a rate on no base pays nothing, known or not
                lost = and_(lost, exp.NEQ(this=base.copy(), expression=ZERO.copy()))
            elif not isinstance(rule, ir.Curve):  # a curve is `of` x f(attainment) at every point
                lost = and_(lost, exp.Is(this=raw.copy(), expression=exp.null()))
            known = case(lost, dec(exp.null()), known)
        uncapped = case(gated.copy(), ZERO.copy(), known)
        capped_value = uncapped.copy()
        cumulative = self.ytd and isinstance(rule, COMMISSION_RULES)
        period_caps = [c for c in component.caps if c.per == ir.CapScope.PERIOD]
        for cap in period_caps:
            capped_value = least(capped_value, self.cap_amount(cap, yearly=False, cumulative=cumulative))
        if period_caps:  # nothing to cap, whatever the cap (a multiple of a measure with no value, RP418)
            capped_value = case(exp.EQ(this=uncapped.copy(), expression=ZERO.copy()), ZERO.copy(), capped_value)
        year_caps = [self.cap_amount(c, yearly=True) for c in component.caps if c.per == ir.CapScope.YEAR]
        line_type = {ir.Bonus: "bonus", ir.Spiff: "spiff", ir.Mbo: "mbo"}.get(type(rule), "commission")
        deal_count = self.deal_count(component)
        select = exp.select(
            col("rep_id"),
            col("period"),
            col("period_index"),
            col("year_start"),
            alias(base if base is not None else dec(exp.null()), "base"),
            alias(rate if rate is not None else dec(exp.null()), "rate"),
            alias(uncapped, "uncapped"),
            alias(capped_value, "after_period_caps"),
            alias(gated, "gated"),
            alias(self.attainment() if self.plan.attainment else dec(exp.null()), "attainment"),
            *[alias(self.known_sum(n), n) if n in inputs else col(n) for n in ("quota", "target_incentive")],
            col("proration"),
            alias(deal_count, "deal_count"),
            alias(least(*year_caps) if year_caps else dec(exp.null()), "year_cap"),
            copy=False,
        ).from_(table("measures"), copy=False)
        if year_caps:  # the running total a yearly cap applies to
            running = window(
                exp.Sum(this=capped_value.copy()), [col("rep_id"), col("year_start")], [col("period_index")]
            )
            select = select.select(alias(running, "running_after_caps"), copy=False)
        return select, [self.component_lines(index, component, line_type, cumulative, bool(year_caps))]

    def unknown(self, name: str) -> exp.Expression:
        """The rep-period has no `quota` (or a zero one) or `target_incentive`; year to date, or a period before."""
        missing = lacks(name, col(name))
        return exp.or_(missing, exp.GT(this=col(GAPS[name]), expression=exp.Literal.number(0))) if self.ytd else missing

    def known_sum(self, name: str) -> exp.Expression:
        """`quota` or `target_incentive` as a line shows it: year to date, none for a year so far with gaps."""
        if not self.ytd:
            return col(name)
        return case(exp.GT(this=col(GAPS[name]), expression=exp.Literal.number(0)), dec(exp.null()), col(name))

    def base(self, component: ir.Component) -> exp.Expression | None:
        if component.base is None:
            return None
        return self.measure_value(component.base, None)

    def rule_payout(self, component: ir.Component, rule, base) -> tuple[exp.Expression, exp.Expression | None]:
        """The payout before multipliers, gates and caps; and the rate shown on the line."""
        match rule:
            case ir.FlatRate(rate=rate):
                self._need_base(component, base)
                return mul(base, self.value(rate)), self.value(rate)
            case ir.Tiers():
                self._need_base(component, base)
                return self.tiers(component, rule, base)
            case ir.Curve():
                return self.curve(rule), None
            case ir.Bonus(amount=amount, when=when):
                return case(is_true(self.value(when)), self.per_period(amount), ZERO.copy()), None
            case ir.Spiff(amount=amount, where=where, start=start, end=end):
                in_window = ir.Logical(
                    op="and",
                    operands=(
                        where,
                        ir.Compare(
                            op=">=", left=ir.FieldRef(entity="deal", field="close_date"), right=ir.Date(value=start)
                        ),
                        ir.Compare(
                            op="<=", left=ir.FieldRef(entity="deal", field="close_date"), right=ir.Date(value=end)
                        ),
                    ),
                )
                count = self.aggregate_column(ir.Aggregate(function="count", entity="deal"), in_window)
                if self.ytd:  # a deal is paid once, in its own period, not in every later one it counts in
                    count = self.own_period(count)
                return mul(self.value(amount), count), self.value(amount)
            case ir.Mbo(amount=amount):
                return mul(self.per_period(amount), coalesce(col("mbo_score"), ZERO.copy())), None
        raise CompileError(f"payout rule {type(rule).__name__} is not supported")

    def own_period(self, year_to_date: exp.Expression) -> exp.Expression:
        """The period's own part of a year-to-date value: it less the rep's previous period's of the year.
        A column of `measures` (a window there, as caps' running totals are windows over its columns)."""
        before = exp.Lag(this=year_to_date.copy(), offset=exp.Literal.number(1), default=ZERO.copy())
        return self._yearly_window(sub(year_to_date, self._over_year(before)))

    def year_to_date(self, per_period: exp.Expression) -> exp.Expression:
        """The sum of a per-period value over the rep's periods of the year to date (a column of `measures`)."""
        return self._yearly_window(self._over_year(exp.Sum(this=per_period)))

    @staticmethod
    def _over_year(function: exp.Expression) -> exp.Window:
        return window(function, [col("rep_id", "rp"), col("year_start", "rp")], [col("period_index", "rp")])

    def _yearly_window(self, value: exp.Expression) -> exp.Expression:
        name = f"yearly{len(self.yearly_windows)}"
        self.yearly_windows.append((name, value))
        return col(name)

    def per_period(self, amount: ir.Expr) -> exp.Expression:
        """An amount per period; fixed, `prorate by active_days` scales it as it does quota and TI (multiplied
        first, divided last): a rep in the plan for part of a period (a hire, a role change, a new version)
        gets that part of a bonus, an MBO, a draw or a cap, not the whole of it in each plan or version."""
        value = self.value(amount)
        if not (self.plan.prorate and is_fixed(amount)):
            return value
        return div(mul(value, dec(col("active_days"))), dec(col("period_days")), self.dialect)

    def _need_base(self, component: ir.Component, base) -> None:
        if base is None:
            raise CompileError(f'component "{component.name}" needs a base measure (`component "..." on MEASURE`)')

    def tier_variable(self, on: str) -> tuple[exp.Expression, exp.Expression]:
        """What the bands are read on, in base units, and what a band bound is multiplied by.

        Attainment bands are compared as measure >= bound x quota, which is exact
        (no division); a money measure's bands are compared as they are. A zero quota
        counts as none: every bound would be 0 and any bookings would reach the top
        band, so a missing quota would pay the most a plan pays (RD023 warns of both).
        """
        if on == "attainment":
            saved, self.multipliers = self.multipliers, ()
            try:
                return self.attainment_measure(), exp.Nullif(this=col("quota"), expression=ZERO.copy())
            finally:
                self.multipliers = saved
        saved, self.multipliers = self.multipliers, ()
        try:
            return self.measure_value(on, None), number(1)
        finally:
            self.multipliers = saved

    def tiers(self, component: ir.Component, tiers: ir.Tiers, base: exp.Expression):
        variable, scale = self.tier_variable(tiers.on)
        bounds = [
            (
                mul(self.value(b.lower), scale.copy()),
                mul(self.value(b.upper), scale.copy()) if b.upper is not None else None,
                self.value(b.rate),
            )
            for b in tiers.bands
        ]
        reached = exp.Case()
        for lower, _, rate in reversed(bounds):
            reached = reached.when(exp.GTE(this=variable.copy(), expression=lower.copy()), rate.copy(), copy=False)
        reached = reached.else_(ZERO.copy(), copy=False)
        if tiers.mode == ir.TierMode.RETROACTIVE:
            return mul(base, reached), reached
        slices = []
        for lower, upper, rate in bounds:
            top = least(variable.copy(), upper) if upper is not None else variable.copy()
            slices.append(mul(greatest(sub(top, lower), ZERO.copy()), rate))
        graduated = add(*slices)
        if base == variable:
            return graduated, reached
        # The base differs from what the bands read (multipliers, another measure):
        # pay the base at the graduated table's effective rate.
        effective = div(mul(base, graduated), variable.copy(), self.dialect)
        return case(
            exp.EQ(this=variable.copy(), expression=ZERO.copy()), mul(base.copy(), reached.copy()), effective
        ), reached

    def curve(self, curve: ir.Curve) -> exp.Expression:
        """`of` x f(`on`), f piecewise-linear through the points, flat outside them."""
        variable, scale = self.tier_variable(curve.on)
        of = self.measure_value(curve.of, None)
        points = [(self.value(p.x), self.value(p.y)) for p in curve.points]
        result = exp.Case()
        last_x, last_y = points[-1]
        result = result.when(
            exp.GTE(this=variable.copy(), expression=mul(last_x, scale.copy())), mul(of.copy(), last_y), copy=False
        )
        for (x0, y0), (x1, y1) in reversed(list(zip(points, points[1:], strict=False))):
            # of x (y0 + (v - x0 s) (y1 - y0) / ((x1 - x0) s)), with one division at the end
            rise = mul(mul(of.copy(), sub(variable.copy(), mul(x0.copy(), scale.copy()))), sub(y1.copy(), y0.copy()))
            run = mul(sub(x1.copy(), x0.copy()), scale.copy())
            value = add(mul(of.copy(), y0.copy()), div(rise, run, self.dialect))
            result = result.when(
                exp.GTE(this=variable.copy(), expression=mul(x0.copy(), scale.copy())), value, copy=False
            )
        return result.else_(mul(of.copy(), points[0][1].copy()), copy=False)

    def cap_amount(self, cap: ir.Cap, yearly: bool, cumulative: bool = False) -> exp.Expression:
        """A cap's amount; on a year-to-date line (`cumulative`) a fixed cap per period is the year's to date,
        as a cap on quota or TI is (audit: 5,000 a quarter capped the whole year at 5,000)."""
        if cap.amount is not None and cumulative and not yearly:
            return self.year_to_date(self.per_period(cap.amount))
        if cap.amount is not None:
            return self.value(cap.amount) if yearly else self.per_period(cap.amount)
        of = col("annual_ti") if yearly and cap.of == "target_incentive" else self.measure_value(cap.of, None)
        return mul(number(cap.multiple), of)

    def deal_count(self, component: ir.Component) -> exp.Expression:
        """How many credited deals the base measure counts (0 for measures over other rows)."""
        measure = self.measures.get(component.base) if component.base else None
        if measure is None or not any(isinstance(n, ir.Aggregate) and n.entity == "deal" for n in _walk(measure)):
            return exp.Literal.number(0)
        count = self.aggregate_column(ir.Aggregate(function="count", entity="deal"), measure.where)
        return exp.Cast(this=count, to=exp.DataType.build("BIGINT"))

    def component_lines(
        self, index: int, component: ir.Component, line_type: str, cumulative: bool, year_capped: bool
    ) -> exp.Select:
        """One payout line per rep-period: period amounts, or differences of cumulative ones."""
        source: exp.Expression = table(f"c{index}")
        partition = [col("rep_id"), col("year_start")]
        order = [col("period_index")]
        value = col("after_period_caps")
        if not cumulative and year_capped:
            value = col("running_after_caps")
        if year_capped:  # paid to date: under the cap, and never less than paid under an earlier, higher cap
            # (a TI converted at a lower rate or cut mid-year takes nothing back; a cap that rises releases what
            # it held); a falling total still pays less
            capped = least(value, col("year_cap"))
            held = window(exp.Max(this=capped.copy()), partition, order)
            paid = case(exp.Is(this=capped, expression=exp.null()), dec(exp.null()), least(value.copy(), held))
            source = exp.select("*", alias(paid, "paid_to_date"), copy=False).from_(source, copy=False).subquery(
                f"c{index}", copy=False)
            value = col("paid_to_date")
        if cumulative or year_capped:
            previous = window(
                exp.Lag(this=value.copy(), offset=exp.Literal.number(1), default=ZERO.copy()), partition, order
            )
            if cumulative:  # pay cumulative earnings minus what was already paid (both in cents)
                amount = sub(round_cents(value), round_cents(previous))
            else:
                amount = round_cents(sub(value, previous))
            uncapped = round_cents(col("uncapped"))
            if cumulative:  # rounded as the amount is: without a cap the two are equal to the cent
                previous_uncapped = exp.Lag(this=col("uncapped"), offset=exp.Literal.number(1), default=ZERO.copy())
                uncapped = exp.Cast(this=sub(uncapped, round_cents(window(previous_uncapped, partition, order))),
                                    to=exp.DataType.build("DECIMAL(18, 2)"))
        else:
            amount = round_cents(value)
            uncapped = round_cents(col("uncapped"))
        amount = exp.Cast(this=amount, to=exp.DataType.build("DECIMAL(18, 2)"))
        return exp.select(
            alias(text(self.plan.name), "plan"),
            alias(exp.Literal.number(self.plan.version), "version"),
            alias(text(component.name), "component"),
            alias(text(line_type), "line_type"),
            col("rep_id"),
            col("period"),
            alias(text(self.plan.currency), "currency"),
            alias(round_cents(col("base")), "base"),
            col("rate"),
            alias(amount, "amount"),
            alias(uncapped, "uncapped"),
            alias(exp.LT(this=amount.copy(), expression=uncapped.copy()), "capped"),
            col("gated"),
            col("attainment"),
            alias(round_cents(col("quota")), "quota"),
            alias(round_cents(col("target_incentive")), "target_incentive"),
            col("proration"),
            col("deal_count"),
            copy=False,
        ).from_(source, copy=False)

    # ------------------------------------------------------------ draws and clawbacks

    def draws(self) -> exp.Select:
        """Draw top-ups and recoveries from each rep-period's total component pay.

        Recoverable: the outstanding balance follows B_t = max(0, B_{t-1} + shortfall_t), which in closed form
        is S_t - min(0, S_1..S_t) with S the running sum of the shortfalls: draw - earned in the draw's periods,
        -max(earned, 0) after them.
        """
        draw = self.plan.draw
        partition = [col("rep_id")]
        order = [col("period_index")]
        earned = (
            exp.select(col("rep_id"), col("period"), alias(dec(exp.Sum(this=col("amount"))), "earned"), copy=False)
            .from_(table("component_lines"), copy=False)
            .group_by(col("rep_id"), col("period"), copy=False)
        )
        numbered = (
            exp.select(
                col("rep_id", "m"),
                col("period", "m"),
                col("period_index", "m"),
                col("active_days", "m"),
                col("period_days", "m"),
                col("proration", "m"),
                alias(coalesce(col("earned", "e"), ZERO.copy()), "earned"),
                alias(window(exp.RowNumber(), [col("rep_id", "m")], [col("period_index", "m")]), "nth"),
                copy=False,
            )
            .from_(table("measures", "m"), copy=False)
            .join(
                exp.Subquery(this=earned, alias=exp.TableAlias(this=exp.to_identifier("e", quoted=True))),
                on=and_(eq(col("rep_id", "e"), col("rep_id", "m")), eq(col("period", "e"), col("period", "m"))),
                join_type="left",
                copy=False,
            )
        )
        in_draw = (
            exp.true()
            if draw.periods is None
            else exp.LTE(this=col("nth"), expression=exp.Literal.number(draw.periods))
        )
        # In the draw's periods pay is topped up to the guarantee; after them nothing is topped up (a negative
        # true-up stays negative) and only positive pay recovers an outstanding balance.
        # The guarantee in cents (pay is): a top-up is then exact cents, so what is recovered is what was advanced.
        shortfall = case(in_draw, sub(round_cents(self.per_period(draw.amount)), col("earned")),
                         least(neg(col("earned")), ZERO.copy()))
        top_up = case(in_draw.copy(), greatest(shortfall.copy(), ZERO.copy()), ZERO.copy())
        staged = exp.select(
            col("rep_id"),
            col("period"),
            col("period_index"),
            col("proration"),
            col("earned"),
            alias(top_up, "top_up"),
            alias(shortfall, "shortfall"),
            copy=False,
        ).from_(exp.Subquery(this=numbered, alias=exp.TableAlias(this=exp.to_identifier("n", quoted=True))), copy=False)
        if draw.recoverable:
            running = exp.select(
                "*", alias(window(exp.Sum(this=col("shortfall")), partition, order), "running"), copy=False
            ).from_(
                exp.Subquery(this=staged, alias=exp.TableAlias(this=exp.to_identifier("s", quoted=True))), copy=False
            )
            lowest = window(exp.Min(this=col("running")), partition, order)
            balance = sub(col("running"), least(lowest, ZERO.copy()))
            balanced = exp.select("*", alias(balance, "balance"), copy=False).from_(
                exp.Subquery(this=running, alias=exp.TableAlias(this=exp.to_identifier("r", quoted=True))), copy=False
            )
            change = sub(
                col("balance"),
                window(
                    exp.Lag(this=col("balance"), offset=exp.Literal.number(1), default=ZERO.copy()), partition, order
                ),
            )
            recovery = sub(change, col("top_up"))
            source = exp.Subquery(this=balanced, alias=exp.TableAlias(this=exp.to_identifier("b", quoted=True)))
        else:
            recovery = ZERO.copy()
            source = exp.Subquery(this=staged, alias=exp.TableAlias(this=exp.to_identifier("b", quoted=True)))
        rows = exp.select(
            col("rep_id"), col("period"), col("proration"), alias(col("top_up"), "top_up"),
            alias(recovery, "recovery"), copy=False,
        ).from_(source, copy=False)
        sub_rows = exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("x", quoted=True)))
        selects = []
        # A top-up's guarantee is prorated as its rep-period's fixed amounts are; a recovery is of earlier pay.
        for line_type, column, proration in (("draw", "top_up", col("proration")), ("draw_recovery", "recovery", None)):
            amount = round_cents(col(column))
            selects.append(
                self.simple_line("Draw", line_type, amount, proration=proration)
                .from_(sub_rows.copy(), copy=False)
                .where(exp.NEQ(this=col(column), expression=ZERO.copy()), copy=False)
            )
        return union_all(selects)

    def simple_line(
        self,
        component: str,
        line_type: str,
        amount: exp.Expression,
        period: exp.Expression | None = None,
        deal_count: exp.Expression | None = None,
        proration: exp.Expression | None = None,
    ) -> exp.Select:
        """A payout line that is only an amount (draws, clawbacks)."""
        null_money = exp.Cast(this=exp.null(), to=exp.DataType.build("DECIMAL(18, 2)"))
        return exp.select(
            alias(text(self.plan.name), "plan"),
            alias(exp.Literal.number(self.plan.version), "version"),
            alias(text(component), "component"),
            alias(text(line_type), "line_type"),
            alias(col("rep_id", "s") if period is not None else col("rep_id"), "rep_id"),
            alias(period or col("period"), "period"),
            alias(text(self.plan.currency), "currency"),
            alias(null_money, "base"),
            alias(exp.Cast(this=exp.null(), to=exp.DataType.build("DECIMAL(38, 10)")), "rate"),
            alias(amount, "amount"),
            alias(amount.copy(), "uncapped"),
            alias(exp.false(), "capped"),
            alias(exp.false(), "gated"),
            alias(exp.Cast(this=exp.null(), to=exp.DataType.build("DECIMAL(38, 10)")), "attainment"),
            alias(null_money.copy(), "quota"),
            alias(null_money.copy(), "target_incentive"),
            alias(proration or exp.Cast(this=exp.null(), to=exp.DataType.build("DECIMAL(38, 10)")), "proration"),
            alias(deal_count or exp.Literal.number(0), "deal_count"),
            copy=False,
        )

    def with_ctes(self, select: exp.Select, ctes: list[tuple[str, exp.Expression]]) -> exp.Select:
        # PostgreSQL (12+) inlines a CTE read once into the query reading it; guessing 1 row where there are
        # thousands, it then picks nested loops that compute the inlined CTE again for each outer row (fx's
        # range join once per traced deal: 20k deals 3 min). Materialized, each CTE is computed once.
        materialized = self.dialect == "postgres"
        for name, body in ctes:
            # A TableAlias (not a bare identifier) is what Trino's printer expects of a recursive CTE.
            name_alias = exp.TableAlias(this=exp.to_identifier(name, quoted=True))
            select = select.with_(
                name_alias, as_=body, recursive=self.plan.crediting.rollup, materialized=materialized or None,
                copy=False,
            )
        return select

    def deal_components(self) -> list[tuple[int, ir.Component, exp.Expression]]:
        """Components whose pay can be traced to deals: (index, component, a deal row's base contribution)."""
        traced = []
        for index, component in enumerate(self.plan.components):
            if not isinstance(component.payout, (ir.FlatRate, ir.Tiers)) or component.base is None:
                continue
            self.multipliers = component.deal_multipliers
            contribution = self.row_contribution(component.base, None)
            self.multipliers = ()
            if contribution is not None:
                traced.append((index, component, contribution))
        return traced

    def deal_ids_query(self, ctes: list[tuple[str, exp.Expression]]) -> exp.Select:
        """The deals behind each commission and clawback line and their part of its base, without the exact
        shares (a deal's share needs its line: `detail_query`). Every rep-period has a line per component."""
        selects = []
        if self.plan.clawback is not None and "cancelled_rows" not in dict(ctes):
            ctes = [*ctes, ("cancelled_rows", self.deal_rows(only_cancelled=True))]
        for _, component, contribution in self.deal_components():
            selects.append(self.deal_ids("commission", "deal_rows", component, contribution))
            if self.plan.clawback is not None:
                selects.append(self.deal_ids("clawback", "cancelled_rows", component, contribution))
        if not selects:  # no component traces to deals: an empty result of the same shape
            empty = [alias(exp.null(), n) for n in DEAL_ID_COLUMNS[:-1]]
            selects = [exp.select(*empty, alias(dec(exp.null()), "credited_base"), copy=False).where(exp.false())]
        select = exp.select("*", copy=False).from_(union_all(selects).subquery("deals_behind", copy=False), copy=False)
        return self.with_ctes(select, read_ctes(select, ctes)).order_by(*deal_order(), copy=False)

    def deal_ids(self, line_type: str, rows: str, component: ir.Component, contribution: exp.Expression) -> exp.Select:
        """One component's deal rows (of `rows`) behind its lines of `line_type`, with each deal's base."""
        line_period, joins = self.paying_period(line_type, "d", "period", "period_index")  # fresh: own tree
        select = (
            exp.select(
                alias(text(self.plan.name), "plan"),
                alias(exp.Literal.number(self.plan.version), "version"),
                alias(text(component.name), "component"),
                alias(text(line_type), "line_type"),
                col("rep_id", "d"),
                col("period", "d"),
                alias(line_period, "line_period"),
                alias(col("id", "d"), "deal_id"),
                alias(contribution.copy(), "credited_base"),
                copy=False,
            )
            .from_(table(rows, "d"), copy=False)
            .join(
                table("rep_periods", "rp"),
                on=and_(eq(col("rep_id", "rp"), col("rep_id", "d")), eq(col("period", "rp"), col("period", "d"))),
                copy=False,
            )
            .where(exp.NEQ(this=contribution.copy(), expression=ZERO.copy()), copy=False)
        )
        return select.join(*joins[:2], join_type=joins[2], copy=False) if joins else select

    def detail_query(self, ctes: list[tuple[str, exp.Expression]], deal_shares) -> exp.Select:
        """The deals behind each commission and clawback line, with their exact shares (what `revplan explain`
        shows): a clawback line takes back the shares its deals earned."""
        if deal_shares is None:  # no component traces to deals: an empty result of the same shape
            # Typed: a clawback's window takes days between the dates (an untyped NULL has no date_diff).
            typed = [("rep_id", "VARCHAR"), ("earned_period", "VARCHAR"), ("component", "VARCHAR"),
                     ("deal_id", "VARCHAR"), ("paid_date", "DATE"), ("earned_index", "BIGINT"),
                     ("close_date", "DATE"), ("cancel_date", "DATE")]
            deal_shares = exp.select(
                *[alias(exp.Cast(this=exp.null(), to=exp.DataType.build(kind)), n) for n, kind in typed],
                alias(dec(exp.null()), "credited_base"),
                alias(dec(exp.null()), "share_of_line"),
                copy=False,
            ).where(exp.false(), copy=False)
            ctes = [*ctes, ("deal_shares", deal_shares)]
        line_types = ("commission", "clawback") if self.plan.clawback is not None else ("commission",)
        selects = []
        for line_type in line_types:
            line_period, joins = self.paying_period(line_type, "s", "earned_period", "earned_index")
            share = col("share_of_line", "s")
            select = exp.select(
                alias(text(self.plan.name), "plan"),
                alias(exp.Literal.number(self.plan.version), "version"),
                col("component", "s"),
                alias(text(line_type), "line_type"),
                col("rep_id", "s"),
                alias(col("earned_period", "s"), "period"),
                alias(line_period, "line_period"),
                col("deal_id", "s"),
                col("credited_base", "s"),
                alias(neg(share) if line_type == "clawback" else share, "share_of_line"),
                copy=False,
            ).from_(table("deal_shares", "s"), copy=False)
            selects.append(select.join(*joins[:2], join_type=joins[2], copy=False) if joins else select)
        # Ordered outside: the periods joined in have a `period` too.
        select = exp.select("*", copy=False).from_(union_all(selects).subquery("traced", copy=False), copy=False)
        return self.with_ctes(select, ctes).order_by(*deal_order(), copy=False)

    def paying_period(self, line_type: str, rows: str, earned: str, earned_index: str
                      ) -> tuple[exp.Expression, tuple | None]:
        """The period of the `line_type` line a traced deal row is behind, and the join (table, condition, kind)
        that finds it: the period the deal was earned in, on a plan paid on payment the one its payable day falls
        in (as `paid_lines` sums them; NULL while unpaid), and on a clawback line the one it was cancelled in
        (only deals cancelled within the window: as `clawbacks` takes them back, `taken_back_in`)."""
        if line_type == "clawback":
            on = and_(self.taken_back_in(rows, earned_index, "lp"), self.within_clawback_window(rows))
            return col("period", "lp"), (table("pay_periods", "lp"), on, "inner")
        if self.plan.paid_on != ir.PayoutTiming.PAYMENT:
            return col(earned, rows), None
        on = self.line_period_of(self.payable_day(rows), col(earned_index, rows), "lp")
        return col("period", "lp"), (table("pay_periods", "lp"), on, "left")

    @staticmethod
    def payable_day(rows: str) -> exp.Expression:
        """When a plan paid on payment pays a deal (a row of `rows`): its paid date, or its close date if it was
        paid before it closed (commission is earned on booking, so it cannot be paid before); NULL while unpaid."""
        return greatest(col("paid_date", rows), col("close_date", rows))

    def within_clawback_window(self, rows: str) -> exp.Expression:
        """The deal (a row of `rows`) was cancelled within the clawback's window after it closed."""
        cancelled = exp.Not(this=exp.Is(this=col("cancel_date", rows), expression=exp.null()))
        within = exp.LTE(
            this=days_between(col("close_date", rows), col("cancel_date", rows)),
            expression=exp.Literal.number(self.plan.clawback.within_days),
        )
        return and_(cancelled, within)

    def deal_shares(self, rows: str = "deal_rows") -> exp.Expression | None:
        """Each deal's exact share of the commission lines it earned: line x contribution / base.

        Year to date a line pays the change in commission to date, and a deal's share of it is the change
        in its part of that commission: contribution x (paid to date / base to date, less the same at the
        period before when the deal counted then). A deal's shares of the year add up to its base times the
        rate paid to date, so a clawback never takes back more than that; a share of each whole true-up line
        took back up to twice the top rate (audit: 25 % of a deal on a plan paying at most 14 %)."""
        selects = []
        for index, component, contribution in self.deal_components():
            by_rep_period = and_(eq(col("rep_id", "k"), col("rep_id", "d")), eq(col("period", "k"), col("period", "d")))
            select = exp.select(
                col("rep_id", "d"),
                alias(col("period", "d"), "earned_period"),
                alias(col("period_index", "d"), "earned_index"),
                alias(text(component.name), "component"),
                alias(col("id", "d"), "deal_id"),
                col("close_date", "d"),
                col("cancel_date", "d"),
                col("paid_date", "d"),
                alias(contribution.copy(), "credited_base"),
                copy=False,
            ).from_(table(rows, "d"), copy=False)
            if self.ytd:
                counted_before = exp.LT(this=col("close_date", "d"), expression=col("period_start", "k"))
                before = self.part(col("paid_before", "k"), contribution, col("base_before", "k"))
                share = sub(self.part(col("paid_to_date", "k"), contribution, col("base", "k")),
                            case(counted_before, before, ZERO.copy()))
                select = select.join(self.to_date(index, component), on=by_rep_period, copy=False)
            else:
                share = self.part(dec(col("amount", "l")), contribution, col("base", "k"))
                select = select.join(table(f"c{index}", "k"), on=by_rep_period, copy=False).join(
                    table("earned_lines", "l"), on=line_of(component, "d"), copy=False
                )
            select.select(alias(share, "share_of_line"), copy=False)
            selects.append(select.where(exp.NEQ(this=contribution.copy(), expression=ZERO.copy()), copy=False))
        return union_all(selects) if selects else None

    def part(self, paid: exp.Expression, contribution: exp.Expression, base: exp.Expression) -> exp.Expression:
        """A deal's part of `paid`: paid x contribution / base; a zero base pays nothing (rate and tiers of 0 are
        0), so a missing quotient is 0."""
        return coalesce(div(mul(paid, contribution.copy()), base, self.dialect), ZERO.copy())

    def to_date(self, index: int, component: ir.Component) -> exp.Subquery:
        """Year to date, per rep-period of a component (`k`): the commission paid to date and the base it was
        paid on, now and at the period before, and when the period starts."""
        partition, order = [col("rep_id", "k"), col("year_start", "k")], [col("period_index", "k")]
        paid = dec(window(exp.Sum(this=col("amount", "l")), partition, order))
        base_before = window(exp.Lag(this=col("base", "k"), offset=exp.Literal.number(1), default=ZERO.copy()),
                             partition, order)
        return (
            exp.select(
                col("rep_id", "k"),
                col("period", "k"),
                col("period_start", "p"),
                alias(paid, "paid_to_date"),
                alias(sub(paid.copy(), dec(col("amount", "l"))), "paid_before"),
                col("base", "k"),
                alias(base_before, "base_before"),
                copy=False,
            )
            .from_(table(f"c{index}", "k"), copy=False)
            .join(table("earned_lines", "l"), on=line_of(component, "k"), copy=False)
            .join(table("periods", "p"), on=eq(col("period_index", "p"), col("period_index", "k")), copy=False)
            .subquery("k", copy=False)
        )

    def lines_from_shares(self, line_type: str, in_line: exp.Expression, where: exp.Expression, sign: int
                          ) -> exp.Select:
        """Lines summing deal shares (`s`) by the pay period (`p`) each is in (`in_line`: paid, taken back).

        The shares one earned line pays (or takes back) over several periods are rounded cumulatively: each
        period gets round(to date) - round(before), so a line is never paid or taken back more than it was
        (audit: four deals' shares of 0.005 each took 4 x 0.01 back from a line of 0.02)."""
        def shares(*columns: exp.Expression) -> exp.Select:
            return (exp.select(*columns, copy=False).from_(table("deal_shares", "s"), copy=False)
                    .join(table("pay_periods", "p"), on=in_line.copy(), copy=False).where(where.copy(), copy=False))

        keys = [col("rep_id", "s"), col("period", "p"), col("component", "s")]
        by_line = shares(*keys, col("period_index", "p"), col("earned_index", "s"),
                         alias(dec(exp.Sum(this=col("share_of_line", "s"))), "taken"))
        by_line = by_line.group_by(*[k.copy() for k in keys], col("period_index", "p"), col("earned_index", "s"),
                                   copy=False)
        to_date = window(exp.Sum(this=col("taken")), [col("rep_id"), col("component"), col("earned_index")],
                         [col("period_index")])
        rounded = exp.select(
            col("rep_id"), col("period"), col("component"),
            alias(sub(round_cents(to_date), round_cents(sub(to_date.copy(), col("taken")))), "cents"), copy=False,
        ).from_(by_line.subquery("l", copy=False), copy=False)
        deals = shares(*[k.copy() for k in keys], alias(exp.Count(this=exp.Distinct(expressions=[col("deal_id", "s")])),
                                                         "deals"))
        deals = deals.group_by(*[k.copy() for k in keys], copy=False)
        amount = dec(exp.Sum(this=col("cents", "s")))
        amount = exp.Cast(this=neg(amount) if sign < 0 else amount, to=exp.DataType.build("DECIMAL(18, 2)"))
        select = self.simple_line("", line_type, amount, col("period", "s"), exp.Max(this=col("deals", "n")))
        select.set(
            "expressions",
            [e if e.alias != "component" else alias(col("component", "s"), "component") for e in select.expressions],
        )
        same = and_(*[eq(col(name, "n"), col(name, "s")) for name in ("rep_id", "period", "component")])
        return (
            select.from_(rounded.subquery("s", copy=False), copy=False)
            .join(deals.subquery("n", copy=False), on=same, copy=False)
            .group_by(col("rep_id", "s"), col("period", "s"), col("component", "s"), copy=False)
        )

    def paid_lines(self) -> exp.Expression:
        """Paid on payment: commission earned on booking is paid in the period each deal is paid."""
        traced = [component.name for _, component, _ in self.deal_components()]
        untraced = (
            exp.select("*", copy=False)
            .from_(table("earned_lines"), copy=False)
            .where(exp.Not(this=exp.In(this=col("component"), expressions=[text(n) for n in traced])), copy=False)
            if traced
            else exp.select("*", copy=False).from_(table("earned_lines"), copy=False)
        )
        if not traced:
            return untraced
        is_paid = exp.Not(this=exp.Is(this=col("paid_date", "s"), expression=exp.null()))
        in_line = self.line_period_of(self.payable_day("s"), col("earned_index", "s"), "p")
        paid = self.lines_from_shares("commission", in_line, is_paid, +1)
        return union_all([untraced, paid])

    def clawbacks(self) -> exp.Select:
        """Take back what a deal earned when it is cancelled within the window (`taken_back_in`)."""
        in_line = self.taken_back_in("s", "earned_index", "p")
        return self.lines_from_shares("clawback", in_line, self.within_clawback_window("s"), -1)

    def taken_back_in(self, rows: str, earned_index: str, periods: str) -> exp.Expression:
        """The period (a `periods` row) whose clawback line takes back a cancelled deal's share (a row of `rows`)
        of the line of its earned period (index `earned_index`): the one it was cancelled in (`line_period_of`).
        Paid on payment, only a share that was paid is taken back, and not before it was paid."""
        day = col("cancel_date", rows)
        if self.plan.paid_on == ir.PayoutTiming.PAYMENT:
            day = greatest(day, self.payable_day(rows))  # NULL while unpaid: in no period
        return self.line_period_of(day, col(earned_index, rows), periods)

    @staticmethod
    def line_period_of(day: exp.Expression, earned_index: exp.Expression, periods: str) -> exp.Expression:
        """The period (a `periods` row) that pays, or takes back, a share of the line of the earned period
        (index `earned_index`) on `day`: the one `day` falls in, or, for a day before that line's period (year
        to date a deal counts in every later period of its year), that line's own. Nothing is paid or taken
        back before it is earned, so a paid period's lines are the same when the period is rerun later."""
        index = col("period_index", periods)
        return exp.or_(
            and_(in_period(day, periods), exp.GTE(this=index, expression=earned_index)),
            and_(eq(index.copy(), earned_index.copy()),
                 exp.LT(this=day.copy(), expression=col("period_start", periods))),
            copy=False,
        )

    def row_contribution(self, name: str, condition: ir.Expr | None) -> exp.Expression | None:
        """A deal row's part of a measure that adds up deal sums and counts (None when it is not linear)."""
        measure = self.measures.get(name)
        if measure is None:
            return None
        return self._linear(measure.expr, _and(condition, measure.where))

    def _linear(self, node: ir.Expr, condition: ir.Expr | None) -> exp.Expression | None:
        match node:
            case ir.Aggregate(function="sum" | "count" as function, entity="deal", field=field):
                # A deal contributes its value times its weight; a counted deal, its weight (1 unmultiplied).
                test = is_true(self.row(condition, "deal", "d")) if condition is not None else exp.true()
                weight = self.deal_weight(self.multipliers, "d")
                if function == "count":
                    return case(test, dec(weight), ZERO.copy())
                value = self.row(ir.FieldRef(entity="deal", field=field), "deal", "d", credited=True)
                return case(test, mul(dec(value), weight), ZERO.copy())
            case ir.NameRef(name=name) if name in self.measures:
                return self.row_contribution(name, condition)
            case ir.Binary(op=o, left=l, right=r) if o in "+-":
                left, right = self._linear(l, condition), self._linear(r, condition)
                if left is None or right is None:
                    return None
                return add(left, right) if o == "+" else sub(left, right)
        return None


# The rep-period values a payout may be made of, and the measures' year-to-date counts of periods without them.
GAPS = {"quota": "quota_gaps", "target_incentive": "ti_gaps"}


def credited_amount(amount: exp.Expression, share: exp.Expression) -> exp.Expression:
    """A deal's amount x a rep's share of it; a whole share is the amount as it is: most deals are not split, and
    an exact product costs DuckDB a 128-bit rescale a row (3 s of 8M roll-up rows at 10M deals)."""
    if share == number(1):  # owner credit, overlay credit
        return amount
    return case(eq(share, number(1)), amount.copy(), mul(amount, share.copy()))


def lacks(name: str, value: exp.Expression) -> exp.Expression:
    """`value`, a quota or TI (`name`), has none: NULL, or a zero quota (none, as in attainment)."""
    return exp.Is(this=exp.Nullif(this=value, expression=ZERO.copy()) if name == "quota" else value,
                  expression=exp.null())


def employed_days(first_day: exp.Expression | None = None, last_day: exp.Expression | None = None) -> exp.Expression:
    """A rep's (r) days employed in a period (p), and from `first_day` to `last_day` when given; 0 for none."""
    starts = [col("hire_date", "r"), col("period_start", "p"), *([first_day] if first_day is not None else [])]
    ends = [
        coalesce(col("termination_date", "r"), col("period_end", "p")),
        col("period_end", "p"),
        *([last_day] if last_day is not None else []),
    ]
    start, end = greatest(*starts), least(*ends)
    return case(
        exp.GTE(this=end, expression=start),
        exp.Add(this=days_between(start.copy(), end.copy()), expression=exp.Literal.number(1)),
        exp.Literal.number(0),
    )


def line_of(component: ir.Component, rows: str) -> exp.Expression:
    """The earned line (`l`) of `component` in the rep-period of a row of `rows`."""
    return and_(
        eq(col("rep_id", "l"), col("rep_id", rows)),
        eq(col("period", "l"), col("period", rows)),
        eq(col("component", "l"), text(component.name)),
    )


def days_after(day: exp.Expression, days: int) -> exp.Expression:
    """A date `days` days after `day` (before it when negative), a DATE on every engine."""
    shifted = exp.DateAdd(this=day, expression=exp.Literal.number(days), unit=exp.Var(this="DAY"))
    return exp.Cast(this=shifted, to=exp.DataType.build("DATE"))


def in_period(day: exp.Expression, periods: str) -> exp.Expression:
    """`day` falls in the period of the `periods` row (aliased so): how a date finds its one period."""
    return exp.Between(this=day, low=col("period_start", periods), high=col("period_end", periods))


def deal_order() -> list[exp.Column]:
    """The order of the deals behind lines: by line, then deal."""
    return [col(name) for name in ("rep_id", "period", "component", "line_type", "deal_id")]


def deals_behind(deals: exp.Select, rep: str | None = None, periods: Collection[str] | None = None) -> exp.Select:
    """The rows of a query of the deals behind lines that belong to one rep's lines and/or to lines of
    some periods, in its order: what `explain --rep` and `run --period` need, without the rest."""
    conditions = []
    if rep is not None:
        conditions.append(eq(col("rep_id"), text(rep)))
    if periods is not None:  # the lines' periods: for a plan paid on payment, those its deals are paid in
        conditions.append(
            exp.In(this=col("line_period"), expressions=[text(p) for p in sorted(periods)] or [exp.null()])
        )
    if not conditions:
        return deals
    return (
        exp.select("*", copy=False)
        .from_(deals.subquery("behind", copy=False), copy=False)
        .where(and_(*conditions), copy=False)
        .order_by(*deal_order(), copy=False)
    )


def read_ctes(query: exp.Expression, ctes: list[tuple[str, exp.Expression]]) -> list[tuple[str, exp.Expression]]:
    """The CTEs `query` reads, directly or through other CTEs, in their order: a query that
    needs a few of a plan's CTEs is smaller to print and for the engine to plan without the rest."""
    bodies = dict(ctes)
    read: set[str] = set()
    pending = [query]
    while pending:
        for node in pending.pop().find_all(exp.Table):
            if node.name in bodies and not node.db and node.name not in read:
                read.add(node.name)
                pending.append(bodies[node.name])
    return [(name, body) for name, body in ctes if name in read]


def _conjuncts(condition: ir.Expr | None) -> list[ir.Expr]:
    """`a and (b and c)` -> [a, b, c]; no condition -> []."""
    if condition is None:
        return []
    if isinstance(condition, ir.Logical) and condition.op == "and":
        return [part for operand in condition.operands for part in _conjuncts(operand)]
    return [condition]


def _reads_money(condition: ir.Expr, converted: frozenset[str]) -> bool:
    """Whether a deal condition reads a money field, which only `deal_rows` has in the plan currency."""
    return any(isinstance(n, ir.FieldRef) and (n.field == "amount" or n.field in converted) for n in _walk(condition))


def _and(first: ir.Expr | None, second: ir.Expr | None) -> ir.Expr | None:
    if first is None:
        return second
    if second is None:
        return first
    return ir.Logical(op="and", operands=(first, second))


def _walk(node):
    """Every IR node below `node` (depth first)."""
    if isinstance(node, ir.Node):
        yield node
        for name in type(node).model_fields:
            yield from _walk(getattr(node, name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _walk(item)


def eligibility_fields(eligibility: ir.Expr | None) -> list[str]:
    """The rep fields an `applies to` reads (what each roster interval carries to be judged on)."""
    if eligibility is None:
        return []
    return sorted({n.field for n in _walk(eligibility) if isinstance(n, ir.FieldRef) and n.entity == "rep"})


def roster_intervals(first_day: dt.date, last_day: dt.date, fields: Sequence[str]) -> exp.Subquery:
    """Each rep's roster attributes over time within [first_day, last_day], as a subquery `iv`:
    (rep_id, first_day, last_day, role_start, role_end, interval_ti, interval_manager, *fields); `first_day >
    last_day` when outside the range.

    A rep without rep_assignments rows has one row, the whole range, with the
    reps row's fields; `role_start` is the hire date, `role_end` NULL. A rep with rows has one
    per assignment: role, segment and region from it (other fields from the
    reps row), clipped to the range; `role_start` and `role_end` are the assignment's own dates.
    `interval_ti` is the annual target incentive and `interval_manager` the manager: the assignment's,
    else the reps row's.
    """
    first, last = date(first_day), date(last_day)
    assigned_reps = exp.Subquery(
        this=exp.select(col("rep_id"), copy=False)
        .from_(table("rep_assignments"), copy=False)
        .where(exp.Not(this=exp.Is(this=col("rep_id"), expression=exp.null())), copy=False)
    )
    unassigned = (
        exp.select(
            alias(col("id", "r"), "rep_id"),
            alias(first, "first_day"),
            alias(last, "last_day"),
            alias(col("hire_date", "r"), "role_start"),
            alias(exp.Cast(this=exp.null(), to=exp.DataType.build("DATE")), "role_end"),
            alias(col("target_incentive", "r"), "interval_ti"),
            alias(col("manager_id", "r"), "interval_manager"),
            *[alias(col(f, "r"), f) for f in fields],
            copy=False,
        )
        .from_(table("reps", "r"), copy=False)
        .where(exp.Not(this=exp.In(this=col("id", "r"), query=assigned_reps)), copy=False)
    )
    assigned = (
        exp.select(
            alias(col("id", "r"), "rep_id"),
            alias(greatest(col("start_date", "a"), first.copy()), "first_day"),
            alias(least(coalesce(col("end_date", "a"), last.copy()), last.copy()), "last_day"),
            alias(col("start_date", "a"), "role_start"),
            alias(col("end_date", "a"), "role_end"),
            alias(coalesce(col("target_incentive", "a"), col("target_incentive", "r")), "interval_ti"),
            alias(coalesce(col("manager_id", "a"), col("manager_id", "r")), "interval_manager"),
            *[alias(col(f, "a" if f in ASSIGNED_FIELDS else "r"), f) for f in fields],
            copy=False,
        )
        .from_(table("rep_assignments", "a"), copy=False)
        .join(table("reps", "r"), on=eq(col("id", "r"), col("rep_id", "a")), copy=False)
    )
    name = exp.TableAlias(this=exp.to_identifier("iv", quoted=True))
    return exp.Subquery(this=union_all([unassigned, assigned]), alias=name)
