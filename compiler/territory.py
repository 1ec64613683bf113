"""Territory plan IR -> sqlglot queries: which territory holds each account, and who covers it.

In: checked `ir.TerritoryPlan`s (every version in force somewhere). Out:
    assignments(plans)   account_id, territory, rule (the matching rule's text
                         position), priority, plan, version, start, end:
                         one row per account and plan version; an account no
                         rule matches has territory NULL (a coverage gap).
    holders(plans)       territory, rep_id, role (owner | overlay), start, end.
A `move` realigns an account from its date on: the rows split at the move.
Lower priority numbers win; among equal priorities the first rule written
wins (the checker reports equal-priority rules that can overlap).
"""

from __future__ import annotations

import datetime as dt

from sqlglot import exp

from compiler.sql import alias, and_, col, date, row_condition, table, text, union_all
from dsl import ir

ONE_DAY = dt.timedelta(days=1)


def assignments(plans: list[ir.TerritoryPlan], dialect: str = "duckdb") -> exp.Expression:
    selects = [_plan_assignments(plan, dialect) for plan in plans]
    return union_all(selects) if selects else _empty_assignments()


def _rule_condition(rule: ir.AssignRule, dialect: str) -> exp.Expression:
    if rule.accounts:
        return exp.In(this=col("id", "a"), expressions=[text(a) for a in rule.accounts])
    return row_condition(rule.where, "account", "a", dialect)


def _plan_assignments(plan: ir.TerritoryPlan, dialect: str) -> exp.Select:
    ordered = sorted(enumerate(plan.rules), key=lambda item: (item[1].priority, item[0]))
    territory, rule_text, priority = exp.Case(), exp.Case(), exp.Case()
    for _, rule in ordered:
        condition = _rule_condition(rule, dialect)
        where = f"{rule.span.file}:{rule.span.line}" if rule.span else f"priority {rule.priority}"
        territory = territory.when(condition, text(rule.territory))
        rule_text = rule_text.when(condition.copy(), text(where))
        priority = priority.when(condition.copy(), exp.Literal.number(rule.priority))
    if not ordered:
        territory = rule_text = priority = exp.null()
    matched = exp.select(
        alias(col("id", "a"), "account_id"),
        alias(territory, "territory"),
        alias(rule_text, "rule"),
        alias(priority, "priority"),
    ).from_(table("accounts", "a"), copy=False)
    # Realignment: each move starts a new dated row for its account.
    spans = _dated_spans(plan)
    rows = []
    for account, start, end, moved_to in spans:
        rows.append(
            exp.Tuple(
                expressions=[
                    text(account) if account is not None else exp.null(),
                    date(start),
                    date(end),
                    text(moved_to) if moved_to is not None else exp.null(),
                ]
            )
        )
    pieces = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier("v"),
            columns=[exp.to_identifier(n, quoted=True) for n in ("account_id", "start", "end", "moved_to")],
        ),
    )
    moved = {m.account for m in plan.moves}
    applies = exp.or_(
        and_(
            exp.Is(this=col("account_id", "v"), expression=exp.null()),
            exp.Not(this=exp.In(this=col("account_id", "m"), expressions=[text(a) for a in sorted(moved)]))
            if moved
            else exp.true(),
        ),
        exp.EQ(this=col("account_id", "v"), expression=col("account_id", "m")),
    )
    moved_rule = (
        exp.Case()
        .when(exp.Not(this=exp.Is(this=col("moved_to", "v"), expression=exp.null())), text("move"))
        .else_(col("rule", "m"))
    )
    return (
        exp.select(
            col("account_id", "m"),
            alias(exp.Coalesce(this=col("moved_to", "v"), expressions=[col("territory", "m")]), "territory"),
            alias(moved_rule, "rule"),
            col("priority", "m"),
            alias(text(plan.name), "plan"),
            alias(exp.Literal.number(plan.version), "version"),
            col("start", "v"),
            col("end", "v"),
        )
        .from_(exp.Subquery(this=matched, alias=exp.TableAlias(this=exp.to_identifier("m", quoted=True))), copy=False)
        .join(exp.select("*").from_(pieces).subquery("v"), on=applies, copy=False)
    )


def _dated_spans(plan: ir.TerritoryPlan) -> list[tuple[str | None, dt.date, dt.date, str | None]]:
    """(account or None for every unmoved account, start, end, territory moved to)."""
    spans: list[tuple[str | None, dt.date, dt.date, str | None]] = [
        (None, plan.effective_from, plan.effective_to, None)
    ]
    by_account: dict[str, list[ir.Move]] = {}
    for move in plan.moves:
        by_account.setdefault(move.account, []).append(move)
    for account, moves in sorted(by_account.items()):
        moves.sort(key=lambda m: m.on)
        start, moved_to = plan.effective_from, None
        for move in moves:
            if move.on > start:
                spans.append((account, start, move.on - ONE_DAY, moved_to))
            start, moved_to = max(move.on, plan.effective_from), move.territory
        spans.append((account, start, plan.effective_to, moved_to))
    return spans


def holders(plans: list[ir.TerritoryPlan]) -> exp.Expression:
    """Owners and overlays of every territory, dated: a later owner replaces the earlier one."""
    rows = []
    for plan in plans:
        for territory in plan.territories:
            for role, people in (("owner", territory.owners), ("overlay", territory.overlays)):
                people = sorted(people, key=lambda h: h.start or plan.effective_from)
                for position, holder in enumerate(people):
                    start = holder.start or plan.effective_from
                    end = plan.effective_to
                    if role == "owner" and position + 1 < len(people):
                        end = (people[position + 1].start or plan.effective_from) - ONE_DAY
                    rows.append(
                        exp.Tuple(
                            expressions=[text(territory.name), text(holder.rep), text(role), date(start), date(end)]
                        )
                    )
    names = ("territory", "rep_id", "role", "start", "end")
    if not rows:
        return exp.select(
            *[
                alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n)
                for n, t in zip(names, ("TEXT", "TEXT", "TEXT", "DATE", "DATE"), strict=False)
            ]
        ).where(exp.false(), copy=False)
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(this=exp.to_identifier("h"), columns=[exp.to_identifier(n, quoted=True) for n in names]),
    )
    return exp.select(*[col(n) for n in names]).from_(values, copy=False)


def _empty_assignments() -> exp.Select:
    names = ("account_id", "territory", "rule", "priority", "plan", "version", "start", "end")
    types = ("TEXT", "TEXT", "TEXT", "INT", "TEXT", "INT", "DATE", "DATE")
    return exp.select(
        *[alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n) for n, t in zip(names, types, strict=False)]
    ).where(exp.false(), copy=False)


def territory_table(plans: list[ir.TerritoryPlan], dialect: str = "duckdb") -> exp.Select:
    """account -> territory -> owner, dated, with the rule that matched: the territory plan's output."""
    owners = (
        exp.select("*")
        .from_(table("holders"), copy=False)
        .where(exp.EQ(this=col("role"), expression=text("owner")), copy=False)
    )
    start = exp.Greatest(
        this=col("start", "t"), expressions=[exp.Coalesce(this=col("start", "o"), expressions=[col("start", "t")])]
    )
    end = exp.Least(
        this=col("end", "t"), expressions=[exp.Coalesce(this=col("end", "o"), expressions=[col("end", "t")])]
    )
    select = (
        exp.select(
            col("plan", "t"),
            col("version", "t"),
            col("account_id", "t"),
            col("territory", "t"),
            alias(col("rep_id", "o"), "owner_rep_id"),
            col("rule", "t"),
            col("priority", "t"),
            alias(start, "start"),
            alias(end, "end"),
        )
        .from_(table("assignments", "t"), copy=False)
        .join(
            owners.subquery("o"),
            join_type="left",
            on=and_(
                exp.EQ(this=col("territory", "o"), expression=col("territory", "t")),
                exp.LTE(this=col("start", "o"), expression=col("end", "t")),
                exp.GTE(this=col("end", "o"), expression=col("start", "t")),
            ),
            copy=False,
        )
    )
    select = select.with_("assignments", as_=assignments(plans, dialect)).with_("holders", as_=holders(plans))
    return select.order_by(col("plan"), col("version"), col("account_id"), col("start"), copy=False)
