"""Generate a coherent sample company: roster, accounts, deals and the rest.

In: a size (reps, deals), a seed and a fiscal year. Out: one file per table
of the data contract in a folder (`reps.csv`, `deals.parquet`, ...), which
`runtime.data.open_data` reads and `runtime.contract.check_data` accepts.

What always holds:
  - the same arguments write the same bytes (NumPy's PCG64 generator, one
    stream per table, seeded from `seed`; Parquet written by pyarrow, CSV by
    DuckDB, both in row order);
  - money is exact: amounts are drawn as integer cents and stored as
    DECIMAL(18,2); fx rates are integer millionths stored as DECIMAL(18,6);
  - every reference resolves: deal owners, split reps, managers, quota, MBO
    and activity reps are in the roster; accounts exist; each deal closes
    while its owner is employed; every currency has daily fx rates;
  - each file appears whole or not at all (written to a temporary name in the
    same folder, then renamed).

The company: a CRO, one VP per region (NA, EMEA, APAC), first-line managers
each leading a team of one kind (role "Manager"; "SDR Manager" and "SE Manager"
for the teams no bookings roll up from), and the team members:
account executives (AE, segment Enterprise or Commercial), SDRs, solutions
engineers (SE, overlay) and customer success managers (CSM: renewals and
expansion). EMEA reps are mostly paid in EUR or GBP. About 10 % of reps are
hired during the fiscal year and 3 % leave in it. Deals span the fiscal year
(and some the year before, for prior-year bookings): closed_won, closed_lost
or open; ~3 % of won deals are cancelled later (half within 90 days); most
won deals are paid; ~5 % are split between two reps. Quotas are quarterly
(`2027-Q1`), set from target incentives (AE quota = 10 x TI) and rolled up to
managers, VPs and the CRO, in USD (the plans' currency); target incentives
are in each rep's pay currency. About a fifth of the SDRs employed all year
(at least one) are promoted to Commercial AE on a day between March and
September: `rep_assignments` holds their two roles (SDR from hire, then AE
Commercial, open-ended, with the Commercial AE target incentive), so the SDR
and Commercial AE plans each pay them for their days, each at its TI, and the
AE quota plan takes them in from the promotion. The reps row keeps the role
and TI they were hired on (manager roll-ups still read it); their deals and
activities are generated as an SDR's, so their AE months start with an empty
pipeline.

The plans in plans/ name reps and accounts of the 200-rep company (territory
owners and overlays, named accounts): a bigger company starts with those 200
reps, row for row, and its ids grow a digit only past R9999 and A99999.

Generation is vectorised (NumPy arrays, never a Python loop per row), so 10,000
reps and 10,000,000 deals take seconds (`bench/bench_sample_data.py`).

>>> import tempfile
>>> files = generate_sample_company(tempfile.mkdtemp(), reps=20, deals=100)
>>> sorted(files)
['accounts', 'activities', 'deal_splits', 'deals', 'fx_rates', 'mbo_scores', 'quotas', 'rep_assignments', 'reps']
"""

from __future__ import annotations

import datetime
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dsl.diagnostics import Diagnostic, RevplanError

PARQUET_ABOVE_DEALS = 200_000  # fmt="auto": CSV (readable) up to this many deals, Parquet above
CHUNK_ROWS = 250_000  # deals generated and written per step (one Parquet row group)
MIN_REPS = 10  # a CRO, three VPs, a manager and a team
BASE_REPS = 200  # the company plans/ were written for: the first reps of every bigger one
ACTIVITIES_PER_SDR = 200
REGIONS = ("NA", "EMEA", "APAC")
CURRENCIES = ("USD", "EUR", "GBP")
QUARTER_PHASING = (22, 24, 25, 29)  # percent of the annual quota per quarter
PROMOTED_PERCENT = 20  # of the SDRs employed all year: promoted to Commercial AE during it


@dataclass(frozen=True)
class _Kind:
    """A kind of job on the roster."""

    role: str
    segment: str | None
    title: str
    target_incentive: int  # annual, USD, whole dollars
    quota_tenths_of_ti: int  # annual quota = TI x this / 10; 0: no quota


# Team members' kinds; then the management kinds. Codes are positions here.
_KINDS = (
    _Kind("AE", "Enterprise", "Account Executive", 120_000, 100),
    _Kind("AE", "Commercial", "Account Executive", 60_000, 100),
    _Kind("SDR", None, "Sales Development Representative", 25_000, 0),
    _Kind("CSM", None, "Customer Success Manager", 40_000, 125),
    _Kind("SE", "Enterprise", "Solutions Engineer", 50_000, 200),
    _Kind("Manager", None, "Sales Manager", 80_000, 0),
    _Kind("Manager", None, "VP Sales", 150_000, 0),
    _Kind("Manager", None, "Chief Revenue Officer", 300_000, 0),
)
AE_ENT, AE_COM, SDR, CSM, SE, MANAGER, VP, CRO = range(len(_KINDS))
SELLERS = (AE_ENT, AE_COM, CSM)  # kinds that own deals
ROLLED_UP = SELLERS  # teams whose quotas add up to their managers' (SEs are an overlay, SDRs book none)
# Managers of the other teams have a role (and title) of their own: nothing rolls up to them, so they are
# not on the Sales Manager plan, which pays on the team's bookings against the team's quota.
_TEAM_MANAGERS = {SDR: ("SDR Manager", "SDR Manager"), SE: ("SE Manager", "Solutions Engineering Manager")}

# The kind of each manager's team, in turn: small companies still get every kind.
_TEAM_ROTATION = (AE_ENT, AE_COM, SDR, CSM, SE, AE_COM, AE_ENT, SDR, CSM, AE_COM)

_FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Daniel", "Elif", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kenji", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wei", "Yara",
    "Zoe", "Luca", "Maya", "Noah", "Aiko", "Emma", "Liam", "Sofia",
)
_LAST_NAMES = (
    "Adams", "Becker", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kowalski", "Laurent", "Martin", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka",
    "Urban", "Vogel", "Walker", "Yilmaz", "Zhang", "Novak", "Silva", "Moreau", "Larsen", "Kim", "Brown",
)
_ACCOUNT_WORDS = (
    ("Blue", "Nordic", "Silver", "Bright", "Summit", "Harbor", "Pioneer", "Golden", "Atlas", "Polar",
     "Crimson", "Vertex", "Evergreen", "Orbit", "Granite", "Lumen"),
    ("River", "Peak", "Field", "Stone", "Wave", "Bridge", "Forge", "Grove", "Point", "Gate", "Works", "Line"),
    ("Logistics", "Health", "Systems", "Foods", "Energy", "Bank", "Retail", "Labs", "Media", "Robotics",
     "Insurance", "Motors"),
)
_INDUSTRIES = ("Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Energy", "Media",
               "Logistics", "Public Sector", "Education")
# Countries by region, each repeated by its weight in percent.
_COUNTRIES = ("US", "CA", "DE", "GB", "FR", "NL", "ES", "JP", "AU", "SG", "IN")
_COUNTRY_WEIGHTS = (
    {"US": 85, "CA": 15},
    {"DE": 30, "GB": 30, "FR": 20, "NL": 10, "ES": 10},
    {"JP": 40, "AU": 30, "SG": 20, "IN": 10},
)
_US_STATES = ("CA", "NY", "TX", "WA", "MA", "IL", "FL", "GA", "CO", "NC")
_US_STATE_WEIGHTS = (22, 16, 14, 10, 9, 8, 8, 5, 4, 4)
# EMEA pay currencies in percent: EUR 60, GBP 30, USD 10.
_EMEA_CURRENCY = (1,) * 60 + (2,) * 30 + (0,) * 10
# 1 unit of currency = this many hundredths of USD (for target incentives in pay currency).
_USD_PER_UNIT_X100 = (100, 108, 127)
_STAGES = ("closed_won", "closed_lost", "open")
_PRODUCTS = ("new_logo", "expansion", "renewal", "analytics")
_ACTIVITY_TYPES = ("meeting", "call", "email")
_ACTIVITY_POINTS = (100, 20, 5)  # hundredths

# Streams of random numbers, one per table, so that adding deals keeps the roster.
_ROSTER, _ACCOUNTS, _DEALS, _ACTIVITIES, _MBO, _FX, _ASSIGNMENTS = range(7)

_EPOCH = datetime.date(1970, 1, 1)


def generate_sample_company(
    out_dir: str | Path,
    reps: int = 200,
    deals: int = 20_000,
    seed: int = 42,
    year: int = 2027,
    fmt: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write a sample company to `out_dir`; return the file written for each table.

    `fmt` is "csv", "parquet", or "auto": CSV up to 200,000 deals (easy to
    read), Parquet above. Writing one format removes the same table's file in
    the other format, so the folder holds one file per table.
    """
    _check_arguments(reps, deals, seed, year, fmt)
    if fmt == "auto":
        fmt = "parquet" if deals > PARQUET_ABOVE_DEALS else "csv"
    out = Path(out_dir)
    if (out / "manifest.json").exists():  # a run's outputs: its quotas.csv would be replaced by the sample's
        raise RevplanError([Diagnostic(code="RD030", message=f"{out} holds a run's outputs (manifest.json)",
                                       file=str(out), hints=("give the sample company a folder of its own",))])
    say = progress or (lambda step: None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        roster = _Roster.build(reps, seed, year)
        written: dict[str, Path] = {}
        say("reps")
        written["reps"] = _write(out, "reps", roster.table(), fmt)
        say("accounts")
        accounts = _Accounts.build(max(20, deals // 20), seed)
        written["accounts"] = _write(out, "accounts", accounts.table(), fmt)
        say("deals")
        deal_maker = _Deals(roster, accounts, deals, seed, year)
        written["deals"] = _write(out, "deals", deal_maker.batches(), fmt, schema=_DEAL_SCHEMA)
        say("deal_splits")
        written["deal_splits"] = _write(out, "deal_splits", deal_maker.splits(), fmt)
        say("quotas")
        written["quotas"] = _write(out, "quotas", roster.quotas(), fmt)
        say("mbo_scores")
        written["mbo_scores"] = _write(out, "mbo_scores", roster.mbo_scores(seed), fmt)
        say("activities")
        written["activities"] = _write(out, "activities", _activities(roster, accounts, seed, year), fmt)
        say("fx_rates")
        written["fx_rates"] = _write(out, "fx_rates", _fx_rates(seed, year), fmt)
        say("rep_assignments")
        written["rep_assignments"] = _write(out, "rep_assignments", roster.promotions(seed), fmt)
    except OSError as error:
        raise RevplanError([Diagnostic(code="RD030", message=f"cannot write the sample company: {error}",
                                       file=str(out), hints=("check the folder's permissions and free space, "
                                                             "or give --out another folder",))]) from None
    return written


def _check_arguments(reps: int, deals: int, seed: int, year: int, fmt: str) -> None:
    problems = []
    if reps < MIN_REPS:
        problems.append(f"reps must be at least {MIN_REPS} (a CRO, three VPs, a manager and a team), not {reps}")
    if deals < 0:
        problems.append(f"deals cannot be negative ({deals})")
    if seed < 0:
        problems.append(f"seed must be zero or positive ({seed})")
    if not 1971 <= year <= 9998:
        problems.append(f"year {year} is out of range")
    if fmt not in ("auto", "csv", "parquet"):
        problems.append(f"fmt must be 'auto', 'csv' or 'parquet', not {fmt!r}")
    if problems:
        raise RevplanError([Diagnostic(code="RD030", message=p) for p in problems])


# --- the roster --------------------------------------------------------------------


@dataclass
class _Roster:
    """Reps as arrays, one position per rep (0 is the CRO)."""

    year: int
    ids: pa.Array
    kind: np.ndarray  # index into _KINDS
    team: np.ndarray  # the kind of team a manager leads / a member belongs to; -1 for VPs and the CRO
    manager: np.ndarray  # position of the manager; -1 at the top
    region: np.ndarray  # index into REGIONS; -1 for the CRO
    currency: np.ndarray  # index into CURRENCIES
    hire: np.ndarray  # days since 1970-01-01
    termination: np.ndarray  # days since 1970-01-01; -1 while employed
    ti_usd: np.ndarray  # annual target incentive in USD, whole dollars
    skill: np.ndarray  # percent: how big a seller's deals are against the average (50 .. 150)
    names: pa.Array

    @classmethod
    def build(cls, count: int, seed: int, year: int) -> _Roster:
        """The roster. Past BASE_REPS reps, the first BASE_REPS are the company of that size (the reps plans/
        name keep their ids and roles at every size) and the others form more teams under the same VPs."""
        roster = cls._company(min(count, BASE_REPS), seed, year)
        return roster._more_teams(count - BASE_REPS, seed) if count > BASE_REPS else roster

    @classmethod
    def _company(cls, count: int, seed: int, year: int) -> _Roster:
        rng = _rng(seed, _ROSTER)
        managers = max(1, round((count - 4) / 9))  # teams of about eight
        member_no = np.arange(count) - 4 - managers  # >= 0 for team members

        manager_team = np.array(_TEAM_ROTATION)[np.arange(managers) % len(_TEAM_ROTATION)]
        manager_region = _pick(rng, (50, 30, 20), managers)
        own_manager = member_no % managers  # team members spread evenly over the teams

        kind = np.full(count, MANAGER)
        kind[0], kind[1:4] = CRO, VP
        team = np.full(count, -1)
        team[4:4 + managers] = manager_team
        team[4 + managers:] = manager_team[own_manager[4 + managers:]]
        kind[4 + managers:] = team[4 + managers:]

        region = np.full(count, -1)
        region[1:4] = np.arange(3)
        region[4:4 + managers] = manager_region
        region[4 + managers:] = manager_region[own_manager[4 + managers:]]

        manager = np.full(count, -1)
        manager[1:4] = 0
        manager[4:4 + managers] = 1 + manager_region
        manager[4 + managers:] = 4 + own_manager[4 + managers:]
        return cls(year, _ids("R", np.arange(1, count + 1), 4), kind, team, manager, region,
                   *_people(rng, kind, region, year))

    def _more_teams(self, count: int, seed: int) -> _Roster:
        """This roster and `count` more reps: teams of about eight, each with a manager under its region's VP."""
        rng = _rng(seed, _ROSTER, 1)
        first, managers = len(self.kind), max(1, round(count / 9))
        teams_so_far = int(np.sum(self.kind == MANAGER))  # the rotation of team kinds goes on
        manager_team = np.array(_TEAM_ROTATION)[(teams_so_far + np.arange(managers)) % len(_TEAM_ROTATION)]
        manager_region = _pick(rng, (50, 30, 20), managers)
        own_manager = np.arange(count - managers) % managers
        team = np.concatenate([manager_team, manager_team[own_manager]])
        kind = np.concatenate([np.full(managers, MANAGER), team[managers:]])
        region = np.concatenate([manager_region, manager_region[own_manager]])
        manager = np.concatenate([1 + manager_region, first + own_manager])
        drawn = ("currency", "hire", "termination", "ti_usd", "skill", "names")
        more = dict(kind=kind, team=team, manager=manager, region=region,
                    **dict(zip(drawn, _people(rng, kind, region, self.year), strict=True)))
        joined = {name: _concatenate(getattr(self, name), values) for name, values in more.items()}
        return _Roster(year=self.year, ids=_ids("R", np.arange(1, first + count + 1), 4), **joined)

    def table(self) -> pa.Table:
        """reps: the schema's columns, then `title` (a custom field, as CRMs have)."""
        ti = _in_currency(self.ti_usd, self.currency)
        # Codes past _KINDS: the team managers of _TEAM_MANAGERS, then the VPs by region.
        role = self.kind.copy()
        for number, team in enumerate(_TEAM_MANAGERS):
            role[(self.kind == MANAGER) & (self.team == team)] = len(_KINDS) + number
        roles = [k.role for k in _KINDS] + [role for role, _ in _TEAM_MANAGERS.values()]
        titles = [k.title for k in _KINDS] + [title for _, title in _TEAM_MANAGERS.values()]
        titles += [f"VP Sales {r}" for r in REGIONS]
        title = np.where(self.kind == VP, len(roles) + np.maximum(self.region, 0), role)
        return pa.table({
            "id": self.ids,
            "name": self.names,
            "manager_id": _take_ids(self.ids, self.manager),
            "role": _take(roles, role),
            "segment": _take([k.segment for k in _KINDS], self.team),
            "region": _take(REGIONS, self.region),
            "currency": _take(CURRENCIES, self.currency),
            "hire_date": _dates(self.hire),
            "termination_date": _dates(self.termination),
            "target_incentive": _decimal(ti * 100, 2),
            "title": _take(titles, title),
        })

    def active_quarters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rep position, quarter 0-3, share in percent) for each quarter a rep works in."""
        starts = np.array([_day(self.year, m, 1) for m in (1, 4, 7, 10)] + [_day(self.year + 1, 1, 1)])
        rep = np.repeat(np.arange(len(self.kind)), 4)
        quarter = np.tile(np.arange(4), len(self.kind))
        first, last = starts[quarter], starts[quarter + 1] - 1
        hire, end = self.hire[rep], np.where(self.termination[rep] < 0, last, self.termination[rep])
        works = (hire <= last) & (end >= first)
        # Joining or leaving during a quarter halves that quarter (a simple ramp).
        share = np.where((hire > first) | (end < last), 50, 100)
        return rep[works], quarter[works], share[works]

    def quotas(self) -> pa.Table:
        """Quarterly quotas in USD: members from their TI, managers and up as the sum below them."""
        multiple = np.array([k.quota_tenths_of_ti for k in _KINDS])[self.kind]
        annual = self.ti_usd * multiple // 10
        rolled = np.where(np.isin(self.kind, ROLLED_UP), annual, 0)
        # Sum upwards: members -> managers -> VPs -> CRO (the roster lists bosses first).
        for level in (MANAGER, VP, CRO):
            below = np.zeros(len(annual), dtype=np.int64)
            has_boss = self.manager >= 0
            np.add.at(below, self.manager[has_boss], rolled[has_boss])
            leads_sellers = np.isin(self.team, ROLLED_UP) | (self.kind >= VP)
            at_level = (self.kind == level) & leads_sellers
            annual = np.where(at_level, below, annual)
            rolled = np.where(at_level, below, rolled)
        rep, quarter, share = self.active_quarters()
        dollars = annual[rep] * np.array(QUARTER_PHASING)[quarter] // 100 * share // 100
        keep = dollars > 0
        labels = [f"{self.year}-Q{q}" for q in range(1, 5)]
        return pa.table({
            "rep_id": _take_ids(self.ids, rep[keep]),
            "period": _take(labels, quarter[keep]),
            "amount": _decimal(dollars[keep] * 100, 2),
        })

    def mbo_scores(self, seed: int) -> pa.Table:
        """A manager's score per rep and quarter worked: 50 % .. 120 % in steps of 5."""
        rng = _rng(seed, _MBO)
        rep, quarter, _ = self.active_quarters()
        hundredths = 50 + 5 * rng.integers(0, 15, len(rep))
        labels = [f"{self.year}-Q{q}" for q in range(1, 5)]
        return pa.table({
            "rep_id": _take_ids(self.ids, rep),
            "period": _take(labels, quarter),
            "score": _decimal(hundredths, 2, precision=5),
        })

    def promotions(self, seed: int) -> pa.Table:
        """rep_assignments: SDRs promoted to Commercial AE mid-year, two rows each (SDR, then AE Commercial).

        Only SDRs employed the whole year, so both roles fall inside employment;
        at least one when there is such an SDR, so small companies show it too.
        Its own random stream: the other tables do not change.
        """
        rng = _rng(seed, _ASSIGNMENTS)
        first = _day(self.year, 1, 1)
        candidates = np.flatnonzero((self.kind == SDR) & (self.hire < first) & (self.termination < 0))
        chosen = rng.integers(0, 100, len(candidates)) < PROMOTED_PERCENT
        chosen[:1] = True
        promoted = candidates[chosen]
        march, october = _day(self.year, 3, 1), _day(self.year, 10, 1)
        promotion = march + rng.integers(0, october - march, len(promoted))
        rep = np.repeat(promoted, 2)
        is_ae = np.tile([0, 1], len(promoted))
        start = np.column_stack([self.hire[promoted], promotion]).ravel()
        end = np.column_stack([promotion - 1, np.full(len(promoted), -1)]).ravel()
        ae_ti_usd = np.full(len(rep), _KINDS[AE_COM].target_incentive)
        ae_ti = _decimal(_in_currency(ae_ti_usd, self.currency[rep]) * 100, 2)
        return pa.table({
            "rep_id": _take_ids(self.ids, rep),
            "start_date": _dates(start),
            "end_date": _dates(end),
            "role": _take(("SDR", "AE"), is_ae),
            "segment": _take(("Commercial",), np.where(is_ae == 1, 0, -1)),
            "region": _take(REGIONS, self.region[rep]),
            # The AE row carries the Commercial AE target incentive (in the rep's pay currency); the SDR
            # row none: the reps row's, the TI they were hired on.
            "target_incentive": pc.if_else(pa.array(is_ae == 1), ae_ti, pa.scalar(None, ae_ti.type)),
        })

    def window(self, positions: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
        """First and last day of `year` the reps at `positions` are employed."""
        first, last = _day(year, 1, 1), _day(year, 12, 31)
        end = self.termination[positions]
        return (np.maximum(self.hire[positions], first),
                np.minimum(np.where(end < 0, last, end), last))


def _people(rng: np.random.Generator, kind: np.ndarray, region: np.ndarray, year: int) -> tuple:
    """What the roster draws for each rep: currency, hire and termination, TI in USD, skill, name."""
    count = len(kind)
    emea = np.array(_EMEA_CURRENCY)[rng.integers(0, 100, count)]
    currency = np.where(region == 1, emea, 0)
    hire, termination = _employment(rng, kind, year)
    variation = 1_000 * rng.integers(-5, 6, count)
    ti_usd = np.array([k.target_incentive for k in _KINDS])[kind] + np.where(kind >= VP, 0, variation)
    skill = rng.integers(50, 151, count)
    names = _join(_take(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), count)),
                  _take(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), count)))
    return currency, hire, termination, ti_usd, skill, names


def _concatenate(first, second):
    return pa.concat_arrays([first, second]) if isinstance(first, pa.Array) else np.concatenate([first, second])


def _employment(rng: np.random.Generator, kind: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Hire dates (leaders long ago, 10 % of members during `year`) and 3 % terminations in `year`."""
    count = len(kind)
    member = kind < MANAGER
    years_ago = np.where(kind >= VP, rng.integers(3, 9, count), rng.integers(1, 7, count))
    hire = _day(year, 1, 1) - 365 * years_ago + rng.integers(0, 350, count)
    new = member & (rng.integers(0, 100, count) < 10)
    hire = np.where(new, _day(year, 2, 1) + rng.integers(0, 240, count), hire)
    leaves = member & ~new & (rng.integers(0, 100, count) < 3)
    termination = np.where(leaves, _day(year, 3, 1) + rng.integers(0, 290, count), -1)
    return hire, termination


# --- accounts -----------------------------------------------------------------------


@dataclass
class _Accounts:
    ids: pa.Array
    region_start: np.ndarray  # first account position of each region (accounts are grouped by region)
    region_count: np.ndarray
    columns: dict[str, pa.Array]

    @classmethod
    def build(cls, count: int, seed: int) -> _Accounts:
        rng = _rng(seed, _ACCOUNTS)
        bounds = np.array([0, count * 5 // 10, count * 8 // 10, count])
        region = np.repeat(np.arange(3), np.diff(bounds))
        lookup = np.zeros((3, 100), dtype=np.int64)
        for r, weights in enumerate(_COUNTRY_WEIGHTS):
            lookup[r] = np.repeat([_COUNTRIES.index(c) for c in weights], list(weights.values()))
        country = lookup[region, rng.integers(0, 100, count)]
        state_lookup = np.repeat(np.arange(len(_US_STATES)), _US_STATE_WEIGHTS)
        state = np.where(country == 0, state_lookup[rng.integers(0, 100, count)], -1)
        employees = rng.integers(10, 100, count) * 10 ** rng.integers(0, 4, count)
        potential_dollars = employees * rng.integers(200, 2_000, count)
        words = [_take(w, rng.integers(0, len(w), count)) for w in _ACCOUNT_WORDS]
        ids = _ids("A", np.arange(1, count + 1), 5)  # A00218 in every company (past 99,999 a digit more)
        columns = {
            "id": ids,
            "name": _join(*words),
            "country": _take(_COUNTRIES, country),
            "state": _take(_US_STATES, state),
            "industry": _take(_INDUSTRIES, rng.integers(0, len(_INDUSTRIES), count)),
            "employees": pa.array(employees, pa.int64()),
            "potential": _decimal(potential_dollars * 100, 2),
        }
        return cls(ids=ids, region_start=bounds[:3], region_count=np.diff(bounds), columns=columns)

    def table(self) -> pa.Table:
        return pa.table(self.columns)

    def pick(self, region: np.ndarray, draw: np.ndarray) -> np.ndarray:
        """An account position in each region (`draw`: non-negative random integers)."""
        return self.region_start[region] + draw % self.region_count[region]

    def id_of(self, positions: np.ndarray) -> pa.Array:
        return self.ids.take(pa.array(positions))


# --- deals ----------------------------------------------------------------------------


class _SellerDays:
    """The days of one year each seller was employed, laid end to end, to draw (seller, day) pairs."""

    def __init__(self, roster: _Roster, sellers: np.ndarray, year: int):
        self.first, last = roster.window(sellers, year)  # each seller's first and last day employed
        days = np.maximum(0, last - self.first + 1)
        self.ends = np.cumsum(days)  # the end of each seller's stretch on the line of all days
        self.starts = self.ends - days
        self.total = int(self.ends[-1]) if len(self.ends) else 0

    def pick(self, draw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seller index, day) for each non-negative random integer in `draw`."""
        if self.total == 0:
            return np.zeros(len(draw), dtype=np.int64), np.zeros(len(draw), dtype=np.int64)
        point = draw % self.total
        seller = np.searchsorted(self.ends, point, side="right")
        return seller, self.first[seller] + point - self.starts[seller]


_LABEL = pa.dictionary(pa.int32(), pa.string())  # few distinct strings: see `_take`
_DEAL_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("owner_rep_id", _LABEL),
    ("account_id", pa.string()),
    ("amount", pa.decimal128(18, 2)),
    ("currency", _LABEL),
    ("stage", _LABEL),
    ("product", _LABEL),
    ("close_date", pa.date32()),
    ("cancel_date", pa.date32()),
    ("paid_date", pa.date32()),
])


class _Deals:
    """Deals in chunks of `CHUNK_ROWS`; the splits of those deals are kept for afterwards.

    Each deal picks a day a seller was employed, all seller-days alike, so a
    rep hired in September owns a quarter of a full-year rep's deals. Deal
    sizes make an average seller's won deals about meet their quota.
    """

    WON_PERCENT = 45  # of this year's deals; 35 % are lost and 20 % still open
    PRIOR_PERCENT = 12  # of deals close in the year before (prior-year bookings)

    def __init__(self, roster: _Roster, accounts: _Accounts, count: int, seed: int, year: int):
        self.roster, self.accounts, self.count, self.year = roster, accounts, count, year
        self.seed = seed
        self.sellers = np.flatnonzero(np.isin(roster.kind, SELLERS))
        self.this_year = _SellerDays(roster, self.sellers, year)
        self.last_year = _SellerDays(roster, self.sellers, year - 1)
        self.mean_cents = self._mean_cents()
        self.width = max(6, len(str(count)))
        self.split_parts: list[tuple[np.ndarray, ...]] = []

    def _mean_cents(self) -> np.ndarray:
        """Average deal size per kind (USD cents): the quota over the deals a full-year seller wins."""
        this_year_deals = max(1, self.count * (100 - self.PRIOR_PERCENT) // 100)
        # mean = quota / won deals per full seller-year
        #      = quota x seller-days x 100 / (deals x won percent x 365), in Python's exact integers
        denominator = this_year_deals * self.WON_PERCENT * 365
        means = [
            k.target_incentive * k.quota_tenths_of_ti * 10 * max(1, self.this_year.total) * 100 // denominator
            for k in _KINDS
        ]
        return np.array([max(100_00, min(mean, 10**13)) for mean in means], dtype=np.int64)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Chunks in order. Each chunk has its own random stream, so two threads can make
        them at once (NumPy and Arrow release the GIL) and the bytes stay the same."""
        for batch, splits in _in_parallel(self._chunk, range(0, self.count, CHUNK_ROWS)):
            self.split_parts.append(splits)
            yield batch

    def _chunk(self, start: int) -> tuple[pa.RecordBatch, tuple[np.ndarray, ...]]:
        stop = min(self.count, start + CHUNK_ROWS)
        n, roster = stop - start, self.roster
        draw = _rng(self.seed, _DEALS, start // CHUNK_ROWS).integers(0, 1 << 62, size=(10, n), dtype=np.int64)

        prior = np.flatnonzero((draw[1] % 100 < self.PRIOR_PERCENT) & (self.last_year.total > 0))
        seller, close = self.this_year.pick(draw[0])
        seller[prior], close[prior] = self.last_year.pick(draw[0, prior])
        owner = self.sellers[seller]
        kind = roster.kind[owner]

        roll = draw[3] % 100
        won_now, lost_now = self.WON_PERCENT, self.WON_PERCENT + 35
        stage = np.select([roll < won_now, roll < lost_now], [0, 1], 2)
        stage[prior] = np.where(roll[prior] < 60, 0, 1)  # last year's deals are all closed
        won = stage == 0
        roll = draw[4] % 100
        product = np.where(
            kind == CSM,
            np.where(roll < 65, 2, 1),
            np.select([roll < 45, roll < 70, roll < 90], [0, 1, 3], 2),
        )

        # Size in thousandths of the mean: 100 + 3.6 x (product of two uniform draws):
        # mean 1,000, many small deals and a few up to 3.7 times the mean.
        u, v = draw[5] % 1000, (draw[5] >> 20) % 1000
        size = 100 + 36 * u * v // 10_000
        usd_cents = self.mean_cents[kind] * roster.skill[owner] * size // 100_000 + (draw[5] >> 40) % 100
        usd_cents = np.where(product == 3, usd_cents * 4 // 10, usd_cents)  # analytics add-ons are smaller
        currency = np.where(draw[6] % 100 < 12, 0, roster.currency[owner])
        cents = usd_cents * 100 // np.array(_USD_PER_UNIT_X100)[currency]
        account = self.accounts.pick(roster.region[owner], draw[7])

        cancelled = won & (draw[8] % 1000 < 30)
        later = (draw[8] >> 10) % 1000
        cancel = np.where((draw[8] >> 30) % 2 == 0, close + 1 + later % 89, close + 91 + later % 270)
        cancel = np.where(cancelled, cancel, -1)
        paid = np.where(won & (draw[9] % 100 < 90), close + 10 + (draw[9] >> 10) % 80, -1)
        paid = np.where(cancelled & (paid >= cancel), -1, paid)  # paid before any cancellation

        splits = self._splits_of(start, seller, close, draw[2])
        columns = [
            _ids("D", np.arange(start + 1, stop + 1), self.width),
            _take_ids(roster.ids, owner),
            self.accounts.id_of(account),
            _decimal(cents, 2),
            _take(CURRENCIES, currency),
            _take(_STAGES, stage),
            _take(_PRODUCTS, product),
            _dates(close),
            _dates(cancel),
            _dates(paid),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=_DEAL_SCHEMA), splits

    def _splits_of(self, start: int, seller: np.ndarray, close: np.ndarray, draw: np.ndarray
                   ) -> tuple[np.ndarray, ...]:
        """~5 % of deals are split with a second seller employed on the close date (the next of up to 8 drawn;
        a partner hired later or gone is RD039's warning): 50/50, 60/40, 70/30 or 75/25.

        Returns (deal position, owner, partner, owner's share in percent)."""
        count = len(self.sellers)
        split = np.flatnonzero(draw % 100 < 5) if count > 1 else np.zeros(0, np.int64)
        closed = close[split]
        partner = np.full(len(split), -1)
        for tried in range(8):
            other = (seller[split] + 1 + ((draw[split] >> 10) + tried) % max(1, count - 1)) % count
            hire, end = self.roster.hire[self.sellers[other]], self.roster.termination[self.sellers[other]]
            employed = (hire <= closed) & ((end < 0) | (closed <= end))
            partner = np.where((partner < 0) & employed, other, partner)
        split, partner = split[partner >= 0], partner[partner >= 0]
        share = np.array([50, 60, 70, 75])[(draw[split] >> 30) % 4]
        return start + split, self.sellers[seller[split]], self.sellers[partner], share

    def splits(self) -> pa.Table:
        """deal_splits of the deals made so far: the owner's row, then the partner's."""
        parts = self.split_parts or [(np.zeros(0, np.int64),) * 4]
        deal, owner, other, share = (np.concatenate(column) for column in zip(*parts, strict=True))
        return pa.table({
            "deal_id": _ids("D", np.repeat(deal + 1, 2), self.width),
            "rep_id": _take_ids(self.roster.ids, np.column_stack([owner, other]).ravel()),
            "percent": _decimal(np.column_stack([share, 100 - share]).ravel(), 2, precision=5),
        })


# --- activities and fx rates ------------------------------------------------------------


def _activities(roster: _Roster, accounts: _Accounts, seed: int, year: int) -> pa.Table:
    """SDR meetings, calls and emails through the year, sorted by rep and date."""
    rng = _rng(seed, _ACTIVITIES)
    sdrs = np.flatnonzero(roster.kind == SDR)
    rep = np.repeat(sdrs, ACTIVITIES_PER_SDR)
    first, last = roster.window(rep, year)
    day = first + rng.integers(0, 1 << 62, len(rep)) % (last - first + 1)
    kind = np.array((0,) * 25 + (1,) * 60 + (2,) * 15)[rng.integers(0, 100, len(rep))]
    account = accounts.pick(roster.region[rep], rng.integers(0, 1 << 62, len(rep)))
    order = np.lexsort((day, rep))
    rep, day, kind, account = rep[order], day[order], kind[order], account[order]
    return pa.table({
        "id": _ids("ACT", np.arange(1, len(rep) + 1), max(6, len(str(len(rep))))),
        "rep_id": _take_ids(roster.ids, rep),
        "type": _take(_ACTIVITY_TYPES, kind),
        "date": _dates(day),
        "points": _decimal(np.array(_ACTIVITY_POINTS)[kind], 2, precision=9),
        "account_id": accounts.id_of(account),
    })


def _fx_rates(seed: int, year: int) -> pa.Table:
    """Daily rates for the fiscal year and the year before, both ways between USD, EUR and GBP.

    EUR->USD and GBP->USD take small random daily steps (in millionths,
    integers: exact); cross and inverse rates are rounded to 6 places.
    """
    rng = _rng(seed, _FX)
    first = _day(year - 1, 1, 1)
    days = np.arange(first, _day(year, 12, 31) + 1)
    eur_usd = _walk(rng, 1_085_000, len(days))
    gbp_usd = _walk(rng, 1_270_000, len(days))
    eur_gbp = _divide(eur_usd * 1_000_000, gbp_usd)
    pairs = (
        ("EUR", "USD", eur_usd),
        ("GBP", "USD", gbp_usd),
        ("EUR", "GBP", eur_gbp),
        ("USD", "EUR", _divide(np.full(len(days), 10**12), eur_usd)),
        ("USD", "GBP", _divide(np.full(len(days), 10**12), gbp_usd)),
        ("GBP", "EUR", _divide(np.full(len(days), 10**12), eur_gbp)),
    )
    rate = np.column_stack([r for _, _, r in pairs]).ravel()  # date-major: all pairs of a day together
    pair = np.tile(np.arange(len(pairs)), len(days))
    return pa.table({
        "date": _dates(np.repeat(days, len(pairs))),
        "from": _take([p[0] for p in pairs], pair),
        "to": _take([p[1] for p in pairs], pair),
        "rate": _decimal(rate, 6),
    })


def _walk(rng: np.random.Generator, start: int, days: int) -> np.ndarray:
    """A random walk in millionths, kept within 8 % of `start`."""
    steps = rng.integers(-2_500, 2_501, days)
    steps[0] = 0
    return np.clip(start + np.cumsum(steps), start * 92 // 100, start * 108 // 100)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Integer division rounded half up (all values positive)."""
    return (numerator + denominator // 2) // denominator


# --- writing ----------------------------------------------------------------------------

# Columns with few distinct values: dictionary-encoded in Parquet (small, fast).
_DICTIONARY_COLUMNS = {"owner_rep_id", "rep_id", "manager_id", "currency", "stage", "product", "role", "segment",
                       "region", "title", "period", "country", "state", "industry", "type", "from", "to"}
# Unique ids: min/max statistics on them cost time and help no query.
_NO_STATISTICS = {"id", "account_id", "deal_id", "name"}


def _write(out: Path, table: str, data: pa.Table | Iterable[pa.RecordBatch], fmt: str,
           schema: pa.Schema | None = None) -> Path:
    """Write `data` to `<out>/<table>.<fmt>` atomically; remove the table's file in the other format."""
    target = out / f"{table}.{fmt}"
    temporary = out / f".{table}.{fmt}.tmp-{os.getpid()}"
    if isinstance(data, pa.Table):
        schema, batches = data.schema, data.to_batches(max_chunksize=CHUNK_ROWS)
    else:
        batches = data
    try:
        if fmt == "parquet":
            _write_parquet(temporary, schema, batches)
        else:
            _write_csv(temporary, schema, batches)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    other = out / f"{table}.{'csv' if fmt == 'parquet' else 'parquet'}"
    other.unlink(missing_ok=True)
    return target


def _write_parquet(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    names = schema.names
    with pq.ParquetWriter(
        path,
        schema,
        compression="snappy",
        use_dictionary=[n for n in names if n in _DICTIONARY_COLUMNS],
        write_statistics=[n for n in names if n not in _NO_STATISTICS],
    ) as writer:
        for batch in batches:
            writer.write_batch(batch, row_group_size=CHUNK_ROWS)


def _write_csv(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """CSV through DuckDB: ISO dates, plain decimals (1234.50), empty cells for NULL, rows in order."""
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    with duckdb.connect() as connection:
        connection.register("batches", reader)
        escaped = str(path).replace("'", "''")
        connection.execute(f"COPY batches TO '{escaped}' (FORMAT csv, HEADER true)")


# --- array helpers ------------------------------------------------------------------------


def _rng(seed: int, stream: int, part: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, stream, part]))


def _in_parallel(make, items: Iterable) -> Iterator:
    """`make(item)` for each item, in order, at most one per core ahead of the consumer (bounded memory)."""
    threads = min(8, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(make, item))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _pick(rng: np.random.Generator, weights_percent: tuple[int, ...], count: int) -> np.ndarray:
    """Draw `count` category codes with the given weights (in percent, summing to 100)."""
    lookup = np.repeat(np.arange(len(weights_percent)), weights_percent)
    return lookup[rng.integers(0, 100, count)]


def _day(year: int, month: int, day: int) -> int:
    return (datetime.date(year, month, day) - _EPOCH).days


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids of `width` digits (`D000042`), or more for a number that needs more (`R10000`): a company's ids
    stay those of a smaller one. Built as bytes, without one Python string per row."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and numbers.max() >= 10**width:
        digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
        return pc.binary_join_element_wise(prefix, digits, "")
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    size = len(head) + width
    text = np.empty((len(numbers), size), dtype=np.uint8)
    text[:, : len(head)] = head
    four = _four_digits()
    rest = numbers.copy()
    end = size
    while end > len(head):
        start = max(len(head), end - 4)
        text[:, start:end] = four[rest % 10_000][:, 4 - (end - start):]
        rest //= 10_000
        end = start
    offsets = np.arange(len(numbers) + 1, dtype=np.int32) * size
    return pa.Array.from_buffers(pa.string(), len(numbers), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


@cache
def _four_digits() -> np.ndarray:
    """Rows "0000" .. "9999" as bytes: ids are written four digits at a time."""
    return np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint8).reshape(10_000, 4)


def _take(labels, codes: np.ndarray) -> pa.DictionaryArray:
    """Strings by code; a negative code or a None label is NULL.

    Dictionary-encoded: Parquet stores it as is, DuckDB reads it as text.
    """
    # A dictionary must not repeat a value: Parquet writers then emit unstable bytes.
    labels = list(labels)
    distinct = list(dict.fromkeys(label for label in labels if label is not None))
    where = {label: i for i, label in enumerate(distinct)}
    position = np.array([where.get(label, -1) if label is not None else -1 for label in labels] or [-1])
    codes = np.asarray(codes)
    picked = np.where(codes < 0, -1, position[np.maximum(codes, 0)])
    indices = pa.array(np.maximum(picked, 0).astype(np.int32), mask=picked < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(distinct, pa.string()))


def _take_ids(ids: pa.Array, positions: np.ndarray) -> pa.DictionaryArray:
    """Ids by position (negative: NULL), dictionary-encoded over all ids (a roster is small)."""
    return _take(ids.to_pylist(), positions)


def _join(*parts: pa.Array) -> pa.Array:
    """Words joined by spaces, row by row."""
    return pc.binary_join_element_wise(*(p.cast(pa.string()) for p in parts), " ")


def _dates(days: np.ndarray) -> pa.Array:
    """Days since 1970-01-01 as DATE; negative means NULL."""
    days = np.asarray(days)
    return pa.array(days.astype(np.int32), pa.int32(), mask=days < 0).cast(pa.date32())


def _decimal(units: np.ndarray, scale: int, precision: int = 18) -> pa.Array:
    """Exact decimals from integers in units of 10^-scale (cents for scale 2): no float on the way."""
    units = np.asarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)  # a 128-bit two's complement integer, little-endian
    words[:, 0] = units
    words[:, 1] = np.where(units < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(units), [None, pa.py_buffer(words)])


def _in_currency(usd_dollars: np.ndarray, currency: np.ndarray) -> np.ndarray:
    """USD whole dollars to the rep's currency, rounded to a thousand (pay plans use round numbers)."""
    per_unit = np.array(_USD_PER_UNIT_X100)[currency]
    return (usd_dollars * 100 // per_unit + 500) // 1_000 * 1_000
