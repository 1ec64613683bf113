"""Can two row conditions match the same row? A conservative answer.

`can_overlap(a, b)` is False only when it is provable from the conditions
alone that no row satisfies both, e.g. `account.country = "US"` and
`account.country in ("DE", "FR")`, or `account.employees >= 1000` and
`account.employees < 1000`. Anything it does not understand counts as
"may overlap", so a checker built on it errs on the side of reporting.

A condition is read as an OR of AND-ed constraints on single fields
(=, !=, in, not in, is null, is not null, <, <=, >, >= against literals).

>>> from dsl import ir
>>> us = ir.Compare(op="=", left=ir.FieldRef(entity="account", field="country"), right=ir.Text(value="US"))
>>> de = ir.Compare(op="=", left=ir.FieldRef(entity="account", field="country"), right=ir.Text(value="DE"))
>>> can_overlap(us, de), can_overlap(us, us)
(False, True)
"""

from __future__ import annotations

import dataclasses
import itertools

from dsl import ir
from dsl.infer import literal_value

MAX_DISJUNCTS = 64  # beyond this, give up and say "may overlap"
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

Bound = tuple[object, bool]  # (value, inclusive)


@dataclasses.dataclass(frozen=True)
class Constraint:
    """What one field's value may be under a condition."""

    values: frozenset | None = None  # one of these (None: any value)
    excluded: frozenset = frozenset()
    may_be_null: bool = True
    may_have_value: bool = True
    low: Bound | None = None
    high: Bound | None = None

    def meet(self, other: Constraint) -> Constraint:
        """Both constraints at once (AND)."""
        if self.values is None:
            values = other.values
        elif other.values is None:
            values = self.values
        else:
            values = self.values & other.values
        return Constraint(
            values=values,
            excluded=self.excluded | other.excluded,
            may_be_null=self.may_be_null and other.may_be_null,
            may_have_value=self.may_have_value and other.may_have_value,
            low=_tighter(self.low, other.low, lower=True),
            high=_tighter(self.high, other.high, lower=False),
        )

    def is_empty(self) -> bool:
        if self.may_be_null:
            return False
        if not self.may_have_value:
            return True
        try:
            if self.values is not None:
                return not any(v not in self.excluded and self._within(v) for v in self.values)
            return self._interval_empty()
        except TypeError:  # values of different kinds (a unit error reported elsewhere)
            return False

    def _within(self, value) -> bool:
        if self.low is not None and (value < self.low[0] or (value == self.low[0] and not self.low[1])):
            return False
        if self.high is not None and (value > self.high[0] or (value == self.high[0] and not self.high[1])):
            return False
        return True

    def _interval_empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        (low, low_in), (high, high_in) = self.low, self.high
        return low > high or (low == high and not (low_in and high_in))


def _tighter(a: Bound | None, b: Bound | None, lower: bool) -> Bound | None:
    if a is None or b is None:
        return a or b
    try:
        if a[0] == b[0]:
            return (a[0], a[1] and b[1])
        return max(a, b, key=lambda bound: bound[0]) if lower else min(a, b, key=lambda bound: bound[0])
    except TypeError:
        return a


Conjunction = dict  # (entity, field) -> Constraint
ANYTHING: list[Conjunction] = [{}]


def can_overlap(a: ir.Expr | None, b: ir.Expr | None) -> bool:
    """False only when no row can satisfy both conditions (None: no condition, matches all)."""
    if a is None or b is None:
        return True
    return any(not _contradict(x, y) for x in disjuncts(a) for y in disjuncts(b))


def _contradict(a: Conjunction, b: Conjunction) -> bool:
    for key in a.keys() | b.keys():
        combined = a[key].meet(b[key]) if key in a and key in b else a.get(key) or b.get(key)
        if combined.is_empty():
            return True
    return False


def disjuncts(expr: ir.Expr) -> list[Conjunction]:
    """The condition as an OR of conjunctions; [{}] when not understood (matches anything)."""
    if isinstance(expr, ir.Logical) and expr.op == "or":
        result = [c for operand in expr.operands for c in disjuncts(operand)]
        return result if len(result) <= MAX_DISJUNCTS else ANYTHING
    if isinstance(expr, ir.Logical) and expr.op == "and":
        result: list[Conjunction] = [{}]
        for operand in expr.operands:
            result = [_and(x, y) for x, y in itertools.product(result, disjuncts(operand))]
            if len(result) > MAX_DISJUNCTS:
                return ANYTHING
        return result
    atom = _atom(expr)
    return [atom] if atom is not None else ANYTHING


def _and(a: Conjunction, b: Conjunction) -> Conjunction:
    merged = dict(a)
    for key, constraint in b.items():
        merged[key] = merged[key].meet(constraint) if key in merged else constraint
    return merged


def _atom(expr: ir.Expr) -> Conjunction | None:
    """One field constraint, or None for anything else."""
    if isinstance(expr, ir.Not):
        return _negated_atom(expr.operand)
    if isinstance(expr, ir.IsNull) and isinstance(expr.operand, ir.FieldRef):
        constraint = Constraint(may_be_null=False) if expr.negated else Constraint(may_have_value=False)
        return {_key(expr.operand): constraint}
    if isinstance(expr, ir.InList) and isinstance(expr.operand, ir.FieldRef):
        values = [literal_value(v) for v in expr.values]
        if any(v is None for v in values):
            return None
        if expr.negated:
            return {_key(expr.operand): Constraint(excluded=frozenset(values), may_be_null=False)}
        return {_key(expr.operand): Constraint(values=frozenset(values), may_be_null=False)}
    if isinstance(expr, ir.Compare):
        field, op, value = _field_op_value(expr)
        if field is None:
            return None
        return {_key(field): _comparison(op, value)}
    return None


def _negated_atom(expr: ir.Expr) -> Conjunction | None:
    if isinstance(expr, ir.IsNull):
        return _atom(expr.model_copy(update={"negated": not expr.negated}))
    if isinstance(expr, ir.InList):
        return _atom(expr.model_copy(update={"negated": not expr.negated}))
    if isinstance(expr, ir.Compare) and expr.op in ("=", "!="):
        return _atom(expr.model_copy(update={"op": "!=" if expr.op == "=" else "="}))
    return None  # not (a < b) also matches nulls in no row; not worth the subtlety


def _field_op_value(expr: ir.Compare):
    left_value, right_value = literal_value(expr.left), literal_value(expr.right)
    if isinstance(expr.left, ir.FieldRef) and right_value is not None:
        return expr.left, expr.op, right_value
    if isinstance(expr.right, ir.FieldRef) and left_value is not None:
        return expr.right, _FLIPPED[expr.op], left_value
    return None, None, None


def _comparison(op: str, value) -> Constraint:
    if op == "=":
        return Constraint(values=frozenset([value]), may_be_null=False)
    if op == "!=":
        return Constraint(excluded=frozenset([value]), may_be_null=False)
    if op in (">", ">="):
        return Constraint(low=(value, op == ">="), may_be_null=False)
    return Constraint(high=(value, op == "<="), may_be_null=False)


def _key(field: ir.FieldRef) -> tuple[str, str]:
    return (field.entity, field.field)
