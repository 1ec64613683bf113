"""Plan periods: the calendar both calculators share.

In: a plan's effective range and period kind. Out: the periods in force,
in order, each with its label (`2027-Q1`, `2027-01`, `2027-H1`, `2027`),
first and last day, length in days, and the first day of its year (for
year-to-date measurement). A period is clipped to the plan's effective range
only for active-day counting, never in its label or length: a plan version
that starts mid-quarter still pays quarter `2027-Q1`, prorated.

A plan paid on payment, or with a clawback, also has a run-off: the periods
after its own, up to the one two years after its last day, in which it still pays the
deals it earned that are paid later (a Q4 deal paid in January) and takes back
those cancelled later. Without them no plan would ever pay that commission.

>>> [p.label for p in plan_periods(dt.date(2027, 1, 1), dt.date(2027, 6, 30), Period.QUARTER)]
['2027-Q1', '2027-Q2']
>>> [p.label for p in pay_periods(dt.date(2027, 1, 1), dt.date(2027, 6, 30), Period.HALF)]
['2027-H1', '2027-H2', '2028-H1', '2028-H2', '2029-H1']
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from dsl import ir
from dsl.ir import Period

MONTHS_PER_PERIOD = {Period.MONTH: 1, Period.QUARTER: 3, Period.HALF: 6, Period.YEAR: 12}


@dataclasses.dataclass(frozen=True)
class PlanPeriod:
    label: str
    start: dt.date
    end: dt.date
    index: int  # 1, 2, ... in plan order
    year_start: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period_label(day: dt.date, period: Period) -> str:
    number = (day.month - 1) // MONTHS_PER_PERIOD[period] + 1
    return {
        Period.MONTH: f"{day.year}-{day.month:02d}",
        Period.QUARTER: f"{day.year}-Q{number}",
        Period.HALF: f"{day.year}-H{number}",
        Period.YEAR: f"{day.year}",
    }[period]


def period_bounds(day: dt.date, period: Period) -> tuple[dt.date, dt.date]:
    months = MONTHS_PER_PERIOD[period]
    first_month = (day.month - 1) // months * months + 1
    start = dt.date(day.year, first_month, 1)
    next_month = first_month + months
    following = dt.date(day.year + (next_month > 12), (next_month - 1) % 12 + 1, 1)
    return start, following - dt.timedelta(days=1)


def plan_periods(effective_from: dt.date, effective_to: dt.date, period: Period) -> list[PlanPeriod]:
    periods: list[PlanPeriod] = []
    day = effective_from
    while day <= effective_to:
        start, end = period_bounds(day, period)
        periods.append(PlanPeriod(period_label(day, period), start, end, len(periods) + 1, dt.date(start.year, 1, 1)))
        day = end + dt.timedelta(days=1)
    return periods


RUN_OFF_YEARS = 2


def run_off_end(effective_to: dt.date, period: Period) -> dt.date:
    """The last day a plan still pays deals paid (or takes back deals cancelled) after it ends: the end of the
    period two years after its last day (its lines are whole periods, so that period pays every deal paid in it).

    >>> run_off_end(dt.date(2027, 11, 15), Period.QUARTER), run_off_end(dt.date(2028, 2, 29), Period.MONTH)
    (datetime.date(2029, 12, 31), datetime.date(2030, 2, 28))
    """
    try:
        day = effective_to.replace(year=effective_to.year + RUN_OFF_YEARS)
    except ValueError:  # 29 February
        day = effective_to.replace(year=effective_to.year + RUN_OFF_YEARS, day=28)
    return period_bounds(day, period)[1]


def pay_periods(effective_from: dt.date, effective_to: dt.date, period: Period) -> list[PlanPeriod]:
    """The periods a plan's lines can be in: its own, then those of its run-off, numbered on."""
    periods = plan_periods(effective_from, effective_to, period)
    if not periods:
        return periods
    run_off = plan_periods(periods[-1].end + dt.timedelta(days=1), run_off_end(effective_to, period), period)
    return periods + [dataclasses.replace(p, index=len(periods) + p.index) for p in run_off]


def has_run_off(plan: ir.CompPlan) -> bool:
    """Whether a comp plan's lines can fall after its own periods: it pays on payment or claws back."""
    return plan.clawback is not None or plan.paid_on == ir.PayoutTiming.PAYMENT


def line_periods(plan: ir.CompPlan) -> list[PlanPeriod]:
    """The periods a comp plan's lines can be in."""
    dates = (plan.effective_from, plan.effective_to, plan.period)
    return pay_periods(*dates) if has_run_off(plan) else plan_periods(*dates)
