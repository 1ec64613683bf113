"""Cycles in the manager hierarchy: the `reps` table's, and those it makes on some day with `rep_assignments`.

In: each rep's manager from the `reps` table and the assignments that date it,
each with where it came from (a file and row, or a plan test's given row).
Out: the cycles, each named once, at the row that closes it.

The calculators follow, for a deal, the chain of managers in force on its
close date: a rep with assignments has, on each day, the manager of the
assignment covering it (the `reps` row's when that is empty) and none on days
no assignment covers; a rep without has the `reps` row's. A cycle would
credit the deal again at each turn of the loop, up to the chain's depth limit.

A cycle with a dated link holds on the days all its links do, so on the first
day of one of its assignments (the latest to start): walking up from each
assignment's rep on its first day finds every such cycle. The `reps` table's
own cycles are refused whoever they concern (as the data contract always has).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Manager:
    """A rep's manager (None at the top), from a `reps` row or, dated, from an assignment."""

    rep: str
    manager: str | None
    where: object  # what a diagnostic points at: a file and row, or a plan test's given row
    start: dt.date | None = None  # None: a reps row, for the whole employment
    end: dt.date | None = None  # None: open


@dataclasses.dataclass(frozen=True)
class Cycle:
    reps: tuple[str, ...]  # from the rep whose row closes it up to the one reporting to that rep
    closed_by: Manager

    def text(self) -> str:
        loop = " -> ".join(repr(rep) for rep in (*self.reps, self.reps[0]))
        since = f"from {self.closed_by.start.isoformat()} " if self.closed_by.start is not None else ""
        return f"{since}the manager hierarchy has a cycle: {loop}"


def cycles(reps: Sequence[Manager], assignments: Sequence[Manager]) -> list[Cycle]:
    """Each cycle once: the `reps` table's (from the first row, in the order given, on it), then those of
    the hierarchy on an assignment's first day (from the first such assignment, in the order given)."""
    row_of = {}
    for row in reps:
        row_of.setdefault(row.rep, row)
    by_rep: dict[str, list[Manager]] = {}
    for assignment in assignments:
        by_rep.setdefault(assignment.rep, []).append(assignment)

    def in_reps_table(rep: str) -> str | None:
        return row_of[rep].manager if rep in row_of else None

    def manager_on(day: dt.date) -> Callable[[str], str | None]:
        def manager(rep: str) -> str | None:
            if rep not in by_rep:
                return in_reps_table(rep)
            for a in by_rep[rep]:
                if a.start <= day and (a.end is None or day <= a.end):
                    return a.manager or in_reps_table(rep)
            return None
        return manager

    found: list[Cycle] = []
    seen: set[frozenset[str]] = set()
    # Per hierarchy (the reps table's, each assignment's first day): reps whose chain is known, to the top or
    # into a cycle found already, so a long chain or a big cycle is walked once, not once a rep on it.
    settled: dict[dt.date | None, set[str]] = {}
    starts = [(row, in_reps_table) for row in row_of.values()]
    starts += [(a, manager_on(a.start)) for a in assignments]
    for start, manager_of in starts:
        loop = _loop_from(start.rep, manager_of, settled.setdefault(start.start, set()))
        if loop is not None and frozenset(loop) not in seen:
            seen.add(frozenset(loop))
            found.append(Cycle(loop, start))
    return found


def _loop_from(rep: str, manager_of: Callable[[str], str | None], settled: set[str]) -> tuple[str, ...] | None:
    """The reps from `rep` up the chain back to `rep`; None when the chain reaches the top, a settled rep or
    a cycle without `rep` (its members find it from their own rows: a cycle is named at its first)."""
    if rep in settled:
        return None
    path, on_path = [rep], {rep}
    here = manager_of(rep)
    while here is not None and here not in on_path and here not in settled:
        path.append(here)
        on_path.add(here)
        here = manager_of(here)
    if here == rep or here is None or here in settled:
        settled.update(path)
    else:  # into a cycle that does not hold `rep`: the reps before it are settled, its members not yet
        settled.update(path[:path.index(here)])
    return tuple(path) if here == rep else None
