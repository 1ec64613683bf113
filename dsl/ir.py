"""The typed IR: what a plan means, independent of how it was written.

Every node is a frozen pydantic model with a source `span` that equality
ignores, so `resolve(parse(fmt(x))) == resolve(parse(x))` compares meaning.
Money, rates and percentages are `Decimal`; percentages are fractions
(`8%` is `Decimal("0.08")`). Nodes dump to JSON and load back unchanged.

Invariants (enforced by dsl/resolve.py and dsl/check.py, relied on by the
compilers): names are resolved against the entity schema and the measures in
scope; a plan with error diagnostics never reaches a compiler.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dsl.diagnostics import Span

LANGUAGE_VERSIONS = (1,)


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    span: Span | None = Field(default=None, repr=False)

    def _meaning(self) -> tuple:
        return tuple(getattr(self, name) for name in type(self).model_fields if name != "span")

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self._meaning() == other._meaning()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._meaning()))


# ---------------------------------------------------------------- expressions


class Number(Node):
    kind: Literal["number"] = "number"
    value: Decimal


class Percent(Node):
    kind: Literal["percent"] = "percent"
    value: Decimal  # a fraction: 8% is 0.08


class Money(Node):
    kind: Literal["money"] = "money"
    amount: Decimal
    currency: str


class Date(Node):
    kind: Literal["date"] = "date"
    value: dt.date


class Duration(Node):
    kind: Literal["duration"] = "duration"
    days: int


class Text(Node):
    kind: Literal["text"] = "text"
    value: str


class Boolean(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class Null(Node):
    """Only in plan-test rows: an empty cell."""

    kind: Literal["null"] = "null"


class FieldRef(Node):
    """`deal.amount`: a field of the row being filtered or aggregated."""

    kind: Literal["field"] = "field"
    entity: str
    field: str


class NameRef(Node):
    """A measure, or a built-in value such as `attainment` or `quota`."""

    kind: Literal["name"] = "name"
    name: str


class Aggregate(Node):
    """`sum(deal.amount)`, `count(activity)`: over the rep's credited rows in the period."""

    kind: Literal["aggregate"] = "aggregate"
    function: Literal["sum", "count", "avg", "min", "max", "count_distinct"]
    entity: str
    field: str | None = None


class Binary(Node):
    kind: Literal["binary"] = "binary"
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


class Compare(Node):
    kind: Literal["compare"] = "compare"
    op: Literal["=", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}  # a op b is b FLIPPED[op] a


class Logical(Node):
    kind: Literal["logical"] = "logical"
    op: Literal["and", "or"]
    operands: tuple[Expr, ...]


class Not(Node):
    kind: Literal["not"] = "not"
    operand: Expr


class Negate(Node):
    kind: Literal["negate"] = "negate"
    operand: Expr


class InList(Node):
    kind: Literal["in"] = "in"
    operand: Expr
    values: tuple[Expr, ...]
    negated: bool = False


class IsNull(Node):
    kind: Literal["is_null"] = "is_null"
    operand: Expr
    negated: bool = False


Expr = Annotated[
    Number | Percent | Money | Date | Duration | Text | Boolean | Null
    | FieldRef | NameRef | Aggregate | Binary | Compare | Logical | Not | Negate | InList | IsNull,
    Field(discriminator="kind"),
]
LITERAL_KINDS = ("number", "percent", "money", "date", "duration", "text", "bool", "null")

# ---------------------------------------------------------------- shared pieces


class Period(str, enum.Enum):
    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"
    YEAR = "year"

    @property
    def per_year(self) -> int:
        return {"month": 12, "quarter": 4, "half": 2, "year": 1}[self.value]


class Measure(Node):
    """`measure bookings = sum(deal.amount) where deal.stage = "closed_won"`."""

    name: str
    expr: Expr
    where: Expr | None = None


class Owners(Node):
    """The groups whose approval a change needs (from the base branch's plan)."""

    sales: str
    finance: str


class FieldValue(Node):
    name: str
    value: Expr


class TestRow(Node):
    """`given deal id "D1", amount 130,000 USD`: one input row."""

    table: str
    values: tuple[FieldValue, ...]


class Expectation(Node):
    """`expect payout rep "A", period "2027-Q1", amount 10,100.00 USD`."""

    what: str
    values: tuple[FieldValue, ...]


class PlanTest(Node):
    name: str
    given: tuple[TestRow, ...]
    expect: tuple[Expectation, ...]


class PlanBase(Node):
    name: str
    version: int
    effective_from: dt.date
    effective_to: dt.date
    period: Period
    currency: str
    owners: Owners | None = None
    eligibility: Expr | None = None  # None: every rep
    measures: tuple[Measure, ...] = ()
    tests: tuple[PlanTest, ...] = ()

    @property
    def key(self) -> str:
        return f'{self.kind} plan "{self.name}" version {self.version}'


# ---------------------------------------------------------------- comp plans


class Crediting(Node):
    """Who is credited for a deal; the lines combine (union of credits)."""

    owner: bool = True
    splits: bool = False
    overlay: bool = False
    rollup: bool = False
    rollup_depth: int | None = None  # None with rollup: the full hierarchy

    @property
    def follows_splits(self) -> bool:
        """Whether credit follows deal_splits: split credit, or a roll-up of it (to the split reps' managers)."""
        return self.splits or self.rollup


class Measurement(str, enum.Enum):
    PERIOD = "period"
    YEAR_TO_DATE = "year_to_date"  # always with true-up


class PayoutTiming(str, enum.Enum):
    BOOKING = "booking"
    PAYMENT = "payment"


class FxDate(str, enum.Enum):
    CLOSE_DATE = "close_date"
    PERIOD_END = "period_end"


class QuotaSource(Node):
    plan: str | None = None  # None: the `quotas` input table


class Draw(Node):
    amount: Expr
    periods: int | None = None  # None: every period
    recoverable: bool


class Clawback(Node):
    within_days: int


class FlatRate(Node):
    kind: Literal["rate"] = "rate"
    rate: Expr


class Band(Node):
    lower: Expr
    upper: Expr | None  # None: open-ended
    rate: Expr


class TierMode(str, enum.Enum):
    GRADUATED = "graduated"
    RETROACTIVE = "retroactive"


class Tiers(Node):
    kind: Literal["tiers"] = "tiers"
    mode: TierMode
    on: str  # attainment, or a money measure
    decelerator: bool = False
    bands: tuple[Band, ...]


class CurvePoint(Node):
    x: Expr
    y: Expr


class Curve(Node):
    """Payout = `of` (target incentive) x piecewise-linear f(`on`)."""

    kind: Literal["curve"] = "curve"
    on: str
    of: str
    points: tuple[CurvePoint, ...]


class Bonus(Node):
    kind: Literal["bonus"] = "bonus"
    amount: Expr
    when: Expr


class Spiff(Node):
    kind: Literal["spiff"] = "spiff"
    amount: Expr
    where: Expr
    start: dt.date
    end: dt.date


class Mbo(Node):
    kind: Literal["mbo"] = "mbo"
    amount: Expr
    source: str


Payout = Annotated[FlatRate | Tiers | Curve | Bonus | Spiff | Mbo, Field(discriminator="kind")]


class DealMultiplier(Node):
    """Scales the commission base of matching deals (never attainment)."""

    factor: Expr
    where: Expr


class MeasureMultiplier(Node):
    """Scales the component's payout when a condition on measures holds."""

    factor: Expr
    when: Expr


class Gate(Node):
    condition: Expr


class CapScope(str, enum.Enum):
    PERIOD = "period"
    YEAR = "year"


class Cap(Node):
    """Either `multiple` x `of` (e.g. 2 x target_incentive) or `amount`."""

    multiple: Decimal | None = None
    of: str | None = None
    amount: Expr | None = None
    per: CapScope = CapScope.PERIOD


class Component(Node):
    name: str
    base: str | None = None  # the measure commission is paid on
    payout: Payout
    deal_multipliers: tuple[DealMultiplier, ...] = ()
    measure_multipliers: tuple[MeasureMultiplier, ...] = ()
    gates: tuple[Gate, ...] = ()
    caps: tuple[Cap, ...] = ()


class CompPlan(PlanBase):
    kind: Literal["comp"] = "comp"
    crediting: Crediting = Crediting()
    quota: QuotaSource = QuotaSource()
    attainment: str | None = None  # the measure attainment is measured on
    measurement: Measurement = Measurement.PERIOD
    prorate: bool = False
    paid_on: PayoutTiming = PayoutTiming.BOOKING
    fx_at: FxDate = FxDate.CLOSE_DATE
    draw: Draw | None = None
    clawback: Clawback | None = None
    components: tuple[Component, ...] = ()


# ---------------------------------------------------------------- quota plans


class AllocationTerm(Node):
    basis: Literal["territory_potential", "prior_bookings", "weights", "equal"]
    share: Expr | None = None  # blend share; None for a single term


class Weight(Node):
    rep: str
    value: Expr


class Override(Node):
    rep: str
    period: str | None = None  # None: the annual quota
    amount: Expr


class RoundingMode(str, enum.Enum):
    NEAREST = "nearest"
    UP = "up"
    DOWN = "down"


class Rounding(Node):
    mode: RoundingMode
    step: Expr


class QuotaPlan(PlanBase):
    kind: Literal["quota"] = "quota"
    target: Expr | None = None
    over_assign: Expr | None = None
    allocation: tuple[AllocationTerm, ...] = ()
    weights: tuple[Weight, ...] = ()
    phasing: tuple[Expr, ...] = ()
    ramp: tuple[Expr, ...] = ()
    overrides: tuple[Override, ...] = ()
    rounding: Rounding | None = None


# ---------------------------------------------------------------- territory plans


class Holder(Node):
    rep: str
    start: dt.date | None = None  # None: from the plan's start


class Territory(Node):
    name: str
    owners: tuple[Holder, ...] = ()
    overlays: tuple[Holder, ...] = ()


class AssignRule(Node):
    priority: int
    territory: str
    accounts: tuple[str, ...] = ()  # named accounts
    where: Expr | None = None  # rule on account fields


class Move(Node):
    account: str
    territory: str
    on: dt.date


class Tolerance(Node):
    name: Literal["max_min_ratio", "cv"]
    value: Expr


class TerritoryPlan(PlanBase):
    kind: Literal["territory"] = "territory"
    territories: tuple[Territory, ...] = ()
    rules: tuple[AssignRule, ...] = ()
    moves: tuple[Move, ...] = ()
    tolerances: tuple[Tolerance, ...] = ()


Plan = Annotated[CompPlan | QuotaPlan | TerritoryPlan, Field(discriminator="kind")]


class PlanFile(Node):
    """One source file: its language version, shared measures and plans."""

    path: str
    language: int
    measures: tuple[Measure, ...] = ()
    plans: tuple[Plan, ...] = ()


for _model in list(globals().values()):
    if isinstance(_model, type) and issubclass(_model, Node):
        _model.model_rebuild()


def to_json(node: Node, spans: bool = True) -> str:
    """JSON of a node; `spans=False` gives the form golden files compare."""
    data = node.model_dump(mode="json")
    if not spans:
        data = _without_spans(data)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def plan_file_from_json(text: str) -> PlanFile:
    return PlanFile.model_validate_json(text)


def _without_spans(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_spans(v) for k, v in data.items() if k != "span"}
    if isinstance(data, list):
        return [_without_spans(v) for v in data]
    return data
