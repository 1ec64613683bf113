"""Semantic checks, table by table: type inference, each rule, the prover, the driver.

The exact wording of every diagnostic is pinned by the bad-plan corpus
(test_bad_corpus.py); these tables pin the logic: which expression has which
type, and which small plan gets which codes.
"""

from __future__ import annotations

import datetime as dt

import pytest

from dsl import check as check_module
from dsl import ir
from dsl.check import EXPECTATION_FIELDS, check, period_dates
from dsl.diagnostics import Diagnostic
from dsl.disjoint import can_overlap
from dsl.infer import MeasureScope, Place, Type, Typer
from dsl.parse import parse
from dsl.project import load_texts
from dsl.resolve import resolve
from dsl.schema import SCHEMA, ConfigError, FieldType, load_schema

HEADER = """  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
"""

SHARED = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"
measure won = count(deal) where deal.stage = "closed_won"
"""


def expression(text: str) -> ir.Expr:
    """An expression parsed as the where of a throwaway measure (any expression parses there)."""
    source = f"revplan 1\nmeasure probe = 1 where {text}\n"
    syntax = parse(source, "probe.plan")
    assert not syntax.diagnostics, syntax.diagnostics
    return resolve(syntax).plan_file.measures[0].where


def scope() -> MeasureScope:
    measures = resolve(parse(SHARED, "shared.plan")).plan_file.measures
    return MeasureScope(measures, SCHEMA)


EVERYWHERE = Place(
    "a test", entities=frozenset({"rep", "deal", "split", "account", "activity"}), names=True, aggregates=True
)


def infer(text: str, place: Place = EVERYWHERE) -> tuple[Type, list[str]]:
    report: list[Diagnostic] = []
    found = Typer(SCHEMA, scope(), "USD", report).infer(expression(text), place)
    return found, [d.code for d in report]


# ---------------------------------------------------------------- type inference

T = Type


@pytest.mark.parametrize(
    "text, expected",
    [
        # literals
        ("8%", T.PERCENT),
        ("5,000 USD", T.MONEY),
        ("1.5", T.NUMBER),
        ("2027-01-01", T.DATE),
        ("90 days", T.DURATION),
        ('"closed_won"', T.TEXT),
        ("true", T.BOOL),
        # fields, from the schema
        ("deal.amount", T.MONEY),
        ("deal.stage", T.TEXT),
        ("deal.close_date", T.DATE),
        ("account.employees", T.NUMBER),
        ("split.percent", T.PERCENT),
        ("activity.points", T.NUMBER),
        # aggregates
        ("sum(deal.amount)", T.MONEY),
        ("avg(activity.points)", T.NUMBER),
        ("max(deal.close_date)", T.DATE),
        ("count(deal)", T.NUMBER),
        ("count_distinct(deal.account_id)", T.NUMBER),
        # measures and built-ins
        ("bookings", T.MONEY),
        ("won", T.NUMBER),
        ("attainment", T.PERCENT),
        ("quota", T.MONEY),
        ("target_incentive", T.MONEY),
        # arithmetic
        ("bookings / quota", T.PERCENT),
        ("won / won", T.PERCENT),
        ("bookings * 10%", T.MONEY),
        ("10% * bookings", T.MONEY),
        ("bookings / won", T.MONEY),
        ("bookings / 2", T.MONEY),
        ("bookings - quota", T.MONEY),
        ("attainment + 10%", T.PERCENT),
        ("1.5 * 10%", T.PERCENT),
        ("deal.close_date + 30 days", T.DATE),
        ("deal.paid_date - deal.close_date", T.DURATION),
        ("-bookings", T.MONEY),
        ("(bookings + quota) * 2", T.MONEY),
        # conditions
        ("attainment >= 50%", T.BOOL),
        ('deal.stage in ("closed_won", "open")', T.BOOL),
        ('deal.product not in ("renewal")', T.BOOL),
        ("deal.cancel_date is null", T.BOOL),
        ("deal.cancel_date is not null", T.BOOL),
        ('not (deal.stage = "open")', T.BOOL),
        ('attainment >= 50% and (deal.stage = "open" or true)', T.BOOL),
        ("deal.paid_date <= deal.close_date + 30 days", T.BOOL),
    ],
)
def test_inferred_type(text: str, expected: Type):
    assert infer(text) == (expected, [])


@pytest.mark.parametrize(
    "text, expected, codes",
    [
        ("bokings", T.UNKNOWN, ["RP201"]),
        ("dael.amount", T.UNKNOWN, ["RP202"]),
        ("deals.amount", T.UNKNOWN, ["RP202"]),
        ("deal.amout", T.UNKNOWN, ["RP203"]),
        ("sum(deal)", T.UNKNOWN, ["RP205"]),
        ("sum(deal.stage)", T.UNKNOWN, ["RP205"]),
        ("bookings + 10%", T.UNKNOWN, ["RP210"]),
        ("bookings * bookings", T.UNKNOWN, ["RP210"]),
        ("won / bookings", T.UNKNOWN, ["RP210"]),
        ("deal.close_date + bookings", T.UNKNOWN, ["RP210"]),
        ("-deal.stage", T.UNKNOWN, ["RP210"]),
        ("deal.close_date > 5,000 USD", T.BOOL, ["RP211"]),
        ("attainment >= 0.5", T.BOOL, ["RP211"]),
        ('deal.stage > "a"', T.BOOL, ["RP211"]),
        ('deal.stage in ("a", 5)', T.BOOL, ["RP211"]),
        ("deal.stage and true", T.BOOL, ["RP212"]),
        ("not bookings", T.BOOL, ["RP212"]),
        ("5,000 EUR", T.MONEY, ["RP214"]),
        # one mistake is reported once, not again by every expression around it
        ("bokings * 10% >= 5,000 USD", T.BOOL, ["RP201"]),
        ("(bookings + 10%) / quota", T.UNKNOWN, ["RP210"]),
    ],
)
def test_inference_reports_mistakes(text: str, expected: Type, codes: list[str]):
    assert infer(text) == (expected, codes)


DEAL_CONDITION = Place("a deal condition", entities=frozenset({"deal"}))
PER_PERIOD = Place("a gate", names=True)
FIXED = Place("the draw")


@pytest.mark.parametrize(
    "text, place, codes",
    [
        ('deal.product = "new_logo"', DEAL_CONDITION, []),
        ('rep.role = "AE"', DEAL_CONDITION, ["RP204"]),
        ("bookings >= 100,000 USD", DEAL_CONDITION, ["RP204"]),
        ("deal.product = new_logo", DEAL_CONDITION, ["RP201"]),
        ("attainment >= 50%", PER_PERIOD, []),
        ("deal.amount >= 5,000 USD", PER_PERIOD, ["RP204"]),
        ("count(deal) >= 3", PER_PERIOD, ["RP205"]),
        ("3,000 USD", FIXED, []),
        ("quota", FIXED, ["RP204"]),
        ("sum(deal.amount)", Place("a measure", names=True, aggregates=True), []),
    ],
)
def test_what_a_place_may_name(text: str, place: Place, codes: list[str]):
    assert infer(text, place)[1] == codes


def test_custom_fields_from_revplan_toml_are_known():
    schema = SCHEMA.with_extra_fields({"deal": {"multi_year": FieldType.BOOL}})
    report: list[Diagnostic] = []
    found = Typer(schema, scope(), "USD", report).infer(expression("deal.multi_year = true"), DEAL_CONDITION)
    assert (found, report) == (Type.BOOL, [])


@pytest.mark.parametrize("declared, refused", [
    ('[fields.deal]\nperiod = "string"', "the name 'period' is reserved on deal rows"),
    ('[fields.deal]\nrep_id = "string"', "the name 'rep_id' is reserved on deal rows"),
    ('[fields.activity]\nperiod = "string"', "the name 'period' is reserved on activity rows"),
    ('[fields.deal]\namount = "string"', "deal.amount is a built-in field already"),
    ('[fields.rep]\nperiod = "string"\n[fields.deal]\nterm = "string"', None),  # rows with no such column
])
def test_revplan_toml_refuses_a_custom_field_the_calculators_would_misread(tmp_path, declared, refused):
    """A deal field named `period` was read as the period its deal counts in: DuckDB paid 0.00 where the
    Python calculator paid 10,000 (audit). A built-in field declared again was silently ignored."""
    config = tmp_path / "revplan.toml"
    config.write_text(declared + "\n", encoding="utf-8")
    if refused is None:
        assert load_schema(config).entity("deal").field("term") is not None
        return
    with pytest.raises(ConfigError, match=refused):
        load_schema(config)


@pytest.mark.parametrize("body, codes", [
    ('  measure b = sum(deal.amount) where deal.product != "renewal"\n', ["RP342"]),  # audit: a deal with no product
    ('  measure b = sum(deal.amount) where deal.product is null or deal.product != "renewal"\n', []),
    ('  measure b = sum(deal.amount) where deal.stage != "closed_lost"\n', []),  # every deal has a stage
    ('  measure b = sum(deal.amount)\n', ["RP342"], ),  # with the multiplier below
])
def test_negations_of_optional_fields_in_row_conditions_warn(body, codes):
    multiplier = "    multiplier 2 where not (deal.product = \"x\")\n" if body.endswith("amount)\n") else ""
    assert codes_of(SHARED + comp(body + '  component "C" on b\n    rate 1%\n' + multiplier)) == codes


@pytest.mark.parametrize("case, codes", [
    ("a second version from year 1", ["RP118"]),  # RP299 (an internal error, no location) from the versions' check
    ("a quota plan ending before it starts, in 9999", ["RP111"]),  # RP299 from the quota year's check
])
def test_plans_with_dates_out_of_range_get_only_the_date_errors(case, codes):
    body = '  component "C" on bookings\n    rate 1%\n'
    plans = {
        "a second version from year 1": comp(body) + comp(body, version=2,
                                                         header=HEADER.replace("2027-01-01 to", "0001-01-01 to")),
        "a quota plan ending before it starts, in 9999": 'quota plan "Q" version 1\n'
        + HEADER.replace("2027-01-01 to", "9999-12-31 to") + "  target 1,000 USD\n  allocate by equal\n",
    }[case]
    assert codes_of(SHARED + plans) == codes


# ---------------------------------------------------------------- rules, on small plans


def codes_of(*texts: str) -> list[str]:
    """The codes a project of these files gets, sorted by position."""
    project = load_texts([(f"f{i}.plan", text) for i, text in enumerate(texts)])
    return [d.code for d in project.diagnostics]


def comp(body: str, name: str = "P", version: int = 1, header: str = HEADER, applies: str = "") -> str:
    applies_line = f"  applies to reps where {applies}\n" if applies else ""
    return f'comp plan "{name}" version {version}\n{header}{applies_line}{body}'


def tiers(bands: str, decelerator: bool = False, on: str = "attainment") -> str:
    rows = "".join(f"      {band.strip()}\n" for band in bands.split(";"))
    more = " with decelerator" if decelerator else ""
    return comp(
        f'  attainment = bookings / quota\n  component "C" on bookings\n    graduated tiers on {on}{more}\n{rows}'
    )


@pytest.mark.parametrize(
    "plan, codes",
    [
        (tiers("0% .. 50% pays 5%; 50% .. 100% pays 8%; 100% .. pays 12%"), []),
        (tiers("0% .. 50% pays 5%; 60% .. pays 8%"), ["RP301"]),
        (tiers("0% .. 60% pays 5%; 50% .. pays 8%"), ["RP302"]),
        (tiers("0% .. 50% pays 5%; 50% .. 40% pays 8%"), ["RP303"]),
        (tiers("50% .. 100% pays 8%; 0% .. 50% pays 5%"), ["RP303"]),
        (tiers("0% .. pays 5%; 50% .. pays 8%"), ["RP303"]),
        (tiers("0% .. 100% pays 10%; 100% .. pays 6%"), ["RP304"]),
        (tiers("0% .. 100% pays 10%; 100% .. pays 6%", decelerator=True), []),
        (tiers("0 USD .. 50,000 USD pays 5%; 50,000 USD .. pays 8%", on="bookings"), []),
        (tiers("0% .. 50% pays 5%; 50% .. pays 8%", on="bookings"), ["RP213", "RP213", "RP213"]),
        (tiers("0% .. 50% pays 5 USD; 50% .. pays 8%"), ["RP213"]),
    ],
)
def test_tier_rules(plan: str, codes: list[str]):
    assert codes_of(SHARED, "revplan 1\n" + plan) == codes


def component(lines: str) -> str:
    return "revplan 1\n" + comp(f"  attainment = bookings / quota\n{lines}")


@pytest.mark.parametrize(
    "plan, codes",
    [
        (component('  component "C" on bookings\n    rate 10%\n'), []),
        (component('  component "C" on won\n    rate 50 USD\n'), []),
        (component('  component "C" on won\n    rate 10%\n'), ["RP215"]),
        (component('  component "C" on bookings\n    rate 50 USD\n'), ["RP213"]),
        (component('  component "C" on bookings\n    rate target_incentive / quota\n'), []),
        (component('  component "C" on quota\n    rate 1%\n'), ["RP215"]),
        (component('  component "C" on bokings\n    rate 1%\n'), ["RP201"]),
        (component('  component "C"\n    rate 1%\n'), ["RP216"]),
        (component('  component "C"\n    bonus 1,000 USD when attainment >= 100%\n'), []),
        (component('  component "C"\n    bonus 10% when attainment >= 100%\n'), ["RP213"]),
        (component('  component "C"\n    mbo 1,000 USD from mbo_scores\n'), []),
        (component('  component "C"\n    mbo 1,000 USD from deals\n'), ["RP202"]),
        (component('  component "C" on bookings\n    rate 1%\n  component "C" on bookings\n    rate 2%\n'), ["RP217"]),
        (
            component(
                '  component "C"\n    curve on attainment of target_incentive\n      0% pays 0%\n      100% pays 100%\n'
            ),
            [],
        ),
        (
            component(
                '  component "C"\n    curve on attainment of target_incentive\n      100% pays 100%\n      50% pays '
                "25%\n"
            ),
            ["RP305"],
        ),
        (component('  component "C"\n    curve on attainment of won\n      0% pays 0%\n'), ["RP213"]),
        (component('  component "C" on bookings\n    rate 1%\n    cap 2 x target_incentive per period\n'), []),
        (component('  component "C" on bookings\n    rate 1%\n    cap 2 x attainment per period\n'), ["RP213"]),
        (component('  component "C" on bookings\n    rate 1%\n    multiplier 1.5 where rep.role = "AE"\n'), ["RP204"]),
    ],
)
def test_component_rules(plan: str, codes: list[str]):
    assert codes_of(SHARED, plan) == codes


CURVE = '  component "C"\n    curve on attainment of target_incentive\n      0% pays 0%\n      100% pays 100%\n'


@pytest.mark.parametrize(
    "lines, codes",
    [
        (CURVE + "    gate attainment >= 100%\n    cap 0.5 x target_incentive per period\n", ["RP306"]),
        (CURVE + "    gate attainment >= 40%\n    cap 0.5 x target_incentive per period\n", []),
        (CURVE + "    gate attainment >= 100%\n    cap 0.5 x target_incentive per year\n", []),  # not comparable
        (CURVE + "    cap 0.5 x target_incentive per period\n", []),  # no gate
        ('  component "C"\n    bonus 5,000 USD when attainment >= 100%\n    cap 2,000 USD\n', ["RP306"]),
        ('  component "C"\n    bonus 5,000 USD when attainment >= 100%\n    cap 5,000 USD\n', []),
        (
            '  component "C" on bookings\n    rate 10%\n    gate bookings >= 500,000 USD\n    cap 40,000 USD\n',
            ["RP306"],
        ),
        ('  component "C" on bookings\n    rate 10%\n    gate bookings >= 300,000 USD\n    cap 40,000 USD\n', []),
        (  # a multiplier below 1 can lower the payout at the gate: not comparable
            '  component "C" on bookings\n    rate 10%\n    multiplier 0.5 where deal.product = "renewal"\n'
            "    gate bookings >= 500,000 USD\n    cap 40,000 USD\n",
            [],
        ),
    ],
)
def test_caps_below_what_a_gate_lets_through(lines: str, codes: list[str]):
    assert codes_of(SHARED, component(lines)) == codes


@pytest.mark.parametrize(
    "plan, codes",
    [
        ("measure a = sum(deal.amount)\nmeasure b = a * 2\n", []),
        ("measure a = b\nmeasure b = a\n", ["RP207"]),
        ("measure a = a + 1\n", ["RP207"]),
        ("measure a = sum(deal.amount)\nmeasure a = count(deal)\n", ["RP206"]),
        ("measure quota = sum(deal.amount)\n", ["RP206"]),
        ('measure a = sum(deal.amount)\nmeasure b = a where deal.stage = "x"\n', ["RP209"]),
        ("measure a = max(deal.close_date)\n", ["RP213"]),
        ('measure a = count(activity) where deal.stage = "x"\n', ["RP204"]),
    ],
)
def test_measure_rules(plan: str, codes: list[str]):
    assert codes_of("revplan 1\n" + plan) == codes


def test_plan_measure_may_not_redefine_a_shared_one():
    plan = comp('  measure bookings = sum(deal.amount)\n  component "C" on bookings\n    rate 1%\n')
    assert codes_of(SHARED, "revplan 1\n" + plan) == ["RP206"]


def test_measures_are_shared_across_files_but_plan_measures_are_not():
    first = "revplan 1\n" + comp(
        '  measure mine = count(deal)\n  component "C" on bookings\n    rate 1%\n', name="A", applies='rep.role = "A"'
    )
    second = "revplan 1\n" + comp('  component "C" on mine\n    rate 1 USD\n', name="B", applies='rep.role = "B"')
    assert codes_of(SHARED, first, second) == ["RP201"]


@pytest.mark.parametrize(
    "plan, codes",
    [
        ('  component "C" on bookings\n    rate 1%\n    gate attainment >= 50%\n', ["RP208"]),
        ('  attainment = won / quota\n  component "C" on bookings\n    rate 1%\n', ["RP215"]),
        ('  attainment = bokings / quota\n  component "C" on bookings\n    rate 1%\n', ["RP201"]),
        ('  component "C" on bookings\n    rate 1%\n', []),
    ],
)
def test_attainment_rules(plan: str, codes: list[str]):
    assert codes_of(SHARED, "revplan 1\n" + comp(plan)) == codes


BODY = '  component "C" on bookings\n    rate 1%\n'
H1 = HEADER.replace("2027-12-31", "2027-06-30")
H2 = HEADER.replace("2027-01-01", "2027-07-01")


@pytest.mark.parametrize(
    "plans, codes",
    [
        (
            [
                comp(BODY, version=1, header=H1, applies='rep.role = "AE"'),
                comp(BODY, version=2, header=H2, applies='rep.role = "AE"'),
            ],
            [],
        ),
        (
            [
                comp(BODY, version=1, applies='rep.role = "AE"'),
                comp(BODY, version=2, header=H2, applies='rep.role = "AE"'),
            ],
            ["RP311"],
        ),
        (
            [comp(BODY, version=1, applies='rep.role = "AE"'), comp(BODY, version=1, applies='rep.role = "AE"')],
            ["RP310"],
        ),
        ([comp(BODY, name="A", applies='rep.role = "AE"'), comp(BODY, name="B", applies='rep.role = "SE"')], []),
        ([comp(BODY, name="A", applies='rep.role = "AE"'), comp(BODY, name="B", applies='rep.role = "AE"')], ["RP312"]),
        ([comp(BODY, name="A", applies='rep.role = "AE"'), comp(BODY, name="B")], ["RP312"]),
        ([comp(BODY, name="A", header=H1), comp(BODY, name="B", header=H2)], []),
    ],
)
def test_plans_of_a_project(plans: list[str], codes: list[str]):
    assert codes_of(SHARED, "revplan 1\n" + "\n".join(plans)) == codes


def dated(effective: str, lines: str = "", period: str = "quarter", body: str = BODY) -> str:
    """A comp plan with these effective dates, period and header lines (after owners)."""
    header = HEADER.replace("2027-01-01 to 2027-12-31", effective).replace("period quarter", f"period {period}")
    return "revplan 1\n" + comp(body, header=header + lines)


YTD = "  measured year_to_date with true_up\n"
YEAR_CAP = '  component "C" on bookings\n    rate 1%\n    cap 1,000 USD per year\n'
BONUS = '  attainment = bookings / quota\n  component "B"\n    bonus 100 USD when attainment >= 100%\n'


@pytest.mark.parametrize(
    "plan, codes",
    [
        # Years from January 1 are calendar years: year to date and yearly caps restart when they should.
        (dated("2027-01-01 to 2028-12-31", YTD), []),
        (dated("2027-01-01 to 2028-12-31", period="year"), []),
        (dated("2027-01-01 to 2028-06-30", body=YEAR_CAP), []),
        # A year from July (a fiscal year) would restart on January 1, in its middle.
        (dated("2027-07-01 to 2028-06-30", YTD), ["RP317"]),
        (dated("2027-07-01 to 2029-06-30", YTD), ["RP317"]),
        (dated("2027-07-01 to 2028-06-30", body=YEAR_CAP), ["RP317"]),
        (dated("2027-07-01 to 2028-06-30"), []),  # nothing yearly: periods are periods
        # Part-periods without proration matter only to what a period pays in full.
        (dated("2027-02-15 to 2027-12-31", body=BONUS), ["RP344"]),
        (dated("2027-02-15 to 2027-12-31", "  prorate by active_days\n", body=BONUS), []),
        (dated("2027-02-15 to 2027-12-31"), []),  # a rate on bookings: the part-period's deals only
        # A rate made of the TI is a whole period's (audit: twice the prorated pay); TI / quota scale alike.
        (dated("2027-02-15 to 2027-12-31",
               body='  component "C" on bookings\n    rate target_incentive / 100,000 USD\n'), ["RP344"]),
        (dated("2027-02-15 to 2027-12-31", "  attainment = bookings / quota\n",
               body='  component "C" on bookings\n    rate target_incentive / quota\n'), []),
        (dated("2027-02-15 to 2027-12-31", body=YEAR_CAP), []),
        (dated("2027-03-01 to 2027-03-31", period="month", body=BONUS), []),
    ],
)
def test_the_year_and_part_periods(plan: str, codes: list[str]):
    assert codes_of(SHARED, plan) == codes


def two_versions(second_from: str, lines: str = "", body: str = BODY) -> str:
    """Version 1 from 2027-01-01 to the day before `second_from`, version 2 from it to the end of its year."""
    start = dt.date.fromisoformat(second_from)
    first = HEADER.replace("2027-12-31", str(start - dt.timedelta(days=1)))
    second = HEADER.replace("2027-01-01 to 2027-12-31", f"{start} to {start.year}-12-31")
    return "revplan 1\n" + comp(body, version=1, header=first + lines) + comp(body, version=2, header=second + lines)


@pytest.mark.parametrize(
    "plan, codes",
    [
        (two_versions("2027-07-01", YTD), ["RP345"]),  # version 2's year to date starts on July 1
        (two_versions("2027-07-01", body=YEAR_CAP), ["RP345"]),  # a second cap for 2027 (audit: 20,000 of 10,000)
        (two_versions("2027-07-01", '  draw 1,000 USD per period recoverable\n'), ["RP345"]),
        (two_versions("2027-07-01"), []),  # nothing yearly
        (two_versions("2027-07-01", '  draw 1,000 USD per period non_recoverable\n'), []),
        (two_versions("2028-01-01", YTD), []),  # a new version for a new year
        # Only the new version recovers a draw: nothing of the old one's to carry (audit: a warning for nothing).
        (two_versions("2027-07-01").replace(
            'version 2\n  effective 2027-07-01 to 2027-12-31\n',
            'version 2\n  effective 2027-07-01 to 2027-12-31\n  draw 1,000 USD per period recoverable\n'), []),
    ],
)
def test_a_version_starting_within_a_year(plan: str, codes: list[str]):
    assert codes_of(SHARED, plan) == codes


def quota_plan(lines: str, period: str = "quarter", name: str = "Q") -> str:
    header = HEADER.replace("period quarter", f"period {period}")
    return f'revplan 1\nquota plan "{name}" version 1\n{header}  target 1,000,000 USD\n{lines}'


@pytest.mark.parametrize(
    "plan, codes",
    [
        (quota_plan("  allocate by equal\n  phasing 20%, 25%, 25%, 30%\n"), []),
        (quota_plan("  allocate by equal\n  phasing 20%, 25%, 25%, 25%\n"), ["RP320"]),
        (quota_plan("  allocate by equal\n  phasing 50%, 50%\n"), ["RP321"]),
        (quota_plan("  allocate by equal\n  phasing 50%, 50%\n", period="half"), []),
        (quota_plan("  allocate by equal\n  phasing 0.25, 25%, 25%, 25%\n"), ["RP213"]),
        (quota_plan("  allocate by prior_bookings 60%, equal 40%\n"), []),
        (quota_plan("  allocate by prior_bookings 60%, equal 30%\n"), ["RP322"]),
        (quota_plan("  allocate by prior_bookings 60%, equal\n"), ["RP322"]),
        (quota_plan("  allocate by equal 60%\n"), ["RP322"]),
        (quota_plan('  allocate by weights\n  weight "A" 2\n  weight "A" 3\n'), ["RP323"]),
        (quota_plan('  allocate by equal\n  weight "A" 2\n'), ["RP325"]),
        (quota_plan('  allocate by equal\n  override "A" period "2027-Q2" 1 USD\n  override "A" 5 USD\n'), []),
        (
            quota_plan(
                '  allocate by equal\n  override "A" period "2027-Q2" 1 USD\n  override "A" period "2027-Q2" 2 USD\n'
            ),
            ["RP323"],
        ),
        (quota_plan('  allocate by equal\n  override "A" period "2027-05" 1 USD\n'), ["RP324"]),
        (quota_plan('  allocate by equal\n  override "A" period "2028-Q1" 1 USD\n'), ["RP324"]),
        (quota_plan("  allocate by equal\n  over_assign 1.1\n"), ["RP213"]),
    ],
)
def test_quota_plan_rules(plan: str, codes: list[str]):
    assert codes_of(plan) == codes


def test_quota_from_plan_must_name_a_quota_plan():
    uses = "revplan 1\n" + comp('  quota from plan "Q"\n' + BODY)
    assert codes_of(SHARED, uses, quota_plan("  allocate by equal\n")) == []
    assert codes_of(SHARED, uses, quota_plan("  allocate by equal\n", name="Other")) == ["RP313"]


def territory_plan(lines: str) -> str:
    names = ("A", "B", "C")
    territories = "".join(f'  territory "{n}"\n' for n in names)
    return f'revplan 1\nterritory plan "T" version 1\n{HEADER}{territories}{lines}'


def rule(condition: str, to: str, priority: int = 2) -> str:
    return f'  assign accounts where {condition} to "{to}" priority {priority}\n'


@pytest.mark.parametrize(
    "lines, codes",
    [
        (rule('account.country = "US"', "A") + rule('account.country = "DE"', "B"), []),
        (rule('account.country = "US"', "A") + rule('account.country = "US"', "B"), ["RP330"]),
        (rule('account.country = "US"', "A") + rule('account.state = "CA"', "B"), ["RP330"]),
        (rule('account.country = "US"', "A") + rule('account.state = "CA"', "B", priority=3), []),
        (rule("account.employees >= 1000", "A") + rule("account.employees < 1000", "B"), []),
        (rule('account.country in ("US", "CA")', "A") + rule('account.country not in ("US", "CA")', "B"), ["RP342"]),
        (rule('account.country in ("US", "CA")', "A")
         + rule('account.country is null or account.country not in ("US", "CA")', "B"), []),
        (rule("account.country is null", "A") + rule('account.country = "US"', "B"), []),
        (
            '  assign named accounts "a1", "a2" to "A" priority 1\n  assign named accounts "a2" to "B" priority 1\n',
            ["RP330"],
        ),
        ('  assign named accounts "a1" to "A" priority 1\n  assign named accounts "a2" to "B" priority 1\n', []),
        (
            '  assign named accounts "a1" to "A" priority 1\n' + rule('account.country = "US"', "B", priority=1),
            ["RP330"],
        ),
        (rule('account.country = "US"', "Z"), ["RP331"]),
        ('  move account "a1" to "Z" on 2027-07-01\n', ["RP331"]),
        ('  move account "a1" to "A" on 2028-07-01\n', ["RP340"]),
        ('  territory "A"\n', ["RP332"]),
        (rule("account.employees >= 10%", "A"), ["RP211"]),
        (rule('deal.stage = "x"', "A"), ["RP204"]),
        ("  tolerance cv 25%\n  tolerance max_min_ratio 1.5\n", []),
        ("  tolerance cv 0.25\n", ["RP213"]),
    ],
)
def test_territory_plan_rules(lines: str, codes: list[str]):
    assert codes_of(territory_plan(lines)) == codes


@pytest.mark.parametrize(
    "rows, codes",
    [
        ('    given rep id "A", target_incentive 80,000 USD\n', []),
        ('    given deal id "D", amount 5,000 EUR, close_date 2027-01-02, cancel_date null\n', []),
        ('    given deals id "D"\n', []),  # the table name works too
        ('    given opportunity id "D"\n', ["RP220"]),
        ("    given deal ammount 5 USD\n", ["RP221"]),
        ("    given deal amount 5\n", ["RP222"]),
        ("    given account employees 1.5\n", ["RP222"]),
        ('    expect payout rep "A", amount 5.00 USD, capped false\n', []),
        ('    expect territory account "a", territory null\n', []),
        ('    expect payot rep "A"\n', ["RP223"]),
        ('    expect quota rep "A", value 5 USD\n', ["RP223"]),
    ],
)
def test_plan_test_rules(rows: str, codes: list[str]):
    plan = "revplan 1\n" + comp(f'{BODY}  test "t"\n{rows}')
    assert codes_of(SHARED, plan) == codes


@pytest.mark.parametrize(
    "lines, codes",
    [
        ("  credit overlay\n", ["RP341"]),
        ("  credit owner\n", []),
    ],
)
def test_overlay_credit_needs_a_territory_plan(lines: str, codes: list[str]):
    assert codes_of(SHARED, "revplan 1\n" + comp(lines + BODY)) == codes
    assert codes_of(SHARED, "revplan 1\n" + comp(lines + BODY), territory_plan("")) == []


def test_spiff_window_outside_the_plan_is_a_warning():
    spiff = '  component "S"\n    spiff 1 USD per deal where deal.product = "x" from 2026-12-01 to 2027-01-31\n'
    project = load_texts([("s.plan", SHARED), ("p.plan", "revplan 1\n" + comp(spiff))])
    assert [(d.code, d.is_error) for d in project.diagnostics] == [("RP340", False)]
    assert project.ok


# ---------------------------------------------------------------- the prover


def condition(text: str) -> ir.Expr:
    return expression(text)


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        ('account.country = "US"', 'account.country = "DE"', False),
        ('account.country = "US"', 'account.country = "US"', True),
        ('account.country = "US"', 'account.country in ("CA", "US")', True),
        ('account.country in ("FR", "ES")', 'account.country in ("DE", "GB")', False),
        ('account.country = "US"', 'account.country != "US"', False),
        ('account.country = "US"', "account.country is null", False),
        ("account.country is not null", "account.country is null", False),
        ('account.country = "US" or account.country is null', "account.country is null", True),
        ("account.employees >= 1000", "account.employees < 1000", False),
        ("account.employees >= 1000", "account.employees <= 1000", True),
        ("account.employees > 1000", "1000 >= account.employees", False),
        (
            'account.country = "US" and account.employees >= 1000',
            'account.country = "US" and account.employees < 500',
            False,
        ),
        (
            'account.country = "US" and account.state in ("CA")',
            'account.country = "US" and account.state in ("TX")',
            False,
        ),
        ('account.country = "US"', 'account.state = "CA"', True),
        ('account.country = "US" or account.country = "CA"', 'account.country = "DE"', False),
        ('not (account.country = "US")', 'account.country = "US"', False),
        ('account.industry = "x" and account.industry = "y"', 'account.country = "US"', False),  # matches nothing
        ("account.employees * 2 >= 10", "account.employees < 1", True),  # not understood: may overlap
    ],
)
def test_can_overlap(a: str, b: str, overlap: bool):
    assert can_overlap(condition(a), condition(b)) is overlap
    assert can_overlap(condition(b), condition(a)) is overlap


def test_no_condition_overlaps_everything():
    assert can_overlap(None, condition('account.country = "US"'))


# ---------------------------------------------------------------- driver and helpers


def test_a_crashing_rule_becomes_a_diagnostic_and_the_others_still_run(monkeypatch):
    def broken_rule(context):
        raise KeyError("boom")

    monkeypatch.setattr(check_module, "RULES", (broken_rule, *check_module.RULES))
    files = [resolve(parse(SHARED + "measure x = bokings\n", "a.plan")).plan_file]
    codes = [d.code for d in check(files)]
    assert codes == ["RP299", "RP201"]


def test_spans_fall_back_to_the_statement_without_source_text():
    text = "revplan 1\n" + comp('  component "C" on bokings\n    rate 1%\n')
    files = [resolve(parse(SHARED, "s.plan")).plan_file, resolve(parse(text, "p.plan")).plan_file]
    (without,) = check(files)
    (with_source,) = check(files, sources={"p.plan": text})
    assert without.span.line == with_source.span.line == 7
    assert (with_source.span.column, with_source.span.end_column) == (20, 27)
    assert without.span.column == 3  # the start of the statement; the caret runs to the end of the line


def test_diagnostics_point_inside_their_file():
    project = load_texts(
        [("s.plan", SHARED), ("p.plan", "revplan 1\n" + comp('  component "C" on bokings\n    rate 1%\n'))]
    )
    assert all(d.span.file == "p.plan" for d in project.diagnostics)


def test_expectation_fields_agree_with_the_plan_test_runner():
    plantest = pytest.importorskip("runtime.plantest")
    runner = {what: {*kind.keys, *kind.sums, *kind.flags, *kind.values} for what, kind in plantest.KINDS.items()}
    assert {what: set(fields) for what, fields in EXPECTATION_FIELDS.items()} == runner


@pytest.mark.parametrize(
    "period, label, dates",
    [
        (ir.Period.YEAR, "2027", (dt.date(2027, 1, 1), dt.date(2027, 12, 31))),
        (ir.Period.HALF, "2027-H2", (dt.date(2027, 7, 1), dt.date(2027, 12, 31))),
        (ir.Period.QUARTER, "2027-Q1", (dt.date(2027, 1, 1), dt.date(2027, 3, 31))),
        (ir.Period.MONTH, "2027-02", (dt.date(2027, 2, 1), dt.date(2027, 2, 28))),
        (ir.Period.MONTH, "2027-12", (dt.date(2027, 12, 1), dt.date(2027, 12, 31))),
        (ir.Period.QUARTER, "2027-03", None),
        (ir.Period.MONTH, "2027-13", None),
    ],
)
def test_period_dates(period: ir.Period, label: str, dates):
    assert period_dates(period, label) == dates
