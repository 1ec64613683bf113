"""`revplan explain --rep R --period P`: each payout line, the rules behind it and the deals behind it.

Table-driven over worked examples (their test data, run on DuckDB with the
deals behind each line) and a rep of the sample company. For every case:
the deals behind a line add up to it (within a cent), every source location
names a real line of the plan file that holds that rule, the JSON round-trips
exactly, and the statement names each line. Then the decisions each example
is about (the band reached, the cap, the gate, the multiplier, the clawback,
the draw), and bad input from the command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from dsl import ir
from reports import payout_explain
from reports.explain import NotFound, account_lines
from runtime.plantest import build_tables, connection_for, load_checked, plan_files_for
from runtime.run import comp_plans, run_plans
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "examples"
PLANS = ROOT / "plans"
CENT = Decimal("0.01")

# What a step of each kind must point at: a word of the plan line it names.
KEYWORDS = {
    "band": "pays",
    "gate": "gate",
    "cap": "cap",
    "multiplier": "multiplier",
    "deal_multiplier": "multiplier",
    "draw": "draw",
    "clawback": "clawback",
    "curve": "pays",
}


def example(stem: str, rep: str, period: str | None) -> payout_explain.Explanation:
    """Run a worked example's test data (its first test block) and explain `rep`."""
    return explain_plan_test(EXAMPLES / f"{stem}.plan", rep, period)


def explain_plan_test(path: Path, rep: str, period: str | None) -> payout_explain.Explanation:
    """Run a plan file's first test block's data and explain `rep`."""
    files, diagnostics, sources = load_checked([path])
    assert not [d for d in diagnostics if d.is_error]
    plan = next(p for f in files for p in f.plans if isinstance(p, ir.CompPlan))
    test = plan.tests[0]
    tables = build_tables(test, plan)
    connection = connection_for(tables)
    try:
        result = run_plans(plan_files_for(plan, files, given_quotas="quotas" in tables), connection, deals=True)
    finally:
        connection.close()
    return payout_explain.explain_rep(
        result.payout_lines, result.payout_deals, comp_plans(files), sources, rep, period
    )


@pytest.fixture(scope="module")
def sample_company(tmp_path_factory):
    from dsl.project import load_paths
    from runtime.data import open_data
    from runtime.sample_data import generate_sample_company

    folder = tmp_path_factory.mktemp("company")
    generate_sample_company(folder, reps=80, deals=2500, seed=11)
    project = load_paths([PLANS])
    with open_data(folder) as data:
        result = run_plans(project.files, data.connection, deals=True)
    return project, result, folder


def sample_rep(sample_company, plan: str, line_type: str = "commission") -> tuple[str, str]:
    """A rep and period of the sample company with a non-zero line of that plan and type."""
    _, result, _ = sample_company
    lines = result.payout_lines
    chosen = lines[(lines["plan"] == plan) & (lines["line_type"] == line_type) & (lines["amount"] != 0)]
    assert not chosen.empty, (plan, line_type)
    row = chosen.iloc[0]
    return row["rep_id"], row["period"]


def sample_explanation(sample_company, plan: str, line_type: str = "commission") -> payout_explain.Explanation:
    project, result, _ = sample_company
    rep, period = sample_rep(sample_company, plan, line_type)
    return payout_explain.explain_rep(
        result.payout_lines,
        result.payout_deals,
        comp_plans(project.files),
        project.sources,
        rep,
        period,
    )


EXAMPLE_CASES = [
    ("w01_graduated_tiers", "A", "2027-Q1"),
    ("w02_retroactive_tiers", "A", "2027-Q1"),
    ("w03_cap", "A", "2027-Q1"),
    ("w04_gate", "A", "2027-Q1"),
    ("w05_deal_multiplier", "A", "2027-Q1"),
    ("w06_split_credit", "A", "2027-Q1"),
    ("w09_clawback", "A", None),
    ("w10_recoverable_draw", "A", "2027-Q1"),
    ("w11_spiff", "A", None),
    ("w12_ytd_true_up", "A", "2027-H1"),
    ("zero_quota", "Z", "2027-Q1"),
    ("run_off", "A", "2027-Q3"),  # after the plan's last day: a deal paid and one clawed back
]
SAMPLE_CASES = [
    ("Enterprise AE", "commission"),
    ("Commercial AE", "clawback"),
    ("Commercial AE", "draw"),
    ("Customer Success", "commission"),
    ("Sales Manager", "mbo"),
    ("SDR", "draw"),
]


def explanations(sample_company):
    for stem, rep, period in EXAMPLE_CASES:
        yield stem, example(stem, rep, period)
    for plan, line_type in SAMPLE_CASES:
        yield f"{plan} {line_type}", sample_explanation(sample_company, plan, line_type)


@pytest.fixture(scope="module")
def cases(sample_company) -> list[tuple[str, payout_explain.Explanation]]:
    return list(explanations(sample_company))


def test_every_case_explains_lines(cases):
    for name, explained in cases:
        assert explained.lines, name


def test_the_deals_behind_a_line_add_up_to_it(cases):
    checked = 0
    for name, explained in cases:
        for line in explained.lines:
            if line.deals:
                assert abs(line.deals_total - line.amount) < CENT, (name, line.component, line.period)
                checked += 1
            elif line.line_type in ("commission", "clawback") and line.amount != 0 and line.base is not None:
                # a traced rule (rate, tiers) with pay: its deals must be there
                assert line.deal_count == 0 or line.gated, (name, line.component, line.period, "no deals")
    assert checked >= 12


def test_the_shares_shown_add_up_to_the_total_shown(cases):
    """In cents, the shares a rep reads add up to the figure beside them (audit: 883.61 shown, "add up to
    883.59"): they are rounded cumulatively, as quotas are."""
    checked = 0
    for name, explained in cases:
        for line in explained.lines:
            if not line.deals:
                continue
            text = payout_explain._deals_text(line)
            shown = [Decimal(m.replace(",", "")) for m in re.findall(r"(?:share|together) +(-?[\d,]+\.\d\d)", text)]
            (total,) = re.findall(r"add up to (-?[\d,]+\.\d\d)", text)
            assert sum(shown, Decimal(0)) == Decimal(total.replace(",", "")), (name, line.component, text)
            checked += 1
    assert checked >= 12


def test_source_locations_point_at_the_rule_in_the_plan_file(cases):
    checked = 0
    for name, explained in cases:
        for line in explained.lines:
            located = [("component", line.source)] + [(step.kind, step.source) for step in line.steps]
            for kind, source in located:
                if source is None:
                    continue
                text = Path(source.file).read_text().splitlines()
                assert 0 < source.line <= len(text), (name, source)
                written = text[source.line - 1].strip()
                assert written == source.text and written, (name, source)
                keyword = KEYWORDS.get(kind) or ("component" if kind == "component" else None)
                if kind == "component" and line.line_type in ("draw", "draw_recovery"):
                    keyword = "draw"
                if keyword:
                    assert keyword in written, (name, kind, source, written)
                checked += 1
    assert checked >= 60


def test_json_round_trips_exactly(cases):
    for name, explained in cases:
        text = payout_explain.to_json(explained)
        data = json.loads(text)
        assert data == payout_explain.as_dict(explained), name
        for line, shown in zip(explained.lines, data["lines"], strict=True):
            assert Decimal(shown["amount"]) == line.amount and isinstance(shown["amount"], str)
            for deal, shown_deal in zip(line.deals, shown["deals"], strict=True):
                assert Decimal(shown_deal["share"]) == deal.share  # exact to 10 places
        totals = {(t["plan"], t["period"]): Decimal(t["amount"]) for t in data["totals"]}
        for plan, period in totals:
            lines = [line.amount for line in explained.lines if (line.plan, line.period) == (plan, period)]
            assert totals[plan, period] == sum(lines, Decimal(0)), name


def test_the_statement_names_every_line(cases):
    for name, explained in cases:
        text = payout_explain.render_text(explained)
        assert text.startswith(f"Payouts of {explained.rep}"), name
        for line in explained.lines:
            assert line.component in text and f"{line.amount:,}" in text, (name, line.component)
        assert "Traceback" not in text


# ---------------------------------------------------------------- the decisions


def steps(explained, kind: str, component: str | None = None, line_type: str = "commission"):
    return [
        step
        for line in explained.lines
        if line.line_type == line_type and (component is None or line.component == component)
        for step in line.steps
        if step.kind == kind
    ]


def test_graduated_tiers_show_each_slice_and_the_band_reached():
    explained = example("w01_graduated_tiers", "A", "2027-Q1")
    bands = steps(explained, "band")
    assert [b.decision for b in bands] == ["passed", "passed", "reached"]
    assert [b.values["pay"] for b in bands] == [Decimal("2500.00"), Decimal("4000.00"), Decimal("3600.00")]
    assert bands[-1].source.text.startswith("100% .. 150% pays 12%")
    (line,) = explained.lines
    assert line.amount == Decimal("10100.00") and line.attainment == Decimal("1.3")


def test_retroactive_tiers_pay_the_whole_base_at_the_band_reached():
    (band,) = steps(example("w02_retroactive_tiers", "A", "2027-Q1"), "band")
    assert band.decision == "reached" and band.values["rate"] == Decimal("0.12")


def test_a_zero_quota_reaches_no_band_and_no_curve_point():
    explained = example("zero_quota", "Z", "2027-Q1")
    assert not steps(explained, "band") and not steps(explained, "curve")
    for component in ("Graduated", "Retroactive", "Curve"):
        (line,) = [line for line in explained.lines if line.component == component]
        assert line.amount == 0 and line.quota == 0 and line.attainment is None
        assert any(step.text.startswith("attainment is empty") for step in line.steps), component


def test_a_cap_says_it_was_reached_and_what_it_took():
    explained = example("w03_cap", "A", "2027-Q1")
    (cap,) = steps(explained, "cap")
    assert cap.decision == "reached"
    assert cap.values == {"uncapped": Decimal("48000.00"), "amount": Decimal("40000.00")}
    assert "pays 40,000.00 instead of 48,000.00" in cap.text
    (line,) = explained.lines
    assert line.capped and line.uncapped == Decimal("48000.00")


@pytest.mark.parametrize(("rep", "decision", "amount"), [("A", "not met", "0.00"), ("B", "met", "4000.00")])
def test_a_gate_says_whether_it_was_met(rep, decision, amount):
    explained = example("w04_gate", rep, "2027-Q1")
    (gate,) = steps(explained, "gate")
    assert gate.decision == decision and gate.source.text == "gate attainment >= 50%"
    assert explained.lines[0].amount == Decimal(amount) and explained.lines[0].gated is (decision == "not met")


def test_a_deal_multiplier_shows_in_the_deals_credited_base():
    explained = example("w05_deal_multiplier", "A", "2027-Q1")
    (multiplier,) = steps(explained, "deal_multiplier")
    assert multiplier.values["factor"] == Decimal("1.5")
    deals = {d.deal_id: d for d in explained.lines[0].deals}
    assert deals["D2"].credited_base == Decimal("60000") and deals["D1"].credited_base == Decimal("60000")
    assert deals["D2"].share == Decimal("6000") and deals["D1"].share == Decimal("6000")


def test_a_clawback_names_the_cancelled_deal_and_takes_its_share_back():
    explained = example("w09_clawback", "A", None)
    (clawback,) = [line for line in explained.lines if line.line_type == "clawback"]
    assert clawback.period == "2027-Q2" and clawback.amount == Decimal("-5000.00")
    assert [(d.deal_id, d.share, d.earned_period) for d in clawback.deals] == [
        ("D1", Decimal("-5000"), "2027-Q1")
    ]  # D2 was cancelled after 120 days: outside the 90-day window
    (step,) = [s for s in clawback.steps if s.kind == "clawback"]
    assert step.source.text == "clawback cancelled deals within 90 days"


def test_a_positive_year_to_date_clawback_says_it_pays_the_rep():
    """Year to date, a cancelled deal's share of a period where the rate to date fell is negative: its
    clawback pays the rep (audit: +3.37 explained as giving commission back)."""
    explained = example("ytd_clawback_decelerator", "A", None)
    steps = {line.period: next(s for s in line.steps if s.kind == "clawback")
             for line in explained.lines if line.line_type == "clawback"}
    assert "pays the rep" in steps["2027-Q2"].text and "pays the rep" not in steps["2027-Q1"].text
    (q2,) = [line for line in explained.lines if line.line_type == "clawback" and line.period == "2027-Q2"]
    assert q2.amount == Decimal("2222.22") and [d.deal_id for d in q2.deals] == ["D1"]


def test_a_line_rounded_over_several_periods_says_a_cent_moved():
    """Four clawbacks of half a cent are rounded on the total to date (-0.01, 0.00, -0.01, 0.00): a period's
    shares add up to -0.01 where its line is 0.00, and the text says why."""
    explained = example("clawback_cents", "F", None)
    text = payout_explain.render_text(explained)
    assert "shares add up to -0.01 (the line: 0.00)" in text
    assert text.count("is rounded to the cent on its total to date") == 2


def test_an_sdr_sees_the_opportunities_they_are_paid_for(sample_company):
    """SDR's "Opportunities sourced" pays 150 per deal it counts: the line names those deals, each one unit of the
    base, and their shares add up to the line."""
    project, result, _ = sample_company
    lines = result.payout_lines
    paid = lines[(lines["component"] == "Opportunities sourced") & (lines["amount"] != 0)]
    checked = 0
    for rep in sorted(set(paid["rep_id"]))[:3]:
        plans = comp_plans(project.files)
        explained = payout_explain.explain_rep(lines, result.payout_deals, plans, project.sources, rep)
        for line in explained.lines:
            if line.component != "Opportunities sourced" or line.amount == 0:
                continue
            assert len(line.deals) == line.deal_count == line.base, (line.period, line.base)
            assert {d.credited_base for d in line.deals} == {Decimal(1)}
            assert sum(d.share for d in line.deals) == line.amount == 150 * line.base
            checked += 1
    assert checked >= 3


def test_a_year_to_date_clawback_counts_each_deal_once(sample_company):
    """On Commercial AE (year to date) a cancelled deal gives back its share of each quarter it counted in:
    one deal, several shares, and the text says so."""
    project, result, _ = sample_company
    deals = result.payout_deals.to_pandas()
    clawed = deals[(deals["plan"] == "Commercial AE") & (deals["line_type"] == "clawback")]
    shares = clawed.groupby(["rep_id", "line_period"])["deal_id"].agg(["size", "nunique"])
    rep, period = shares[shares["size"] > shares["nunique"]].index[0]
    explained = payout_explain.explain_rep(result.payout_lines, result.payout_deals, comp_plans(project.files),
                                           project.sources, rep, period)
    (line,) = [line for line in explained.lines if line.plan == "Commercial AE" and line.line_type == "clawback"]
    count, rows = shares.loc[(rep, period), "nunique"], shares.loc[(rep, period), "size"]
    assert line.deal_count == count and len(line.deals) == rows
    assert f"{count} deal(s) in {rows} shares add up to" in payout_explain.render_text(explained)


def test_a_draw_line_says_what_it_tops_up():
    explained = example("w10_recoverable_draw", "A", "2027-Q1")
    draws = [line for line in explained.lines if line.line_type == "draw"]
    assert [line.period for line in draws] == ["2027-01", "2027-02"]
    assert draws[0].source.text == "draw 3,000 USD per period for 3 periods recoverable"
    assert "the period's pay (1,000.00) is topped up by 2,000.00" in draws[0].steps[0].text
    (recovery,) = [line for line in explained.lines if line.line_type == "draw_recovery"]
    assert recovery.amount == Decimal("-2500.00") and "recovered" in recovery.steps[0].text


def test_year_to_date_lines_say_they_are_true_ups():
    explained = example("w12_ytd_true_up", "A", "2027-H1")
    assert [line.period for line in explained.lines] == ["2027-Q1", "2027-Q2"]
    assert all(any(s.kind == "measurement" for s in line.steps) for line in explained.lines)


def test_a_year_to_date_line_shows_the_pay_to_date_and_what_earlier_periods_paid():
    """Q3 (70 % to date): 7,500 + 4,800 to date, less Q1's 3,300 and Q2's 10,900: -1,900.00, figures a rep can
    check (the step named no figure: an audit could not recompute a negative true-up)."""
    (line,) = example("w12_ytd_true_up", "A", "2027-Q3").lines
    (step,) = [s for s in line.steps if s.kind == "measurement"]
    assert step.values == {"pay_to_date": Decimal("12300.00"), "paid_before": Decimal("14200.00")}
    assert "the pay to date, 12,300.00 (rounded), less the 14,200.00 the year's earlier periods paid: -1,900.00" \
        in step.text
    assert line.amount == Decimal("-1900.00")


def test_a_year_to_date_line_paid_on_payment_pays_deals_parts_not_the_pay_to_date():
    """Paid on payment, a line pays the parts deals earned, as they are paid: "pay to date less earlier lines"
    is not what it pays (audit: 18,000 shown as the pay to date where 30,000 was earned)."""
    (line,) = example("paid_on_payment_combined", "A", "2027-Q2").lines
    (step,) = [s for s in line.steps if s.kind == "measurement"]
    assert not step.values and "pays those parts for the deals paid in this period" in step.text


def test_a_measure_multiplier_is_applied_or_not(sample_company):
    """Enterprise AE's hunter kicker (1.1 when new logos are 40 % of bookings): decided for every line."""
    project, result, _ = sample_company
    lines = result.payout_lines
    decisions = set()
    for rep in sorted(set(lines[lines["plan"] == "Enterprise AE"]["rep_id"]))[:8]:
        explained = payout_explain.explain_rep(
            lines, result.payout_deals, comp_plans(project.files), project.sources, rep
        )
        for line in explained.lines:
            if line.component == "New business" and line.line_type == "commission" and not line.gated:
                if line.uncapped:
                    (multiplier,) = [s for s in line.steps if s.kind == "multiplier"]
                    decisions.add(multiplier.decision)
    assert decisions <= {"applied", "not applied"} and decisions


KICKER = """revplan 1

comp plan "Kicker" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  measure bookings = sum(deal.amount) where deal.stage = "closed_won"

  component "New business" on bookings
    rate 5%
    multiplier 1.1 when bookings >= 100,000 USD

  test "A EUR deal: a base that is not whole cents"
    given rep id "A", target_incentive 80,000 USD
    given fx_rate date 2027-01-01, from "EUR", to "USD", rate 1.081408
    given deal id "D1", owner_rep_id "A", amount 100,001.53 EUR, close_date 2027-02-01
    # 100,001.53 EUR x 1.081408 = 108,142.45455424 USD; x 5% = 5,407.122727712; x 1.1 = 5,947.8350004832
    expect payout rep "A", period "2027-Q1", amount 5,947.84 USD
"""


def test_the_steps_multiply_out_to_the_line(tmp_path):
    """A rep redoes the arithmetic: the rule's pay times the multipliers applied, rounded to cents, is the line.
    With the base shown in cents it was not: 108,142.45 x 5% x 1.1 = 5,947.83475 gives 5,947.83, but the line,
    computed on 108,142.45455424, is 5,947.84. Steps show the values as computed."""
    (tmp_path / "kicker.plan").write_text(KICKER)
    (line,) = explain_plan_test(tmp_path / "kicker.plan", "A", "2027-Q1").lines
    (rule,) = [s for s in line.steps if s.kind == "rule"]
    (multiplier,) = [s for s in line.steps if s.kind == "multiplier"]
    assert rule.text.endswith("108,142.45455424 bookings x 5% = 5,407.122727712")
    assert multiplier.decision == "applied"
    assert multiplier.text.endswith(": 5,407.122727712 x 1.1 = 5,947.8350004832")
    assert line.amount == Decimal("5947.84") == (rule.values["pay"] * multiplier.values["factor"]).quantize(CENT)


BONUS_WITH_CLAWBACK = """revplan 1

comp plan "Monthly" version 1
  effective 2028-01-01 to 2028-12-31
  period month
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"
  measure bookings = sum(deal.amount) where deal.stage = "closed_won"
  clawback cancelled deals within 90 days

  component "Bonus"
    bonus 1,000.01 USD when bookings >= 1 USD

  test "A bonus: no line traces to deals, a clawback has none to take back"
    given rep id "A", target_incentive 80,000 USD
    given deal id "D1", owner_rep_id "A", amount 100 USD, close_date 2028-02-10
    expect payout rep "A", period "2028-02", amount 1,000.01 USD
"""


def test_a_plan_with_a_clawback_and_nothing_traced_to_deals_is_explained(tmp_path):
    """Audit: DuckDB could not plan the empty trace's clawback window (days between two untyped NULLs)."""
    (tmp_path / "bonus.plan").write_text(BONUS_WITH_CLAWBACK)
    (line,) = explain_plan_test(tmp_path / "bonus.plan", "A", "2028-02").lines
    assert (line.component, line.amount, line.deals) == ("Bonus", Decimal("1000.01"), ())


def test_a_prorated_bonus_and_mbo_show_the_part_of_the_period_they_pay_for():
    """45 of Q2's 91 days in version 1: the bonus and MBO are prorated (compiler `per_period`), and the MBO's
    score is worked out from the prorated amount: 100 %, not the 49.45 % the whole amount would give."""
    explanation = explain_plan_test(EXAMPLES / "prorated_amounts.plan", "A", "2027-Q2")
    steps = {line.component: {s.kind: s for s in line.steps} for line in explanation.lines}
    bonus, mbo = steps["Quota bonus"]["rule"], steps["MBO"]["rule"]
    assert bonus.text == "bonus 1,000 USD when attainment >= 100%; prorated to ~49.4505% of the period's days: " \
        "494.5054945" and bonus.decision == "met"
    assert mbo.text == "mbo 2,000 USD from mbo_scores; prorated to ~49.4505% of the period's days: 989.010989; " \
        "score ~100%"
    assert "fixed amounts per period" in steps["MBO"]["proration"].text
    assert steps["MBO"]["proration"].text.startswith("active 45 of the period's 91 days (~49.4505%)")  # not only %
    text = payout_explain.render_text(explanation)  # base / the quota in cents is not the attainment shown
    assert "of quota" in text and "(prorated; the attainment divides by it unrounded)" in text
    assert "unrounded" not in payout_explain.render_text(example("w01_graduated_tiers", "A", None))


def test_a_prorated_draw_shows_the_part_of_the_period_it_guarantees(tmp_path):
    """A hire on 2027-02-15 is in the plan 45 of Q1's 90 days: half the 3,000 draw, less the 500 earned."""
    text = (EXAMPLES / "prorated_amounts.plan").read_text()
    (tmp_path / "draw.plan").write_text(text[:text.index("comp plan")] + text[text.index('comp plan "Guaranteed'):])
    (draw,) = [line for line in explain_plan_test(tmp_path / "draw.plan", "H", "2027-Q1").lines
               if line.line_type == "draw"]
    assert draw.steps[0].text == ("non-recoverable draw of 3,000.00 for the first 2 active period(s), prorated to "
                                  "50% of the period's days (1,500.00): the period's pay (500.00) is topped up by "
                                  "1,000.00")


# ---------------------------------------------------------------- bad input


def test_unknown_rep_and_period_name_what_exists(sample_company):
    project, result, _ = sample_company
    rep, _ = sample_rep(sample_company, "Enterprise AE")
    with pytest.raises(NotFound) as missing:
        payout_explain.select_lines(result.payout_lines, rep[:-1] + "X")
    assert rep in missing.value.known
    with pytest.raises(NotFound) as missing:
        payout_explain.select_lines(result.payout_lines, rep, "2027-Q5")
    assert "is not a period" in str(missing.value) and "2027-Q1" in missing.value.known
    with pytest.raises(NotFound) as missing:
        payout_explain.select_lines(result.payout_lines, rep, "2031-Q1")
    assert missing.value.known == ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]


def test_cli_explains_a_rep_as_text_and_json(sample_company, capsys):
    _, result, folder = sample_company
    rep, period = sample_rep(sample_company, "Enterprise AE")
    code, text, _ = run_cli(capsys, "explain", "--rep", rep, "--period", period, "--data", folder, "--plans", PLANS)
    assert code == 0 and f"Payouts of {rep}" in text and "New business (commission)" in text
    assert "enterprise_ae.plan" in text and "shares add up to" in text
    assert not [line for line in text.splitlines() if line.endswith(" ")]  # piped: no padding to the width
    code, out, _ = run_cli(
        capsys, "explain", "--rep", rep, "--period", period, "--data", folder, "--plans", PLANS, "--format", "json"
    )
    data = json.loads(out)
    assert code == 0 and data["rep"] == rep and data["period"] == period
    mine = result.payout_lines[(result.payout_lines["rep_id"] == rep) & (result.payout_lines["period"] == period)]
    assert sorted(Decimal(line["amount"]) for line in data["lines"]) == sorted(mine["amount"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rep", "R00O1"], "did you mean"),
        (["--rep", "{rep}", "--period", "2027-Q7"], "'2027-Q7' is not a period"),
        (["--rep", "{rep}", "--period", "2026"], "has no payout lines in period '2026'"),
        (["--quota", "{rep}", "--format", "json"], "--format json is for --rep"),
    ],
)
def test_cli_bad_rep_or_period_is_one_clear_message(sample_company, capsys, argv, expected):
    _, _, folder = sample_company
    rep, _ = sample_rep(sample_company, "Enterprise AE")
    argv = [a.format(rep=rep) for a in argv]
    code, out, err = run_cli(capsys, "explain", *argv, "--data", folder, "--plans", PLANS)
    assert code == 1 and expected in err, err
    assert "known:" in err or "--format" in expected


def test_render_text_is_plain_text(cases):
    _, explained = cases[0]
    text = payout_explain.render_text(explained)
    assert "\x1b[" not in text  # no colour codes in a file or a pipe
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print(text)
    assert buffer.getvalue().strip()


# ---------------------------------------------------------------- accounts

DATED_OVERLAY = """revplan 1
territory plan "T" version 1
  effective 2027-01-01 to 2027-12-31
  period year
  currency USD
  owners sales "@s" finance "@f"
  territory "West"
    owner "A"
    overlay "S1"
    overlay "S2" from 2027-03-01
    overlay "S3" from 2028-01-01
  assign accounts where account.state = "CA" to "West" priority 1
"""


@pytest.mark.parametrize(("day", "shown"), [
    ("2027-02-01", "  overlays: S1"),  # S2 covers the territory from March only: it was listed here too
    ("2027-03-01", "  overlays: S1, S2 (from 2027-03-01)"),
    (None, "  overlays: S1, S2 (from 2027-03-01)"),  # the year's span; S3 starts after it
])
def test_an_account_lists_the_overlays_of_its_day_with_their_start(tmp_path, day, shown):
    path = tmp_path / "t.plan"
    path.write_text(DATED_OVERLAY)
    files, diagnostics, sources = load_checked([path])
    territories = pd.DataFrame([dict(plan="T", version=1, account_id="ca", territory="West", owner_rep_id="A",
                                     rule=f"{path}:12", priority=1, start=dt.date(2027, 1, 1),
                                     end=dt.date(2027, 12, 31))])
    lines = account_lines(territories, None, tuple(files[0].plans), sources, "ca",
                          dt.date.fromisoformat(day) if day else None)
    assert [line for line in lines if "overlays" in line] == [shown]
