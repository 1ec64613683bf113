"""`revplan explain`: one quota, one account or one rep's payouts, in words a rep or an analyst can check.

In: a run's results (`runtime.run.RunResult` frames: quotas, territories,
the territory report, payout lines), the checked plans (for the rule text)
and the plan sources. Out: lines of text; unknown names raise `LookupError`
with the known names (the CLI turns it into a diagnostic with did-you-mean).

    quota_lines(quotas, rep, period)                       how a quota was derived
    account_lines(territories, overlaps, plans, sources, account, day)   which territory, rule, owner
    payout_lines_for(lines, rep, period)                   a rep's payout lines (plan, component, base, rate)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

from dsl import ir
from runtime.quotas import explain_lines, money, percent


class NotFound(LookupError):
    """A name the results do not hold: `known` lists what they do hold."""

    def __init__(self, message: str, name: str, known: list[str]):
        super().__init__(message)
        self.name, self.known = name, known


def quota_lines(quotas: pd.DataFrame, rep: str, period: str | None = None, rep_name: str | None = None) -> list[str]:
    mine = quotas[quotas["rep_id"] == rep]
    if mine.empty:
        raise NotFound(f"no quota plan gives {rep!r} a quota", rep, sorted(set(quotas["rep_id"])))
    if period is not None:
        chosen = mine[mine["period"] == period]
        if chosen.empty:
            raise NotFound(f"{rep} has no quota for period {period!r}", period, list(dict.fromkeys(mine["period"])))
        mine = chosen
    lines: list[str] = []
    for (plan, version), rows in mine.groupby(["plan", "version"], sort=True):
        who = f"{rep} ({rep_name})" if rep_name and rep_name != rep else rep
        lines.append(f'quota plan "{plan}" v{version}: quota of {who}')
        for row in rows.to_dict("records"):
            label = f"{row['period']} (annual)" if row["period_kind"] == "year" else row["period"]
            lines.append(f"  {label}: {money(row['amount'])}")
            lines.extend(f"    {step}" for step in explain_lines(row))
    return lines


def account_lines(
    territories: pd.DataFrame,
    overlaps: pd.DataFrame | None,
    plans: tuple[ir.TerritoryPlan, ...],
    sources: dict[str, str],
    account: str,
    day: dt.date | None = None,
) -> list[str]:
    rows = territories[territories["account_id"] == account]
    if rows.empty:
        raise NotFound(f"no account {account!r} in the data", account, sorted(set(territories["account_id"])))
    if day is not None:
        rows = rows[[_date(s) <= day <= _date(e) for s, e in zip(rows["start"], rows["end"], strict=True)]]
        if rows.empty:
            raise NotFound(f"no territory plan is in force on {day} for {account}", str(day), [])
    by_key = {(p.name, p.version): p for p in plans}
    lines: list[str] = []
    for row in rows.to_dict("records"):
        plan = by_key.get((row["plan"], int(row["version"])))
        when = f"{_date(row['start'])} to {_date(row['end'])}"
        head = f'territory plan "{row["plan"]}" v{row["version"]}, {when}: '
        if row["territory"] is None or (isinstance(row["territory"], float) and pd.isna(row["territory"])):
            lines.append(head + "unassigned: no rule matches this account (a coverage gap)")
            continue
        lines.append(head + f'territory "{row["territory"]}"')
        lines.append(f"  rule: {_rule_text(row['rule'], sources)}")
        owner = row.get("owner_rep_id")
        lines.append(
            f"  owner: {owner}" if isinstance(owner, str) else "  owner: none (the territory has no owner then)"
        )
        if plan is not None:
            start, end = _date(row["start"]), _date(day or row["end"])
            held = [h for t in plan.territories if t.name == row["territory"] for h in t.overlays]
            # An overlay `from` a date holds from then on: not before it, and said when it starts in the span.
            overlays = [h.rep + (f" (from {h.start})" if h.start and h.start > start else "")
                        for h in held if h.start is None or h.start <= end]
            if overlays:
                lines.append(f"  overlays: {', '.join(overlays)}")
    tied = overlaps[overlaps["account_id"] == account] if overlaps is not None else pd.DataFrame()
    if not tied.empty:
        rules = ", ".join(f'"{t}" ({r})' for t, r in zip(tied["territory"], tied["rule"], strict=True))
        lines.append(f"  overlap: rules of equal priority match it: {rules}; the first written wins")
    return lines


def payout_lines_for(lines: pd.DataFrame, rep: str, period: str | None = None) -> list[str]:
    mine = lines[lines["rep_id"] == rep]
    if mine.empty:
        raise NotFound(f"no payout lines for {rep!r}", rep, sorted(set(lines["rep_id"])))
    if period is not None:
        chosen = mine[mine["period"] == period]
        if chosen.empty:
            raise NotFound(
                f"{rep} has no payout lines in period {period!r}", period, list(dict.fromkeys(mine["period"]))
            )
        mine = chosen
    text = []
    for (plan, version, label), rows in mine.groupby(["plan", "version", "period"], sort=True):
        total = sum(rows["amount"], Decimal("0.00"))
        text.append(f'comp plan "{plan}" v{version}, {label}: {money(total)} {rows["currency"].iloc[0]}')
        for row in rows.to_dict("records"):
            parts = [f"{row['component']} ({row['line_type']}): {row['amount']:,}"]
            if row.get("base") is not None and not _missing(row["base"]):
                parts.append(f"base {money(row['base'])}")
            if row.get("line_type") == "commission" and row.get("rate") is not None and not _missing(row["rate"]):
                parts.append(f"rate {percent(row['rate'])}")
            if row.get("attainment") is not None and not _missing(row["attainment"]):
                parts.append(f"attainment {percent(row['attainment'])} of quota {money(row['quota'])}")
            if row.get("capped"):
                parts.append("capped")
            if row.get("gated"):
                parts.append("gated")
            text.append("  " + "; ".join(parts))
    return text


def _rule_text(rule: str, sources: dict[str, str]) -> str:
    """`plans/territory/fy27.plan:71` -> that line's text, beside where it is."""
    if rule == "move":
        return "a `move` line of the plan (realignment)"
    file, _, line = str(rule).rpartition(":")
    text = sources.get(file)
    if text is None or not line.isdigit():
        return str(rule)
    lines = text.splitlines()
    number = int(line)
    shown = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return f"{shown}  ({rule})" if shown else str(rule)


def _date(value) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
