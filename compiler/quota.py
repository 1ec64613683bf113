"""Quota plan IR -> one sqlglot query: every rep's annual and period quotas, with how each was derived.

In: a checked `ir.QuotaPlan`, the territory plans (for `territory_potential`)
and a dialect. Out: `quota_table(...)`, one row per eligible rep for the
year (`2027`, period_kind "year") and for each period (`2027-Q1`, ...,
period_kind "period"): QUOTA_COLUMNS. `plan_quotas(...)` is what a comp plan
with `quota from plan "NAME"` reads instead of the quotas table.

How a quota is derived (compiler/README.md, "Quota semantics", says it for
finance):

    to allocate   T = target x (100% + over_assign)
    weights       per `allocate by` term t (share s_t; one term: 100%):
                  territory_potential  sum of account potential x days the rep
                                       owns the account in the plan's range
                  prior_bookings       the previous calendar year's closed_won
                                       deals the rep owns, in plan currency (cents)
                  weights              the `weight` lines (1 for a rep without one)
                  equal                1 each
                  A term whose weights add up to 0 among the plan's reps is
                  allocated equally (so the whole target is always allocated).
    allocated     sum over t of T x s_t x w_t(rep) / W_t
    annual        the annual override, else the allocation; rounded
    period        annual x phasing share (equal shares without `phasing`)
                  x ramp factor (new hires), or the period's override; rounded

Exactness: weights are whole numbers (cents, cent-days, weights x 10^k), and
T x s_t x w / W is one exact integer division (rounded half away from zero to
10 places). Shares are apportioned by cumulative rounding (rep i gets
f(w_1 + .. + w_i) - f(w_1 + .. + w_i-1), reps in rep_id order), so the
allocations add up to T exactly on every engine, and equal the exact
proportional amount whenever that has at most 10 decimal places. Without a
`round` line quotas are money: the same cumulative rounding in cents, so they
still add up exactly (annual quotas to T, period quotas to the annual quota).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlglot import exp

from compiler.calendar import plan_periods
from compiler.exact import DECIMAL, INTEGER, SCALE, STEP, _floor_div, dec, div, mul, number, op, round_cents, sign, sub
from compiler.sql import (
    CompileError,
    RowCompiler,
    alias,
    and_,
    case,
    coalesce,
    col,
    date,
    days_between,
    eligibility_fields,
    eq,
    greatest,
    is_true,
    least,
    no_quota_plan,
    roster_intervals,
    table,
    text,
    union_all,
    window,
)
from dsl import ir

QUOTA_COLUMNS = (
    "plan",
    "version",
    "rep_id",
    "period",
    "period_kind",  # "year" (the annual quota) or "period" (what attainment is measured on)
    "period_start",
    "period_end",
    "amount",  # the quota, DECIMAL(18, 2)
    "annual_amount",  # the rep's annual quota (after override and rounding)
    "allocated",  # the rep's allocation of the target, before override and rounding (10 places)
    "share",  # allocated / amount to allocate (10 places)
    "to_allocate",  # target x (100% + over_assign)
    "territory_potential",  # the rep's weight on each basis (NULL when the plan does not use it)
    "territory_potential_total",
    "prior_bookings",
    "prior_bookings_total",
    "weight",
    "weight_total",
    "phasing",  # the period's phasing share (NULL on the year row)
    "ramp",  # the ramp factor applied (1 when none)
    "override",  # the override that replaced the figure, if any
    "unrounded",  # the figure before rounding
    "basis",  # the plan's allocation rule, as written
    "rounding",  # the plan's rounding rule, as written ("cents" without one)
)
BASES = ("territory_potential", "prior_bookings", "weights", "equal")
MONEY = exp.DataType.build("DECIMAL(18, 2)")


def quota_table(
    plan: ir.QuotaPlan, territories: tuple[ir.TerritoryPlan, ...] = (), dialect: str = "duckdb"
) -> exp.Select:
    """Every eligible rep's annual quota and period quotas, with their derivation (QUOTA_COLUMNS)."""
    return _QuotaCompiler(plan, tuple(territories), dialect).query()


def plan_quotas(
    name: str,
    quota_plans: tuple[ir.QuotaPlan, ...],
    territories: tuple[ir.TerritoryPlan, ...],
    dialect: str,
    period: ir.Period,
    computed: dict[str, str] | None = None,
) -> exp.Expression:
    """(rep_id, period, amount) of the quota plan `name` (every version): what `quota from plan` reads.

    `computed` names tables holding quota plans' rows (by plan key) that a run computed once."""
    computed = computed or {}
    chosen = [p for p in quota_plans if p.name == name]
    if not chosen:
        known = ", ".join(sorted({f'"{p.name}"' for p in quota_plans})) or "none was loaded"
        raise no_quota_plan(name, known)
    given: dict[str, int] = {}  # period label -> the version that gives it a quota
    for quota_plan in sorted(chosen, key=lambda p: p.version):
        for label in (p.label for p in plan_periods(quota_plan.effective_from, quota_plan.effective_to, period)):
            if label in given:  # which version applies would be undefined; refuse like the Python calculator
                raise CompileError(
                    f'quota from plan "{name}": versions {given[label]} and {quota_plan.version} '
                    f"both give quotas for {label}"
                )
            given[label] = quota_plan.version
    for quota_plan in chosen:
        if quota_plan.period != period:
            raise CompileError(
                f'quota from plan "{name}": its quotas are by {quota_plan.period.value}, '
                f"but this plan measures attainment by {period.value}"
            )
    selects = [
        exp.select(col("rep_id"), col("period"), col("amount"), copy=False)
        .from_(
            table(computed[p.key], "qp") if p.key in computed else quota_table(p, territories, dialect).subquery("qp"),
            copy=False,
        )
        .where(eq(col("period_kind"), text("period")), copy=False)
        for p in chosen
    ]
    return union_all(selects)


# ---------------------------------------------------------------- exact integer helpers


def _int(value: exp.Expression) -> exp.Expression:
    return exp.Cast(this=value, to=INTEGER.copy())


def _int_literal(value: int) -> exp.Expression:
    return _int(exp.Literal.number(value))


def _ratio(numerator: exp.Expression, denominator: exp.Expression, dialect: str) -> exp.Expression:
    """numerator / denominator for non-negative whole numbers, rounded half up to a whole number."""
    top = op(exp.Add, op(exp.Mul, numerator, _int_literal(2)), denominator)
    bottom = op(exp.Mul, denominator.copy(), _int_literal(2))
    return _int(_floor_div(top, bottom, dialect))


def _scaled(units: exp.Expression) -> exp.Expression:
    """A whole number of 10^-SCALE units as DECIMAL(38, 10)."""
    return dec(op(exp.Mul, _int(units), number(STEP)))


def _units(value: exp.Expression) -> exp.Expression:
    """A DECIMAL(38, 10) value as a whole number of 10^-SCALE units (exact)."""
    return _int(op(exp.Mul, dec(value), exp.Literal.number(10**SCALE)))


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def round_to_step(value: exp.Expression, mode: ir.RoundingMode, step: Decimal, dialect: str) -> exp.Expression:
    """Round to a multiple of `step`: nearest (half away from zero), up (away from zero) or down (toward zero)."""
    units = _units(value)
    step_units = int(step.scaleb(SCALE))
    if step_units <= 0:
        raise CompileError(f"cannot round to a step of {step}")
    magnitude = exp.Abs(this=units)
    s = _int_literal(step_units)
    if mode == ir.RoundingMode.NEAREST:
        top = op(exp.Add, op(exp.Mul, magnitude, _int_literal(2)), s)
        bottom = _int_literal(2 * step_units)
    elif mode == ir.RoundingMode.UP:
        top = op(exp.Add, magnitude, _int_literal(step_units - 1))
        bottom = s
    else:
        top, bottom = magnitude, s
    steps = _int(_floor_div(top, bottom, dialect))
    signed = op(exp.Mul, sign(units.copy()), steps)
    return mul(dec(_int(signed)), number(step))


# ---------------------------------------------------------------- the query


class _QuotaCompiler(RowCompiler):
    def __init__(self, plan: ir.QuotaPlan, territories: tuple[ir.TerritoryPlan, ...], dialect: str):
        super().__init__(dialect)
        self.plan, self.territories = plan, territories
        self.periods = plan_periods(plan.effective_from, plan.effective_to, plan.period)
        terms = plan.allocation or (ir.AllocationTerm(basis="equal"),)
        self.terms = [(t.basis, self.constant(t.share) if t.share is not None else Decimal(1)) for t in terms]
        target = self.constant(plan.target) if plan.target is not None else Decimal(0)
        over = self.constant(plan.over_assign) if plan.over_assign is not None else Decimal(0)
        self.to_allocate = (target * (1 + over)).quantize(STEP)
        # Each term's part of the amount to allocate; the last takes the remainder, so they add up exactly.
        parts, given = [], Decimal(0)
        for index, (_, share) in enumerate(self.terms):
            part = (
                self.to_allocate - given if index == len(self.terms) - 1 else (self.to_allocate * share).quantize(STEP)
            )
            parts.append(part)
            given += part
        self.parts = parts
        self.weight_decimals = max([_decimals(self.constant(w.value)) for w in plan.weights] + [0])
        self.rounding = None
        if plan.rounding is not None:
            self.rounding = (plan.rounding.mode, self.constant(plan.rounding.step))

    def constant(self, node: ir.Expr) -> Decimal:
        match node:
            case ir.Number(value=v) | ir.Percent(value=v):
                return v
            case ir.Money(amount=v):
                return v
            case ir.Negate(operand=o):  # `-0 USD`: RP307 refuses a negative one
                return -self.constant(o)
        raise CompileError(f"{self.plan.key}: expected a number, a percentage or money, not {type(node).__name__}")

    # ------------------------------------------------------------ pieces

    def round(self, value: exp.Expression) -> exp.Expression:
        if self.rounding is None:
            return round_cents(value)
        mode, step = self.rounding
        return round_to_step(value, mode, step, self.dialect)

    def reps(self) -> exp.Select:
        """(rep_id, hire_date): the reps the plan's `applies to` selects on some day of its range, employed then.

        Role, segment and region are read as in comp plans (`rep_assignments`
        when a rep has rows, else the reps row). `hire_date` is when the rep
        starts in the plan: the later of the hire date and the first day of the
        unbroken stretch of eligible assignments that reaches into the plan, so a rep
        promoted into the plan mid-year is ramped and phased like a new hire from
        the promotion on, and one whose rows are only cut (a new row on the
        plan's first day for a new TI or manager) is not."""
        plan = self.plan
        active = and_(
            exp.LTE(this=col("hire_date", "r"), expression=date(plan.effective_to)),
            exp.or_(
                exp.Is(this=col("termination_date", "r"), expression=exp.null()),
                exp.GTE(this=col("termination_date", "r"), expression=date(plan.effective_from)),
            ),
        )
        intervals = roster_intervals(plan.effective_from, plan.effective_to, eligibility_fields(plan.eligibility))
        conditions = [exp.paren(active)]
        if plan.eligibility is not None:
            conditions.append(is_true(self.row(plan.eligibility, "rep", "iv")))
        eligible = (  # every eligible assignment, in the plan's range or before it
            exp.select(
                *[col(c, "iv") for c in ("rep_id", "first_day", "last_day", "role_start", "role_end")],
                col("hire_date", "r"),
                copy=False,
            )
            .from_(intervals, copy=False)
            .join(table("reps", "r"), on=eq(col("id", "r"), col("rep_id", "iv")), copy=False)
            .where(and_(*conditions), copy=False)
        )
        # An assignment that starts the day after the rep's previous eligible one ends starts nothing: the stretch
        # it continues started earlier. A row's stretch starts at the latest start of a row that opens one.
        by_start = ([col("rep_id")], [col("role_start")])
        follows = eq(days_between(window(exp.Lag(this=col("role_end")), *by_start), col("role_start")),
                     exp.Literal.number(1))
        opens = exp.select("*", alias(case(follows, exp.null(), col("role_start")), "opens"), copy=False).from_(
            eligible.subquery("e", copy=False), copy=False
        )
        stretches = exp.select(
            *[col(c) for c in ("rep_id", "first_day", "last_day", "hire_date")],
            alias(window(exp.Max(this=col("opens")), *by_start), "stretch_start"),
            copy=False,
        ).from_(opens.subquery("o", copy=False), copy=False)
        starts = greatest(exp.Max(this=col("hire_date")), exp.Min(this=col("stretch_start")))
        return (
            exp.select(col("rep_id"), alias(starts, "hire_date"), copy=False)
            .from_(stretches.subquery("stretches", copy=False), copy=False)
            .where(exp.LTE(this=col("first_day"), expression=col("last_day")), copy=False)
            .group_by(col("rep_id"), copy=False)
        )

    def potential(self) -> exp.Select:
        """Per owner: sum of potential (cents) x days owned within the plan's range."""
        from compiler.territory import territory_table

        plan = self.plan
        first = greatest(col("start", "t"), date(plan.effective_from))
        last = least(col("end", "t"), date(plan.effective_to))
        days = exp.Add(this=days_between(first, last), expression=exp.Literal.number(1))
        cents = _int(op(exp.Mul, dec(coalesce(col("potential", "a"), number(0))), exp.Literal.number(100)))
        weight = op(exp.Mul, greatest(cents, _int_literal(0)), _int(days))
        return (
            exp.select(alias(col("owner_rep_id", "t"), "rep_id"), alias(exp.Sum(this=weight), "units"), copy=False)
            .from_(territory_table(list(self.territories), self.dialect).subquery("t"), copy=False)
            .join(table("accounts", "a"), on=eq(col("id", "a"), col("account_id", "t")), copy=False)
            .where(
                and_(
                    exp.Not(this=exp.Is(this=col("owner_rep_id", "t"), expression=exp.null())),
                    exp.LTE(this=first.copy(), expression=last.copy()),
                ),
                copy=False,
            )
            .group_by(col("owner_rep_id", "t"), copy=False)
        )

    def prior_bookings(self) -> exp.Select:
        """Per owner: the previous calendar year's closed_won deals in plan currency, in cents."""
        year = self.plan.effective_from.year - 1
        following = window(exp.Lead(this=col("date")), [col("from")], [col("date")])
        valid_to = coalesce(
            exp.Cast(
                this=exp.DateAdd(this=following, expression=exp.Literal.number(-1), unit=exp.var("DAY")),
                to=exp.DataType.build("DATE"),
            ),
            date(dt.date(9999, 12, 31)),
        )
        rates = (
            exp.select(
                col("from"),
                alias(dec(col("rate")), "rate"),
                alias(col("date"), "valid_from"),
                alias(valid_to, "valid_to"),
                copy=False,
            )
            .from_(table("fx_rates"), copy=False)
            .where(eq(col("to"), text(self.plan.currency)), copy=False)
        )
        amount = case(
            eq(col("currency", "d"), text(self.plan.currency)),
            dec(col("amount", "d")),
            mul(dec(col("amount", "d")), col("rate", "fx")),
        )
        cents = _int(op(exp.Mul, round_cents(amount), exp.Literal.number(100)))
        return (
            exp.select(alias(col("owner_rep_id", "d"), "rep_id"), alias(exp.Sum(this=cents), "units"), copy=False)
            .from_(table("deals", "d"), copy=False)
            .join(
                rates.subquery("fx"),
                join_type="left",
                on=and_(
                    eq(col("from", "fx"), col("currency", "d")),
                    exp.Between(this=col("close_date", "d"), low=col("valid_from", "fx"), high=col("valid_to", "fx")),
                ),
                copy=False,
            )
            .where(
                and_(
                    eq(col("stage", "d"), text("closed_won")),
                    exp.Between(
                        this=col("close_date", "d"), low=date(dt.date(year, 1, 1)), high=date(dt.date(year, 12, 31))
                    ),
                ),
                copy=False,
            )
            .group_by(col("owner_rep_id", "d"), copy=False)
        )

    def weight_units(self) -> exp.Expression:
        scale = 10**self.weight_decimals
        weight = exp.Case()
        for line in self.plan.weights:
            weight = weight.when(
                eq(col("rep_id", "r"), text(line.rep)), _int_literal(int(self.constant(line.value) * scale)), copy=False
            )
        return weight.else_(_int_literal(scale), copy=False) if self.plan.weights else _int_literal(scale)

    def basis_units(self) -> exp.Select:
        """Each rep's whole-number weight on each basis (b_<basis>)."""
        columns = [col("rep_id", "r"), col("hire_date", "r")]
        select_from = table("q_reps", "r")
        joins = []
        for basis in BASES:
            if basis == "territory_potential":
                joins.append(("q_potential", "tp"))
                units = coalesce(col("units", "tp"), _int_literal(0))
            elif basis == "prior_bookings":
                joins.append(("q_prior", "pb"))
                units = greatest(coalesce(col("units", "pb"), _int_literal(0)), _int_literal(0))
            elif basis == "weights":
                units = self.weight_units()
            else:
                units = _int_literal(1)
            columns.append(alias(_int(units), f"b_{basis}"))
        select = exp.select(*columns, copy=False).from_(select_from, copy=False)
        for name, short in joins:
            select = select.join(
                table(name, short), join_type="left", on=eq(col("rep_id", short), col("rep_id", "r")), copy=False
            )
        return select

    def used(self) -> list[str]:
        return [basis for basis, _ in self.terms]

    def cumulative(self) -> exp.Select:
        """Weights per used basis (equal when they add up to 0), their totals and running sums in rep_id order."""
        columns: list[exp.Expression] = [col("rep_id", "b"), col("hire_date", "b")]
        for basis in BASES:
            columns.append(col(f"b_{basis}", "b"))
        totals = exp.select(
            *columns,
            *[
                alias(exp.Window(this=exp.Sum(this=col(f"b_{basis}", "b"))), f"raw_total_{basis}")
                for basis in self.used()
            ],
            copy=False,
        ).from_(table("q_basis", "b"), copy=False)
        spec = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING")
        effective = {
            basis: case(eq(col(f"raw_total_{basis}", "t"), _int_literal(0)), _int_literal(1), col(f"b_{basis}", "t"))
            for basis in self.used()
        }
        outer = [col("rep_id", "t"), col("hire_date", "t")]
        outer += [col(f"b_{basis}", "t") for basis in BASES]
        outer += [col(f"raw_total_{basis}", "t") for basis in self.used()]
        for basis in self.used():
            outer.append(alias(_int(effective[basis]), f"w_{basis}"))
            outer.append(alias(_int(exp.Window(this=exp.Sum(this=effective[basis].copy()))), f"total_{basis}"))
            running = window(exp.Sum(this=effective[basis].copy()), [], [self.id_order(col("rep_id", "t"))],
                             spec.copy())
            outer.append(alias(_int(running), f"cum_{basis}"))
        return exp.select(*outer, copy=False).from_(totals.subquery("t"), copy=False)

    def id_order(self, rep_id: exp.Expression) -> exp.Expression:
        """Rep ids in code point order on every engine: remainders go to reps in this order, and a PostgreSQL
        database with a linguistic collation (en-US) put 'r2' before 'R3' where the others put it after."""
        if self.dialect != "postgres":
            return rep_id
        return exp.Collate(this=rep_id, expression=exp.Identifier(this="C", quoted=True))

    def allocation_at(self, cumulative: dict[str, exp.Expression]) -> exp.Expression:
        """sum over terms of part_t x cumulative_t / total_t, as 10^-SCALE units (exact, rounded half up)."""
        pieces = []
        for (basis, _), part in zip(self.terms, self.parts, strict=True):
            part_units = int(part.scaleb(SCALE))
            numerator = op(exp.Mul, _int_literal(part_units), cumulative[basis])
            pieces.append(_ratio(numerator, col(f"total_{basis}", "c"), self.dialect))
        result = pieces[0]
        for piece in pieces[1:]:
            result = op(exp.Add, result, piece)
        return _int(result)

    def allocation(self) -> exp.Select:
        upto = {basis: col(f"cum_{basis}", "c") for basis, _ in self.terms}
        before = {basis: _int(op(exp.Sub, col(f"cum_{basis}", "c"), col(f"w_{basis}", "c"))) for basis, _ in self.terms}
        high, low = _scaled(self.allocation_at(upto)), _scaled(self.allocation_at(before))
        if self.rounding is None:  # money: cumulative rounding in cents keeps the sum exact
            allocated_money = sub(round_cents(high.copy()), round_cents(low.copy()))
        else:
            allocated_money = sub(high.copy(), low.copy())
        override = exp.Case()
        annual_overrides = [o for o in self.plan.overrides if o.period is None]
        for line in annual_overrides:
            override = override.when(
                eq(col("rep_id", "c"), text(line.rep)), number(self.constant(line.amount)), copy=False
            )
        override = (
            override.else_(exp.Cast(this=exp.null(), to=DECIMAL.copy()), copy=False) if annual_overrides else None
        )
        unrounded = dec(coalesce(override.copy(), allocated_money)) if override is not None else dec(allocated_money)
        weights: list[exp.Expression] = []
        plan_days = (self.plan.effective_to - self.plan.effective_from).days + 1
        for basis in ("territory_potential", "prior_bookings", "weights"):
            name = "weight" if basis == "weights" else basis
            if basis not in self.used():
                weights += [
                    alias(exp.Cast(this=exp.null(), to=DECIMAL.copy()), name),
                    alias(exp.Cast(this=exp.null(), to=DECIMAL.copy()), f"{name}_total"),
                ]
                continue
            divisor = {
                "territory_potential": 100 * plan_days,
                "prior_bookings": 100,
                "weights": 10**self.weight_decimals,
            }[basis]
            for column, label in ((f"b_{basis}", name), (f"raw_total_{basis}", f"{name}_total")):
                shown = _scaled(
                    _ratio(op(exp.Mul, col(column, "c"), _int_literal(10**SCALE)), _int_literal(divisor), self.dialect)
                )
                weights.append(alias(shown, label))
        share = (
            _scaled(
                _ratio(
                    op(exp.Mul, _units(allocated_money.copy()), _int_literal(10**SCALE)),
                    _int_literal(int(self.to_allocate.scaleb(SCALE))),
                    self.dialect,
                )
            )
            if self.to_allocate > 0
            else exp.Cast(this=exp.null(), to=DECIMAL.copy())
        )
        return exp.select(
            col("rep_id", "c"),
            col("hire_date", "c"),
            alias(dec(allocated_money), "allocated"),
            alias(share, "share"),
            *weights,
            alias(override if override is not None else exp.Cast(this=exp.null(), to=DECIMAL.copy()), "override"),
            alias(unrounded, "unrounded"),
            alias(self.round(unrounded.copy()), "annual_amount"),
            copy=False,
        ).from_(table("q_cumulative", "c"), copy=False)

    def period_values(self) -> exp.Expression:
        """The plan's periods with their cumulative phasing fraction (numerator, denominator)."""
        rows = []
        count = len(self.periods)
        phasing = [self.constant(p) for p in self.plan.phasing]
        per_year = self.plan.period.per_year
        cumulative = Decimal(0)
        for position, period in enumerate(self.periods):
            if phasing:
                slot = (period.start.month - 1) * per_year // 12
                share = phasing[slot] if slot < len(phasing) else Decimal(0)
                before = cumulative
                cumulative += share
                numerator_before, numerator, denominator = before, cumulative, Decimal(1)
            else:
                share = None
                numerator_before, numerator, denominator = Decimal(position), Decimal(position + 1), Decimal(count)
            rows.append(
                exp.Tuple(
                    expressions=[
                        text(period.label),
                        date(period.start),
                        date(period.end),
                        exp.Literal.number(period.index),
                        number(numerator_before),
                        number(numerator),
                        number(denominator),
                        number(share) if share is not None else exp.Cast(this=exp.null(), to=DECIMAL.copy()),
                    ]
                )
            )
        names = ("period", "period_start", "period_end", "period_index", "cum_before", "cum", "den", "phasing")
        values = exp.Values(
            expressions=rows,
            alias=exp.TableAlias(
                this=exp.to_identifier("p"), columns=[exp.to_identifier(n, quoted=True) for n in names]
            ),
        )
        return exp.select(*[col(n) for n in names], copy=False).from_(values, copy=False)

    def ramp_factor(self) -> exp.Expression:
        """1 for reps hired before the plan starts; for new hires: 0 before the hire, then ramp steps."""
        plan = self.plan
        hire = col("hire_date", "a")
        index = col("period_index", "p")
        first_full = exp.Case()
        for period in self.periods:
            first_full = first_full.when(
                exp.LTE(this=hire.copy(), expression=date(period.start)), exp.Literal.number(period.index), copy=False
            )
        first_full = first_full.else_(exp.Literal.number(len(self.periods) + 1), copy=False)
        steps = [self.constant(s) for s in plan.ramp]
        factor = exp.Case().when(exp.LT(this=col("period_end", "p"), expression=hire.copy()), number(0), copy=False)
        if steps:
            factor = factor.when(exp.LT(this=index.copy(), expression=first_full.copy()), number(steps[0]), copy=False)
            for offset, step in enumerate(steps):
                factor = factor.when(
                    eq(index.copy(), op(exp.Add, first_full.copy(), exp.Literal.number(offset))),
                    number(step),
                    copy=False,
                )
        factor = factor.else_(number(1), copy=False)
        new_hire = exp.GTE(this=hire.copy(), expression=date(plan.effective_from))
        return case(new_hire, factor, number(1))

    def period_rows(self) -> exp.Select:
        annual = col("annual_amount", "f")
        high = self.phase(annual, col("cum", "f"), col("den", "f"))
        low = self.phase(annual.copy(), col("cum_before", "f"), col("den", "f"))
        phased = sub(round_cents(high), round_cents(low)) if self.rounding is None else sub(high, low)
        factor = col("ramp", "f")
        ramped = mul(dec(phased), factor)
        override = exp.Case()
        period_overrides = [o for o in self.plan.overrides if o.period is not None]
        for line in period_overrides:
            override = override.when(
                and_(eq(col("rep_id", "f"), text(line.rep)), eq(col("period", "f"), text(line.period))),
                number(self.constant(line.amount)),
                copy=False,
            )
        override = (
            override.else_(exp.Cast(this=exp.null(), to=DECIMAL.copy()), copy=False) if period_overrides else None
        )
        inner = (
            exp.select(
                col("rep_id", "a"),
                col("period", "p"),
                col("period_start", "p"),
                col("period_end", "p"),
                col("annual_amount", "a"),
                col("allocated", "a"),
                col("share", "a"),
                *[col(n, "a") for n in ("territory_potential", "territory_potential_total")],
                *[col(n, "a") for n in ("prior_bookings", "prior_bookings_total", "weight", "weight_total")],
                col("phasing", "p"),
                alias(self.ramp_factor(), "ramp"),
                alias(exp.Cast(this=exp.null(), to=DECIMAL.copy()), "annual_override"),
                col("cum", "p"),
                col("cum_before", "p"),
                col("den", "p"),
                copy=False,
            )
            .from_(table("q_allocation", "a"), copy=False)
            .join(table("q_periods", "p"), join_type="cross", copy=False)
        )
        unrounded = dec(coalesce(override, ramped)) if override is not None else dec(ramped)
        figure = self.round(unrounded.copy())
        return exp.select(
            col("rep_id", "f"),
            col("period", "f"),
            alias(text("period"), "period_kind"),
            col("period_start", "f"),
            col("period_end", "f"),
            alias(figure, "amount"),
            *[
                col(n, "f")
                for n in (
                    "annual_amount",
                    "allocated",
                    "share",
                    "territory_potential",
                    "territory_potential_total",
                    "prior_bookings",
                    "prior_bookings_total",
                    "weight",
                    "weight_total",
                    "phasing",
                    "ramp",
                )
            ],
            alias(
                override.copy() if override is not None else exp.Cast(this=exp.null(), to=DECIMAL.copy()), "override"
            ),
            alias(unrounded, "unrounded"),
            copy=False,
        ).from_(inner.subquery("f"), copy=False)

    def phase(self, annual: exp.Expression, numerator: exp.Expression, denominator: exp.Expression) -> exp.Expression:
        """annual x the cumulative phasing fraction (k / n for equal shares without `phasing`)."""
        product = mul(dec(annual), numerator)
        return product if self.plan.phasing else div(product, denominator, self.dialect)

    def year_rows(self) -> exp.Select:
        plan = self.plan
        return exp.select(
            col("rep_id", "a"),
            alias(text(str(plan.effective_from.year)), "period"),
            alias(text("year"), "period_kind"),
            alias(date(plan.effective_from), "period_start"),
            alias(date(plan.effective_to), "period_end"),
            alias(col("annual_amount", "a"), "amount"),
            *[
                col(n, "a")
                for n in (
                    "annual_amount",
                    "allocated",
                    "share",
                    "territory_potential",
                    "territory_potential_total",
                    "prior_bookings",
                    "prior_bookings_total",
                    "weight",
                    "weight_total",
                )
            ],
            alias(exp.Cast(this=exp.null(), to=DECIMAL.copy()), "phasing"),
            alias(number(1), "ramp"),
            col("override", "a"),
            col("unrounded", "a"),
            copy=False,
        ).from_(table("q_allocation", "a"), copy=False)

    def query(self) -> exp.Select:
        plan = self.plan
        ctes: list[tuple[str, exp.Expression]] = [("q_reps", self.reps())]
        used = self.used()
        if "territory_potential" in used:
            ctes.append(("q_potential", self.potential()))
        else:
            ctes.append(("q_potential", _empty_units()))
        if "prior_bookings" in used:
            ctes.append(("q_prior", self.prior_bookings()))
        else:
            ctes.append(("q_prior", _empty_units()))
        ctes += [
            ("q_basis", self.basis_units()),
            ("q_cumulative", self.cumulative()),
            ("q_allocation", self.allocation()),
            ("q_periods", self.period_values()),
        ]
        parts = [self.period_rows()]
        if plan.period != ir.Period.YEAR:  # a yearly plan's one period is the year
            parts.insert(0, self.year_rows())
        rows = union_all(parts)
        basis = ", ".join(f"{b} {_percent(s)}" if len(self.terms) > 1 else b for b, s in self.terms)
        rounding = "cents" if self.rounding is None else f"{self.rounding[0].value} {_plain(self.rounding[1])}"
        select = exp.select(
            alias(text(plan.name), "plan"),
            alias(exp.Literal.number(plan.version), "version"),
            *[col(c, "r") for c in ("rep_id", "period", "period_kind", "period_start", "period_end")],
            *[alias(exp.Cast(this=col(c, "r"), to=MONEY.copy()), c) for c in ("amount", "annual_amount")],
            col("allocated", "r"),
            col("share", "r"),
            alias(number(self.to_allocate), "to_allocate"),
            *[
                col(c, "r")
                for c in (
                    "territory_potential",
                    "territory_potential_total",
                    "prior_bookings",
                    "prior_bookings_total",
                    "weight",
                    "weight_total",
                    "phasing",
                    "ramp",
                    "override",
                    "unrounded",
                )
            ],
            alias(text(basis), "basis"),
            alias(text(rounding), "rounding"),
            copy=False,
        ).from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("r", quoted=True))), copy=False)
        for name, body in ctes:
            select = select.with_(exp.TableAlias(this=exp.to_identifier(name, quoted=True)), as_=body, copy=False)
        return select.order_by(col("rep_id"), col("period_kind", "r").desc(), col("period_start"), copy=False)


def _empty_units() -> exp.Select:
    return exp.select(
        alias(exp.Cast(this=exp.null(), to=exp.DataType.build("TEXT")), "rep_id"),
        alias(exp.Cast(this=exp.null(), to=INTEGER.copy()), "units"),
        copy=False,
    ).where(exp.false(), copy=False)


def _percent(value: Decimal) -> str:
    return f"{_plain(value * 100)}%"


def _plain(value: Decimal) -> str:
    text_ = format(value.normalize(), ",f")
    return text_
