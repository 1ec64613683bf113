"""`revplan explain --rep R --period P`: every payout line of a rep, and why it is what it is.

In: a run's results (`RunResult.payout_lines` and `.payout_deals` from
`run_plans(..., deals=True)`), the comp plans that ran (`ir.CompPlan`, for
the rules and their source spans) and the plan sources (file -> text). Out: an
`Explanation` (plain data), rendered as a statement a rep can read
(`render` / `render_text`, rich) or as JSON (`to_json`, Decimals as strings).
Nothing here reads files or databases.

    explain_rep(lines, deals, plans, sources, rep, period, ...)  -> Explanation
    render(explanation)       -> a rich renderable (the CLI prints it)
    render_text(explanation)  -> the same as plain text
    to_json(explanation)      -> JSON text; as_dict(explanation) the same as Python data

For each line: plan, version, component, line type, where the rule is written
(file:line of the component, the tier band or curve segment reached, the
gate, the caps, multipliers, draw, clawback), base, rate or tier, the
multipliers and whether they applied, gate and cap decisions (uncapped vs
paid), proration, attainment and quota, and the deals behind the line with
their credited base and exact share (they add up to the line, to the cent; a
line paid or taken back over several periods may carry a cent to another).

What is inferred rather than read from the results is marked so: whether a
measure multiplier applied is worked out from uncapped / (pay before
multipliers) and left undecided when that is ambiguous; the bands of
graduated tiers read on attainment are sliced on attainment x quota.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dsl import ir
from dsl.check import is_fixed, label_dates
from dsl.diagnostics import Span
from reports.explain import NotFound
from runtime.outputs import LINE_TYPES

CENT = Decimal("0.01")
HALF_CENT = Decimal("0.0051")  # a rounded amount lies within half a cent of the exact one (and a hair for ~)
LINE_KINDS = {
    "commission": "commission",
    "bonus": "bonus",
    "spiff": "SPIFF",
    "mbo": "MBO",
    "draw": "draw top-up",
    "draw_recovery": "draw recovery",
    "clawback": "clawback",
}


# ---------------------------------------------------------------- the explanation (plain data)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a rule is written: file, line and that line's text."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Step:
    """One fact or decision behind a line: the rule, a band, a multiplier, the gate, a cap ..."""

    kind: str  # rule, band, curve, multiplier, deal_multiplier, gate, cap, proration, measurement, draw, ...
    text: str  # in words
    source: Source | None = None
    decision: str | None = None  # applied / not applied / met / not met / reached / not reached
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DealShare:
    deal_id: str
    credited_base: Decimal | None  # the deal's part of the base (credited, converted, multiplied)
    share: Decimal  # its exact part of the line (negative on a clawback line)
    earned_period: str  # the period it was earned in (differs on payment and clawback lines)


@dataclasses.dataclass(frozen=True)
class LineExplanation:
    plan: str
    version: int
    component: str
    line_type: str
    period: str
    currency: str
    amount: Decimal
    uncapped: Decimal | None
    base: Decimal | None
    base_measure: str | None
    rate: Decimal | None
    rate_shown: str | None  # the rate as the plan writes it: 8%, or 50.00 USD each
    attainment: Decimal | None
    quota: Decimal | None
    target_incentive: Decimal | None
    proration: Decimal | None
    capped: bool
    gated: bool
    deal_count: int
    source: Source | None  # the component (or the draw / clawback line of the plan)
    steps: tuple[Step, ...]
    deals: tuple[DealShare, ...]

    @property
    def deals_total(self) -> Decimal | None:
        return sum((d.share for d in self.deals), Decimal(0)) if self.deals else None


@dataclasses.dataclass(frozen=True)
class Explanation:
    rep: str
    rep_name: str | None
    period: str | None  # what was asked for; None: every period
    lines: tuple[LineExplanation, ...]

    def totals(self) -> dict[tuple[str, int, str, str], Decimal]:
        """(plan, version, period, currency) -> total, in statement order."""
        totals: dict[tuple[str, int, str, str], Decimal] = {}
        for line in self.lines:
            key = (line.plan, line.version, line.period, line.currency)
            totals[key] = totals.get(key, Decimal("0.00")) + line.amount
        return totals


# ---------------------------------------------------------------- building it


def explain_rep(
    lines: pd.DataFrame,
    deals: pa.Table | pd.DataFrame | None,
    plans: Iterable[ir.CompPlan],
    sources: Mapping[str, str],
    rep: str,
    period: str | None = None,
    *,
    rep_name: str | None = None,
) -> Explanation:
    """Explain every payout line of `rep` (in `period`, and the months or quarters inside it).

    `deals` is `RunResult.payout_deals` with shares (DEAL_COLUMNS). Raises
    `NotFound` for a rep without lines or a period they have none in.
    """
    chosen = select_lines(lines, rep, period)
    if isinstance(deals, pa.Table):  # a run's Arrow table: only this rep's rows become Python objects
        deals = deals.filter(pc.equal(deals["rep_id"], rep)).to_pandas()
    by_key = {(p.name, p.version): p for p in plans}
    mine = lines[lines["rep_id"] == rep].to_dict("records")
    explained = []
    for row in chosen.to_dict("records"):
        plan = by_key.get((row["plan"], int(row["version"])))
        if plan is not None and plan.measurement == ir.Measurement.YEAR_TO_DATE and row["line_type"] == "commission":
            row = {**row, "paid_before": _paid_earlier_in_year(row, mine)}
        explained.append(_explain_line(row, plan, deals, sources))
    explained.sort(key=lambda line: (line.plan, line.version, _period_order(line.period), _statement_order(line)))
    return Explanation(rep, rep_name, period, tuple(explained))


def _paid_earlier_in_year(row: dict, lines: list[dict]) -> Decimal:
    """What the line's component paid the rep in the year's earlier periods (its plan version's lines)."""
    start = label_dates(row["period"])[0]
    same = ("plan", "version", "component", "line_type")
    return sum((line["amount"] for line in lines
                if all(line[k] == row[k] for k in same)
                and label_dates(line["period"])[0].year == start.year and label_dates(line["period"])[0] < start),
               Decimal("0.00"))


def select_lines(lines: pd.DataFrame, rep: str, period: str | None = None) -> pd.DataFrame:
    """The rep's lines in `period` (a period label; the periods inside it count too)."""
    mine = lines[lines["rep_id"] == rep]
    if mine.empty:
        raise NotFound(f"no payout lines for {rep!r}", rep, sorted(set(lines["rep_id"])))
    if period is None:
        return mine
    known = sorted(set(mine["period"]), key=_period_order)
    try:
        start, end = label_dates(period)
    except ValueError:
        raise NotFound(f"{period!r} is not a period (2027, 2027-H1, 2027-Q1, 2027-01)", period, known) from None
    inside = {label for label in known if start <= label_dates(label)[0] and label_dates(label)[1] <= end}
    if not inside:
        raise NotFound(f"{rep} has no payout lines in period {period!r}", period, known)
    return mine[mine["period"].isin(inside)]


def _period_order(label: str) -> tuple:
    try:
        start, end = label_dates(label)
    except ValueError:
        return (True, dt.date.max, label)
    return ((end - start).days > 31, start, label)


def _explain_line(row: dict, plan: ir.CompPlan | None, deals, sources) -> LineExplanation:
    component = _component(plan, row["component"])
    line_type = row["line_type"]
    steps: list[Step] = []
    source = _source(component.span, sources) if component is not None else None
    behind: tuple[DealShare, ...] = ()
    paid_later = (plan is not None and component is not None and plan.paid_on == ir.PayoutTiming.PAYMENT
                  and _traced(component) and line_type == "commission")
    if plan is not None and line_type in ("draw", "draw_recovery") and plan.draw is not None:
        source = _source(plan.draw.span, sources)
        steps.append(_draw_step(row, plan.draw, source))
    elif plan is not None and line_type == "clawback" and plan.clawback is not None:
        steps.append(_clawback_step(plan.clawback, sources, _dec(row["amount"]), plan.measurement))
        behind = _behind(row, deals)
    elif component is not None:
        if paid_later:
            steps.append(
                Step(
                    "payment",
                    "paid on payment: this line pays the shares of the deals paid in this period, "
                    "whenever they were earned",
                )
            )
            rule = component.payout
            steps.append(
                Step(
                    "rule",
                    f"earned under {_snippet(rule.span, sources)} (with the multipliers, gate and caps of the period "
                    "each deal was earned in)",
                    _source(rule.span, sources),
                )
            )
            behind = _behind(row, deals)
        else:
            behind = _behind(row, deals)
            steps.extend(_component_steps(_with_exact_base(row, behind), plan, component, sources))
    if paid_later and plan.measurement == ir.Measurement.YEAR_TO_DATE:
        # Not the pay to date less earlier lines: such a line pays deals' shares as they are paid (audit).
        steps.append(Step("measurement", "measured year to date with true-up: what a deal earned in a period is "
                                         "the change in its part of the pay to date; this line pays those parts "
                                         "for the deals paid in this period"))
    elif plan is not None and plan.measurement == ir.Measurement.YEAR_TO_DATE and line_type == "commission":
        before = row.get("paid_before", Decimal("0.00"))
        to_date = _dec(row["amount"]) + before
        steps.append(
            Step(
                "measurement",
                "measured year to date with true-up: base, attainment and tiers are the year's to date; this "
                f"line pays the pay to date, {_money(to_date)} (rounded), less the {_money(before)} the year's "
                f"earlier periods paid: {_money(to_date - before)}",
                values={"pay_to_date": to_date, "paid_before": before},
            )
        )
    return LineExplanation(
        plan=row["plan"],
        version=int(row["version"]),
        component=row["component"],
        line_type=line_type,
        period=row["period"],
        currency=row["currency"],
        amount=_dec(row["amount"]),
        uncapped=_dec(row.get("uncapped")),
        base=_dec(row.get("base")),
        base_measure=component.base if component is not None else None,
        rate=_dec(row.get("rate")),
        rate_shown=_rate(_dec(row.get("rate")), component) if _dec(row.get("rate")) is not None else None,
        attainment=_dec(row.get("attainment")),
        quota=_dec(row.get("quota")),
        target_incentive=_dec(row.get("target_incentive")),
        proration=_dec(row.get("proration")),
        capped=bool(row.get("capped")),
        gated=bool(row.get("gated")),
        deal_count=int(row.get("deal_count") or 0),
        source=source,
        steps=tuple(steps),
        deals=behind,
    )


def _component(plan: ir.CompPlan | None, name: str) -> ir.Component | None:
    if plan is None:
        return None
    return next((c for c in plan.components if c.name == name), None)


def _traced(component: ir.Component) -> bool:
    return isinstance(component.payout, (ir.FlatRate, ir.Tiers)) and component.base is not None


# ---------------------------------------------------------------- a component's steps


def _component_steps(row: dict, plan: ir.CompPlan, component: ir.Component, sources) -> list[Step]:
    rule = component.payout
    base, rate, uncapped = _dec(row.get("base")), _dec(row.get("rate")), _dec(row.get("uncapped"))
    gated = bool(row.get("gated"))
    proration = _dec(row.get("proration"))
    steps: list[Step] = []
    raw: Decimal | None = None  # the pay before multipliers, gate and caps, when it can be worked out
    match rule:
        case ir.FlatRate():
            raw = base * rate if base is not None and rate is not None else None
            shown_base = _number(base) if _per_unit(component) else _exact(base)
            steps.append(
                Step(
                    "rule",
                    f"{_snippet(rule.span, sources)}: {shown_base} {component.base or 'base'} x "
                    f"{_rate(rate, component)} = {_exact(raw)}",
                    _source(rule.span, sources),
                    values={"base": base, "rate": rate, "pay": raw},
                )
            )
        case ir.Tiers():
            tier_steps, raw = _tier_steps(row, plan, component, rule, sources)
            steps.extend(tier_steps)
        case ir.Curve():
            curve_steps, raw = _curve_steps(row, rule, sources)
            steps.extend(curve_steps)
        case ir.Bonus():
            amount = _prorated(_literal(rule.amount), rule.amount, proration)
            met = None if gated else (uncapped is not None and uncapped != 0)
            raw = amount if met else (Decimal(0) if met is False else None)
            words = _snippet(rule.span, sources) + _prorated_text(rule.amount, proration, amount)
            steps.append(Step("rule", words, _source(rule.span, sources), _met(met), {"amount": amount}))
        case ir.Spiff():
            amount = _literal(rule.amount)
            count = None
            if not gated and amount and uncapped is not None and not component.measure_multipliers:
                count = uncapped / amount
                count = int(count) if count == count.to_integral_value() else None
            raw = amount * count if amount is not None and count is not None else None
            words = _snippet(rule.span, sources) + (f": {count} qualifying deal(s)" if count is not None else "")
            steps.append(Step("rule", words, _source(rule.span, sources), values={"amount": amount, "deals": count}))
        case ir.Mbo():
            amount = _prorated(_literal(rule.amount), rule.amount, proration)
            score = None
            if not gated and amount and uncapped is not None and not component.measure_multipliers:
                score = uncapped / amount
            prorated = _prorated_text(rule.amount, proration, amount)
            words = _snippet(rule.span, sources) + prorated
            if score is not None:
                words += ("; " if prorated else ": ") + f"score {_score(score)}"
            steps.append(Step("rule", words, _source(rule.span, sources), values={"amount": amount, "score": score}))
    for multiplier in component.deal_multipliers:
        steps.append(
            Step(
                "deal_multiplier",
                f"deals where {_snippet(multiplier.where.span, sources) or 'the condition holds'} count "
                f"{_number(_literal(multiplier.factor))} x in the base",
                _source(multiplier.span, sources),
                values={"factor": _literal(multiplier.factor)},
            )
        )
    steps.extend(_multiplier_steps(component, raw, uncapped, gated, sources))
    if component.gates:
        single = len(component.gates) == 1
        decision = ("not met" if single else "not all met") if gated else "met"
        for gate in component.gates:
            words = _snippet(gate.span, sources) + (": the line pays 0" if gated else "")
            steps.append(Step("gate", words, _source(gate.span, sources), decision))
    if component.caps:
        capped = bool(row.get("capped"))
        amount = _dec(row.get("amount"))
        for cap in component.caps:
            words = _snippet(cap.span, sources)
            if capped:
                words += f": pays {_money(amount)} instead of {_money(uncapped)}"
            steps.append(
                Step(
                    "cap",
                    words,
                    _source(cap.span, sources),
                    ("reached" if len(component.caps) == 1 else "a cap was reached") if capped else "not reached",
                    {"uncapped": uncapped, "amount": amount},
                )
            )
    if proration is not None and proration != 1:
        steps.append(
            Step(
                "proration",
                f"active {_active_days(proration, row['period'])}: quota, target incentive and fixed amounts "
                "per period (a cap, a bonus, an MBO, a draw) are prorated",
                values={"proration": proration},
            )
        )
    return steps


def _score(score: Decimal) -> str:
    """An MBO score worked out from the line's cents: to 0.01 %, as the cents allow (989.01 of 989.010989 is
    100 %, not 99.9999 %)."""
    shown = (score * 100).quantize(Decimal("0.01"))
    return f"{'~' if shown != score * 100 else ''}{format(shown.normalize(), 'f')}%"


def _active_days(proration: Decimal, period: str) -> str:
    """"61 of the period's 91 days (~67.033%)": proration is active days / period days, to 10 places."""
    start, end = label_dates(period)
    days = (end - start).days + 1
    active = (proration * days).to_integral_value()
    if abs(active / days - proration) > Decimal("1e-10"):  # not a count of days: say the share only
        return f"{_percent(proration)} of the period's days"
    return f"{active} of the period's {days} days ({_percent(proration)})"


def _prorated(amount: Decimal | None, node: ir.Expr, proration: Decimal | None) -> Decimal | None:
    """A fixed amount per period as the line used it: prorated when the line is (compiler `per_period`)."""
    if amount is None or proration is None or proration == 1 or not is_fixed(node):
        return amount
    return amount * proration


def _prorated_text(node: ir.Expr, proration: Decimal | None, prorated: Decimal | None) -> str:
    if proration is None or proration == 1 or not is_fixed(node) or prorated is None:
        return ""
    return f"; prorated to {_percent(proration)} of the period's days: {_exact(prorated)}"


def _tier_steps(row, plan, component, tiers: ir.Tiers, sources) -> tuple[list[Step], Decimal | None]:
    base, rate = _dec(row.get("base")), _dec(row.get("rate"))
    attainment, quota = _dec(row.get("attainment")), _dec(row.get("quota"))
    bands = [
        (_literal(b.lower), _literal(b.upper) if b.upper is not None else None, _literal(b.rate), b)
        for b in tiers.bands
    ]
    on_attainment = tiers.on == "attainment"
    scale = quota if on_attainment else Decimal(1)
    # What the bands read: the base itself when it is the measure they read, else attainment x quota.
    exact = component.base is not None and (
        component.base == tiers.on or (on_attainment and component.base == _attainment_measure(plan))
    )
    if exact:
        variable = base
    elif on_attainment and attainment is not None and quota is not None:
        variable = attainment * quota
    else:
        variable = None
    reached = _band_reached(bands, variable, scale, rate)
    mode = "graduated" if tiers.mode == ir.TierMode.GRADUATED else "retroactive"
    reads = f"{tiers.on} {_percent(attainment)}" if on_attainment and attainment is not None else tiers.on
    head = Step(
        "rule",
        f"{mode} tiers on {reads}"
        + (": each slice pays its band's rate" if mode == "graduated" else ": the whole base pays the band reached"),
        _source(tiers.span, sources),
        values={"mode": mode, "on": tiers.on},
    )
    steps = [head]
    if on_attainment and not quota:  # none, or a zero one, which counts as none (compiler/README.md)
        why = "no quota" if quota is None else "a zero quota counts as none"
        steps.append(Step("rule", f"attainment is empty ({why}): no band is reached", values={"pay": Decimal(0)}))
        return steps, Decimal(0) if base is not None else None
    if mode == "retroactive" or variable is None or scale is None:
        raw = base * rate if base is not None and rate is not None else None
        for index, (_, _, band_rate, band) in enumerate(bands):
            if index == reached:
                words = f"{_snippet(band.span, sources)}: {_exact(base)} x {_percent(band_rate)} = {_exact(raw)}"
                steps.append(Step("band", words, _source(band.span, sources), "reached", {"rate": band_rate}))
        return steps, raw if mode == "retroactive" else None
    graduated = Decimal(0)
    for index, (lower, upper, band_rate, band) in enumerate(bands):
        if lower is None or band_rate is None:
            return steps, None
        low = lower * scale
        top = min(variable, upper * scale) if upper is not None else variable
        width = max(top - low, Decimal(0))
        if width == 0 and index != reached:
            continue
        pay = width * band_rate
        graduated += pay
        steps.append(
            Step(
                "band",
                f"{_snippet(band.span, sources)}: {'' if exact else '~'}{_exact(width)} x {_percent(band_rate)} = "
                f"{_exact(pay)}",
                _source(band.span, sources),
                "reached" if index == reached else "passed",
                {"slice": width, "rate": band_rate, "pay": pay},
            )
        )
    if base is None:
        return steps, None
    if exact or variable == 0:
        return steps, graduated if exact else base * (rate or 0)
    effective = graduated / variable
    steps.append(
        Step(
            "rule",
            f"the base {_money(base)} pays the table's effective rate {_percent(effective)}",
            values={"effective_rate": effective},
        )
    )
    return steps, base * effective


def _band_reached(bands, variable, scale, rate) -> int | None:
    """The highest band whose lower bound the variable reached (tie-broken by the line's rate)."""
    if variable is not None and scale is not None:
        reached = [i for i, (lower, _, _, _) in enumerate(bands) if lower is not None and variable >= lower * scale]
        if reached:
            return reached[-1]
    matching = [i for i, (_, _, band_rate, _) in enumerate(bands) if rate is not None and band_rate == rate]
    return matching[-1] if matching else None


def _curve_steps(row, curve: ir.Curve, sources) -> tuple[list[Step], Decimal | None]:
    attainment = _dec(row.get("attainment"))
    of = _dec(row.get("target_incentive")) if curve.of == "target_incentive" else None
    x = attainment if curve.on == "attainment" else None
    points = [(_literal(p.x), _literal(p.y), p) for p in curve.points]
    steps = [Step("rule", f"curve on {curve.on}: {curve.of} x f({curve.on})", _source(curve.span, sources))]
    if curve.on == "attainment" and x is None:  # no quota, or a zero one (which counts as none)
        steps.append(Step("rule", "attainment is empty (no quota, or a zero one): the curve pays its value below "
                                  "the first point"))
    if x is None or any(px is None or py is None for px, py, _ in points):
        return steps, None
    if x <= points[0][0]:
        value, used = points[0][1], [points[0]]
    elif x >= points[-1][0]:
        value, used = points[-1][1], [points[-1]]
    else:
        (x0, y0, p0), (x1, y1, p1) = next((a, b) for a, b in itertools.pairwise(points) if a[0] <= x < b[0])
        value, used = y0 + (x - x0) * (y1 - y0) / (x1 - x0), [(x0, y0, p0), (x1, y1, p1)]
    for _, _, point in used:
        decision = "between" if len(used) == 2 else "flat beyond"
        steps.append(Step("curve", _snippet(point.span, sources), _source(point.span, sources), decision))
    raw = of * value if of is not None else None
    steps.append(
        Step(
            "rule",
            f"f({_percent(x)}) = {_percent(value)}"
            + (f"; {_exact(of)} x {_percent(value)} = {_exact(raw)}" if raw is not None else ""),
            values={"f": value, "pay": raw},
        )
    )
    return steps, raw


def _attainment_measure(plan: ir.CompPlan) -> str | None:
    return plan.attainment


def _per_unit(component: ir.Component | None) -> bool:
    """`rate 50 USD`: money per unit of a count (meetings), not a percentage of money."""
    return (
        component is not None
        and isinstance(component.payout, ir.FlatRate)
        and isinstance(component.payout.rate, ir.Money)
    )


def _rate(value: Decimal | None, component: ir.Component | None) -> str:
    if value is None:
        return "n/a"
    if _per_unit(component):
        return f"{_money(value)} {component.payout.rate.currency} each"
    return _percent(value)


def _multiplier_steps(component, raw, uncapped, gated, sources) -> list[Step]:
    multipliers = component.measure_multipliers
    if not multipliers:
        return []
    factors = [_literal(m.factor) for m in multipliers]
    applied: tuple[bool, ...] | None = None
    if not gated and raw and uncapped is not None and all(f is not None for f in factors):
        # uncapped is rounded to cents: the choice of multipliers that lands within half a cent of it
        fits = [
            choice
            for choice in itertools.product((False, True), repeat=len(factors))
            if abs(raw * _product(f for f, on in zip(factors, choice, strict=True) if on) - uncapped) <= HALF_CENT
        ]
        applied = fits[0] if len(fits) == 1 else None
    steps = []
    running = raw
    for index, multiplier in enumerate(multipliers):
        decision = None if applied is None else ("applied" if applied[index] else "not applied")
        words = _snippet(multiplier.span, sources)
        if applied is not None and applied[index]:  # the arithmetic, so the steps multiply out to the line
            words += f": {_exact(running)} x {_number(factors[index])} = {_exact(running * factors[index])}"
            running *= factors[index]
        steps.append(Step("multiplier", words, _source(multiplier.span, sources), decision, {"factor": factors[index]}))
    return steps


def _product(values: Iterable[Decimal]) -> Decimal:
    result = Decimal(1)
    for value in values:
        result *= value
    return result


# ---------------------------------------------------------------- draws, clawbacks, payments


def _draw_step(row: dict, draw: ir.Draw, source: Source | None) -> Step:
    proration = _dec(row.get("proration"))
    guaranteed = _prorated(_literal(draw.amount), draw.amount, proration)
    amount = _dec(row["amount"])
    when = "every period" if draw.periods is None else f"the first {draw.periods} active period(s)"
    kind = "recoverable" if draw.recoverable else "non-recoverable"
    if row["line_type"] == "draw":
        earned = guaranteed - amount if guaranteed is not None else None
        words = (
            f"{kind} draw of {_money(_literal(draw.amount))} for {when}"
            + (f", prorated to {_percent(proration)} of the period's days ({_money(guaranteed)})"
               if guaranteed != _literal(draw.amount) else "")
            + ": the period's pay"
            + (f" ({_money(earned)})" if earned is not None else "")
            + f" is topped up by {_money(amount)}"
        )
        if draw.recoverable:
            words += "; later pay recovers it"
    else:
        words = f"recoverable draw: {_money(-amount)} of the outstanding draw is recovered from this period's pay"
    return Step("draw", words, source, values={"draw": guaranteed, "amount": amount})


def _clawback_step(clawback: ir.Clawback, sources, amount: Decimal | None, measurement: ir.Measurement) -> Step:
    words = (f"a deal cancelled within {clawback.within_days} days of closing gives back its share of the "
             "commission, in the period of the cancellation")
    if amount is not None and amount > 0 and measurement == ir.Measurement.YEAR_TO_DATE:
        # compiler/README.md: year to date a cancelled deal still counts, and its share is negative where the
        # rate paid to date fell; taking back a negative share pays the rep (audit: +3.37 read as a take-back).
        words += ("; measured year to date, a cancelled deal still counts in the later periods of its year, and "
                  "where the rate paid to date fell its share of the period's line is negative: taking that back "
                  "pays the rep, as here")
    return Step("clawback", words, _source(clawback.span, sources), values={"within_days": clawback.within_days})


def _with_exact_base(row: dict, behind: tuple[DealShare, ...]) -> dict:
    """The line's row with its base as computed (the sum of its deals' credited bases, 10 places) when its deals
    add up to the base it shows in cents: the steps then multiply out to the line (270,351.907 x 5%, not
    270,351.91 x 5%, for a line of 14,869.35 after a 1.1 multiplier)."""
    base = _dec(row.get("base"))
    if not behind or base is None or any(d.credited_base is None for d in behind):
        return row
    exact = sum((d.credited_base for d in behind), Decimal(0))
    return {**row, "base": exact} if abs(exact - base) <= HALF_CENT else row


def _behind(row: dict, deals: pd.DataFrame | None) -> tuple[DealShare, ...]:
    """The deals behind a line: the trace's rows with its key."""
    if deals is None or deals.empty:
        return ()
    mine = deals[
        (deals["plan"] == row["plan"])
        & (deals["version"] == int(row["version"]))
        & (deals["component"] == row["component"])
        & (deals["line_type"] == row["line_type"])
        & (deals["rep_id"] == row["rep_id"])
        & (deals["line_period"] == row["period"])
    ]
    return tuple(_share(r) for r in mine.to_dict("records"))


def _share(record: dict) -> DealShare:
    return DealShare(
        deal_id=str(record["deal_id"]),
        credited_base=_dec(record.get("credited_base")),
        share=_dec(record.get("share_of_line")) or Decimal(0),
        earned_period=str(record["period"]),
    )


# ---------------------------------------------------------------- plan text


def _source(span: Span | None, sources: Mapping[str, str]) -> Source | None:
    if span is None:
        return None
    text = sources.get(span.file)
    lines = text.splitlines() if text is not None else []
    shown = lines[span.line - 1].strip() if 0 < span.line <= len(lines) else ""
    return Source(span.file, span.line, shown)


def _snippet(span: Span | None, sources: Mapping[str, str]) -> str:
    """The plan text a span covers, on one line (the rule as written)."""
    if span is None:
        return ""
    text = sources.get(span.file)
    if text is None:
        return ""
    lines = text.splitlines()
    if not 0 < span.line <= len(lines):
        return ""
    if span.end_line == span.line:
        return " ".join(lines[span.line - 1][span.column - 1 : span.end_column - 1].split())
    parts = [lines[span.line - 1][span.column - 1 :]]
    parts += lines[span.line : min(span.end_line - 1, len(lines))]
    if span.end_line <= len(lines):
        parts.append(lines[span.end_line - 1][: span.end_column - 1])
    kept = [p.split("#")[0].strip() for p in parts]  # comments between continuation lines are not the rule
    return " ".join(" ".join(p.split()) for p in kept if p)


def _literal(node: ir.Node | None) -> Decimal | None:
    match node:
        case ir.Number(value=value) | ir.Percent(value=value):
            return value
        case ir.Money(amount=amount):
            return amount
    return None


# ---------------------------------------------------------------- values


def _dec(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return Decimal(str(value))


def _met(value: bool | None) -> str | None:
    return None if value is None else ("met" if value else "not met")


def _money(value: Decimal | None) -> str:
    if value is None:
        return "n/a"
    cents = value.quantize(CENT, ROUND_HALF_UP)  # half away from zero, as payout lines are rounded
    return f"{abs(cents) if cents == 0 else cents:,}"  # never -0.00


def _exact(value: Decimal | None) -> str:
    """A step's value as computed: in cents when it is whole cents, else every digit (270,351.907)."""
    if value is None or value == value.quantize(CENT):
        return _money(value)
    return f"{value.normalize():,f}"


def _percent(value: Decimal | None) -> str:
    if value is None:
        return "n/a"
    scaled = (value * 100).quantize(Decimal("0.0001")).normalize()
    text = format(scaled, "f")
    return f"{'~' if scaled != value * 100 else ''}{text}%"


def _number(value: Decimal | None) -> str:
    return "n/a" if value is None else format(value.normalize(), "f")


# ---------------------------------------------------------------- JSON


def as_dict(explanation: Explanation) -> dict[str, Any]:
    """JSON-ready data: Decimals as strings (exact), dates as ISO text."""
    return {
        "rep": explanation.rep,
        "rep_name": explanation.rep_name,
        "period": explanation.period,
        "totals": [
            {"plan": plan, "version": version, "period": period, "currency": currency, "amount": _text(total)}
            for (plan, version, period, currency), total in explanation.totals().items()
        ],
        "lines": [_line_dict(line) for line in explanation.lines],
    }


def _line_dict(line: LineExplanation) -> dict[str, Any]:
    data = {
        field.name: _plain(getattr(line, field.name))
        for field in dataclasses.fields(line)
        if field.name not in ("steps", "deals", "source")
    }
    data["source"] = _source_dict(line.source)
    data["steps"] = [
        {
            "kind": step.kind,
            "text": step.text,
            "source": _source_dict(step.source),
            "decision": step.decision,
            "values": {k: _plain(v) for k, v in step.values.items()},
        }
        for step in line.steps
    ]
    data["deals"] = [{k: _plain(v) for k, v in dataclasses.asdict(d).items()} for d in line.deals]
    data["deals_total"] = _plain(line.deals_total)
    return data


def _source_dict(source: Source | None) -> dict[str, Any] | None:
    return (
        None
        if source is None
        else {"file": source.file, "line": source.line, "text": source.text, "location": str(source)}
    )


def _plain(value):
    if isinstance(value, Decimal):
        return _text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _text(value: Decimal) -> str:
    return format(value, "f")


def to_json(explanation: Explanation) -> str:
    return json.dumps(as_dict(explanation), indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- terminal


DECISION_STYLES = {
    "applied": "green",
    "met": "green",
    "reached": "bold",
    "between": "bold",
    "flat beyond": "bold",
    "passed": "dim",
    "not applied": "dim",
    "not reached": "dim",
    "not met": "red",
    "not all met": "red",
    "a cap was reached": "yellow",
}
LABELS = {
    "rule": "rule",
    "band": "band",
    "curve": "curve point",
    "multiplier": "multiplier",
    "deal_multiplier": "deal multiplier",
    "gate": "gate",
    "cap": "cap",
    "proration": "proration",
    "measurement": "measurement",
    "draw": "draw",
    "clawback": "clawback",
    "payment": "payment",
}


def render(explanation: Explanation):
    """A rich renderable: a heading, then per plan and period its total and each line explained."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    who = explanation.rep + (f" ({explanation.rep_name})" if explanation.rep_name else "")
    title = f"Payouts of {who}" + (f", {explanation.period}" if explanation.period else "")
    parts: list = [Text(title, style="bold underline")]
    totals = explanation.totals()
    for key, total in totals.items():
        plan, version, period, currency = key
        parts.append(Text(""))
        group = [line for line in explanation.lines if (line.plan, line.version, line.period, line.currency) == key]
        files = {line.source.file for line in group if line.source is not None}
        home = files.pop() if len(files) == 1 else None  # rows then say "line 38" of this file
        parts.append(
            Text.assemble(
                (f"{plan} v{version}, {period}", "bold"),
                f": {_money(total)} {currency}",
                (f"   ({home})" if home else "", "dim"),
            )
        )
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
        table.add_column("what", style="cyan", no_wrap=True)
        table.add_column("why", overflow="fold")
        table.add_column("where", style="dim", no_wrap=True)
        for index, line in enumerate(sorted(group, key=_statement_order)):
            if index:
                table.add_row("", "", "")
            _line_rows(table, line, Text, home)
        parts.append(table)
    if len({c for (_, _, _, c) in totals}) == 1 and len(totals) > 1:
        currency = next(iter(totals))[3]
        parts.append(Text(""))
        parts.append(Text(f"total: {_money(sum(totals.values(), Decimal('0.00')))} {currency}", style="bold"))
    return Group(*parts)




def _statement_order(line: LineExplanation) -> tuple:
    kind = LINE_TYPES.index(line.line_type) if line.line_type in LINE_TYPES else len(LINE_TYPES)
    return (line.line_type in ("draw", "draw_recovery"), line.source.line if line.source else 0, kind)


def _where(source: Source | None, home: str | None) -> str:
    if source is None:
        return ""
    return f"line {source.line}" if source.file == home else str(source)


def _line_rows(table, line: LineExplanation, Text, home: str | None) -> None:  # noqa: N803 (rich's Text)
    kind = LINE_KINDS.get(line.line_type, line.line_type)
    head = Text.assemble(
        (f"{line.component}", "bold"), f" ({kind}): ", (f"{_money(line.amount)} {line.currency}", "bold")
    )
    table.add_row(Text("  line", style="bold cyan"), head, _where(line.source, home))
    facts = []
    if line.attainment is not None:
        prorated = line.proration is not None and line.proration != 1 and line.quota is not None
        # A prorated quota has more places than the line's cents: base / the shown quota is not the attainment.
        facts.append(f"{_percent(line.attainment)} of quota {_money(line.quota)}"
                     + (" (prorated; the attainment divides by it unrounded)" if prorated else ""))
    elif line.quota is not None:
        facts.append(f"{_money(line.quota)}")
    if facts:
        table.add_row("  attainment" if line.attainment is not None else "  quota", "; ".join(facts), "")
    if line.base is not None:
        shown = _money(line.base) if line.rate_shown is None or "each" not in line.rate_shown else _number(line.base)
        table.add_row("  base", shown + (f" ({line.base_measure})" if line.base_measure else ""), "")
    if line.rate_shown is not None and line.line_type == "commission":
        table.add_row("  rate", line.rate_shown, "")
    for step in line.steps:
        text = Text(step.text)
        if step.decision:
            text.append(f"  [{step.decision}]", style=DECISION_STYLES.get(step.decision, ""))
        table.add_row("  " + LABELS.get(step.kind, step.kind), text, _where(step.source, home))
    if line.uncapped is not None and line.uncapped != line.amount and not any(s.kind == "cap" for s in line.steps):
        table.add_row("  paid", f"{_money(line.amount)} (before true-up and rounding: {_money(line.uncapped)})", "")
    if line.deals:
        table.add_row("  deals", _deals_text(line), "")


SHOWN_DEALS = 20


def _deals_text(line: LineExplanation) -> str:
    cents = _in_cents([d.share for d in line.deals])
    shown = range(len(line.deals))
    if len(shown) > SHOWN_DEALS:  # the largest shares; JSON has every deal
        shown = sorted(shown, key=lambda i: abs(line.deals[i].share), reverse=True)[: SHOWN_DEALS - 5]
    rows = [
        (
            d.deal_id,
            _money(d.credited_base) if d.credited_base is not None else "",
            _money(cents[i]),
            f"earned {d.earned_period}" if d.earned_period != line.period else "",
        )
        for i, d in ((i, line.deals[i]) for i in shown)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    body = [
        f"{r[0]:<{widths[0]}}  base {r[1]:>{widths[1]}}  share {r[2]:>{widths[2]}}" + (f"  {r[3]}" if r[3] else "")
        for r in rows
    ]
    if len(shown) < len(line.deals):
        rest = sum(cents, Decimal(0)) - sum((cents[i] for i in shown), Decimal(0))
        more = len(line.deals) - len(shown)  # "smaller" read wrong when every share is the same (SDR lines)
        body.append(f"... and {more} more deal(s), none larger, together {_money(rest)} (--format json)")
    total = line.deals_total
    count = len({d.deal_id for d in line.deals})  # year to date, a deal has a share in each period it counted in
    counted = f"{count} deal(s), shares" if count == len(line.deals) else f"{count} deal(s) in {len(line.deals)} shares"
    body.append(f"{counted} add up to {_money(total)} (the line: {_money(line.amount)})")
    if total is not None and _money(total) != _money(line.amount):
        # compiler/README.md: what a line pays or takes back over several periods is rounded cumulatively.
        body.append("a line paid or taken back over several periods is rounded to the cent on its total to date, "
                    "so a cent of its deals' shares can fall in another period")
    return "\n".join(body)


def _in_cents(shares: Iterable[Decimal]) -> list[Decimal]:
    """Each share in cents, rounded cumulatively so the shares shown add up to their rounded total (each rounded
    alone, three shares of 0.333 show 0.33 each beside a total of 1.00: audit).

    >>> [str(c) for c in _in_cents([Decimal("0.333"), Decimal("0.333"), Decimal("0.334")])]
    ['0.33', '0.34', '0.33']
    """
    cents, exact, before = [], Decimal(0), Decimal(0)
    for share in shares:
        exact += share
        rounded = exact.quantize(CENT, ROUND_HALF_UP)
        cents.append(rounded - before)
        before = rounded
    return cents


def render_text(explanation: Explanation, width: int = 110) -> str:
    """The statement as plain text (no colour): what a file, an e-mail or a test reads."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False).print(render(explanation))
    return "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines())  # no padding after the text
