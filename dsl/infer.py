"""Types of plan expressions: the unit of every expression, and unit mistakes.

`Typer(...).infer(expr, place) -> Type` gives each expression one of money,
percent, number, date, duration, text or bool, and reports what it meets on
the way: unknown measures, entities and fields, names used where they mean
nothing (a deal field in `applies to`), and unit errors (money + percent,
a date compared with money, a money literal in another currency).

`MeasureScope` is what a plan can name: its own measures, then the shared
measures of every file, then the built-ins. A measure's type is its
expression's type, inferred once and remembered.

>>> from dsl import ir
>>> from dsl.schema import SCHEMA
>>> bookings = ir.Measure(name="bookings", expr=ir.Aggregate(function="sum", entity="deal", field="amount"))
>>> scope = MeasureScope([bookings], SCHEMA)
>>> expr = ir.Binary(op="/", left=ir.NameRef(name="bookings"), right=ir.NameRef(name="quota"))
>>> Typer(SCHEMA, scope).infer(expr, Place("a rate", names=True))
<Type.PERCENT: 'percent'>
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from decimal import Decimal

from dsl import ir
from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.schema import Entity, FieldType, Schema


class Type(enum.StrEnum):
    MONEY = "money"
    PERCENT = "percent"
    NUMBER = "number"
    DATE = "date"
    DURATION = "duration"
    TEXT = "text"
    BOOL = "bool"
    UNKNOWN = "unknown"  # after a reported mistake: fits anywhere, so one mistake is reported once

    @property
    def words(self) -> str:
        """How the type reads in a message: 'cannot add money and a percentage'."""
        return _WORDS[self]


_WORDS = {
    Type.MONEY: "money",
    Type.PERCENT: "a percentage",
    Type.NUMBER: "a number",
    Type.DATE: "a date",
    Type.DURATION: "a duration",
    Type.TEXT: "text",
    Type.BOOL: "a condition (true or false)",
    Type.UNKNOWN: "unknown",
}

AMOUNTS = (Type.MONEY, Type.PERCENT, Type.NUMBER)  # what a measure can be
M, P, N, D, DUR = Type.MONEY, Type.PERCENT, Type.NUMBER, Type.DATE, Type.DURATION

# Built-in names every comp plan can use, and their types.
BUILTINS = {"attainment": Type.PERCENT, "quota": Type.MONEY, "target_incentive": Type.MONEY}

FIELD_TYPES = {
    FieldType.STRING: Type.TEXT,
    FieldType.MONEY: Type.MONEY,
    FieldType.NUMBER: Type.NUMBER,
    FieldType.PERCENT: Type.PERCENT,
    FieldType.INTEGER: Type.NUMBER,
    FieldType.DATE: Type.DATE,
    FieldType.BOOL: Type.BOOL,
}

LITERAL_TYPES = {
    "number": N,
    "percent": P,
    "money": M,
    "date": D,
    "duration": DUR,
    "text": Type.TEXT,
    "bool": Type.BOOL,
    "null": Type.UNKNOWN,
}

# Arithmetic: (left, right) -> result. A pair missing from a table is a unit error.
# Ratios of like quantities are percentages (money / money, count / count).
ARITHMETIC: dict[str, dict[tuple[Type, Type], Type]] = {
    "+": {(M, M): M, (P, P): P, (N, N): N, (D, DUR): D, (DUR, D): D, (DUR, DUR): DUR},
    "-": {(M, M): M, (P, P): P, (N, N): N, (D, DUR): D, (D, D): DUR, (DUR, DUR): DUR},
    "*": {
        (M, N): M,
        (N, M): M,
        (M, P): M,
        (P, M): M,
        (N, N): N,
        (P, P): P,
        (N, P): P,
        (P, N): P,
        (DUR, N): DUR,
        (N, DUR): DUR,
    },
    "/": {(M, M): P, (N, N): P, (P, P): P, (DUR, DUR): P, (M, N): M, (M, P): M, (P, N): P, (N, P): N, (DUR, N): DUR},
}

_OPERATION_WORDS = {
    "+": "add {a} and {b}",
    "-": "subtract {b} from {a}",
    "*": "multiply {a} by {b}",
    "/": "divide {a} by {b}",
}
_ORDERED = ("<", "<=", ">", ">=")
_ROW_FUNCTIONS = ("count", "count_distinct")


@dataclasses.dataclass(frozen=True)
class Place:
    """What an expression at one place in a plan may refer to.

    `entities`: whose fields (a row condition: `deal.stage = "closed_won"`);
    `names`: measures and built-ins (totals per rep and period);
    `aggregates`: sum(...), count(...) (only in a measure's definition).
    A place with none of them takes fixed values only (`draw 3,000 USD`).
    """

    what: str
    entities: frozenset[str] = frozenset()
    names: bool = False
    aggregates: bool = False
    example: str = "5,000 USD or 10%"  # of a fixed value it takes, for hints


# ---------------------------------------------------------------- scope


class MeasureScope:
    """The measures a plan can name: its own first, then the shared ones (`parent`)."""

    def __init__(self, measures: Iterable[ir.Measure], schema: Schema, parent: MeasureScope | None = None):
        self.measures: dict[str, ir.Measure] = {}
        for measure in measures:
            self.measures.setdefault(measure.name, measure)  # a second definition is reported by check
        self.schema = schema
        self.parent = parent
        self._types: dict[str, Type] = {}
        self._inferring: set[str] = set()

    def find(self, name: str) -> ir.Measure | None:
        if name in self.measures:
            return self.measures[name]
        return self.parent.find(name) if self.parent else None

    def names(self) -> list[str]:
        inherited = self.parent.names() if self.parent else list(BUILTINS)
        return list(self.measures) + [n for n in inherited if n not in self.measures]

    def type_of(self, name: str) -> Type | None:
        """The type of a measure or built-in; None when nothing has that name."""
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in self.measures:
            return self.parent.type_of(name) if self.parent else None
        if name not in self._types:
            if name in self._inferring:  # measures defined in terms of each other: reported by check
                return Type.UNKNOWN
            self._inferring.add(name)
            try:
                self._types[name] = Typer(self.schema, self).infer(self.measures[name].expr, MEASURE)
            finally:
                self._inferring.discard(name)
        return self._types[name]


MEASURE = Place("a measure", names=True, aggregates=True)


# ---------------------------------------------------------------- typer


class Typer:
    """Infers types; with a `report` list it also records every mistake it meets."""

    def __init__(
        self,
        schema: Schema,
        scope: MeasureScope | None = None,
        currency: str | None = None,
        report: list[Diagnostic] | None = None,
    ):
        self.schema = schema
        self.scope = scope
        self.currency = currency  # money literals must be in it (None: any currency)
        self.report = report
        self._rules = {
            "number": self._literal,
            "percent": self._literal,
            "money": self._money,
            "date": self._literal,
            "duration": self._literal,
            "text": self._literal,
            "bool": self._literal,
            "null": self._literal,
            "field": self._field,
            "name": self._name,
            "aggregate": self._aggregate,
            "binary": self._binary,
            "compare": self._compare,
            "logical": self._logical,
            "not": self._not,
            "negate": self._negate,
            "in": self._in_list,
            "is_null": self._is_null,
        }

    def infer(self, expr: ir.Expr, place: Place) -> Type:
        return self._rules[expr.kind](expr, place)

    def _error(self, code: str, message: str, span: Span | None, *hints: str) -> None:
        if self.report is not None:
            self.report.append(Diagnostic(code=code, message=message, span=span, hints=tuple(h for h in hints if h)))

    # ------------------------------------------------------------ leaves

    def _literal(self, expr, place: Place) -> Type:
        return LITERAL_TYPES[expr.kind]

    def _money(self, expr: ir.Money, place: Place) -> Type:
        if self.currency is not None and expr.currency != self.currency:
            self._error(
                "RP214",
                f"{show(expr)} is in {expr.currency}, but this plan is in {self.currency}",
                expr.span,
                f"write amounts in the plan's currency ({self.currency}); "
                "deals in other currencies are converted (see 'fx at')",
            )
        return Type.MONEY

    def _entity(self, name: str, span: Span | None, example_field: str | None) -> Entity | None:
        entity = next((e for e in self.schema.entities if e.name == name), None)
        if entity is not None:
            return entity
        by_table = self.schema.entity(name)
        if by_table is not None:
            written = f"{by_table.name}.{example_field}" if example_field else by_table.name
            self._error(
                "RP202",
                f"'{name}' is the name of a table; plans call one row of it '{by_table.name}'",
                span,
                f"write {written}",
            )
            return None
        known = ", ".join(self.schema.entity_names)
        self._error(
            "RP202",
            f"there is no data called '{name}'",
            span,
            *did_you_mean(name, self.schema.entity_names),
            f"plans can use: {known}",
        )
        return None

    def _field_of(self, entity: Entity, name: str, span: Span | None):
        field = entity.field(name)
        if field is None:
            self._error(
                "RP203",
                f"{entity.name} has no field '{name}'",
                span,
                *did_you_mean(name, entity.field_names),
                f"{entity.name} fields: {', '.join(entity.field_names)}; "
                f"custom fields are declared in revplan.toml under [fields.{entity.name}]",
            )
        return field

    def _field(self, expr: ir.FieldRef, place: Place) -> Type:
        entity = self._entity(expr.entity, expr.span, expr.field)
        if entity is None:
            return Type.UNKNOWN
        field = self._field_of(entity, expr.field, expr.span)
        if field is None:
            return Type.UNKNOWN
        if entity.name not in place.entities:
            self._misplaced_field(expr, place)
        return FIELD_TYPES[field.type]

    def _misplaced_field(self, expr: ir.FieldRef, place: Place) -> None:
        ref = f"{expr.entity}.{expr.field}"
        if place.names:
            self._error(
                "RP204",
                f"{ref} is a field of a single {expr.entity}; {place.what} works on totals per rep and period",
                expr.span,
                f"define a measure (measure name = sum({ref}) where ...) and use its name here",
            )
        elif place.entities:
            allowed = " or ".join(sorted(place.entities))
            self._error(
                "RP204",
                f"{place.what} can only use {allowed} fields, not {ref}",
                expr.span,
                f"write a condition on {allowed} fields, e.g. {_EXAMPLE_CONDITION.get(sorted(place.entities)[0], '')}",
            )
        else:
            self._error(
                "RP204",
                f"{place.what} must be a fixed value, not {ref}",
                expr.span,
                f"write a value such as {place.example}",
            )

    def _name(self, expr: ir.NameRef, place: Place) -> Type:
        found = self.scope.type_of(expr.name) if self.scope else BUILTINS.get(expr.name)
        if found is None:
            candidates = self.scope.names() if self.scope else list(BUILTINS)
            if place.names or place.aggregates:
                message = f"unknown measure '{expr.name}'"
                hint = f"define it: measure {expr.name} = sum(deal.amount) where ..."
            else:
                message = f"unknown name '{expr.name}'"
                hint = f'if "{expr.name}" is text, put it in double quotes: "{expr.name}"'
            self._error("RP201", message, expr.span, *did_you_mean(expr.name, candidates), hint)
            return Type.UNKNOWN
        if not place.names:
            what = "a built-in total" if expr.name in BUILTINS else "a measure"
            if place.entities:
                allowed = " or ".join(sorted(place.entities))
                message = f"'{expr.name}' is {what} per rep and period; {place.what} can only use {allowed} fields"
                hint = (
                    f"{place.what} looks at one {allowed} at a time; "
                    "conditions on totals belong in a gate or a 'when' condition"
                )
            else:
                message = f"{place.what} must be a fixed value, not '{expr.name}'"
                hint = f"write a value such as {place.example}"
            self._error("RP204", message, expr.span, hint)
        return found

    def _aggregate(self, expr: ir.Aggregate, place: Place) -> Type:
        text = f"{expr.function}({expr.entity}{'.' + expr.field if expr.field else ''})"
        if not place.aggregates:
            self._error(
                "RP205",
                f"a total like {text} belongs in a measure",
                expr.span,
                f"define a measure (measure name = {text} where ...) and use its name here",
            )
        entity = self._entity(expr.entity, expr.span, expr.field)
        if entity is None:
            return Type.UNKNOWN
        if expr.field is None:
            if expr.function in _ROW_FUNCTIONS:
                return Type.NUMBER
            self._error(
                "RP205",
                f"{expr.function} needs a field to add up, e.g. "
                f"{expr.function}({entity.name}.{_example_field(entity)})",
                expr.span,
                f"count({entity.name}) counts rows",
            )
            return Type.UNKNOWN
        field = self._field_of(entity, expr.field, expr.span)
        if field is None:
            return Type.UNKNOWN
        if expr.function in _ROW_FUNCTIONS:
            return Type.NUMBER
        field_type = FIELD_TYPES[field.type]
        allowed = AMOUNTS if expr.function in ("sum", "avg") else (*AMOUNTS, Type.DATE)
        if field_type not in allowed:
            self._error(
                "RP205",
                f"cannot take the {expr.function} of {entity.name}.{field.name}: it is {field_type.words}",
                expr.span,
                f"count({entity.name}) counts rows; count_distinct({entity.name}.{field.name}) counts different values",
            )
            return Type.UNKNOWN
        return field_type

    # ------------------------------------------------------------ operators

    def _binary(self, expr: ir.Binary, place: Place) -> Type:
        left, right = self.infer(expr.left, place), self.infer(expr.right, place)
        if Type.UNKNOWN in (left, right):
            return Type.UNKNOWN
        result = ARITHMETIC[expr.op].get((left, right))
        if result is None:
            words = _OPERATION_WORDS[expr.op].format(a=left.words, b=right.words)
            self._error("RP210", f"cannot {words}", expr.span, _arithmetic_hint(expr.op, left, right))
            return Type.UNKNOWN
        return result

    def _compare(self, expr: ir.Compare, place: Place) -> Type:
        left, right = self.infer(expr.left, place), self.infer(expr.right, place)
        if Type.UNKNOWN in (left, right):
            return Type.BOOL
        if left != right:
            self._error(
                "RP211",
                f"cannot compare {left.words} with {right.words}",
                expr.span,
                _comparison_hint(left, right, expr.right),
            )
        elif expr.op in _ORDERED and left in (Type.TEXT, Type.BOOL):
            self._error(
                "RP211",
                f"{left.words} can only be compared with = or !=, not {expr.op}",
                expr.span,
                'to match several values, write: account.country in ("US", "CA")',
            )
        return Type.BOOL

    def _in_list(self, expr: ir.InList, place: Place) -> Type:
        operand = self.infer(expr.operand, place)
        for value in expr.values:
            value_type = self.infer(value, place)
            if Type.UNKNOWN not in (operand, value_type) and value_type != operand:
                self._error(
                    "RP211",
                    f"{show(value)} is {value_type.words}, but the list is compared with {operand.words}",
                    value.span,
                    _comparison_hint(operand, value_type, value),
                )
        return Type.BOOL

    def _is_null(self, expr: ir.IsNull, place: Place) -> Type:
        self.infer(expr.operand, place)
        return Type.BOOL

    def _condition(self, operand: ir.Expr, place: Place) -> None:
        found = self.infer(operand, place)
        if found not in (Type.BOOL, Type.UNKNOWN):
            self._error(
                "RP212",
                f"{describe(operand)} is {found.words}, not a condition",
                operand.span,
                'a condition compares something, e.g. deal.stage = "closed_won" or attainment >= 50%',
            )

    def _logical(self, expr: ir.Logical, place: Place) -> Type:
        for operand in expr.operands:
            self._condition(operand, place)
        return Type.BOOL

    def _not(self, expr: ir.Not, place: Place) -> Type:
        self._condition(expr.operand, place)
        return Type.BOOL

    def _negate(self, expr: ir.Negate, place: Place) -> Type:
        found = self.infer(expr.operand, place)
        if found not in (*AMOUNTS, Type.DURATION, Type.UNKNOWN):
            self._error("RP210", f"cannot make {found.words} negative", expr.span, "only amounts can be negative")
            return Type.UNKNOWN
        return found


_EXAMPLE_CONDITION = {
    "rep": 'rep.role = "AE"',
    "deal": 'deal.product = "new_logo"',
    "account": 'account.country = "US"',
}


def _example_field(entity: Entity) -> str:
    numeric = [f.name for f in entity.fields if f.type in (FieldType.MONEY, FieldType.NUMBER)]
    return numeric[0] if numeric else entity.fields[0].name


def _arithmetic_hint(op: str, left: Type, right: Type) -> str:
    pair = {left, right}
    if op in "+-" and pair == {Type.MONEY, Type.PERCENT}:
        return "to take a percentage of an amount, multiply: bookings * 10%"
    if op in "+-" and pair == {Type.NUMBER, Type.PERCENT}:
        return "write both sides as percentages (50%) or both as numbers"
    if op in "+-":
        return (
            "+ and - need the same unit on both sides: money and money, "
            "a percentage and a percentage, a date and a duration (90 days)"
        )
    if op == "*":
        return "multiply an amount by a number or a percentage: bookings * 10%"
    return "money / money is a percentage (a ratio); money / a number is money"


def _comparison_hint(left: Type, right: Type, right_expr: ir.Expr) -> str:
    pair = {left, right}
    if pair == {Type.PERCENT, Type.NUMBER}:
        if isinstance(right_expr, ir.Number):
            percent = _decimal_text(right_expr.value * 100)
            return f"write the number as a percentage: {percent}% rather than {show(right_expr)}"
        return "write percentages with %, e.g. 50% rather than 0.5"
    if pair == {Type.MONEY, Type.NUMBER}:
        return "write money with its currency, e.g. 100,000 USD"
    return "both sides of a comparison need the same unit"


# ---------------------------------------------------------------- showing values


def words_or(types) -> str:
    """'money, a percentage or a number'."""
    words = [t.words for t in types]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def literal_value(node: ir.Node):
    """The plain value of a literal (Decimal, date, str, bool), or None for anything else."""
    if isinstance(node, ir.Money):
        return node.amount
    if isinstance(node, (ir.Number, ir.Percent, ir.Date, ir.Text, ir.Boolean)):
        return node.value
    if isinstance(node, ir.Duration):
        return node.days
    return None


def _decimal_text(value: Decimal) -> str:
    """1234.50 -> '1,234.5'; never an exponent."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-') or 0):,}"
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def show(node: ir.Node) -> str:
    """A literal as a plan would write it: 5,000 USD, 12.5%, "closed_won"."""
    if isinstance(node, ir.Money):
        return f"{_decimal_text(node.amount)} {node.currency}"
    if isinstance(node, ir.Percent):
        return f"{_decimal_text(node.value * 100)}%"
    if isinstance(node, ir.Number):
        return _decimal_text(node.value)
    if isinstance(node, ir.Date):
        return node.value.isoformat()
    if isinstance(node, ir.Duration):
        return f"{node.days} days"
    if isinstance(node, ir.Text):
        return f'"{node.value}"'
    if isinstance(node, ir.Boolean):
        return "true" if node.value else "false"
    if isinstance(node, ir.Null):
        return "null"
    return describe(node)


def describe(expr: ir.Node) -> str:
    """A short name for an expression in a message."""
    if isinstance(expr, ir.FieldRef):
        return f"{expr.entity}.{expr.field}"
    if isinstance(expr, ir.NameRef):
        return expr.name
    if isinstance(expr, ir.Aggregate):
        return f"{expr.function}({expr.entity}{'.' + expr.field if expr.field else ''})"
    if getattr(expr, "kind", None) in ir.LITERAL_KINDS:
        return show(expr)
    return "this"
