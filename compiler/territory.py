"""Territory plan IR -> sqlglot queries: which territory holds each account, and who covers it.

In: checked `ir.TerritoryPlan`s (every version in force somewhere). Out:
    assignments(plans)   account_id, territory, rule (the matching rule's text
                         position), priority, plan, version, start, end:
                         one row per account and plan version; an account no
                         rule matches has territory NULL (a coverage gap).
    assigned(plans, dialect, computed)  the same, read from a run's table of them.
    holders(plans)       territory, rep_id, role (owner | overlay), start, end.
A `move` realigns an account from its date on: the rows split at the move.
Lower priority numbers win; among equal priorities the first rule written
wins (the checker reports equal-priority rules that can overlap).
"""

from __future__ import annotations

import datetime as dt

from sqlglot import exp

from compiler.sql import alias, and_, case, col, date, row_condition, table, text, union_all
from dsl import ir

ONE_DAY = dt.timedelta(days=1)


ASSIGNMENT_COLUMNS = ("account_id", "territory", "rule", "priority", "plan", "version", "start", "end")


def assignments(plans: list[ir.TerritoryPlan], dialect: str = "duckdb") -> exp.Expression:
    selects = [_plan_assignments(plan, dialect) for plan in plans]
    return union_all(selects) if selects else _empty_assignments()


def assigned(plans: list[ir.TerritoryPlan], dialect: str, computed: str | None = None) -> exp.Expression:
    """`assignments(plans)`, or read from `computed`: the table of them a run filled once. A real table
    gives an engine's planner row counts (PostgreSQL guessed 4 rows for 52k accounts from the inline
    rules and joined by nested loops)."""
    if computed is None:
        return assignments(plans, dialect)
    return exp.select(*[col(name) for name in ASSIGNMENT_COLUMNS], copy=False).from_(table(computed), copy=False)


def _rule_condition(rule: ir.AssignRule, dialect: str) -> exp.Expression:
    if rule.accounts:
        return exp.In(this=col("id", "a"), expressions=[text(a) for a in rule.accounts])
    return row_condition(rule.where, "account", "a", dialect)


def _plan_assignments(plan: ir.TerritoryPlan, dialect: str) -> exp.Select:
    ordered = sorted(enumerate(plan.rules), key=lambda item: (item[1].priority, item[0]))
    # One CASE finds the deciding rule's position (each condition evaluated at most once per account);
    # its territory, source line and priority come from a small join, not from three more CASE chains.
    position: exp.Expression = exp.Case()
    rules = []
    for number, (_, rule) in enumerate(ordered, start=1):
        where = f"{rule.span.file}:{rule.span.line}" if rule.span else f"priority {rule.priority}"
        position = position.when(_rule_condition(rule, dialect), exp.Literal.number(number), copy=False)
        rules.append(
            exp.Tuple(
                expressions=[
                    exp.Literal.number(number),
                    text(rule.territory),
                    text(where),
                    exp.Literal.number(rule.priority),
                ]
            )
        )
    if not ordered:
        position = exp.Cast(this=exp.null(), to=exp.DataType.build("INT"))
        rules.append(exp.Tuple(expressions=[exp.Literal.number(0), text(""), text(""), exp.Literal.number(0)]))
    scan = exp.select(alias(col("id", "a"), "account_id"), alias(position, "position"), copy=False).from_(
        table("accounts", "a"), copy=False
    )
    names = ("position", "territory", "rule", "priority")
    known = exp.Values(
        expressions=rules,
        alias=exp.TableAlias(this=exp.to_identifier("k"), columns=[exp.to_identifier(n, quoted=True) for n in names]),
    )
    matched = (
        exp.select(col("account_id", "s"), col("territory", "k"), col("rule", "k"), col("priority", "k"), copy=False)
        .from_(scan.subquery("s"), copy=False)
        .join(
            exp.select("*").from_(known).subquery("k"),
            join_type="left",
            on=exp.EQ(this=col("position", "k"), expression=col("position", "s")),
            copy=False,
        )
    )
    # Realignment: each move starts a new dated row for its account.
    spans = dated_spans(plan)
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
        .when(exp.Not(this=exp.Is(this=col("moved_to", "v"), expression=exp.null())), text("move"), copy=False)
        .else_(col("rule", "m"), copy=False)
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
            copy=False,
        )
        .from_(exp.Subquery(this=matched, alias=exp.TableAlias(this=exp.to_identifier("m", quoted=True))), copy=False)
        .join(exp.select("*", copy=False).from_(pieces).subquery("v"), on=applies, copy=False)
    )


def dated_spans(plan: ir.TerritoryPlan) -> list[tuple[str | None, dt.date, dt.date, str | None]]:
    """(account or None for every unmoved account, start, end, territory moved to), within the plan's dates:
    a move before the plan starts holds from its first day, one after it ends does not happen in it."""
    spans: list[tuple[str | None, dt.date, dt.date, str | None]] = [
        (None, plan.effective_from, plan.effective_to, None)
    ]
    by_account: dict[str, list[ir.Move]] = {}
    for move in plan.moves:
        by_account.setdefault(move.account, []).append(move)
    for account, moves in sorted(by_account.items()):
        moves.sort(key=lambda m: m.on)
        start, moved_to = plan.effective_from, None
        for move in (m for m in moves if m.on <= plan.effective_to):
            if move.on > start:
                spans.append((account, start, move.on - ONE_DAY, moved_to))
            start, moved_to = max(move.on, plan.effective_from), move.territory
        spans.append((account, start, plan.effective_to, moved_to))
    return spans


def held_spans(plans: list[ir.TerritoryPlan]) -> list[tuple[str, str | None, str, dt.date, dt.date]]:
    """(territory, rep, role, start, end): every territory's owners and overlays within its plan's dates.

    An owner without `from` holds from the plan's first day and each later one replaces the one before
    from its date; a date before the plan counts from its first day, one after it never comes. Days no
    owner holds are an owner row without a rep, so the territory table shows them as vacant."""
    rows: list[tuple[str, str | None, str, dt.date, dt.date]] = []
    for plan in plans:
        first, last = plan.effective_from, plan.effective_to
        for territory in plan.territories:
            owners = sorted(territory.owners, key=lambda h: h.start or dt.date.min)  # ties keep the written order
            starts = [max(h.start or first, first) for h in owners] + [last + ONE_DAY]
            if starts[0] > first:
                rows.append((territory.name, None, "owner", first, min(starts[0], last + ONE_DAY) - ONE_DAY))
            for position, holder in enumerate(owners):
                end = min(starts[position + 1] - ONE_DAY, last)
                if starts[position] <= end:
                    rows.append((territory.name, holder.rep, "owner", starts[position], end))
            for holder in sorted(territory.overlays, key=lambda h: h.start or dt.date.min):
                start = max(holder.start or first, first)
                if start <= last:
                    rows.append((territory.name, holder.rep, "overlay", start, last))
    return rows


def holders(plans: list[ir.TerritoryPlan]) -> exp.Expression:
    """Owners and overlays of every territory, dated (`held_spans`)."""
    rows = [
        exp.Tuple(
            expressions=[text(territory), text(rep) if rep is not None else exp.null(), text(role), date(start),
                         date(end)]
        )
        for territory, rep, role, start, end in held_spans(plans)
    ]
    names = ("territory", "rep_id", "role", "start", "end")
    if not rows:
        return exp.select(
            *[
                alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n)
                for n, t in zip(names, ("TEXT", "TEXT", "TEXT", "DATE", "DATE"), strict=False)
            ],
            copy=False,
        ).where(exp.false(), copy=False)
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(this=exp.to_identifier("h"), columns=[exp.to_identifier(n, quoted=True) for n in names]),
    )
    return exp.select(*[col(n) for n in names], copy=False).from_(values, copy=False)


def _empty_assignments() -> exp.Select:
    names = ("account_id", "territory", "rule", "priority", "plan", "version", "start", "end")
    types = ("TEXT", "TEXT", "TEXT", "INT", "TEXT", "INT", "DATE", "DATE")
    return exp.select(
        *[alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n) for n, t in zip(names, types, strict=False)],
        copy=False,
    ).where(exp.false(), copy=False)


def territory_table(plans: list[ir.TerritoryPlan], dialect: str = "duckdb", computed: str | None = None) -> exp.Select:
    """account -> territory -> owner, dated, with the rule that matched: the territory plan's output
    (`computed`: see `assigned`)."""
    owners = (
        exp.select("*", copy=False)
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
            copy=False,
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
    select = select.with_("assignments", as_=assigned(plans, dialect, computed), copy=False).with_(
        "holders", as_=holders(plans), copy=False
    )
    return select.order_by(col("plan"), col("version"), col("account_id"), col("start"), copy=False)


# ---------------------------------------------------------------- the territory report


def rule_matches(plan: ir.TerritoryPlan, dialect: str = "duckdb") -> exp.Select:
    """Overlaps: accounts that two or more rules of the deciding (lowest matching) priority match.

    Only rules that share a priority with another can tie (a plan without
    such rules needs no query); one scan of accounts evaluates those, and the
    deciding priority (the first matching rule's). Only the accounts with a
    tie come out, one row per tied rule: account_id, plan, version, priority,
    territory, rule (file:line). Among tied rules the first written wins the
    assignment, which is why a tie is reported rather than refused (the
    checker already refuses rules it can tell may overlap, RP330).
    """
    rules = list(enumerate(plan.rules))
    by_priority: dict[int, int] = {}
    for _, rule in rules:
        by_priority[rule.priority] = by_priority.get(rule.priority, 0) + 1
    tied_rules = [(index, rule) for index, rule in rules if by_priority[rule.priority] > 1]
    if not tied_rules:  # no two rules share a priority: nothing can tie
        return _empty_overlaps()
    matched = [alias(col("id", "a"), "account_id")]
    for index, rule in tied_rules:
        matched.append(alias(_rule_condition(rule, dialect), f"m{index}"))
    # The deciding priority: the first matching rule's in priority order (LEAST is printed NULL-propagating).
    best = exp.Case()
    for _, rule in sorted(rules, key=lambda item: (item[1].priority, item[0])):
        best = best.when(_rule_condition(rule, dialect), exp.Literal.number(rule.priority), copy=False)
    matched.append(alias(best, "best"))
    rules = tied_rules
    scan = exp.select(*matched, copy=False).from_(table("accounts", "a"), copy=False)
    ranked = exp.select("*", copy=False).from_(scan.subquery("s"), copy=False)
    count: exp.Expression = exp.Literal.number(0)
    for index, rule in rules:
        one = case(
            and_(col(f"m{index}"), exp.EQ(this=col("best"), expression=exp.Literal.number(rule.priority))),
            exp.Literal.number(1),
            exp.Literal.number(0),
        )
        count = exp.Add(this=count, expression=one)
    tied = (
        exp.select("*", copy=False)
        .from_(ranked.subquery("r"), copy=False)
        .where(exp.GT(this=exp.paren(count), expression=exp.Literal.number(1)), copy=False)
    )
    selects = []
    for index, rule in rules:
        where = f"{rule.span.file}:{rule.span.line}" if rule.span else f"rule {index + 1}"
        selects.append(
            exp.select(
                col("account_id", "o"),
                alias(text(plan.name), "plan"),
                alias(exp.Literal.number(plan.version), "version"),
                alias(exp.Literal.number(rule.priority), "priority"),
                alias(text(rule.territory), "territory"),
                alias(text(where), "rule"),
                copy=False,
            )
            .from_(table("overlap_accounts", "o"), copy=False)
            .where(
                and_(
                    col(f"m{index}", "o"), exp.EQ(this=col("best", "o"), expression=exp.Literal.number(rule.priority))
                ),
                copy=False,
            )
        )
    outer = exp.select("*", copy=False).from_(
        exp.Subquery(this=union_all(selects), alias=exp.TableAlias(this=exp.to_identifier("u", quoted=True))),
        copy=False,
    )
    outer = outer.with_(exp.TableAlias(this=exp.to_identifier("overlap_accounts", quoted=True)), as_=tied, copy=False)
    return outer.order_by(col("account_id"), col("rule"), copy=False)


def _empty_overlaps() -> exp.Select:
    names = ("account_id", "plan", "version", "priority", "territory", "rule")
    types = ("TEXT", "TEXT", "INT", "INT", "TEXT", "TEXT")
    return exp.select(
        *[alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n) for n, t in zip(names, types, strict=True)],
        copy=False,
    ).where(exp.false(), copy=False)


def balance(plans: list[ir.TerritoryPlan], dialect: str = "duckdb", computed: str | None = None) -> exp.Select:
    """Per plan version and territory: accounts held at any time, and potential weighted by days held
    (`computed`: see `assigned`).

    potential = sum of account potential x days in the territory / days of the
    plan (exact, 10 places): an account moved on July 1 counts half in each.
    Territories without accounts are listed with 0.
    """
    from compiler.exact import dec, div, number

    if not plans:
        names = ("plan", "version", "territory", "accounts", "potential")
        types = ("TEXT", "INT", "TEXT", "BIGINT", "DECIMAL(38, 10)")
        return exp.select(
            *[alias(exp.Cast(this=exp.null(), to=exp.DataType.build(t)), n) for n, t in zip(names, types, strict=True)],
            copy=False,
        ).where(exp.false(), copy=False)
    rows = []
    for plan in plans:
        days = (plan.effective_to - plan.effective_from).days + 1
        for territory in plan.territories:
            rows.append(
                exp.Tuple(
                    expressions=[
                        text(plan.name),
                        exp.Literal.number(plan.version),
                        text(territory.name),
                        exp.Literal.number(days),
                    ]
                )
            )
    defined = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier("d"),
            columns=[exp.to_identifier(n, quoted=True) for n in ("plan", "version", "territory", "plan_days")],
        ),
    )
    held_days = exp.Add(
        this=exp.DateDiff(this=col("end", "t"), expression=col("start", "t"), unit=exp.var("DAY")),
        expression=exp.Literal.number(1),
    )
    weighted = dec(
        exp.Mul(this=dec(exp.Coalesce(this=col("potential", "a"), expressions=[number(0)])), expression=dec(held_days))
    )
    held = (
        exp.select(
            col("plan", "t"),
            col("version", "t"),
            col("territory", "t"),
            alias(exp.Count(this=exp.Distinct(expressions=[col("account_id", "t")])), "accounts"),
            alias(exp.Sum(this=weighted), "potential_days"),
            copy=False,
        )
        .from_(table("assignments", "t"), copy=False)
        .join(table("accounts", "a"), on=exp.EQ(this=col("id", "a"), expression=col("account_id", "t")), copy=False)
        .where(exp.Not(this=exp.Is(this=col("territory", "t"), expression=exp.null())), copy=False)
        .group_by(col("plan", "t"), col("version", "t"), col("territory", "t"), copy=False)
    )
    potential = div(
        exp.Coalesce(this=col("potential_days", "h"), expressions=[number(0)]), dec(col("plan_days", "d")), dialect
    )
    select = (
        exp.select(
            col("plan", "d"),
            col("version", "d"),
            col("territory", "d"),
            alias(exp.Coalesce(this=col("accounts", "h"), expressions=[exp.Literal.number(0)]), "accounts"),
            alias(potential, "potential"),
            copy=False,
        )
        .from_(exp.select("*", copy=False).from_(defined).subquery("d"))
        .join(
            held.subquery("h"),
            join_type="left",
            on=and_(
                exp.EQ(this=col("plan", "h"), expression=col("plan", "d")),
                exp.EQ(this=col("version", "h"), expression=col("version", "d")),
                exp.EQ(this=col("territory", "h"), expression=col("territory", "d")),
            ),
            copy=False,
        )
    )
    select = select.with_("assignments", as_=assigned(plans, dialect, computed), copy=False)
    return select.order_by(col("plan"), col("version"), col("territory"), copy=False)
