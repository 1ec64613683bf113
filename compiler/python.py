"""Comp plan IR -> a Python calculator: the payout lines of compiler/sql.py, computed with numpy.

In: a checked `ir.CompPlan`, the measures in scope, the territory plans (for
`credit overlay`). Out: a `Calculator` whose `run(tables)` takes the contract
tables as Arrow tables (reps, deals, deal_splits, accounts, quotas, fx_rates,
activities, mbo_scores, rep_assignments) and returns the payout lines as a pandas DataFrame
with the columns, rows and values of the SQL path (`compiler/sql.py`), to the
last digit.

    to_python(plan, measures, territories) -> Calculator     compile: refuse what it cannot compute
    Calculator.run(tables)                  -> DataFrame      PAYOUT_COLUMNS, money as Decimal
    run_files(files, connection)            -> (lines, plan keys, territories)   what `--engine python` runs
    territory_table(plans, tables)          -> DataFrame      account -> territory -> owner

It is a second, independent implementation of the semantics in
compiler/README.md (not the SQL run another way): the plan becomes Python
closures over column vectors, evaluated with numpy.

Exact arithmetic (compiler/exact.py is the contract): a number is a vector of
integers at a scale of at most 10 decimal places (`Num`), held as int64 while
the values provably fit and as Python integers (numpy object arrays) when
they might not: a DECIMAL(38, 10) intermediate does not fit int64 at 10
places. Sums and differences are exact; products are exact and rounded half
away from zero to 10 places when they have more; quotients are the same
integer division as `exact.div`; payout lines are rounded to cents once.
NULLs are a mask beside the values and follow SQL: arithmetic and comparisons
with NULL are NULL, `and`/`or`/`not` are three-valued, aggregates skip NULLs,
LEAST/GREATEST are NULL when an argument is (as compiler/sql.py spells out).

What always holds: a construct this calculator cannot compute raises
`CompileError` from `to_python`, before any data is read; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from compiler.calendar import pay_periods, plan_periods
from compiler.exact import OutOfRange
from compiler.sql import DEAL_COLUMNS, PAYOUT_COLUMNS, CompileError, no_quota_plan, no_territory_plan
from compiler.territory import dated_spans, held_spans
from dsl import ir
from dsl.check import is_fixed, payout_inputs

SCALE = 10  # decimal places of every intermediate value (DECIMAL(38, 10))
LIMIT = 1 << 62  # int64 holds values below this with room for one more addition
EPOCH = dt.date(1970, 1, 1)
FAR_FUTURE = dt.date(9999, 12, 31)
LITERALS = (ir.Number, ir.Percent, ir.Money, ir.Date, ir.Duration, ir.Text, ir.Boolean, ir.Null)
COMMISSION_RULES = (ir.FlatRate, ir.Tiers, ir.Curve)
TABLES = ("reps", "deals", "deal_splits", "accounts", "quotas", "fx_rates", "activities", "mbo_scores",
          "rep_assignments")
DATED_REP_FIELDS = ("role", "segment", "region")  # what rep_assignments says per day; other fields: the reps row
DAY_SPAN = 1 << 32  # (rep, day) keys: rep x DAY_SPAN + day + DAY_SPAN / 2 orders by rep, then day

__all__ = ["Calculator", "CompileError", "PythonRun", "QuotaAmounts", "run_files", "territory_table", "to_python"]


def to_python(
    plan: ir.CompPlan,
    measures: Mapping[str, ir.Measure],
    territories: Sequence[ir.TerritoryPlan] = (),
    quota_plans: Sequence[ir.QuotaPlan] = (),
    converted: frozenset[str] = frozenset(),
) -> Calculator:
    """The calculator of a comp plan; `territories` feed `credit overlay` (and quota plans'
    territory potential), `quota_plans` feed `quota from plan "NAME"`; `converted`: the custom money fields
    of deals (`Schema.converted_fields`). Raises CompileError."""
    measures = {**measures, **{m.name: m for m in plan.measures}}
    return Calculator(plan, measures, tuple(territories), tuple(quota_plans), converted)


def days(day: dt.date) -> int:
    return (day - EPOCH).days


# ================================================================ exact decimal vectors


def _wide(v: np.ndarray) -> np.ndarray:
    """Python integers (object dtype): exact at any size."""
    return v if v.dtype == object else v.astype(object)


def _narrow(v: np.ndarray) -> np.ndarray:
    """Back to int64 when every value fits with room to spare (one C-level pass), else unchanged."""
    if v.dtype != object or not len(v):
        return v
    try:
        narrow = v.astype(np.int64)
    except OverflowError:
        return v
    if int(np.abs(narrow).max()) >= LIMIT:
        return v
    return narrow


@functools.lru_cache(maxsize=4096)
def _unscaled(value: Decimal | int) -> tuple[int, int]:
    """(integer, scale) of a literal, at most SCALE places (rounded half up like exact.number)."""
    if isinstance(value, int):
        return value, 0
    quantized = Decimal(value).quantize(Decimal(1).scaleb(-SCALE), ROUND_HALF_UP)
    unscaled, scale = int(quantized.scaleb(SCALE)), SCALE
    while scale > 0 and unscaled % 10 == 0:
        unscaled, scale = unscaled // 10, scale - 1
    return unscaled, scale


class Num:
    """Exact decimals: integers `v` at `scale` decimal places; `null` marks NULLs (their `v` is 0)."""

    __slots__ = ("v", "scale", "null", "_bound")

    def __init__(self, v: np.ndarray, scale: int, null: np.ndarray):
        self.v, self.scale, self.null, self._bound = v, scale, null, None

    @staticmethod
    def const(value: Decimal | int, n: int) -> Num:
        unscaled, scale = _unscaled(value)
        if abs(unscaled) < LIMIT:
            v = np.full(n, unscaled, dtype=np.int64)
        else:
            v = np.empty(n, dtype=object)
            v[:] = unscaled
        return Num(v, scale, np.zeros(n, dtype=bool))

    @staticmethod
    def nulls(n: int) -> Num:
        return Num(np.zeros(n, dtype=np.int64), 0, np.ones(n, dtype=bool))

    @staticmethod
    def of(v: np.ndarray, scale: int, null: np.ndarray | None = None) -> Num:
        null = np.zeros(len(v), dtype=bool) if null is None else null
        if null.any():
            v = v.copy()
            v[null] = 0
        return Num(v, scale, null)

    def __len__(self) -> int:
        return len(self.v)

    @property
    def wide(self) -> bool:
        return self.v.dtype == object

    def bound(self) -> int:
        """The largest absolute value (as an integer at this scale)."""
        if self._bound is None:
            self._bound = int(np.abs(self.v).max()) if len(self.v) else 0
        return self._bound

    def take(self, index: np.ndarray) -> Num:
        return Num(self.v[index], self.scale, self.null[index])

    def at(self, scale: int, wide: bool = False) -> np.ndarray:
        """The values at a scale >= self.scale (int64 when they fit and `wide` is not asked)."""
        factor = 10 ** (scale - self.scale)
        if not wide and not self.wide and self.bound() * factor < LIMIT:
            return self.v * factor if factor != 1 else self.v
        v = _wide(self.v)
        return v * factor if factor != 1 else v

    def decimals(self) -> list:
        return [None if n else Decimal(int(x)).scaleb(-self.scale) for x, n in zip(self.v, self.null, strict=True)]


def _common(a: Num, b: Num) -> tuple[np.ndarray, np.ndarray, int]:
    """a's and b's values at their common scale: int64 when a sum or difference still fits."""
    scale = max(a.scale, b.scale)
    bound = a.bound() * 10 ** (scale - a.scale) + b.bound() * 10 ** (scale - b.scale)
    wide = a.wide or b.wide or bound >= LIMIT
    return a.at(scale, wide), b.at(scale, wide), scale


def _zero_nulls(v: np.ndarray, null: np.ndarray) -> np.ndarray:
    if null.any():
        v[null] = 0
    return v


def add(a: Num, b: Num) -> Num:
    x, y, scale = _common(a, b)
    null = a.null | b.null
    return Num(_zero_nulls(x + y, null), scale, null)


def sub(a: Num, b: Num) -> Num:
    x, y, scale = _common(a, b)
    null = a.null | b.null
    return Num(_zero_nulls(x - y, null), scale, null)


def neg(a: Num) -> Num:
    return Num(-a.v, a.scale, a.null)


def _round(v: np.ndarray, places: int) -> np.ndarray:
    """v / 10^places rounded half away from zero."""
    factor = 10**places
    magnitude = (np.abs(v) + factor // 2) // factor
    return np.where(v < 0, -magnitude, magnitude)


def mul(a: Num, b: Num) -> Num:
    """The exact product, rounded half away from zero to SCALE places when it has more."""
    if not a.wide and not b.wide and a.bound() * b.bound() < LIMIT:
        v = a.v * b.v
    else:
        v = _wide(a.v) * _wide(b.v)
    scale = a.scale + b.scale
    if scale > SCALE:
        v, scale = _narrow(_round(v, scale - SCALE)), SCALE
    null = a.null | b.null
    return Num(_zero_nulls(v, null), scale, null)


def div(a: Num, b: Num) -> Num:
    """a / b rounded half away from zero to SCALE places (exact.div); NULL when b is 0."""
    top_bound = 2 * a.bound() * 10 ** (SCALE - a.scale) * 10**SCALE + b.bound() * 10 ** (SCALE - b.scale)
    wide = a.wide or b.wide or top_bound >= LIMIT
    x, y = a.at(SCALE, wide), b.at(SCALE, wide)
    zero = y == 0
    null = a.null | b.null | zero
    y = np.where(zero, 1, y)
    if y.dtype != x.dtype:
        x, y = _wide(x), _wide(y)
    magnitude = (2 * np.abs(x) * 10**SCALE + np.abs(y)) // (2 * np.abs(y))
    negative = (x < 0) != (y < 0)
    v = _narrow(np.where(negative, -magnitude, magnitude))
    return Num(_zero_nulls(v, null), SCALE, null)


def round_to(a: Num, scale: int) -> Num:
    """Rounded half away from zero to `scale` places (ROUND(x, scale)); exact when it has fewer."""
    if a.scale <= scale:
        return Num(a.at(scale), scale, a.null)
    return Num(_narrow(_round(a.v, a.scale - scale)), scale, a.null)


def cents(a: Num) -> Num:
    return round_to(a, 2)


def case(condition: np.ndarray, then: Num, otherwise: Num) -> Num:
    """CASE WHEN condition THEN then ELSE otherwise (condition: a plain bool array)."""
    x, y, scale = _common(then, otherwise)
    return Num(np.where(condition, x, y), scale, np.where(condition, then.null, otherwise.null))


def coalesce(a: Num, b: Num) -> Num:
    return case(~a.null, a, b)


def _extreme(values: Sequence[Num], pick) -> Num:
    """LEAST / GREATEST: NULL when any argument is NULL (compiler/sql.py spells this out for every engine)."""
    result = values[0]
    for other in values[1:]:
        x, y, scale = _common(result, other)
        null = result.null | other.null
        result = Num(_zero_nulls(pick(x, y), null), scale, null)
    return result


def least(*values: Num) -> Num:
    return _extreme(values, lambda x, y: np.where(x <= y, x, y))


def greatest(*values: Num) -> Num:
    return _extreme(values, lambda x, y: np.where(x >= y, x, y))


def no_zero(a: Num) -> Num:
    """NULLIF(a, 0)."""
    return case(compare("=", a, zeros(len(a))).v, Num.nulls(len(a)), a)


def zeros(n: int) -> Num:
    return Num(np.zeros(n, dtype=np.int64), 0, np.zeros(n, dtype=bool))


class Bool:
    """Three-valued truth: `v` is True only where the value is known true; `null` marks unknown."""

    __slots__ = ("v", "null")

    def __init__(self, v: np.ndarray, null: np.ndarray):
        self.v, self.null = v & ~null, null

    @staticmethod
    def const(value: bool, n: int) -> Bool:
        return Bool(np.full(n, value, dtype=bool), np.zeros(n, dtype=bool))

    def take(self, index: np.ndarray) -> Bool:
        return Bool(self.v[index], self.null[index])

    @property
    def false(self) -> np.ndarray:
        return ~self.v & ~self.null


class Str:
    """Text: `codes` into `uniques` (-1 is NULL)."""

    __slots__ = ("codes", "uniques", "_lookup")

    def __init__(self, codes: np.ndarray, uniques: list):
        self.codes, self.uniques, self._lookup = codes, uniques, None

    @staticmethod
    def const(value: str, n: int) -> Str:
        return Str(np.zeros(n, dtype=np.int32), [value])

    @property
    def null(self) -> np.ndarray:
        return self.codes < 0

    def take(self, index: np.ndarray) -> Str:
        return Str(self.codes[index], self.uniques)

    def code(self, value: str) -> int:
        if self._lookup is None:
            self._lookup = {u: i for i, u in enumerate(self.uniques)}
        return self._lookup.get(value, -2)

    def recode(self, uniques: list) -> np.ndarray:
        """These values as codes into `uniques` (which holds every one of them)."""
        lookup = {u: i for i, u in enumerate(uniques)}
        mapping = np.array([lookup[u] for u in self.uniques] + [-1], dtype=np.int64)
        return mapping[self.codes]

    def decode(self) -> np.ndarray:
        table = np.array([*self.uniques, None], dtype=object)
        return table[self.codes]


class Nulls:
    """A column that is NULL everywhere (an optional column the data does not have)."""

    __slots__ = ("null",)

    def __init__(self, n: int):
        self.null = np.ones(n, dtype=bool)

    def take(self, index: np.ndarray) -> Nulls:
        return Nulls(len(index))


Value = Num | Bool | Str | Nulls


def _unknown(n: int) -> Bool:
    return Bool(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))


COMPARE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}


def compare(op: str, a: Value, b: Value) -> Bool:
    if isinstance(a, Nulls) or isinstance(b, Nulls):
        return _unknown(len(a.null))
    null = a.null | b.null
    test = COMPARE[op]
    if isinstance(a, Num) and isinstance(b, Num):
        x, y, _ = _common(a, b)
        return Bool(np.asarray(test(x, y), dtype=bool), null)
    if isinstance(a, Str) and isinstance(b, Str):
        if op in ("=", "!=") and len(b.uniques) == 1 and b.uniques[0] is not None and (b.codes == 0).all():
            return Bool(test(a.codes, a.code(b.uniques[0])), null)  # against a text literal
        if op in ("=", "!=") and len(a.uniques) == 1 and (a.codes == 0).all():
            return Bool(test(b.codes, b.code(a.uniques[0])), null)
        if op in ("=", "!="):
            uniques = list(dict.fromkeys([*a.uniques, *b.uniques]))
            return Bool(test(a.recode(uniques), b.recode(uniques)), null)
        x, y = a.decode(), b.decode()
        result = np.array([(not n) and test(p, q) for p, q, n in zip(x, y, null, strict=True)], dtype=bool)
        return Bool(result, null)
    if isinstance(a, Bool) and isinstance(b, Bool):
        return Bool(np.asarray(test(a.v, b.v), dtype=bool), null)
    raise CompileError(f"cannot compare {type(a).__name__.lower()} with {type(b).__name__.lower()}")


def logical_and(parts: Sequence[Bool]) -> Bool:
    any_false = np.zeros(len(parts[0].v), dtype=bool)
    any_null = any_false.copy()
    for part in parts:
        any_false |= part.false
        any_null |= part.null
    null = any_null & ~any_false
    return Bool(~any_false & ~null, null)


def logical_or(parts: Sequence[Bool]) -> Bool:
    any_true = np.zeros(len(parts[0].v), dtype=bool)
    any_null = any_true.copy()
    for part in parts:
        any_true |= part.v
        any_null |= part.null
    return Bool(any_true, any_null & ~any_true)


def logical_not(a: Bool) -> Bool:
    return Bool(~a.v, a.null)


def truth(value: Value) -> Bool:
    if isinstance(value, Bool):
        return value
    if isinstance(value, Nulls):
        return _unknown(len(value.null))
    raise CompileError(f"a {type(value).__name__.lower()} value is not a condition")


def number(value: Value) -> Num:
    if isinstance(value, Num):
        return value
    if isinstance(value, Nulls):
        return Num.nulls(len(value.null))
    raise CompileError(f"a {type(value).__name__.lower()} value is not a number")


# ================================================================ grouped reductions


class Groups:
    """Rows sorted by a group number (0..n-1): the runs of equal numbers, for per-group reductions."""

    def __init__(self, keys: np.ndarray, n: int):
        self.keys, self.n = keys, n
        if len(keys):
            self.starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        else:
            self.starts = np.zeros(0, dtype=np.int64)
        self.ids = keys[self.starts]
        self.present = np.zeros(n, dtype=bool)
        self.present[self.ids] = True

    def count(self, mask: np.ndarray) -> np.ndarray:
        counts = np.zeros(self.n, dtype=np.int64)
        if len(self.starts):
            counts[self.ids] = np.add.reduceat(mask.astype(np.int64), self.starts)
        return counts

    def sum(self, value: Num) -> Num:
        """SUM per group: NULLs skipped; NULL for a group without a non-NULL row."""
        v = value.v
        if not value.wide and value.bound() * max(len(v), 1) >= LIMIT:
            v = _wide(v)
        total = np.zeros(self.n, dtype=v.dtype) if v.dtype != object else np.array([0] * self.n, dtype=object)
        if len(self.starts):
            total[self.ids] = np.add.reduceat(v, self.starts)
        null = self.count(~value.null) == 0
        return Num(_zero_nulls(total, null), value.scale, null)

    def extreme(self, value: Num, smallest: bool) -> Num:
        """MIN or MAX per group, NULLs skipped."""
        v = value.v
        if v.dtype == object:
            sentinel = (1 << 200) if smallest else -(1 << 200)
        else:
            sentinel = np.iinfo(np.int64).max if smallest else np.iinfo(np.int64).min
        v = np.where(value.null, sentinel, v)
        result = np.zeros(self.n, dtype=v.dtype) if v.dtype != object else np.array([0] * self.n, dtype=object)
        if len(self.starts):
            reduce = np.minimum if smallest else np.maximum
            result[self.ids] = reduce.reduceat(v, self.starts)
        null = self.count(~value.null) == 0
        return Num(_zero_nulls(result, null), value.scale, null)

    def count_distinct(self, value: Value, mask: np.ndarray) -> np.ndarray:
        if isinstance(value, Nulls):
            return np.zeros(self.n, dtype=np.int64)
        keep = mask & ~value.null
        if isinstance(value, Str):
            codes = value.codes
        elif isinstance(value, Bool):
            codes = value.v.astype(np.int64)
        else:
            codes = pd.factorize(value.v)[0]
        pairs = pd.DataFrame({"g": self.keys[keep], "c": codes[keep]}).drop_duplicates()
        return np.bincount(pairs["g"].to_numpy(), minlength=self.n).astype(np.int64)


def _window_starts(keys: Sequence[np.ndarray]) -> np.ndarray:
    """True where a row starts a new partition (rows sorted by the keys)."""
    n = len(keys[0])
    first = np.zeros(n, dtype=bool)
    if n:
        first[0] = True
        for key in keys:
            first[1:] |= key[1:] != key[:-1]
    return first


def _partition_ids(first: np.ndarray) -> np.ndarray:
    return np.cumsum(first) - 1


def running_sum(value: Num, first: np.ndarray) -> Num:
    """SUM(value) OVER (PARTITION ... ORDER BY ...): NULLs skipped, NULL until a non-NULL row."""
    v = value.v
    if not value.wide and value.bound() * max(len(v), 1) >= LIMIT:
        v = _wide(v)
    if len(v) == 0:
        return value
    total = np.cumsum(v)
    before = (total - v)[first]
    total = total - before[_partition_ids(first)]
    seen = np.cumsum(~value.null)
    seen = seen - (seen - ~value.null)[first][_partition_ids(first)]
    null = seen == 0
    return Num(_zero_nulls(total, null), value.scale, null)


def lag(value: Num, first: np.ndarray) -> Num:
    """LAG(value, 1, 0) OVER (PARTITION ... ORDER BY ...)."""
    v = np.empty_like(value.v)
    null = np.zeros(len(v), dtype=bool)
    if len(v):
        v[1:], null[1:] = value.v[:-1], value.null[:-1]
        v[first], null[first] = 0, False
    return Num(v, value.scale, null)


# ================================================================ input tables


def _arrow_value(array: pa.Array | pa.ChunkedArray) -> Value:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    n, kind = len(array), array.type
    null = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else np.zeros(n, dtype=bool)
    if pa.types.is_decimal(kind):
        if kind.bit_width != 128:
            return Num.of(np.array([0 if x is None else int(x.scaleb(kind.scale)) for x in array.to_pylist()],
                                   dtype=object), kind.scale, null)
        words = np.frombuffer(array.buffers()[1], dtype=np.int64)[2 * array.offset: 2 * (array.offset + n)]
        words = words.reshape(n, 2)
        low, high = words[:, 0], words[:, 1]
        if np.array_equal(high, low >> 63):
            v = low.copy()
        else:
            v = high.astype(object) * (1 << 64) + low.view(np.uint64).astype(object)
        return Num.of(v, kind.scale, null)
    if pa.types.is_integer(kind):
        return Num.of(array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), 0, null)
    if pa.types.is_date32(kind):
        return Num.of(array.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), 0, null)
    if pa.types.is_date64(kind) or pa.types.is_timestamp(kind):
        return _arrow_value(array.cast(pa.date32()))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        if pa.types.is_string_view(kind):
            array = array.cast(pa.string())
        encoded = pc.dictionary_encode(array)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        return Str(codes, encoded.dictionary.to_pylist())
    if pa.types.is_boolean(kind):
        return Bool(array.fill_null(False).to_numpy(zero_copy_only=False).astype(bool), null)
    if pa.types.is_null(kind):
        return Nulls(n)
    raise CompileError(f"a column of type {kind} cannot be computed exactly (money needs DECIMAL)")


class Inputs:
    """The contract tables, each column converted once (shared by every plan of a run)."""

    def __init__(self, tables: Mapping[str, pa.Table]):
        self.tables = dict(tables)
        self.columns: dict[tuple[str, str], Value] = {}
        self.cache: dict = {}  # per-run results plans share (fx conversions)

    def rows(self, table: str) -> int:
        found = self.tables.get(table)
        return 0 if found is None else found.num_rows

    def has(self, table: str, name: str) -> bool:
        found = self.tables.get(table)
        return found is not None and name in found.column_names

    def column(self, table: str, name: str) -> Value:
        key = (table, name)
        if key not in self.columns:
            found = self.tables.get(table)
            if found is None or name not in found.column_names:
                if found is None or found.num_rows == 0:
                    self.columns[key] = Nulls(self.rows(table))
                else:
                    raise CompileError(f"the {table} table has no column {name!r}")
            else:
                self.columns[key] = _arrow_value(found.column(name))
        return self.columns[key]

    def text(self, table: str, name: str) -> Str:
        value = self.column(table, name)
        if isinstance(value, Nulls):
            return Str(np.full(len(value.null), -1, dtype=np.int32), [])
        if not isinstance(value, Str):
            raise CompileError(f"{table}.{name} is not text")
        return value

    def index_of(self, table: str, key: str, values: Str) -> np.ndarray:
        """Row numbers in `table` whose `key` equals each value (-1: none). Keys are unique by contract."""
        keys = self.text(table, key)
        cache_key = ("index", table, key)
        if cache_key not in self.cache:
            positions = np.full(len(keys.uniques) + 1, -1, dtype=np.int64)
            valid = keys.codes >= 0
            positions[keys.codes[valid]] = np.flatnonzero(valid)
            self.cache[cache_key] = (keys, positions)
        keys, positions = self.cache[cache_key]
        found_key = ("found", table, key, id(values))  # columns are converted once, so their id is stable
        found = self.cache.get(found_key)
        if found is None or found[0] is not values:
            lookup = pd.Index(keys.uniques)
            mapping = np.r_[lookup.get_indexer(values.uniques), -1] if values.uniques else np.array([-1])
            mapping = np.where(mapping >= 0, positions[mapping], -1)
            found = self.cache[found_key] = (values, mapping[values.codes])
        return found[1]


class Rows:
    """Rows of one input table (all, or picked by `index`): what row expressions read."""

    def __init__(self, inputs: Inputs, table: str, index: np.ndarray | None = None,
                 amounts: Mapping[str, tuple[Num, Num]] | None = None, fields: Mapping[str, Value] | None = None):
        self.inputs, self.table, self.index = inputs, table, index
        self.n = inputs.rows(table) if index is None else len(index)
        self.amounts = amounts or {}  # deals' money fields: (in the plan currency, credited)
        self.cache: dict = dict(fields or {})  # `fields`: columns that stand in for the table's (per row)

    def field(self, name: str, credited: bool = False) -> Value:
        if name in self.amounts:
            return self.amounts[name][1] if credited else self.amounts[name][0]
        if name not in self.cache:
            value = self.inputs.column(self.table, name)
            self.cache[name] = value if self.index is None else value.take(self.index)
        return self.cache[name]


# ================================================================ compiling plan expressions

RowFn = Callable[[Rows], Value]


@dataclasses.dataclass(frozen=True)
class AggregateKey:
    function: str
    entity: str
    field: str | None
    condition: ir.Expr | None
    multipliers: tuple[ir.DealMultiplier, ...]


@dataclasses.dataclass
class AggregateSpec:
    key: AggregateKey
    condition: RowFn | None
    value: RowFn | None
    weight: Callable[[Rows], Num] | None


@dataclasses.dataclass
class ComponentSpec:
    index: int
    component: ir.Component
    line_type: str
    cumulative: bool
    base: Callable | None
    payout: Callable  # Measures, base -> (raw, rate)
    measure_multipliers: list[tuple[Callable, Callable]]
    gates: list[Callable]
    period_caps: list[Callable]
    year_caps: list[Callable]
    deal_count: Callable | None
    contribution: RowFn | None  # a deal row's part of the base, when the pay traces to deals


def _and(first: ir.Expr | None, second: ir.Expr | None) -> ir.Expr | None:
    if first is None:
        return second
    if second is None:
        return first
    return ir.Logical(op="and", operands=(first, second))


def _walk(node):
    if isinstance(node, ir.Node):
        yield node
        for name in type(node).model_fields:
            yield from _walk(getattr(node, name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _walk(item)


def _literal_value(node: ir.Expr):
    """A literal's value: (kind, python value)."""
    match node:
        case ir.Number(value=v) | ir.Percent(value=v):
            return "num", v
        case ir.Money(amount=v):
            return "num", v
        case ir.Text(value=v):
            return "text", v
        case ir.Date(value=v):
            return "date", v
        case ir.Duration(days=v):  # dates are day numbers: a date plus 90 days is a sum
            return "num", Decimal(v)
        case ir.Boolean(value=v):
            return "bool", v
    raise CompileError(f"{type(node).__name__} is not a literal this calculator computes")


def _literal_fn(node: ir.Expr):
    kind, value = _literal_value(node)
    if kind == "num":
        return lambda ctx: Num.const(value, ctx.n)
    if kind == "date":
        return lambda ctx: Num.const(days(value), ctx.n)
    if kind == "text":
        return lambda ctx: Str.const(value, ctx.n)
    return lambda ctx: Bool.const(value, ctx.n)


def _arith(op: str, a: Value, b: Value) -> Num:
    a, b = number(a), number(b)
    return {"+": add, "-": sub, "*": mul, "/": div}[op](a, b)


def _in_list(operand: Value, values: list[Value], negated: bool) -> Bool:
    if isinstance(operand, Str) and all(isinstance(v, Str) and len(v.uniques) == 1 for v in values):
        wanted = [operand.code(v.uniques[0]) for v in values]
        hit = np.isin(operand.codes, wanted)
        null = operand.null
        result = Bool(hit, null)
    else:
        result = logical_or([compare("=", operand, v) for v in values])
    return logical_not(result) if negated else result


def _is_null(operand: Value, negated: bool) -> Bool:
    null = operand.null.copy()
    return Bool(~null if negated else null, np.zeros(len(null), dtype=bool))


def _memo(key, fn):
    """Cache a closure's result per evaluation context (conditions repeat across aggregates)."""

    def cached(ctx):
        found = ctx.cache.get(key)
        if found is None:
            found = ctx.cache[key] = fn(ctx)
        return found

    return cached


class _Expressions:
    """Row expressions (a condition or value over one input row) compiled to closures."""

    def row(self, node: ir.Expr, entity: str, credited: bool = False) -> RowFn:
        match node:
            case ir.FieldRef(entity=e, field=field):
                if e != entity:
                    raise CompileError(f"{e}.{field} cannot be used in a condition on {entity} rows")
                return lambda rows: rows.field(field, credited)
            case ir.NameRef() | ir.Aggregate():
                raise CompileError("a row condition cannot use measures")
        if isinstance(node, LITERALS):
            return _literal_fn(node)
        return _memo(("row", node), self.operators(node, lambda child: self.row(child, entity)))

    def operators(self, node: ir.Expr, inner) -> Callable:
        match node:
            case ir.Binary(op=o, left=l, right=r):
                left, right = inner(l), inner(r)
                return lambda ctx: _arith(o, left(ctx), right(ctx))
            case ir.Negate(operand=o):
                operand = inner(o)
                return lambda ctx: neg(number(operand(ctx)))
            case ir.Compare(op=o, left=l, right=r):
                left, right = inner(l), inner(r)
                return lambda ctx: compare(o, left(ctx), right(ctx))
            case ir.Logical(op=o, operands=operands):
                parts = [inner(x) for x in operands]
                combine = logical_and if o == "and" else logical_or
                return lambda ctx: combine([truth(p(ctx)) for p in parts])
            case ir.Not(operand=o):
                operand = inner(o)
                return lambda ctx: logical_not(truth(operand(ctx)))
            case ir.InList(operand=o, values=values, negated=negated):
                operand, items = inner(o), [inner(v) for v in values]
                return lambda ctx: _in_list(operand(ctx), [v(ctx) for v in items], negated)
            case ir.IsNull(operand=o, negated=negated):
                operand = inner(o)
                return lambda ctx: _is_null(operand(ctx), negated)
        raise CompileError(f"cannot compute {type(node).__name__} here")

    def constant(self, node: ir.Expr, what: str) -> Callable:
        """A value that is the same for every row: literals and arithmetic on them."""
        if isinstance(node, LITERALS):
            return _literal_fn(node)
        if isinstance(node, (ir.FieldRef, ir.NameRef, ir.Aggregate)):
            raise CompileError(f"{what} must be a fixed number here, not {type(node).__name__}")
        return self.operators(node, lambda child: self.constant(child, what))


class Calculator(_Expressions):
    """One comp plan, compiled: `run(tables)` gives its payout lines."""

    def __init__(
        self,
        plan: ir.CompPlan,
        measures: dict[str, ir.Measure],
        territories: tuple[ir.TerritoryPlan, ...] = (),
        quota_plans: tuple[ir.QuotaPlan, ...] = (),
        converted: frozenset[str] = frozenset(),
    ):
        self.plan, self.measures, self.territories = plan, measures, territories
        self.converted = converted  # custom money fields of deals, converted and credited as the amount is
        self.ytd = plan.measurement == ir.Measurement.YEAR_TO_DATE
        self.periods = plan_periods(plan.effective_from, plan.effective_to, plan.period)
        # Paid and clawback lines can also be in the run-off: the plan's periods are their first ones.
        self.pay_periods = pay_periods(plan.effective_from, plan.effective_to, plan.period)
        if not self.periods:
            raise CompileError(f"{plan.key} has no periods (effective dates out of order)")
        if plan.crediting.overlay and not territories:
            raise no_territory_plan()
        self.aggregates: dict[AggregateKey, AggregateSpec] = {}
        self.eligibility = self.row(plan.eligibility, "rep") if plan.eligibility is not None else None
        self.components = [self.component(index, c) for index, c in enumerate(plan.components)]
        if plan.attainment is not None:  # every line shows attainment: its aggregates are computed
            self.attainment_measure()
        if plan.draw is not None:
            self.constant(plan.draw.amount, "a draw amount")  # refused unless fixed
        self.draw_amount = self.per_period(plan.draw.amount) if plan.draw is not None else None
        self.rules = _TerritoryRules(territories) if plan.crediting.overlay else None
        self.quota_source = self.quota_plans(plan.quota.plan, quota_plans, territories) if plan.quota.plan else None
        self.deal_filter = self.counted_deals()

    def quota_plans(self, name: str, quota_plans, territories) -> list[QuotaAmounts]:
        """`quota from plan "NAME"`: every version of that quota plan, by this plan's periods."""
        chosen = [p for p in quota_plans if p.name == name]
        if not chosen:
            known = ", ".join(sorted({f'"{p.name}"' for p in quota_plans})) or "none was loaded"
            raise no_quota_plan(name, known)
        for quota_plan in chosen:
            if quota_plan.period != self.plan.period:
                raise CompileError(
                    f'quota from plan "{name}": its quotas are by {quota_plan.period.value}, '
                    f"but this plan measures attainment by {self.plan.period.value}"
                )
        seen: dict[str, int] = {}
        for quota_plan in chosen:  # versions that split a period would give it two quotas
            for period in plan_periods(quota_plan.effective_from, quota_plan.effective_to, quota_plan.period):
                if period.label in seen and seen[period.label] != quota_plan.version:
                    raise CompileError(
                        f'quota from plan "{name}": versions {seen[period.label]} and {quota_plan.version} both '
                        f"give quotas for {period.label}; which one attainment is measured on is not defined"
                    )
                seen[period.label] = quota_plan.version
        return [QuotaAmounts(p, territories) for p in chosen]

    def counted_deals(self) -> Callable | bool:
        """Which deals some deal aggregate can count: True (all), False (none) or a row condition.

        Deal rows no aggregate counts are left out (the SQL drops them before its
        joins), so they neither earn a share of a line nor count on paid and
        clawback lines. A condition on the converted amount keeps every deal.
        """
        conditions = []
        for key in self.aggregates:
            if key.entity != "deal":
                continue
            reads_amount = any(isinstance(n, ir.FieldRef) and (n.field == "amount" or n.field in self.converted)
                               for n in _walk(key.condition))
            if key.condition is None or reads_amount:
                return True
            conditions.append(self.row(key.condition, "deal"))
        if not conditions:
            return False
        return lambda rows: logical_or([truth(c(rows)) for c in conditions])

    # ------------------------------------------------------------ rep-period values

    def value(self, node: ir.Expr, condition: ir.Expr | None = None, multipliers=()) -> Callable:
        if isinstance(node, LITERALS):
            return _literal_fn(node)
        match node:
            case ir.NameRef(name=name):
                return self.measure_value(name, condition, multipliers)
            case ir.Aggregate():
                return self.aggregate_value(node, condition, multipliers)
            case ir.FieldRef(entity=entity, field=field):
                raise CompileError(f"{entity}.{field} cannot be used as a value of a rep and period")
            case ir.Compare(op=o, left=ir.NameRef(name="attainment"), right=r):
                return self.attainment_compared(o, self.value(r, condition, multipliers))
            case ir.Compare(op=o, left=l, right=ir.NameRef(name="attainment")):
                return self.attainment_compared(ir.FLIPPED[o], self.value(l, condition, multipliers))
        return self.operators(node, lambda child: self.value(child, condition, multipliers))

    def attainment_compared(self, o: str, other: Callable) -> Callable:
        """`attainment >= 50%` as measure >= 50% x quota, exact (SQL: `attainment_compared`)."""
        measure = self.attainment_measure()
        return lambda m: compare(o, number(measure(m)), mul(number(other(m)), no_zero(m.quota)))

    def measure_value(self, name: str, condition: ir.Expr | None, multipliers=()) -> Callable:
        if name == "attainment":
            self.attainment_measure()  # refuse at compile time when there is none
            return lambda m: m.attainment()
        if name in ("quota", "target_incentive"):
            return lambda m: getattr(m, name)
        measure = self.measures.get(name)
        if measure is None:
            raise CompileError(f"unknown measure {name!r}")
        compiled = self.value(measure.expr, _and(condition, measure.where), multipliers)
        return _memo(("measure", name, condition, multipliers), compiled)

    def attainment_measure(self) -> Callable:
        if self.plan.attainment is None:
            raise CompileError(f"{self.plan.key} uses attainment but has no `attainment = MEASURE / quota` line")
        return self.measure_value(self.plan.attainment, None)

    def aggregate_value(self, node: ir.Aggregate, condition: ir.Expr | None, multipliers=()) -> Callable:
        if node.entity not in ("deal", "activity"):
            raise CompileError(f"aggregates over {node.entity} rows are not supported; use deal or activity")
        if node.function not in ("sum", "count", "avg", "min", "max", "count_distinct"):
            raise CompileError(f"aggregate {node.function} is not supported")
        weighted = node.entity == "deal" and node.function in ("sum", "count")
        function = "sum" if node.function == "avg" else node.function
        key = AggregateKey(function, node.entity, node.field, condition, multipliers if weighted else ())
        self.register(key)
        if node.function == "avg":
            count = AggregateKey("count", node.entity, None, condition, ())
            self.register(count)
            return lambda m: div(m.aggregate(key), m.aggregate(count))
        if node.function in ("sum", "count", "count_distinct"):
            return lambda m: coalesce(m.aggregate(key), zeros(m.n))
        return lambda m: m.aggregate(key)

    def register(self, key: AggregateKey) -> None:
        if key in self.aggregates:
            return
        if key.function in ("sum", "min", "max", "count_distinct") and key.field is None:
            raise CompileError(f"{key.function}({key.entity}) needs a field")
        condition = self.row(key.condition, key.entity) if key.condition is not None else None
        value = None
        if key.field is not None:
            value = self.row(ir.FieldRef(entity=key.entity, field=key.field), key.entity,
                             credited=key.function != "count_distinct")
        self.aggregates[key] = AggregateSpec(key, condition, value, self.weight(key.multipliers))

    def weight(self, multipliers: tuple[ir.DealMultiplier, ...]) -> Callable[[Rows], Num] | None:
        """How much each deal row counts: the product of the factors of the multipliers it matches."""
        if not multipliers:
            return None
        parts = [(self.row(m.where, "deal"), self.constant(m.factor, "a deal multiplier")) for m in multipliers]

        def weigh(rows: Rows) -> Num:
            total = None
            for condition, factor in parts:
                one = case(truth(condition(rows)).v, number(factor(rows)), Num.const(1, rows.n))
                total = one if total is None else mul(total, one)
            return total

        return weigh

    # ------------------------------------------------------------ what the SQL compiler would write

    def signature(self, node: ir.Expr, condition: ir.Expr | None, multipliers=()):
        """A value's shape: equal exactly when compiler/sql.py prints the same SQL for both.

        The SQL pays graduated tiers directly when the base is textually what the
        bands read, and at the effective rate otherwise; this decides the same way.
        """
        if isinstance(node, LITERALS):
            kind, value = _literal_value(node)
            return (kind, Decimal(value).quantize(Decimal(1).scaleb(-SCALE), ROUND_HALF_UP)) if kind == "num" else (
                kind, value)
        inner = lambda child: self.signature(child, condition, multipliers)  # noqa: E731
        match node:
            case ir.NameRef(name=name):
                return self.measure_signature(name, condition, multipliers)
            case ir.Aggregate(function=function, entity=entity, field=field):
                weighted = entity == "deal" and function in ("sum", "count")
                key = AggregateKey("sum" if function == "avg" else function, entity, field, condition,
                                   multipliers if weighted else ())
                if function == "avg":
                    return ("div", ("agg", key), ("agg", AggregateKey("count", entity, None, condition, ())))
                return ("coalesce", ("agg", key)) if function in ("sum", "count", "count_distinct") else ("agg", key)
            case ir.Binary(op="*", left=l, right=r):
                left, right = inner(l), inner(r)
                if right == ("num", Decimal(1)):
                    return ("dec", left)
                if left == ("num", Decimal(1)):
                    return ("dec", right)
                return ("mul", left, right)
            case ir.Binary(op=o, left=l, right=r):
                return (o, inner(l), inner(r))
            case ir.Negate(operand=o):
                return ("neg", inner(o))
            case ir.Compare(op=o, left=l, right=r):
                return ("cmp", o, inner(l), inner(r))
            case ir.Logical(op=o, operands=operands):
                return (o, *[inner(x) for x in operands])
            case ir.Not(operand=o):
                return ("not", inner(o))
            case ir.InList(operand=o, values=values, negated=negated):
                return ("in", negated, inner(o), *[inner(v) for v in values])
            case ir.IsNull(operand=o, negated=negated):
                return ("is_null", negated, inner(o))
        return ("other", node)

    def measure_signature(self, name: str, condition: ir.Expr | None, multipliers=()):
        if name == "attainment":
            return ("attainment",)
        if name in ("quota", "target_incentive"):
            return ("column", name)
        measure = self.measures[name]
        return self.signature(measure.expr, _and(condition, measure.where), multipliers)

    # ------------------------------------------------------------ components

    def component(self, index: int, component: ir.Component) -> ComponentSpec:
        rule = component.payout
        multipliers = component.deal_multipliers
        base = self.measure_value(component.base, None, multipliers) if component.base is not None else None
        payout = self.rule(component, rule, base)
        measure_multipliers = [(self.value(m.when), self.value(m.factor)) for m in component.measure_multipliers]
        gates = [self.value(g.condition) for g in component.gates]
        cumulative = self.ytd and isinstance(rule, COMMISSION_RULES)
        period_caps = [self.cap(c, yearly=False, cumulative=cumulative) for c in component.caps
                       if c.per == ir.CapScope.PERIOD]
        year_caps = [self.cap(c, yearly=True) for c in component.caps if c.per == ir.CapScope.YEAR]
        line_type = {ir.Bonus: "bonus", ir.Spiff: "spiff", ir.Mbo: "mbo"}.get(type(rule), "commission")
        return ComponentSpec(
            index=index,
            component=component,
            line_type=line_type,
            cumulative=cumulative,
            base=base,
            payout=payout,
            measure_multipliers=measure_multipliers,
            gates=gates,
            period_caps=period_caps,
            year_caps=year_caps,
            deal_count=self.deal_count(component),
            contribution=self.contribution(component),
        )

    def per_period(self, amount: ir.Expr) -> Callable:
        """(measures) -> an amount per period; fixed, `prorate by active_days` scales it as it does quota and
        TI (multiplied first, divided last), as the SQL calculator's `per_period`."""
        value = self.value(amount)
        if not (self.plan.prorate and is_fixed(amount)):
            return lambda m: number(value(m))
        return lambda m: div(mul(number(value(m)), m.run.rp_counted), m.run.rp_length)

    def need_base(self, component: ir.Component, base) -> None:
        if base is None:
            raise CompileError(f'component "{component.name}" needs a base measure (`component "..." on MEASURE`)')

    def rule(self, component: ir.Component, rule, base) -> Callable:
        """(measures, base) -> (payout before multipliers, gates and caps; the rate shown on the line)."""
        match rule:
            case ir.FlatRate(rate=rate):
                self.need_base(component, base)
                rate_fn = self.value(rate)
                return lambda m, b: (mul(b, rate_fn(m)), rate_fn(m))
            case ir.Tiers():
                self.need_base(component, base)
                return self.tiers(component, rule)
            case ir.Curve():
                curve = self.curve(rule)
                return lambda m, b: (curve(m), None)
            case ir.Bonus(amount=amount, when=when):
                amount_fn, when_fn = self.per_period(amount), self.value(when)
                return lambda m, b: (case(truth(when_fn(m)).v, amount_fn(m), zeros(m.n)), None)
            case ir.Spiff(amount=amount, where=where, start=start, end=end):
                close = ir.FieldRef(entity="deal", field="close_date")
                in_window = ir.Logical(
                    op="and",
                    operands=(
                        where,
                        ir.Compare(op=">=", left=close, right=ir.Date(value=start)),
                        ir.Compare(op="<=", left=close, right=ir.Date(value=end)),
                    ),
                )
                ytd_count = self.aggregate_value(ir.Aggregate(function="count", entity="deal"), in_window)
                # Year to date a deal is paid once, in its own period: the count less the previous period's.
                count = (lambda m: sub(ytd_count(m), lag(ytd_count(m), m.run.year_first))) if self.ytd else ytd_count
                amount_fn = self.value(amount)
                return lambda m, b: (mul(number(amount_fn(m)), count(m)), number(amount_fn(m)))
            case ir.Mbo(amount=amount):
                amount_fn = self.per_period(amount)
                return lambda m, b: (mul(amount_fn(m), coalesce(m.mbo_score, zeros(m.n))), None)
        raise CompileError(f"payout rule {type(rule).__name__} is not supported")

    def tier_variable(self, on: str) -> tuple[Callable, bool, tuple]:
        """What bands are read on (in base units), whether bounds scale by quota, and its signature."""
        if on == "attainment":
            measure = self.attainment_measure()
            return measure, True, self.measure_signature(self.plan.attainment, None)
        return self.measure_value(on, None), False, self.measure_signature(on, None)

    def tiers(self, component: ir.Component, tiers: ir.Tiers) -> Callable:
        variable_fn, by_quota, variable_sig = self.tier_variable(tiers.on)
        bands = [
            (self.value(b.lower), self.value(b.upper) if b.upper is not None else None, self.value(b.rate))
            for b in tiers.bands
        ]
        same = self.measure_signature(component.base, None, component.deal_multipliers) == variable_sig
        graduated_mode = tiers.mode == ir.TierMode.GRADUATED

        def pay(m: Measures, base: Num):
            variable = number(variable_fn(m))
            quota = no_zero(m.quota)  # a zero quota is none: no band is reached (SQL: tier_variable)
            scaled = []
            for lower, upper, rate in bands:
                low, up = number(lower(m)), number(upper(m)) if upper is not None else None
                if by_quota:
                    low = mul(low, quota)
                    up = mul(up, quota) if up is not None else None
                scaled.append((low, up, number(rate(m))))
            reached = zeros(m.n)
            for low, _, rate in scaled:  # the highest band reached wins
                reached = case(compare(">=", variable, low).v, rate, reached)
            if not graduated_mode:
                return mul(base, reached), reached
            total = None
            for low, up, rate in scaled:
                top = least(variable, up) if up is not None else variable
                piece = mul(greatest(sub(top, low), zeros(m.n)), rate)
                total = piece if total is None else add(total, piece)
            if same:
                return total, reached
            effective = div(mul(base, total), variable)
            return case(compare("=", variable, zeros(m.n)).v, mul(base, reached), effective), reached

        return pay

    def curve(self, curve: ir.Curve) -> Callable:
        """`of` x f(`on`), f piecewise-linear through the points, flat outside them."""
        variable_fn, by_quota, _ = self.tier_variable(curve.on)
        of_fn = self.measure_value(curve.of, None)
        points = [(self.value(p.x), self.value(p.y)) for p in curve.points]

        def pay(m: Measures) -> Num:
            variable, of = number(variable_fn(m)), number(of_fn(m))
            xy = [(number(x(m)), number(y(m))) for x, y in points]
            quota = no_zero(m.quota)

            def at(x: Num) -> Num:
                return mul(x, quota) if by_quota else x

            result = mul(of, xy[0][1])  # below the first point
            for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False):
                rise = mul(mul(of, sub(variable, at(x0))), sub(y1, y0))
                run = mul(sub(x1, x0), quota) if by_quota else sub(x1, x0)
                value = add(mul(of, y0), div(rise, run))
                result = case(compare(">=", variable, at(x0)).v, value, result)
            last_x, last_y = xy[-1]
            return case(compare(">=", variable, at(last_x)).v, mul(of, last_y), result)

        return pay

    def cap(self, cap: ir.Cap, yearly: bool, cumulative: bool = False) -> Callable:
        """A cap's amount; on a year-to-date line (`cumulative`) a fixed cap per period is the year's to date,
        as a cap on quota or TI is (SQL: `cap_amount`)."""
        if cap.amount is not None and cumulative and not yearly:
            per_period = self.per_period(cap.amount)
            return lambda m: running_sum(number(per_period(m)), m.run.year_first)
        if cap.amount is not None:
            amount = self.value(cap.amount)
            return (lambda m: number(amount(m))) if yearly else self.per_period(cap.amount)
        if cap.multiple is None or cap.of is None:
            raise CompileError("a cap needs an amount or N x a measure")
        multiple = cap.multiple
        if yearly and cap.of == "target_incentive":
            return lambda m: mul(Num.const(multiple, m.n), m.annual_ti)
        of = self.measure_value(cap.of, None)
        return lambda m: mul(Num.const(multiple, m.n), number(of(m)))

    def deal_count(self, component: ir.Component) -> Callable | None:
        """How many credited deals the base measure's own filter counts (None: 0)."""
        measure = self.measures.get(component.base) if component.base else None
        if measure is None or not any(isinstance(n, ir.Aggregate) and n.entity == "deal" for n in _walk(measure)):
            return None
        return self.aggregate_value(ir.Aggregate(function="count", entity="deal"), measure.where)

    def contribution(self, component: ir.Component) -> RowFn | None:
        """A deal row's part of the base when the base adds up deal sums and counts (pay traces to deals)."""
        if not isinstance(component.payout, (ir.FlatRate, ir.Tiers)) or component.base is None:
            return None
        return self.linear(component.base, None, component.deal_multipliers)

    def linear(self, name: str, condition: ir.Expr | None, multipliers) -> RowFn | None:
        measure = self.measures.get(name)
        if measure is None:
            return None
        return self._linear(measure.expr, _and(condition, measure.where), multipliers)

    def _linear(self, node: ir.Expr, condition: ir.Expr | None, multipliers) -> RowFn | None:
        match node:
            case ir.Aggregate(function="sum" | "count" as function, entity="deal", field=field):
                # A deal contributes its value times its weight; a counted deal, its weight (1 unmultiplied).
                value = self.row(ir.FieldRef(entity="deal", field=field), "deal", credited=True) \
                    if function == "sum" else None
                test = self.row(condition, "deal") if condition is not None else None
                weight = self.weight(multipliers)

                def part(rows: Rows) -> Num:
                    if value is None:
                        amount = weight(rows) if weight is not None else Num.const(1, rows.n)
                    else:
                        amount = number(value(rows))
                        if weight is not None:
                            amount = mul(amount, weight(rows))
                    return amount if test is None else case(truth(test(rows)).v, amount, zeros(rows.n))

                return part
            case ir.NameRef(name=name) if name in self.measures:
                return self.linear(name, condition, multipliers)
            case ir.Binary(op=o, left=l, right=r) if o in "+-":
                left, right = self._linear(l, condition, multipliers), self._linear(r, condition, multipliers)
                if left is None or right is None:
                    return None
                combine = add if o == "+" else sub
                return lambda rows: combine(left(rows), right(rows))
        return None

    # ------------------------------------------------------------ running

    def run(self, tables: Mapping[str, pa.Table] | Inputs) -> pd.DataFrame:
        """The plan's payout lines (PAYOUT_COLUMNS) on these contract tables."""
        inputs = tables if isinstance(tables, Inputs) else Inputs(tables)
        return _Run(self, inputs).lines()[0]

    def run_with_deals(self, tables: Mapping[str, pa.Table] | Inputs) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The payout lines and the deals behind each commission line (DEAL_COLUMNS)."""
        inputs = tables if isinstance(tables, Inputs) else Inputs(tables)
        return _Run(self, inputs).lines(deals=True)


# ================================================================ one run of one plan


@dataclasses.dataclass
class Lines:
    """A block of payout lines over rep-period-like rows (NULL columns are None)."""

    component: str | list
    line_type: str
    rep: np.ndarray  # row numbers in reps
    period: np.ndarray  # 0-based plan period
    amount: Num
    uncapped: Num
    deal_count: np.ndarray
    base: Num | None = None
    rate: Num | None = None
    capped: np.ndarray | None = None
    gated: np.ndarray | None = None
    attainment: Num | None = None
    quota: Num | None = None
    target_incentive: Num | None = None
    proration: Num | None = None

    def __len__(self) -> int:
        return len(self.rep)

    def take(self, index: np.ndarray) -> Lines:
        def pick(x):
            if x is None or isinstance(x, str):
                return x
            if isinstance(x, list):
                return [x[i] for i in index]
            return x.take(index) if isinstance(x, Num) else x[index]

        return Lines(**{f.name: pick(getattr(self, f.name)) for f in dataclasses.fields(self)})


class Measures:
    """Every rep-period of the plan: quota, TI, MBO score and the aggregates components read."""

    def __init__(self, run: _Run):
        self.run = run
        self.n = run.rp_count
        self.cache: dict = {}
        self.aggregates: dict[AggregateKey, Num] = {}
        self._attainment: Num | None = None

    def aggregate(self, key: AggregateKey) -> Num:
        if key not in self.aggregates:
            self.aggregates[key] = self.run.aggregate(self.run.calculator.aggregates[key])
        return self.aggregates[key]

    def attainment(self) -> Num:
        if self._attainment is None:
            self._attainment = div(number(self.run.calculator.attainment_measure()(self)), self.quota)
        return self._attainment


class _Run:
    def __init__(self, calculator: Calculator, inputs: Inputs):
        self.calculator, self.inputs = calculator, inputs
        self.plan = calculator.plan
        self.periods = calculator.periods
        self.starts = np.array([days(p.start) for p in self.periods], dtype=np.int64)
        self.ends = np.array([days(p.end) for p in self.periods], dtype=np.int64)
        self.year_starts = np.array([days(p.year_start) for p in self.periods], dtype=np.int64)
        self.pay_periods = calculator.pay_periods
        self.pay_starts = np.array([days(p.start) for p in self.pay_periods], dtype=np.int64)
        self.pay_ends = np.array([days(p.end) for p in self.pay_periods], dtype=np.int64)

    # ------------------------------------------------------------ the whole plan

    def lines(self, deals: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The payout lines; with `deals`, also the deals behind each commission line (DEAL_COLUMNS)."""
        self.rep_periods()
        self.deal_rows()
        self.activity_rows()
        m = self.m = Measures(self)
        self.measure_columns(m)
        earned, traced = [], []
        for spec in self.calculator.components:
            block, base = self.component(spec, m)
            earned.append(block)
            if spec.contribution is not None:
                traced.append((spec, block, base))
        needs_shares = deals or self.plan.clawback is not None or self.paid_on_payment
        shares = self.deal_shares(traced) if needs_shares else []
        if self.paid_on_payment and traced:
            traced_names = {spec.component.name for spec, _, _ in traced}
            component_lines = [b for b in earned if b.component not in traced_names]
            component_lines += self.lines_from_shares(shares, "commission", self.paid_in, +1)
        else:
            component_lines = earned
        blocks = list(component_lines)
        if self.plan.draw is not None:
            blocks += self.draws(component_lines)
        if self.plan.clawback is not None and shares:
            blocks += self.lines_from_shares(shares, "clawback", self.clawed_back_in, -1)
        return self.frame(blocks), (self.deal_detail(shares) if deals else None)

    def deal_detail(self, shares) -> pd.DataFrame:
        """Each deal's credited base and exact share of the commission line it earned (and of the clawback line
        that takes it back)."""
        parts = []
        rep_ids = np.array(self.inputs.text("reps", "id").decode(), dtype=object)
        deal_ids = np.array(self.inputs.text("deals", "id").decode(), dtype=object) if self.inputs.rows("deals") \
            else np.zeros(0, dtype=object)
        labels = np.array([p.label for p in self.pay_periods], dtype=object)
        earned = labels[self.rp_period[self.deal_rp]]
        if self.paid_on_payment:  # the line that pays a deal is in the period it is paid in (none until then)
            paid, inside = self.paid_in
            paying = np.where(inside, labels[np.maximum(paid, 0)], None)
        else:
            paying = earned
        line_types = [("commission", np.ones(len(paying), dtype=bool), paying, +1)]
        if self.plan.clawback is not None:  # a clawback line takes back the shares of the deals cancelled in it
            cancelled, inside = self.clawed_back_in
            line_types.append(("clawback", inside, labels[np.maximum(cancelled, 0)], -1))
        for component, share, contributes, contribution in shares:
            for line_type, behind, line_period, sign in line_types:
                rows = np.flatnonzero(contributes & behind)
                parts.append(pa.table({
                    "plan": pa.array([self.plan.name] * len(rows), pa.string()),
                    "version": pa.array(np.full(len(rows), self.plan.version, dtype=np.int64)),
                    "component": pa.array([component] * len(rows), pa.string()),
                    "line_type": pa.array([line_type] * len(rows), pa.string()),
                    "rep_id": pa.array(rep_ids[self.rp_rep[self.deal_rp[rows]]], pa.string()),
                    "period": pa.array(earned[rows], pa.string()),
                    "line_period": pa.array(line_period[rows], pa.string()),
                    "deal_id": pa.array(deal_ids[self.deal_index[rows]], pa.string()),
                    "credited_base": _decimal_array(contribution.take(rows), 38, SCALE),
                    "share_of_line": _decimal_array(share.take(rows) if sign > 0 else neg(share.take(rows)), 38,
                                                    SCALE),
                }))
        if not parts:
            return pd.DataFrame(columns=list(DEAL_COLUMNS))
        frame = pa.concat_tables(parts).to_pandas()
        frame = frame.sort_values(["rep_id", "period", "component", "line_type", "deal_id"], kind="stable")
        return frame.reset_index(drop=True)

    def in_force(self, day: np.ndarray) -> np.ndarray:
        """Dates inside the plan's effective range (versions of a plan can split a period)."""
        return (day >= days(self.plan.effective_from)) & (day <= days(self.plan.effective_to))

    @property
    def paid_on_payment(self) -> bool:
        return self.plan.paid_on == ir.PayoutTiming.PAYMENT

    # ------------------------------------------------------------ roster and calendar

    def in_plan_intervals(self) -> None:
        """The days each rep is in the plan by role (iv_rep, iv_first, iv_last: rep row and day numbers).

        A rep without rep_assignments rows: one interval, the plan's whole range,
        if the reps row is eligible. A rep with rows: one per assignment whose
        role, segment and region (other fields: the reps row) are eligible,
        clipped to the range; days no assignment covers are in no plan.
        Employment is applied to active days, not here. Sorted by rep, then
        first day; a rep's intervals do not overlap (the contract's RD021).
        """
        plan = self.plan
        intervals = roster_intervals(self.inputs, self.calculator.eligibility, plan.effective_from, plan.effective_to)
        self.iv_rep, self.iv_first, self.iv_last, _, self.iv_ti, _ = intervals

    def in_plan_on(self, rep: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Whether each (rep row, day number) falls in one of the rep's in-plan intervals."""
        return _covering(self.iv_rep, self.iv_first, self.iv_last, rep, day) >= 0

    def rep_periods(self) -> None:
        plan, inputs = self.plan, self.inputs
        n_reps = inputs.rows("reps")
        self.n_reps = n_reps
        self.in_plan_intervals()
        hire = number(inputs.column("reps", "hire_date"))
        term = number(inputs.column("reps", "termination_date"))
        # Days in each (interval, period): the interval clipped to the period and to employment.
        rep_of = self.iv_rep
        start = np.maximum(np.maximum(hire.v[rep_of][:, None], self.starts[None, :]), self.iv_first[:, None])
        end = np.minimum(self.ends[None, :], self.iv_last[:, None])
        end = np.where(term.null[rep_of][:, None], end, np.minimum(end, term.v[rep_of][:, None]))
        interval_days = np.where(hire.null[rep_of][:, None], 0, np.maximum(end - start + 1, 0))
        active = np.zeros((n_reps, len(self.periods)), dtype=np.int64)
        np.add.at(active, rep_of, interval_days)  # a rep's intervals do not overlap: their days add up
        keep = active > 0
        rep, period = np.nonzero(keep)  # ordered by rep, then period: the windows' order
        self.rp_rep, self.rp_period, self.rp_count = rep, period, len(rep)
        self.rp_lookup = np.full((n_reps, len(self.periods)), -1, dtype=np.int64)
        self.rp_lookup[rep, period] = np.arange(len(rep))
        active_days = active[rep, period]
        period_days = (self.ends - self.starts + 1)[period]
        counted = Num.of(active_days if plan.prorate else period_days, 0)
        length = Num.of(period_days, 0)
        # The quota row of each rep-period (rep and period label): the quotas table or the quota plan.
        if self.calculator.quota_source is not None:
            parts = [q.amounts(inputs) for q in self.calculator.quota_source]
            q_rep = np.concatenate([p[0] for p in parts])
            q_period = _label_index(_strs([label for p in parts for label in p[1]]), [p.label for p in self.periods])
            q_amount = _concat_nums([p[2] for p in parts])
        elif inputs.rows("quotas"):
            q_rep = inputs.index_of("reps", "id", inputs.text("quotas", "rep_id"))
            q_period = _label_index(inputs.text("quotas", "period"), [p.label for p in self.periods])
            q_amount = number(inputs.column("quotas", "amount"))
        else:
            q_rep = q_period = np.zeros(0, dtype=np.int64)
            q_amount = Num.nulls(0)
        quota_rows = np.full((n_reps, len(self.periods)), -1, dtype=np.int64)
        ok = (q_rep >= 0) & (q_period >= 0)
        quota_rows[q_rep[ok], q_period[ok]] = np.flatnonzero(ok)
        picked = quota_rows[rep, period]
        if len(q_rep):
            amount = q_amount.take(np.maximum(picked, 0))
            amount = Num(np.where(picked < 0, 0, amount.v), amount.scale, amount.null | (picked < 0))
        else:
            amount = Num.nulls(len(rep))
        # TI x days over the rep's intervals (NULL when no interval has a TI, as SQL's SUM): the annual TI of
        # a period is their days-weighted TI, the TI itself when there is one.
        ti = self.iv_ti
        ti_days = np.zeros((n_reps, len(self.periods)), dtype=object)
        np.add.at(ti_days, rep_of, _wide(ti.v)[:, None] * interval_days)
        has_ti = np.zeros(n_reps, dtype=bool)
        has_ti[rep_of[~ti.null]] = True
        weighted = Num(_narrow(ti_days[rep, period]), ti.scale, ~has_ti[rep])
        weighted = mul(weighted, self.ti_rates(rep, period))  # in the plan currency
        self.rp_annual_ti = div(weighted, Num.of(active_days, 0))
        self.rp_quota = div(mul(amount, counted), length)
        # Prorated: TI x active days / period days; else the TI itself (TI x active days / active days).
        ti_days_per = (period_days if plan.prorate else active_days) * plan.period.per_year
        self.rp_ti = div(weighted, Num.of(ti_days_per, 0))
        self.rp_proration = div(counted, length)
        self.rp_counted, self.rp_length = counted, length  # what a fixed amount per period is prorated by
        self.rp_year = self.year_starts[period]
        self.year_first = _window_starts([rep, self.rp_year])
        self.rep_first = _window_starts([rep])

    def ti_rates(self, rep: np.ndarray, period: np.ndarray) -> Num:
        """Per rep-period, the rate converting a TI in the rep's pay currency into the plan currency: the one
        in force on the period's last day (1 in the plan currency)."""
        currency = self.inputs.text("reps", "currency").take(rep)
        n = len(rep)
        home = currency.null | compare("=", currency, Str.const(self.plan.currency, n)).v
        rate = _as_of_rates(self.inputs, self.plan.currency, currency, Num.of(self.ends[period], 0))
        return case(home, Num.const(1, n), rate)

    def measure_columns(self, m: Measures) -> None:
        # Year to date, a period of the year so far without a quota (or a zero one) or TI: the sums skip it, so
        # an amount made of them has none (SQL: measure_columns).
        m.quota_gaps = m.ti_gaps = np.zeros(self.rp_count, dtype=bool)
        if self.calculator.ytd:
            m.quota = running_sum(self.rp_quota, self.year_first)
            m.target_incentive = running_sum(self.rp_ti, self.year_first)
            for name, value in (("quota_gaps", no_zero(self.rp_quota)), ("ti_gaps", self.rp_ti)):
                gaps = running_sum(Num.of(value.null.astype(np.int64), 0), self.year_first)
                setattr(m, name, np.asarray(gaps.v, dtype=np.int64) > 0)
        else:
            m.quota, m.target_incentive = self.rp_quota, self.rp_ti
        m.annual_ti, m.proration = self.rp_annual_ti, self.rp_proration
        inputs = self.inputs
        score = Num.nulls(self.rp_count)
        if inputs.rows("mbo_scores"):
            s_rep = inputs.index_of("reps", "id", inputs.text("mbo_scores", "rep_id"))
            s_period = _label_index(inputs.text("mbo_scores", "period"), [p.label for p in self.periods])
            ok = (s_rep >= 0) & (s_period >= 0)
            rows = np.full((self.n_reps, len(self.periods)), -1, dtype=np.int64)
            rows[s_rep[ok], s_period[ok]] = np.flatnonzero(ok)
            picked = rows[self.rp_rep, self.rp_period]
            values = number(inputs.column("mbo_scores", "score")).take(np.maximum(picked, 0))
            score = Num(np.where(picked < 0, 0, values.v), values.scale, values.null | (picked < 0))
        m.mbo_score = score

    # ------------------------------------------------------------ credit and deal rows

    def credits(self) -> tuple[np.ndarray, np.ndarray, Num | None]:
        """(rep row, deal row, share) for every credit: owner, splits, roll-up, overlay (share: splits only)."""
        crediting, inputs = self.plan.crediting, self.inputs
        n_deals = inputs.rows("deals")
        owner_rep = inputs.index_of("reps", "id", inputs.text("deals", "owner_rep_id")) if n_deals else \
            np.zeros(0, dtype=np.int64)
        deal_all = np.arange(n_deals)
        # Shares matter with split credit, and when a rep credited twice for a deal (owner and overlay, say)
        # gets the shares added, as in SQL's credits table; else None (every share is 1).
        multiple = sum([crediting.owner or crediting.splits, crediting.rollup, crediting.overlay]) > 1
        split_aware = crediting.follows_splits  # a roll-up follows the deal's split credit (SQL too)
        direct_share = Num.const(1, n_deals) if split_aware or multiple else None
        direct_rep, direct_deal = owner_rep, deal_all
        owner_only = (owner_rep, deal_all, direct_share)
        if split_aware and inputs.rows("deal_splits"):
            split_deal = inputs.index_of("deals", "id", inputs.text("deal_splits", "deal_id"))
            split_rep = inputs.index_of("reps", "id", inputs.text("deal_splits", "rep_id"))
            percent = number(inputs.column("deal_splits", "percent"))
            is_split = np.zeros(n_deals, dtype=bool)
            is_split[split_deal[split_deal >= 0]] = True
            keep = ~is_split
            direct_rep = np.r_[owner_rep[keep], split_rep]
            direct_deal = np.r_[deal_all[keep], split_deal]
            direct_share = _concat_nums([Num.const(1, int(keep.sum())), percent])
        sources = []
        if crediting.owner or crediting.splits:
            sources.append((direct_rep, direct_deal, direct_share) if crediting.splits else owner_only)
        if crediting.rollup:
            sources.append(self.rollup(direct_rep, direct_deal, direct_share))
        if crediting.overlay:
            sources.append(self.overlay())
        reps = np.concatenate([s[0] for s in sources])
        deals = np.concatenate([s[1] for s in sources])
        shares = _concat_nums([s[2] for s in sources]) if split_aware or multiple else None
        keep = (reps >= 0) & (deals >= 0)  # a rep or deal that does not exist joins nothing
        if split_aware:  # a 0 % split row credits its rep with nothing: not a deal to count either (SQL too)
            keep &= ~shares.null & (shares.v != 0)
        reps, deals = reps[keep], deals[keep]
        shares = shares.take(np.flatnonzero(keep)) if shares is not None else None
        if len(sources) > 1 or crediting.rollup:  # a rep credited twice for a deal (a manager of two of its split
            # reps too): one row, shares added (SQL: credits_table_needed)
            key = reps * max(n_deals, 1) + deals
            order = np.argsort(key, kind="stable")
            dense = _dense(key[order])
            groups = Groups(dense, int(dense[-1]) + 1 if len(dense) else 0)
            shares = groups.sum(shares.take(order)) if shares is not None else None
            reps, deals = reps[order][groups.starts], deals[order][groups.starts]
        return reps, deals, shares

    def rollup(self, reps: np.ndarray, deals: np.ndarray, shares: Num | None):
        """The managers above each credited rep on the deal's close date (up to the depth), with the rep's
        share: a rep's manager on a day is their assignment's (rep_assignments), else the reps row's."""
        inputs, plan = self.inputs, self.plan
        iv_rep, iv_first, iv_last, _, _, iv_manager = roster_intervals(inputs, None, plan.effective_from,
                                                                       plan.effective_to)
        close = number(inputs.column("deals", "close_date"))
        day = np.where(close.null, -DAY_SPAN, close.v)[deals]  # an unknown date: no day holds it
        depth = self.plan.crediting.rollup_depth or 64
        out_reps, out_deals, out_shares = [], [], []
        current, rows = reps, np.arange(len(reps))
        for _ in range(min(depth, 64)):
            valid = current >= 0
            current, rows = current[valid], rows[valid]
            link = _covering(iv_rep, iv_first, iv_last, current, day[rows])
            above = np.full(len(current), -1, dtype=np.int64)
            above[link >= 0] = iv_manager[link[link >= 0]]
            found = above >= 0
            current, rows = above[found], rows[found]
            if not len(current):
                break
            out_reps.append(current)
            out_deals.append(deals[rows])
            out_shares.append(shares.take(rows) if shares is not None else None)
        if not out_reps:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), Num.const(1, 0)
        merged = _concat_nums(out_shares) if shares is not None else None
        return np.concatenate(out_reps), np.concatenate(out_deals), merged

    def overlay(self):
        """Overlay reps of the territory holding the deal's account on its close date."""
        inputs = self.inputs
        rules = self.calculator.rules
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), Num.const(1, 0)
        n_deals = inputs.rows("deals")
        assigned = pd.DataFrame(rules.assignments(inputs))
        holders = pd.DataFrame(
            [h for h in rules.holders() if h[2] == "overlay"], columns=["territory", "rep", "role", "h_start", "h_end"]
        )
        if not n_deals or holders.empty or assigned.empty:
            return empty
        # Which rep covers which account when: every (assignment, overlay holder) pair, kept apart as in SQL.
        cover = assigned[assigned["territory"].notna()].merge(holders, on="territory")
        if cover.empty:
            return empty
        cover_rep = inputs.index_of("reps", "id", _strs(cover["rep"].tolist()))
        first = np.maximum([days(d) for d in cover["start"]], [days(d) for d in cover["h_start"]])
        last = np.minimum([days(d) for d in cover["end"]], [days(d) for d in cover["h_end"]])
        coverage = pd.DataFrame({"account": cover["account"].to_numpy(np.int64), "rep": cover_rep,
                                 "first": first, "last": last})
        account = inputs.index_of("accounts", "id", inputs.text("deals", "account_id"))
        close = number(inputs.column("deals", "close_date"))
        deals = pd.DataFrame({"deal": np.arange(n_deals), "account": account, "close": close.v})
        deals = deals[(account >= 0) & ~close.null]
        joined = deals.merge(coverage, on="account")
        joined = joined[(joined["close"] >= joined["first"]) & (joined["close"] <= joined["last"])]
        reps = joined["rep"].to_numpy(np.int64)
        return reps, joined["deal"].to_numpy(np.int64), Num.const(1, len(reps))

    def amount_fx(self, field: str = "amount") -> Num:
        """Each deal's amount (or another money field) in the plan currency, at the rate in force on its fx day
        (NULL: no rate)."""
        plan, inputs = self.plan, self.inputs
        key = ("amount_fx", field, plan.currency, plan.fx_at, tuple(p.label for p in self.periods))
        if key in inputs.cache:
            return inputs.cache[key]
        n = inputs.rows("deals")
        amount = number(inputs.column("deals", field))
        currency = inputs.text("deals", "currency")
        close = number(inputs.column("deals", "close_date"))
        if plan.fx_at == ir.FxDate.PERIOD_END:  # the end of the plan period the deal closes in
            index = np.searchsorted(self.starts, close.v, side="right") - 1
            inside = ~close.null & (index >= 0) & (close.v <= self.ends[np.maximum(index, 0)])
            fx_day = Num(np.where(inside, self.ends[np.maximum(index, 0)], 0), 0, ~inside)
        else:
            fx_day = close
        rate = _as_of_rates(inputs, plan.currency, currency, fx_day)
        home = compare("=", currency, Str.const(plan.currency, n)).v
        converted = case(home, amount, mul(amount, rate))
        inputs.cache[key] = converted
        return converted

    def deal_rows(self) -> None:
        """Each credited deal in each rep-period it counts in (close date in the period, or the year so far)."""
        inputs = self.inputs
        reps, deals, shares = self.credits()
        counted = self.calculator.deal_filter
        if counted is not True:
            if counted is False:
                keep = np.zeros(len(deals), dtype=bool)
            else:
                keep = counted(Rows(inputs, "deals")).v[deals]
            reps, deals = reps[keep], deals[keep]
            shares = shares.take(np.flatnonzero(keep)) if shares is not None else None
        close = number(inputs.column("deals", "close_date")) if inputs.rows("deals") else Num.nulls(0)
        day, unknown = close.v[deals], close.null[deals]
        unknown = unknown | ~self.in_force(day)  # a deal counts in the plan version in force on its date
        unknown = unknown | ~self.in_plan_on(reps, day)  # and only on a day its rep is in the plan by role
        picked_credit, picked_rp = [], []
        window_start = self.year_starts if self.calculator.ytd else self.starts
        for period in range(len(self.periods)):
            inside = ~unknown & (day >= window_start[period]) & (day <= self.ends[period])
            rp = self.rp_lookup[reps, period]
            hit = np.flatnonzero(inside & (rp >= 0))
            picked_credit.append(hit)
            picked_rp.append(rp[hit])
        credit = np.concatenate(picked_credit) if picked_credit else np.zeros(0, dtype=np.int64)
        rp = np.concatenate(picked_rp) if picked_rp else np.zeros(0, dtype=np.int64)
        order = np.argsort(rp, kind="stable")
        credit, rp = credit[order], rp[order]
        deal_index = deals[credit]
        amounts = {}
        for field in ("amount", *sorted(self.calculator.converted)):
            in_plan_currency = self.amount_fx(field).take(deal_index)
            amounts[field] = (in_plan_currency,
                              mul(in_plan_currency, shares.take(credit)) if shares is not None else in_plan_currency)
        self.deal_index, self.deal_rp = deal_index, rp
        self.deal_rows_ctx = Rows(inputs, "deals", deal_index, amounts)
        self.deal_groups = Groups(rp, self.rp_count)

    def activity_rows(self) -> None:
        inputs = self.inputs
        n = inputs.rows("activities")
        if not n:
            self.activity_rows_ctx = Rows(inputs, "activities", np.zeros(0, dtype=np.int64))
            self.activity_groups = Groups(np.zeros(0, dtype=np.int64), self.rp_count)
            return
        rep = inputs.index_of("reps", "id", inputs.text("activities", "rep_id"))
        date = number(inputs.column("activities", "date"))
        window_start = self.year_starts if self.calculator.ytd else self.starts
        picked_row, picked_rp = [], []
        valid = (rep >= 0) & ~date.null & self.in_force(date.v) & self.in_plan_on(rep, date.v)
        for period in range(len(self.periods)):
            inside = valid & (date.v >= window_start[period]) & (date.v <= self.ends[period])
            rp = self.rp_lookup[np.maximum(rep, 0), period]
            hit = np.flatnonzero(inside & (rp >= 0))
            picked_row.append(hit)
            picked_rp.append(rp[hit])
        rows, rp = np.concatenate(picked_row), np.concatenate(picked_rp)
        order = np.argsort(rp, kind="stable")
        self.activity_rows_ctx = Rows(inputs, "activities", rows[order])
        self.activity_groups = Groups(rp[order], self.rp_count)

    # ------------------------------------------------------------ aggregates

    def aggregate(self, spec: AggregateSpec) -> Num:
        key = spec.key
        rows, groups = (
            (self.deal_rows_ctx, self.deal_groups) if key.entity == "deal" else
            (self.activity_rows_ctx, self.activity_groups)
        )
        n = rows.n
        matched = truth(spec.condition(rows)).v if spec.condition is not None else np.ones(n, dtype=bool)
        weight = spec.weight(rows) if spec.weight is not None else None
        absent = ~groups.present
        if key.function == "count":
            counted = case(matched, weight, zeros(n)) if weight is not None else Num.of(matched.astype(np.int64), 0)
            result = groups.sum(counted)
        elif key.function == "count_distinct":
            counts = groups.count_distinct(spec.value(rows), matched)
            result = Num.of(counts, 0)
        else:
            value = number(spec.value(rows))
            if key.function == "sum" and weight is not None:
                value = mul(value, weight)
            value = Num(np.where(matched, value.v, 0), value.scale, value.null | ~matched)
            if key.function == "sum":
                result = groups.sum(value)
            elif key.function in ("min", "max"):
                result = groups.extreme(value, smallest=key.function == "min")
            else:
                raise CompileError(f"aggregate {key.function} is not supported")
        # A rep-period without rows has no aggregate row at all (NULL).
        return Num(np.where(absent, 0, result.v), result.scale, result.null | absent)

    # ------------------------------------------------------------ components

    def component(self, spec: ComponentSpec, m: Measures) -> tuple[Lines, Num | None]:
        base = number(spec.base(m)) if spec.base is not None else None
        raw, rate = spec.payout(m, base)
        for when, factor in spec.measure_multipliers:
            raw = case(truth(when(m)).v, mul(raw, number(factor(m))), raw)
        if spec.gates:
            gated = ~logical_and([truth(g(m)) for g in spec.gates]).v
        else:
            gated = np.zeros(m.n, dtype=bool)
        known = coalesce(raw, zeros(m.n))
        payout = spec.component.payout
        inputs = payout_inputs(payout)  # no TI or quota where the amount is made of it: no amount (SQL: component)
        lost = np.zeros(m.n, dtype=bool)
        if "quota" in inputs:
            lost |= no_zero(m.quota).null | m.quota_gaps
        if "target_incentive" in inputs:
            lost |= m.target_incentive.null | m.ti_gaps
        if isinstance(payout, ir.FlatRate):  # a rate on no base pays nothing, known or not
            lost &= ~no_zero(base).null
        elif not isinstance(payout, ir.Curve):
            lost &= raw.null
        if lost.any():
            known = case(lost, Num.nulls(m.n), known)
        uncapped = case(gated, zeros(m.n), known)
        after = uncapped
        if spec.period_caps:  # nothing to cap, whatever the cap (a multiple of a measure with no value, RP418)
            after = case(compare("=", uncapped, zeros(m.n)).v, zeros(m.n),
                         least(uncapped, *[cap(m) for cap in spec.period_caps]))
        year_capped = bool(spec.year_caps)
        value = after
        if year_capped:
            year_cap = least(*[cap(m) for cap in spec.year_caps])
            if not spec.cumulative:
                value = running_sum(after, self.year_first)
            # paid to date: under the cap, never less than paid under an earlier, higher cap (SQL: component_lines)
            capped = least(value, year_cap)
            value = case(capped.null, Num.nulls(m.n), least(value, _running_max(capped, self.year_first)))
        if spec.cumulative or year_capped:
            previous = lag(value, self.year_first)
            if spec.cumulative:
                amount = sub(cents(value), cents(previous))
                # rounded as the amount is: without a cap the two are equal to the cent
                uncapped_line = sub(cents(uncapped), cents(lag(uncapped, self.year_first)))
            else:
                amount = cents(sub(value, previous))
                uncapped_line = cents(uncapped)
        else:
            amount = cents(value)
            uncapped_line = cents(uncapped)
        attainment = m.attainment() if self.plan.attainment is not None else None
        deal_count = (
            np.asarray(spec.deal_count(m).v, dtype=np.int64) if spec.deal_count is not None
            else np.zeros(m.n, dtype=np.int64)
        )
        x, y, _ = _common(amount, uncapped_line)
        block = Lines(
            component=spec.component.name,
            line_type=spec.line_type,
            rep=self.rp_rep,
            period=self.rp_period,
            amount=amount,
            uncapped=uncapped_line,
            deal_count=deal_count,
            base=cents(base) if base is not None else None,
            rate=rate,
            capped=np.asarray(x < y, dtype=bool),
            gated=gated,
            attainment=attainment,
            # not the sums of a year with gaps, where the amount is made of them
            quota=cents(case(m.quota_gaps & ("quota" in inputs), Num.nulls(m.n), m.quota)),
            target_incentive=cents(case(m.ti_gaps & ("target_incentive" in inputs), Num.nulls(m.n),
                                        m.target_incentive)),
            proration=m.proration,
        )
        return block, base

    # ------------------------------------------------------------ deals behind the pay

    def deal_shares(self, traced) -> list[tuple[str, Num]]:
        """Per traced component, each deal row's exact share of its line: line x contribution / base; year to
        date, the change in its part of the commission paid to date (SQL: `deal_shares`)."""
        shares = []
        rows = self.deal_rows_ctx

        def part(paid: Num, base: Num, contribution: Num) -> Num:
            return coalesce(div(mul(paid.take(self.deal_rp), contribution), base.take(self.deal_rp)), zeros(rows.n))

        for spec, block, base in traced:
            contribution = spec.contribution(rows)
            if spec.cumulative:
                paid = running_sum(block.amount, self.year_first)
                before = part(sub(paid, block.amount), lag(base, self.year_first), contribution)
                counted_before = self.period_of(self.deal_day("close_date"))[0] < self.rp_period[self.deal_rp]
                share = sub(part(paid, base, contribution), case(counted_before, before, zeros(rows.n)))
            else:
                share = part(block.amount, base, contribution)
            # Only deals that contribute to the base (not zero, not unknown) have a share.
            x, _, _ = _common(contribution, zeros(rows.n))
            contributes = np.asarray(x != 0, dtype=bool) & ~contribution.null
            shares.append((spec.component.name, share, contributes, contribution))
        return shares

    def period_of(self, day: Num) -> tuple[np.ndarray, np.ndarray]:
        """Per deal row: the index of the pay period (the plan's or its run-off's) `day` falls in, and whether
        it falls in one."""
        target = np.searchsorted(self.pay_starts, day.v, side="right") - 1
        return target, ~day.null & (target >= 0) & (day.v <= self.pay_ends[np.maximum(target, 0)])

    def deal_day(self, field: str) -> Num:
        """A date field of the deals, per deal row."""
        return number(self.inputs.column("deals", field)).take(self.deal_index)

    def line_period_of(self, day: Num) -> tuple[np.ndarray, np.ndarray]:
        """Per deal row: the period that pays, or takes back, its share of its line on `day`, and whether there
        is one: the period `day` falls in, or, for a day before the line's own period (year to date a deal counts
        in every later period of its year), that one; nothing is paid or taken back before it is earned
        (SQL: `line_period_of`)."""
        earned = self.rp_period[self.deal_rp]
        target, inside = self.period_of(day)
        later = inside & (target >= earned)
        before = ~day.null & (day.v < self.pay_starts[earned])
        return np.where(later, target, earned), later | before

    @functools.cached_property
    def payable_day(self) -> Num:
        """When a plan paid on payment pays each deal row: its paid date, or its close date if it was paid before
        it closed (commission is earned on booking); NULL while unpaid."""
        return greatest(self.deal_day("paid_date"), self.deal_day("close_date"))

    @functools.cached_property
    def paid_in(self) -> tuple[np.ndarray, np.ndarray]:
        """Where a plan paid on payment pays each deal row's share (lines and trace): `line_period_of` its
        payable day."""
        return self.line_period_of(self.payable_day)

    @functools.cached_property
    def clawed_back_in(self) -> tuple[np.ndarray, np.ndarray]:
        """The period whose clawback line takes back each deal row's share: `line_period_of` its cancel date
        (paid on payment, of the later of that and its payable day: only a paid share is taken back, and not
        before it was paid); inside only when cancelled within the clawback's window (SQL: `taken_back_in`)."""
        cancel, close = self.deal_day("cancel_date"), self.deal_day("close_date")
        day = greatest(cancel, self.payable_day) if self.plan.paid_on == ir.PayoutTiming.PAYMENT else cancel
        target, inside = self.line_period_of(day)
        return target, inside & ~close.null & ~cancel.null & (cancel.v - close.v <= self.plan.clawback.within_days)

    def lines_from_shares(self, shares, line_type: str, periods: tuple[np.ndarray, np.ndarray],
                          sign: int) -> list[Lines]:
        """Deal shares summed by rep, the period each deal row falls in (`periods`: `paid_in`, `clawed_back_in`),
        and component."""
        target, inside = periods
        n_periods = len(self.pay_periods)
        blocks = []
        for component, share, contributes, _ in shares:
            rows = np.flatnonzero(inside & contributes)
            if not len(rows):
                continue
            rep = self.rp_rep[self.deal_rp[rows]]
            period = target[rows]
            # Per earned line (rep, earned period) and pay period: what it pays there, rounded cumulatively over
            # the line's pay periods, round(to date) - round(before) (SQL: `lines_from_shares`).
            earned = self.rp_period[self.deal_rp[rows]]
            line_order = np.lexsort((period, earned, rep))
            line_keys = (rep * n_periods + earned) * n_periods + period
            line_dense = _dense(line_keys[line_order])
            by_line = Groups(line_dense, int(line_dense[-1]) + 1)
            taken = by_line.sum(share.take(rows[line_order]))
            firsts = line_order[by_line.starts]
            to_date = running_sum(taken, _window_starts([rep[firsts], earned[firsts]]))
            paid_cents = sub(cents(to_date), cents(sub(to_date, taken)))
            key = rep * n_periods + period
            line_key = key[firsts]
            by_period = np.argsort(line_key, kind="stable")
            period_dense = _dense(line_key[by_period])
            total = Groups(period_dense, int(period_dense[-1]) + 1).sum(paid_cents.take(by_period))
            amount = cents(neg(total) if sign < 0 else total)
            order = np.argsort(key, kind="stable")
            dense = _dense(key[order])
            groups = Groups(dense, int(dense[-1]) + 1)
            deals = self.deal_index[rows[order]]
            counts = pd.DataFrame({"g": dense, "d": deals}).drop_duplicates()
            deal_count = np.bincount(counts["g"].to_numpy(), minlength=groups.n).astype(np.int64)
            first = order[groups.starts]
            blocks.append(Lines(component=component, line_type=line_type, rep=rep[first], period=period[first],
                                amount=amount, uncapped=amount, deal_count=deal_count))
        return blocks

    # ------------------------------------------------------------ draws

    def draws(self, component_lines: list[Lines]) -> list[Lines]:
        """Top the period's pay up to the draw; recover what it advanced from later pay (recoverable)."""
        draw = self.plan.draw
        n = self.rp_count
        earned = zeros(n)
        for block in component_lines:
            if not len(block):
                continue
            # Lines of the run-off (after the plan's periods) neither draw nor recover.
            own = block.period < len(self.periods)
            rp = np.full(len(block), -1, dtype=np.int64)
            rp[own] = self.rp_lookup[block.rep[own], block.period[own]]
            hit = np.flatnonzero(rp >= 0)
            if not len(hit):
                continue
            keys = rp[hit]
            order = np.argsort(keys, kind="stable")
            groups = Groups(keys[order], n)
            summed = groups.sum(block.amount.take(hit[order]))
            earned = add(earned, coalesce(summed, zeros(n)))
        nth = np.arange(n) - np.flatnonzero(self.rep_first)[_partition_ids(self.rep_first)] + 1 if n else \
            np.zeros(0, dtype=np.int64)
        # The guarantee in cents (pay is): a top-up is then exact cents, so what is recovered is what was advanced.
        amount = cents(self.calculator.draw_amount(self.m))
        in_draw = np.ones(n, dtype=bool) if draw.periods is None else nth <= draw.periods
        # In the draw's periods pay is topped up to the guarantee; after them nothing is topped up (a negative
        # true-up stays negative) and only positive pay recovers an outstanding balance.
        shortfall = case(in_draw, sub(amount, earned), least(neg(earned), zeros(n)))
        top_up = case(in_draw, greatest(shortfall, zeros(n)), zeros(n))
        if draw.recoverable:
            running = running_sum(shortfall, self.rep_first)
            lowest = _running_min(running, self.rep_first)
            balance = sub(running, least(lowest, zeros(n)))
            recovery = sub(sub(balance, lag(balance, self.rep_first)), top_up)
        else:
            recovery = zeros(n)
        blocks = []
        # A top-up's guarantee is prorated as its rep-period's fixed amounts are; a recovery is of earlier pay.
        for line_type, value, proration in (("draw", top_up, self.m.proration), ("draw_recovery", recovery, None)):
            x, _, _ = _common(value, zeros(n))
            keep = np.flatnonzero(np.asarray(x != 0, dtype=bool) & ~value.null)
            amount_line = cents(value.take(keep))
            blocks.append(Lines(component="Draw", line_type=line_type, rep=self.rp_rep[keep],
                                period=self.rp_period[keep], amount=amount_line, uncapped=amount_line,
                                deal_count=np.zeros(len(keep), dtype=np.int64),
                                proration=proration.take(keep) if proration is not None else None))
        return blocks

    # ------------------------------------------------------------ output

    def frame(self, blocks: list[Lines]) -> pd.DataFrame:
        plan = self.plan
        blocks = [b for b in blocks if len(b)]
        total = sum(len(b) for b in blocks)
        rep_ids = np.array(self.inputs.text("reps", "id").decode(), dtype=object)
        labels = np.array([p.label for p in self.pay_periods], dtype=object)

        def column(name: str, precision: int, scale: int) -> pa.Array:
            parts = []
            for b in blocks:
                value = getattr(b, name)
                parts.append(value if value is not None else Num.nulls(len(b)))
            return _decimal_array(_concat_nums(parts) if parts else Num.nulls(0), precision, scale)

        def flags(name: str) -> np.ndarray:
            parts = [getattr(b, name) if getattr(b, name) is not None else np.zeros(len(b), dtype=bool)
                     for b in blocks]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

        def texts(name: str) -> list:
            out = []
            for b in blocks:
                value = getattr(b, name)
                out.extend([value] * len(b) if isinstance(value, str) else value)
            return out

        rep = np.concatenate([b.rep for b in blocks]) if blocks else np.zeros(0, dtype=np.int64)
        period = np.concatenate([b.period for b in blocks]) if blocks else np.zeros(0, dtype=np.int64)
        deal_count = np.concatenate([b.deal_count for b in blocks]) if blocks else np.zeros(0, dtype=np.int64)
        table = pa.table(
            {
                "plan": pa.array([plan.name] * total, pa.string()),
                "version": pa.array(np.full(total, plan.version, dtype=np.int32)),
                "component": pa.array(texts("component"), pa.string()),
                "line_type": pa.array(texts("line_type"), pa.string()),
                "rep_id": pa.array(rep_ids[rep], pa.string()),
                "period": pa.array(labels[period], pa.string()),
                "currency": pa.array([plan.currency] * total, pa.string()),
                "base": column("base", 18, 2),
                "rate": column("rate", 38, 10),
                "amount": column("amount", 18, 2),
                "uncapped": column("uncapped", 18, 2),
                "capped": pa.array(flags("capped")),
                "gated": pa.array(flags("gated")),
                "attainment": column("attainment", 38, 10),
                "quota": column("quota", 18, 2),
                "target_incentive": column("target_incentive", 18, 2),
                "proration": column("proration", 38, 10),
                "deal_count": pa.array(deal_count.astype(np.int64)),
            }
        )
        assert tuple(table.column_names) == PAYOUT_COLUMNS
        return table.to_pandas()


def _running_max(value: Num, first: np.ndarray) -> Num:
    """MAX(value) OVER (PARTITION ... ORDER BY ...): NULLs skipped (their own rows' results are not used)."""
    lowest = -(10 ** 40) if value.wide else np.iinfo(np.int64).min
    v = _accumulated(np.where(value.null, lowest, _wide(value.v) if value.wide else value.v), first, np.maximum)
    return Num(np.where(v == lowest, 0, v), value.scale, v == lowest)


def _running_min(value: Num, first: np.ndarray) -> Num:
    """MIN(value) OVER (PARTITION ... ORDER BY ...), for values without NULLs."""
    v = _accumulated(_wide(value.v) if value.wide else value.v, first, np.minimum)
    return Num(v, value.scale, value.null.copy())


def _accumulated(values: np.ndarray, first: np.ndarray, function: np.ufunc) -> np.ndarray:
    """`function.accumulate` within each partition (the rows from one `first` to the next)."""
    out = values.copy()
    starts = list(np.flatnonzero(first))
    for start, end in zip(starts, starts[1:] + [len(values)] if starts else [], strict=True):
        out[start:end] = function.accumulate(values[start:end])
    return out


def _dense(sorted_keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... numbering of the runs of equal sorted keys."""
    if not len(sorted_keys):
        return sorted_keys.astype(np.int64)
    return np.cumsum(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) - 1


def _strs(values: Sequence[str | None]) -> Str:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return Str(codes.astype(np.int32), list(uniques))


def _label_index(values: Str, labels: list[str]) -> np.ndarray:
    position = {label: i for i, label in enumerate(labels)}
    mapping = np.array([position.get(u, -1) for u in values.uniques] + [-1], dtype=np.int64)
    return mapping[values.codes]


def _concat_nums(parts: Sequence[Num]) -> Num:
    if not parts:
        return Num.nulls(0)
    scale = max(p.scale for p in parts)
    wide = any(p.wide or p.bound() * 10 ** (scale - p.scale) >= LIMIT for p in parts)
    values = [p.at(scale, wide) for p in parts]
    return Num(np.concatenate(values) if len(values) > 1 else values[0], scale,
               np.concatenate([p.null for p in parts]))


def _decimal_array(value: Num, precision: int, scale: int) -> pa.Array:
    """An Arrow decimal128 column of exactly these values (at most `scale` places)."""
    if value.scale > scale:
        raise AssertionError(f"a value with {value.scale} places in a column of {scale}")
    v = _narrow(value.at(scale))
    n = len(v)
    known = v[~value.null]
    if len(known) and max(abs(int(known.max())), abs(int(known.min()))) >= 10**precision:
        raise OutOfRange(f"a value does not fit DECIMAL({precision},{scale})")
    if v.dtype == object:
        mask = (1 << 64) - 1
        low = np.array([int(x) & mask for x in v], dtype=np.uint64).view(np.int64)
        high = np.array([int(x) >> 64 for x in v], dtype=np.int64)
    else:
        low, high = v.astype(np.int64), v.astype(np.int64) >> 63
    words = np.empty(2 * n, dtype=np.int64)
    words[0::2], words[1::2] = low, high
    validity = None
    null_count = int(value.null.sum())
    if null_count:
        validity = pa.py_buffer(np.packbits(~value.null, bitorder="little").tobytes())
    return pa.Array.from_buffers(pa.decimal128(precision, scale), n, [validity, pa.py_buffer(words.tobytes())],
                                 null_count=null_count)


# ================================================================ quota plans


def _quota_constant(plan: ir.QuotaPlan, node: ir.Expr) -> Decimal:
    match node:
        case ir.Number(value=v) | ir.Percent(value=v):
            return v
        case ir.Money(amount=v):
            return v
    raise CompileError(f"{plan.key}: expected a number, a percentage or money, not {type(node).__name__}")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class QuotaAmounts:
    """A quota plan's period quotas, what `quota from plan` reads (compiler/README.md, quota semantics).

    Weights are whole numbers (cents, cent-days, weights x 10^k); T x s x w / W is
    one exact integer division, shares apportioned by cumulative rounding in
    rep_id order, so allocations add up exactly; periods likewise.
    """

    def __init__(self, plan: ir.QuotaPlan, territories: Sequence[ir.TerritoryPlan] = ()):
        self.plan = plan
        self.periods = plan_periods(plan.effective_from, plan.effective_to, plan.period)
        terms = plan.allocation or (ir.AllocationTerm(basis="equal"),)
        self.terms = [(t.basis, _quota_constant(plan, t.share) if t.share is not None else Decimal(1)) for t in terms]
        step = Decimal(1).scaleb(-SCALE)
        target = _quota_constant(plan, plan.target) if plan.target is not None else Decimal(0)
        over = _quota_constant(plan, plan.over_assign) if plan.over_assign is not None else Decimal(0)
        self.to_allocate = (target * (1 + over)).quantize(step)
        parts, given = [], Decimal(0)
        for index, (_, share) in enumerate(self.terms):  # the last term takes the remainder
            last = index == len(self.terms) - 1
            part = self.to_allocate - given if last else (self.to_allocate * share).quantize(step)
            parts.append(part)
            given += part
        self.parts = [int(p.scaleb(SCALE)) for p in parts]
        self.weight_places = max([_places(_quota_constant(plan, w.value)) for w in plan.weights] + [0])
        self.weights = {}
        for line in plan.weights:  # the first line for a rep wins
            self.weights.setdefault(line.rep, int(_quota_constant(plan, line.value) * 10**self.weight_places))
        self.rounding = None
        if plan.rounding is not None:
            step_value = _quota_constant(plan, plan.rounding.step)
            if int(step_value.scaleb(SCALE)) <= 0:
                raise CompileError(f"cannot round to a step of {step_value}")
            self.rounding = (plan.rounding.mode, step_value)
        self.annual_overrides: dict[str, Decimal] = {}
        self.period_overrides: dict[tuple[str, str], Decimal] = {}
        for line in plan.overrides:
            amount = _quota_constant(plan, line.amount)
            if line.period is None:
                self.annual_overrides.setdefault(line.rep, amount)
            else:
                self.period_overrides.setdefault((line.rep, line.period), amount)
        self.ramp = [_quota_constant(plan, r) for r in plan.ramp]
        phasing = [_quota_constant(plan, p) for p in plan.phasing]
        self.fractions = []  # (before, upto, denominator) of the annual quota, per period
        cumulative = Decimal(0)
        for position, period in enumerate(self.periods):
            if phasing:
                slot = (period.start.month - 1) * plan.period.per_year // 12
                share = phasing[slot] if slot < len(phasing) else Decimal(0)
                self.fractions.append((cumulative, cumulative + share, None))
                cumulative += share
            else:
                self.fractions.append((Decimal(position), Decimal(position + 1), Decimal(len(self.periods))))
        self.eligibility = _Expressions().row(plan.eligibility, "rep") if plan.eligibility is not None else None
        used = {basis for basis, _ in self.terms}
        self.rules = _TerritoryRules(territories) if "territory_potential" in used else None

    def round(self, value: Num) -> Num:
        if self.rounding is None:
            return cents(value)
        mode, step = self.rounding
        units = value.at(SCALE, wide=True)
        size = int(step.scaleb(SCALE))
        magnitude = np.abs(units)
        if mode == ir.RoundingMode.NEAREST:
            steps = (2 * magnitude + size) // (2 * size)
        elif mode == ir.RoundingMode.UP:
            steps = (magnitude + size - 1) // size
        else:
            steps = magnitude // size
        signed = np.where(units < 0, -steps, steps)
        return mul(Num(signed, 0, value.null), Num.const(step, len(units)))

    def amounts(self, inputs: Inputs) -> tuple[np.ndarray, list[str], Num]:
        """(rep row, period label, amount) for every eligible rep and period of the plan."""
        key = ("quota plan", id(self))
        if key in inputs.cache:
            return inputs.cache[key]
        plan = self.plan
        hire = number(inputs.column("reps", "hire_date"))
        term = number(inputs.column("reps", "termination_date"))
        active = ~hire.null & (hire.v <= days(plan.effective_to))
        active &= term.null | (term.v >= days(plan.effective_from))
        # In the plan: eligible on some day of its range (by rep_assignments where a rep has them), from the
        # later of the hire and the start of the first stretch of eligible assignments (a promotion ramps like a hire).
        iv_rep, _, _, iv_start, *_ = roster_intervals(inputs, self.eligibility, plan.effective_from,
                                                      plan.effective_to)
        role_start = np.full(len(active), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(role_start, iv_rep, iv_start)
        active &= role_start != np.iinfo(np.int64).max
        plan_start = np.maximum(hire.v, role_start)
        ids = inputs.text("reps", "id").decode()
        rows = np.flatnonzero(active & ~inputs.text("reps", "id").null)
        rows = np.array(sorted(rows, key=lambda r: ids[r]), dtype=np.int64)  # cumulative order: rep_id
        rep_ids = [ids[r] for r in rows]
        n = len(rows)
        units = {
            "territory_potential": self.potential(inputs, rep_ids),
            "prior_bookings": self.prior_bookings(inputs, rep_ids),
            "weights": [self.weights.get(r, 10**self.weight_places) for r in rep_ids],
            "equal": [1] * n,
        }
        high = np.array([0] * n, dtype=object)
        low = np.array([0] * n, dtype=object)
        for (basis, _), part in zip(self.terms, self.parts, strict=True):
            weight = list(units[basis])
            if sum(weight) == 0:
                weight = [1] * n  # a basis that weighs nothing is allocated equally
            total = sum(weight)
            upto = np.cumsum(np.array(weight, dtype=object)) if n else np.array([], dtype=object)
            before = upto - np.array(weight, dtype=object) if n else upto
            high = high + (2 * part * upto + total) // (2 * total) if n else high
            low = low + (2 * part * before + total) // (2 * total) if n else low
        high, low = Num(high, SCALE, np.zeros(n, dtype=bool)), Num(low, SCALE, np.zeros(n, dtype=bool))
        allocated = sub(cents(high), cents(low)) if self.rounding is None else sub(high, low)
        annual = self.round(coalesce(_overrides([self.annual_overrides.get(r) for r in rep_ids]), allocated))
        hire_days = plan_start[rows]
        out_rep, out_label, out_amount = [], [], []
        for index, (period, (before, upto, denominator)) in enumerate(zip(self.periods, self.fractions, strict=True)):
            high_p, low_p = self.phase(annual, upto, denominator), self.phase(annual, before, denominator)
            phased = sub(cents(high_p), cents(low_p)) if self.rounding is None else sub(high_p, low_p)
            ramped = mul(phased, self.ramp_factors(hire_days, index, days(plan.effective_from)))
            override = _overrides([self.period_overrides.get((r, period.label)) for r in rep_ids])
            figure = self.round(coalesce(override, ramped))
            out_rep.append(rows)
            out_label += [period.label] * n
            out_amount.append(cents(figure))
        result = (
            np.concatenate(out_rep) if out_rep else np.zeros(0, dtype=np.int64),
            out_label,
            _concat_nums(out_amount),
        )
        inputs.cache[key] = result
        return result

    @staticmethod
    def phase(annual: Num, fraction: Decimal, denominator: Decimal | None) -> Num:
        """annual x the cumulative phasing fraction (k / n for equal shares without `phasing`)."""
        product = mul(annual, Num.const(fraction, len(annual)))
        return product if denominator is None else div(product, Num.const(denominator, len(annual)))

    def ramp_factors(self, hire: np.ndarray, index: int, plan_start: int) -> Num:
        """1 for reps hired before the plan; new hires: 0 before the hire, then the ramp steps."""
        period = self.periods[index]
        position = index + 1
        starts = np.array([days(p.start) for p in self.periods], dtype=np.int64)
        first_full = np.searchsorted(starts, hire, side="left") + 1  # first period starting on or after the hire
        factors = []
        for h, first in zip(hire, first_full, strict=True):
            if h < plan_start:
                factors.append(Decimal(1))
            elif days(period.end) < h:
                factors.append(Decimal(0))
            elif self.ramp and position < first:
                factors.append(self.ramp[0])
            elif self.ramp and 0 <= position - first < len(self.ramp):
                factors.append(self.ramp[position - first])
            else:
                factors.append(Decimal(1))
        return _decimals_num(factors)

    def potential(self, inputs: Inputs, rep_ids: list[str]) -> list[int]:
        """Per rep: account potential (cents) x days owned within the plan's range."""
        if self.rules is None:
            return [0] * len(rep_ids)
        plan = self.plan
        potential = number(inputs.column("accounts", "potential")) if inputs.rows("accounts") else Num.nulls(0)
        cents = potential.at(2, wide=True) if potential.scale <= 2 else _round(_wide(potential.v), potential.scale - 2)
        cents = np.where(potential.null, 0, cents)
        owned = self.rules.owned(inputs)
        if owned.empty:
            return [0] * len(rep_ids)

        def day_numbers(column) -> np.ndarray:
            return np.array([days(d) for d in column], dtype=np.int64)

        first = np.maximum(np.maximum(day_numbers(owned["start"]), day_numbers(owned["o_start"])),
                           days(plan.effective_from))
        last = np.minimum(np.minimum(day_numbers(owned["end"]), day_numbers(owned["o_end"])), days(plan.effective_to))
        keep = first <= last
        account_cents = cents[owned["account"].to_numpy(np.int64)[keep]]
        weight = np.maximum(account_cents, 0) * (last - first + 1)[keep].astype(object)
        units: dict[str, int] = {}
        for rep, value in zip(owned["rep"].to_numpy(object)[keep], weight, strict=True):
            units[rep] = units.get(rep, 0) + int(value)
        return [units.get(r, 0) for r in rep_ids]

    def prior_bookings(self, inputs: Inputs, rep_ids: list[str]) -> list[int]:
        """Per rep: the previous calendar year's closed_won deals they own, in plan currency cents."""
        n = inputs.rows("deals")
        if not n:
            return [0] * len(rep_ids)
        year = self.plan.effective_from.year - 1
        close = number(inputs.column("deals", "close_date"))
        stage = inputs.text("deals", "stage")
        won = compare("=", stage, Str.const("closed_won", n)).v
        won &= ~close.null & (close.v >= days(dt.date(year, 1, 1))) & (close.v <= days(dt.date(year, 12, 31)))
        rows = np.flatnonzero(won)
        amount = number(inputs.column("deals", "amount")).take(rows)
        currency = inputs.text("deals", "currency").take(rows)
        rate = _as_of_rates(inputs, self.plan.currency, currency, close.take(rows))
        home = compare("=", currency, Str.const(self.plan.currency, len(rows))).v
        converted = cents(case(home, amount, mul(amount, rate)))
        owners = inputs.text("deals", "owner_rep_id").take(rows).decode()
        units: dict[str, int] = {}
        for owner, value, null in zip(owners, converted.v, converted.null, strict=True):
            if owner is None or null:
                continue
            units[owner] = units.get(owner, 0) + int(value)
        return [max(units.get(r, 0), 0) for r in rep_ids]


def _overrides(values: list[Decimal | None]) -> Num:
    null = np.array([v is None for v in values], dtype=bool)
    return _decimals_num([Decimal(0) if v is None else v for v in values], null)


def _decimals_num(values: list[Decimal], null: np.ndarray | None = None) -> Num:
    """Literals (rounded to SCALE places like any plan literal) as one vector."""
    pairs = [_unscaled(v) for v in values]
    scale = max([s for _, s in pairs] + [0])
    v = np.array([u * 10 ** (scale - s) for u, s in pairs], dtype=object)
    return Num.of(v, scale, null)


def _as_of_rates(inputs: Inputs, currency_to: str, currency: Str, day: Num) -> Num:
    """The latest rate into `currency_to` on or before `day`, per row (NULL: none)."""
    n = len(currency.codes)
    if not inputs.rows("fx_rates") or not n:
        return Num.nulls(n)
    to = inputs.text("fx_rates", "to")
    source = inputs.text("fx_rates", "from")
    rate_day = number(inputs.column("fx_rates", "date"))
    rate = number(inputs.column("fx_rates", "rate"))
    mine = compare("=", to, Str.const(currency_to, len(to.codes))).v & ~rate_day.null & ~source.null
    rows = np.flatnonzero(mine)
    if not len(rows):
        return Num.nulls(n)
    uniques = list(dict.fromkeys([*currency.uniques, *source.uniques]))
    source_codes = source.recode(uniques)[rows]
    span = 1 << 32
    keys = source_codes * span + (rate_day.v[rows] + (1 << 31))
    order = np.argsort(keys, kind="stable")
    keys, rows, source_codes = keys[order], rows[order], source_codes[order]
    codes = currency.recode(uniques)
    wanted = codes * span + (day.v + (1 << 31))
    found = np.searchsorted(keys, wanted, side="right") - 1
    ok = (found >= 0) & ~day.null & (codes >= 0)
    ok &= source_codes[np.maximum(found, 0)] == codes
    picked = rate.take(rows[np.maximum(found, 0)])
    return Num(np.where(ok, picked.v, 0), picked.scale, picked.null | ~ok)


# ================================================================ territories


class _TerritoryRules:
    """Territory plans evaluated in Python: which territory holds each account, and who covers it."""

    def __init__(self, plans: Sequence[ir.TerritoryPlan]):
        self.plans = list(plans)
        self.compiled = []
        helper = _Expressions()
        for plan in self.plans:
            ordered = sorted(enumerate(plan.rules), key=lambda item: (item[1].priority, item[0]))
            rules = []
            for _, rule in ordered:
                where = f"{rule.span.file}:{rule.span.line}" if rule.span else f"priority {rule.priority}"
                condition = None if rule.accounts else helper.row(rule.where, "account")
                rules.append((rule, where, condition))
            self.compiled.append((plan, rules))

    def assignments(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """account row, territory, rule, priority, plan, version, start, end: one row per account and span."""
        key = ("assignments", id(self))
        if key in inputs.cache:
            return inputs.cache[key]
        parts: dict[str, list] = {k: [] for k in ("account", "territory", "rule", "priority", "plan", "version",
                                                  "start", "end")}
        n = inputs.rows("accounts")
        accounts = Rows(inputs, "accounts")
        ids = inputs.text("accounts", "id").decode() if n else np.zeros(0, dtype=object)
        for plan, rules in self.compiled:
            territory = np.array([None] * n, dtype=object)
            rule_text = np.array([None] * n, dtype=object)
            priority = np.array([None] * n, dtype=object)
            open_ = np.ones(n, dtype=bool)
            for rule, where, condition in rules:
                if condition is None:
                    hit = np.isin(ids, list(rule.accounts)) if n else np.zeros(0, dtype=bool)
                else:
                    hit = truth(condition(accounts)).v
                take = hit & open_
                territory[take], rule_text[take], priority[take] = rule.territory, where, rule.priority
                open_ &= ~hit
            moved = np.isin(ids, [m.account for m in plan.moves]) if n else np.zeros(0, dtype=bool)
            for account, start, end, moved_to in dated_spans(plan):
                rows = np.flatnonzero(~moved if account is None else ids == account)
                count = len(rows)
                parts["account"].append(rows)
                parts["territory"].append(territory[rows] if moved_to is None else np.full(count, moved_to, object))
                parts["rule"].append(rule_text[rows] if moved_to is None else np.full(count, "move", object))
                parts["priority"].append(priority[rows])
                parts["plan"].append(np.full(count, plan.name, object))
                parts["version"].append(np.full(count, plan.version, np.int64))
                parts["start"].append(np.full(count, start, object))
                parts["end"].append(np.full(count, end, object))
        out = {k: np.concatenate(v) if v else np.zeros(0, dtype=object) for k, v in parts.items()}
        inputs.cache[key] = out
        return out

    def owned(self, inputs: Inputs, assigned: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every (assignment, owner) pair whose dates overlap: the assignment's columns, rep, o_start, o_end."""
        if assigned is None:
            assigned = pd.DataFrame(self.assignments(inputs))
            assigned["row"] = np.arange(len(assigned))
        owners = pd.DataFrame([h for h in self.holders() if h[2] == "owner"],
                              columns=["territory", "rep", "role", "o_start", "o_end"])
        if assigned.empty or owners.empty:
            return assigned.iloc[:0].assign(rep=None, o_start=None, o_end=None)
        pairs = assigned[assigned["territory"].notna()].merge(owners.drop(columns="role"), on="territory")
        overlap = (pairs["o_start"] <= pairs["end"]) & (pairs["o_end"] >= pairs["start"])
        return pairs[overlap]

    def holders(self) -> list[tuple[str, str | None, str, dt.date, dt.date]]:
        """(territory, rep, role, start, end), from the plans' text alone (`compiler.territory.held_spans`)."""
        return held_spans(list(self.plans))


def territory_table(plans: Sequence[ir.TerritoryPlan], tables: Mapping[str, pa.Table] | Inputs) -> pd.DataFrame:
    """account -> territory -> owner, dated, with the rule that matched (the territory plans' output)."""
    inputs = tables if isinstance(tables, Inputs) else Inputs(tables)
    rules = _TerritoryRules(plans)
    assigned = pd.DataFrame(rules.assignments(inputs))
    names = ("plan", "version", "account_id", "territory", "owner_rep_id", "rule", "priority", "start", "end")
    types = (pa.string(), pa.int32(), pa.string(), pa.string(), pa.string(), pa.string(), pa.int32(), pa.date32(),
             pa.date32())
    schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])
    if assigned.empty:
        return schema.empty_table().to_pandas()
    ids = np.array(inputs.text("accounts", "id").decode(), dtype=object)
    assigned["row"] = np.arange(len(assigned))
    matched = rules.owned(inputs, assigned)
    unmatched = assigned[~assigned["row"].isin(matched["row"])].assign(rep=None, o_start=None, o_end=None)
    rows = pd.concat([matched, unmatched], ignore_index=True)
    owned = rows["o_start"].notna().to_numpy()
    start, end = rows["start"].to_numpy(object), rows["end"].to_numpy(object)
    o_start = np.where(owned, rows["o_start"].to_numpy(object), start)  # no owner: the assignment's dates
    o_end = np.where(owned, rows["o_end"].to_numpy(object), end)
    rows["from"] = np.where(o_start > start, o_start, start)
    rows["to"] = np.where(o_end < end, o_end, end)
    rows["account_id"] = ids[rows["account"].to_numpy(np.int64)]
    rows = rows.sort_values(["plan", "version", "account_id", "from", "row"], kind="stable")
    columns = {
        "plan": rows["plan"], "version": rows["version"], "account_id": rows["account_id"],
        "territory": rows["territory"], "owner_rep_id": rows["rep"], "rule": rows["rule"],
        "priority": rows["priority"], "start": rows["from"], "end": rows["to"],
    }
    arrays = [pa.array(columns[n].to_numpy(object), t, from_pandas=True) for n, t in zip(names, types, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema).to_pandas()


# ================================================================ running plan files


def read_tables(connection, schema=None) -> dict[str, pa.Table]:
    """The contract tables of a DuckDB connection, as Arrow."""
    from dsl.schema import SCHEMA

    schema = schema or SCHEMA
    return {entity.table: connection.table(entity.table).to_arrow_table() for entity in schema.entities}


@dataclasses.dataclass(frozen=True)
class PythonRun:
    payout_lines: pd.DataFrame  # every comp plan's lines, not yet normalised
    plans: tuple[str, ...]  # keys of the comp plans that ran
    territories: pd.DataFrame | None  # account -> territory -> owner (territory plans), or None
    payout_deals: pd.DataFrame | None  # the deals behind each commission line, when asked for


def run_files(files: Sequence[ir.PlanFile], connection, schema=None, deals: bool = False) -> PythonRun:
    """Every comp plan of the files on the connection's tables, computed in Python.

    A plan this calculator cannot compute is a diagnostic (RP401), as on the SQL
    path, raised before any table is read.
    """
    from dsl.diagnostics import Diagnostic, RevplanError

    comp = [p for f in files for p in f.plans if isinstance(p, ir.CompPlan)]
    territories = tuple(p for f in files for p in f.plans if isinstance(p, ir.TerritoryPlan))
    quota_plans = tuple(p for f in files for p in f.plans if isinstance(p, ir.QuotaPlan))
    measures = {m.name: m for f in files for m in f.measures}
    calculators, problems = [], []
    for plan in comp:
        try:
            converted = schema.converted_fields() if schema is not None else frozenset()
            calculators.append(to_python(plan, measures, territories, quota_plans, converted))
        except CompileError as error:
            problems.append(Diagnostic(code="RP401", message=f"{plan.key}: {error}", span=plan.span,
                                       hints=(error.hint or "this construct cannot run on the Python calculator yet",)))
    if problems:
        raise RevplanError(problems)
    inputs = Inputs(read_tables(connection, schema))
    frames, detail = [], []
    for calculator in calculators:
        lines, behind = _Run(calculator, inputs).lines(deals=deals)
        frames.append(lines)
        if behind is not None:
            detail.append(behind)
    lines = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PAYOUT_COLUMNS))
    territory_frame = territory_table(territories, inputs) if territories else None
    deal_frame = None
    if deals:
        deal_frame = pd.concat(detail, ignore_index=True) if detail else pd.DataFrame(columns=list(DEAL_COLUMNS))
    return PythonRun(lines, tuple(p.key for p in comp), territory_frame, deal_frame)


def roster_intervals(inputs: Inputs, eligibility, effective_from: dt.date, effective_to: dt.date):
    """The eligible roster intervals within a plan's range, sorted by rep, then first day: arrays of
    (rep row, first day, last day, role start) (day numbers), their annual TIs (a Num) and their
    managers (rep rows, -1 for none).

    A rep without rep_assignments rows: one interval, the whole range, if the
    reps row is eligible; its role start is the hire date. A rep with rows: one
    per assignment whose role, segment and region (other fields: the reps row)
    are eligible, clipped to the range; its role start is the first day of the
    unbroken stretch of eligible assignments it is part of (rows cut on the same
    role, for a new TI or manager, do not start anything), and its TI and manager
    the assignment's, else the reps row's.
    """
    n_reps = inputs.rows("reps")
    first_day, last_day = days(effective_from), days(effective_to)
    if inputs.rows("rep_assignments"):
        a_rep = inputs.index_of("reps", "id", inputs.text("rep_assignments", "rep_id"))
    else:
        a_rep = np.zeros(0, dtype=np.int64)
    has_assignments = np.zeros(n_reps, dtype=bool)
    has_assignments[a_rep[a_rep >= 0]] = True
    rep_eligible = np.ones(n_reps, dtype=bool)
    if eligibility is not None:
        rep_eligible = truth(eligibility(Rows(inputs, "reps"))).v
    plain = np.flatnonzero(~has_assignments & rep_eligible)
    rows = np.flatnonzero(a_rep >= 0)  # assignments of known reps
    start = number(inputs.column("rep_assignments", "start_date")).take(rows)
    end = number(inputs.column("rep_assignments", "end_date")).take(rows)
    first = np.maximum(start.v, first_day)
    last = np.where(end.null, last_day, np.minimum(end.v, last_day))
    eligible = ~start.null
    if eligibility is not None and len(rows):
        dated = {f: inputs.column("rep_assignments", f).take(rows) for f in DATED_REP_FIELDS}
        eligible &= truth(eligibility(Rows(inputs, "reps", a_rep[rows], fields=dated))).v
    keep = eligible & (first <= last)
    role_start = _stretch_starts(a_rep[rows], start.v, end, eligible)
    hire = number(inputs.column("reps", "hire_date")).v
    rep_ti = number(inputs.column("reps", "target_incentive"))
    assigned_ti = coalesce(number(inputs.column("rep_assignments", "target_incentive")).take(rows),
                           rep_ti.take(a_rep[rows]))
    iv_rep = np.r_[plain, a_rep[rows][keep]].astype(np.int64)
    iv_first = np.r_[np.full(len(plain), first_day), first[keep]].astype(np.int64)
    iv_last = np.r_[np.full(len(plain), last_day), last[keep]].astype(np.int64)
    iv_start = np.r_[hire[plain], role_start[keep]].astype(np.int64)
    iv_ti = _concat_nums([rep_ti.take(plain), assigned_ti.take(np.flatnonzero(keep))])
    rep_manager = inputs.index_of("reps", "id", inputs.text("reps", "manager_id"))
    a_manager_text = inputs.text("rep_assignments", "manager_id")
    a_manager = inputs.index_of("reps", "id", a_manager_text)[rows]
    a_manager = np.where(a_manager_text.codes[rows] < 0, rep_manager[a_rep[rows]], a_manager)
    iv_manager = np.r_[rep_manager[plain], a_manager[keep]].astype(np.int64)
    order = np.lexsort((iv_first, iv_rep))
    return (iv_rep[order], iv_first[order], iv_last[order], iv_start[order], iv_ti.take(order),
            iv_manager[order])


def _stretch_starts(rep: np.ndarray, start: np.ndarray, end: Num, eligible: np.ndarray) -> np.ndarray:
    """For each eligible assignment: the start of the stretch of the rep's eligible assignments it belongs to, each
    starting the day after the one before ends (the contract refuses overlaps, RD021); others: their start."""
    result = start.astype(np.int64).copy()
    rows = np.flatnonzero(eligible)
    if not len(rows):
        return result
    rows = rows[np.lexsort((start[rows], rep[rows]))]
    follows = np.r_[False, (rep[rows][1:] == rep[rows][:-1]) & ~end.null[rows][:-1]
                    & (start[rows][1:] == end.v[rows][:-1] + 1)]
    opening = np.maximum.accumulate(np.where(follows, 0, np.arange(len(rows))))
    result[rows] = start[rows][opening]
    return result


def _covering(iv_rep: np.ndarray, iv_first: np.ndarray, iv_last: np.ndarray, rep: np.ndarray,
              day: np.ndarray) -> np.ndarray:
    """For each (rep row, day number): the interval of that rep holding the day, or -1 (intervals sorted
    by rep, then first day; a rep's never overlap, the contract's RD021)."""
    if not len(iv_rep):
        return np.full(len(rep), -1, dtype=np.int64)
    interval_keys = iv_rep * DAY_SPAN + iv_first + DAY_SPAN // 2
    keys = rep.astype(np.int64) * DAY_SPAN + day.astype(np.int64) + DAY_SPAN // 2
    at = np.searchsorted(interval_keys, keys, side="right") - 1  # the last interval starting on or before
    found = np.maximum(at, 0)
    return np.where((at >= 0) & (iv_rep[found] == rep) & (day <= iv_last[found]), at, -1)
