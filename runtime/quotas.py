"""Quota results: one shape whatever the engine, and each quota's derivation in words.

In: the rows of `compiler.quota.quota_table` (one query per quota plan).
Out: a DataFrame with QUOTA_COLUMNS plus `derivation`, a one-line account of
how the figure came about (weights, share, phasing, ramp, override,
rounding), money as `Decimal`. `revplan explain --quota` prints the same
steps one per line (`explain_lines`).
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from compiler.quota import QUOTA_COLUMNS

TEXT_COLUMNS = ("plan", "version", "rep_id", "period", "period_kind", "period_start", "period_end", "basis", "rounding")
BASIS_LABELS = {
    "territory_potential": "territory potential",
    "prior_bookings": "prior-year bookings",
    "weights": "weight",
    "equal": "equal shares",
}


def normalise_quotas(frames: list[pd.DataFrame]) -> pd.DataFrame:
    columns = [*QUOTA_COLUMNS, "derivation"]
    if not frames:
        return pd.DataFrame(columns=columns)
    quotas = pd.concat(frames, ignore_index=True)[list(QUOTA_COLUMNS)].copy()
    quotas["version"] = quotas["version"].astype("int64")
    for column in QUOTA_COLUMNS:  # Arrow and psycopg give Decimal or None; a float would be a bug
        if column not in TEXT_COLUMNS and quotas[column].dtype.kind == "f":
            quotas[column] = quotas[column].map(_decimal)
    quotas["year_first"] = quotas["period_kind"] != "year"
    quotas = quotas.sort_values(["plan", "version", "rep_id", "year_first", "period_start"], kind="stable")
    quotas = quotas.drop(columns="year_first").reset_index(drop=True)
    # Column lists, not DataFrame.to_dict: 50,000 rows in a fraction of the time.
    names = list(QUOTA_COLUMNS)
    rows = zip(*[quotas[c].tolist() for c in names], strict=True)
    quotas["derivation"] = [" ".join(explain_lines(dict(zip(names, row, strict=True)))) for row in rows]
    return quotas[columns]


def explain_lines(row: dict) -> list[str]:
    """How one quota figure was derived, step by step (each step a sentence)."""
    steps: list[str] = []
    if row["period_kind"] == "year":
        steps += _allocation_steps(row)
        if row["override"] is not None:
            steps.append(
                f"Overridden: the annual quota is {money(row['override'])} (the allocation is not used "
                "and not given to anyone else)."
            )
    else:
        if row["override"] is not None:
            steps.append(f"Overridden for {row['period']}: {money(row['override'])}.")
        else:
            phasing = (
                f"phasing {percent(row['phasing'])}" if row["phasing"] is not None else "an equal share of the year"
            )
            text = f"Annual quota {money(row['annual_amount'])} x {phasing}"
            ramp = row["ramp"]
            # New in the plan: hired, or moved into its role (a promotion ramps like a hire).
            if ramp is not None and ramp == 0:
                text += " x 0 (not yet in the plan in this period: hired or moved into its role later)"
            elif ramp is not None and ramp != 1:
                text += f" x ramp {percent(ramp)} (new in the plan: a hire or a move into its role)"
            steps.append(text + f" = {money(row['unrounded'])}.")
    steps.append(_rounding_step(row))
    return steps


def _allocation_steps(row: dict) -> list[str]:
    steps = [f"To allocate: {money(row['to_allocate'])} (target x (100% + over-assignment))."]
    parts = []
    for basis, share in _terms(row["basis"]):
        name = "weight" if basis == "weights" else basis
        label = BASIS_LABELS[basis]
        if basis == "equal":
            part = label
        else:
            mine, total = row.get(name), row.get(f"{name}_total")
            if total is not None and total == 0:
                part = f"{label}: none among the plan's reps, so equal shares"
            else:
                shown = plain if basis == "weights" else money
                part = f"{label} {shown(mine)} of {shown(total)}"
        parts.append(part + (f" (x {share})" if share else ""))
    share_text = percent(row["share"]) if row["share"] is not None else "n/a"
    steps.append(f"Share {share_text} by " + "; ".join(parts) + f": allocated {money(row['allocated'])}.")
    return steps


def _rounding_step(row: dict) -> str:
    rule = row["rounding"]
    if rule == "cents":
        return f"Quota {money(row['amount'])} (in cents, apportioned so the quotas add up exactly)."
    if row["unrounded"] is not None and row["unrounded"] == row["amount"]:
        return f"Quota {money(row['amount'])} (already a whole multiple: round {rule})."
    return f"Rounded ({rule}): {money(row['amount'])}."


def _terms(basis: str) -> list[tuple[str, str | None]]:
    terms = []
    for part in basis.split(", "):
        words = part.split(" ")
        terms.append((words[0], words[1] if len(words) > 1 else None))
    return terms


def _decimal(value):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float):  # never from our queries; refuse to pretend it is exact
        raise TypeError(f"quota value {value!r} is a float")
    return Decimal(value)


def plain(value) -> str:
    """1234567.5000000000 -> 1,234,567.5; None -> n/a."""
    if value is None:
        return "n/a"
    text = format(Decimal(value), ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def money(value) -> str:
    if value is None:
        return "n/a"
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    shown = plain(value)
    return shown if len(shown.split(".")[-1]) > 2 else f"{value:,.2f}"


def percent(value) -> str:
    """0.55 -> 55%; 0.2857142857 -> 28.5714%."""
    if value is None:
        return "n/a"
    scaled = Decimal(value) * 100
    rounded = scaled.quantize(Decimal("0.0001"))
    return f"{'~' if rounded != scaled else ''}{plain(rounded)}%"
