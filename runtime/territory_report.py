"""The territory report: coverage gaps, overlaps and balance of each territory plan, checked against its tolerances.

In: the frames the SQL runtime computed (compiler/territory.py):
territories (account -> territory -> owner, dated), overlaps
(`rule_matches`: accounts that tied rules of the deciding priority match) and
balance (per territory: accounts, potential weighted by days held). Out:
`TerritoryReport`, whose `checks` frame says per plan version:

    coverage        accounts no rule matches (gaps), on some day of the plan   limit 0
    overlaps        accounts two rules of the deciding priority match          limit 0
    max_min_ratio   largest / smallest territory potential                     limit: `tolerance max_min_ratio`
    cv              coefficient of variation of territory potential            limit: `tolerance cv`
                    (population standard deviation / mean)

Exactness: potentials are exact decimals; the tolerance tests compare exact
sums (max <= limit x min; n x sum(x^2) - sum(x)^2 <= cv^2 x sum(x)^2, which is
CV <= limit without a square root). The ratio and CV shown are rounded to 4
decimal places (the CV needs a square root: Decimal's, at 28 digits), for
reading only; `ok` never depends on that rounding.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, localcontext

import pandas as pd

from dsl import ir

SHOWN = Decimal("0.0001")
REPORT_COLUMNS = (
    "plan",
    "version",
    "check",
    "territory",
    "account_id",
    "value",
    "limit",
    "ok",
    "detail",
)


@dataclasses.dataclass(frozen=True)
class TerritoryReport:
    gaps: pd.DataFrame  # plan, version, account_id, start, end
    overlaps: pd.DataFrame  # account_id, plan, version, priority, territory, rule
    balance: pd.DataFrame  # plan, version, territory, accounts, potential
    checks: pd.DataFrame  # plan, version, check, value, limit, ok, detail

    @property
    def ok(self) -> bool:
        return bool(self.checks["ok"].all()) if not self.checks.empty else True

    def summary(self) -> str:
        """One line per run summary: gaps, overlaps, balance against the tolerances."""
        if self.checks.empty:
            return "territories: no territory plan"
        parts = []
        for (plan, version), checks in self.checks.groupby(["plan", "version"], sort=True):
            by = {row["check"]: row for _, row in checks.iterrows()}
            text = [f"{by['coverage']['value']} gap(s)", f"{by['overlaps']['value']} overlap(s)"]
            for name in ("max_min_ratio", "cv"):
                if name in by:
                    row = by[name]
                    shown, limit = _figure(row["value"], name), _figure(row["limit"], name)
                    if name == "max_min_ratio" and shown == "n/a" and not row["ok"]:  # some territory has 0
                        shown = "unbounded (a territory's potential is 0)"
                    limit = f" (limit {limit})" if row["limit"] is not None else ""
                    text.append(f"{name} {shown}{limit}{'' if row['ok'] else ' EXCEEDED'}")
            parts.append(f"{plan} v{version}: " + ", ".join(text))
        return "territories: " + "; ".join(parts)

    def to_frame(self) -> pd.DataFrame:
        """All of it in one table (territory_report.csv): checks, then balance, gaps and overlaps rows."""
        rows = [{**{c: row.get(c) for c in REPORT_COLUMNS}} for row in self.checks.to_dict("records")]
        for row in self.balance.to_dict("records"):
            rows.append(
                dict(
                    plan=row["plan"],
                    version=row["version"],
                    check="balance",
                    territory=row["territory"],
                    value=_show(row["potential"]),
                    detail=f"{row['accounts']} account(s); potential weighted by days held",
                )
            )
        for row in self.gaps.to_dict("records"):
            rows.append(
                dict(
                    plan=row["plan"],
                    version=row["version"],
                    check="gap",
                    account_id=row["account_id"],
                    ok=False,
                    detail=f"no rule matches from {row['start']} to {row['end']}",
                )
            )
        for row in self.overlaps.to_dict("records"):
            rows.append(
                dict(
                    plan=row["plan"],
                    version=row["version"],
                    check="overlap",
                    account_id=row["account_id"],
                    territory=row["territory"],
                    ok=False,
                    detail=f"priority {row['priority']} rule at {row['rule']} also matches",
                )
            )
        return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def build_report(
    plans: tuple[ir.TerritoryPlan, ...],
    territories: pd.DataFrame,
    overlaps: pd.DataFrame,
    balance: pd.DataFrame,
) -> TerritoryReport:
    gaps = territories[territories["territory"].isna()][["plan", "version", "account_id", "start", "end"]]
    gaps = gaps.reset_index(drop=True)
    checks = []
    for plan in plans:
        mine = (balance["plan"] == plan.name) & (balance["version"].astype(int) == plan.version)
        potentials = [Decimal(v) if v is not None else Decimal(0) for v in balance[mine]["potential"]]
        plan_gaps = gaps[(gaps["plan"] == plan.name) & (gaps["version"].astype(int) == plan.version)]
        plan_overlaps = overlaps[(overlaps["plan"] == plan.name) & (overlaps["version"].astype(int) == plan.version)]
        base = dict(plan=plan.name, version=plan.version)
        gap_count = plan_gaps["account_id"].nunique()
        checks.append(
            {
                **base,
                "check": "coverage",
                "value": gap_count,
                "limit": 0,
                "ok": gap_count == 0,
                "detail": "accounts no rule matches",
            }
        )
        overlap_count = plan_overlaps["account_id"].nunique()
        checks.append(
            {
                **base,
                "check": "overlaps",
                "value": overlap_count,
                "limit": 0,
                "ok": overlap_count == 0,
                "detail": "accounts two rules of the deciding priority match (the first written wins)",
            }
        )
        limits = {t.name: _constant(t.value) for t in plan.tolerances}
        ratio, ratio_ok = max_min_ratio(potentials, limits.get("max_min_ratio"))
        checks.append(
            {
                **base,
                "check": "max_min_ratio",
                "value": ratio,
                "limit": limits.get("max_min_ratio"),
                "ok": ratio_ok,
                "detail": "largest / smallest territory potential",
            }
        )
        cv, cv_ok = coefficient_of_variation(potentials, limits.get("cv"))
        checks.append(
            {
                **base,
                "check": "cv",
                "value": cv,
                "limit": limits.get("cv"),
                "ok": cv_ok,
                "detail": "standard deviation / mean of territory potential (population)",
            }
        )
    # object dtype: with no Decimal ratio (no accounts), pandas would make the counts floats (0.0 gaps)
    checks_frame = pd.DataFrame(checks, columns=["plan", "version", "check", "value", "limit", "ok", "detail"],
                                dtype=object)
    return TerritoryReport(gaps, overlaps.reset_index(drop=True), balance.reset_index(drop=True), checks_frame)


def max_min_ratio(potentials: list[Decimal], limit: Decimal | None) -> tuple[Decimal | None, bool]:
    """(largest / smallest, shown to 4 places; None when the smallest is 0) and whether it is within `limit`.

    >>> max_min_ratio([Decimal(3), Decimal(1)], Decimal(3))
    (Decimal('3.0000'), True)
    """
    if not potentials:
        return None, True
    largest, smallest = max(potentials), min(potentials)
    ok = limit is None or largest <= limit * smallest
    if smallest <= 0:
        return None, ok
    with localcontext() as context:
        context.prec = 60
        return (largest / smallest).quantize(SHOWN), ok


def coefficient_of_variation(potentials: list[Decimal], limit: Decimal | None) -> tuple[Decimal | None, bool]:
    """(population CV, shown to 4 places; None when the mean is 0) and whether it is within `limit`, tested exactly.

    >>> coefficient_of_variation([Decimal(1), Decimal(3)], Decimal("0.5"))
    (Decimal('0.5000'), True)
    """
    n = len(potentials)
    if n == 0:
        return None, True
    with localcontext() as context:
        context.prec = 200  # sums of squares of 38-digit numbers stay exact
        total = sum(potentials, Decimal(0))
        squares = sum((p * p for p in potentials), Decimal(0))
        spread = n * squares - total * total  # n^2 x variance, exact
        ok = limit is None or spread <= limit * limit * total * total
        if total <= 0:
            return None, ok
        context.prec = 28
        cv = (spread.sqrt() / total) if spread > 0 else Decimal(0)
        return cv.quantize(SHOWN), ok


def _figure(value, check: str) -> str:
    """A ratio as 46.6378, a CV as 58.69%; n/a for none."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    value = Decimal(value)
    if check == "cv":
        text = format((value * 100).normalize(), "f")
        return f"{text}%"
    return format(value.normalize(), "f")


def _constant(node: ir.Expr) -> Decimal:
    match node:
        case ir.Number(value=v) | ir.Percent(value=v):
            return v
        case ir.Money(amount=v):
            return v
    raise ValueError(f"a tolerance is a number or a percentage, not {type(node).__name__}")


def _show(value) -> Decimal | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return Decimal(value).quantize(Decimal("0.01"))
