"""`revplan fmt` (dsl/format.py): one canonical layout, meaning and comments kept.

For every plan in the repository and for generated and mutated plans:
formatting is idempotent, the IR is unchanged (IR equality ignores spans)
and every comment survives in order. A table of small before/after pairs
pins the layout rules themselves.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.format import format_text
from dsl.parse import parse
from dsl.resolve import resolve

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted(
    [
        *(ROOT / "plans").rglob("*.plan"),
        *(ROOT / "tests" / "examples").glob("*.plan"),
        *(ROOT / "tests" / "plans" / "good").glob("*.plan"),
    ]
)
CORPUS_TEXTS = [p.read_text(encoding="utf-8") for p in CORPUS]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def fmt(text: str) -> str:
    result = format_text(text, "test.plan")
    assert not result.diagnostics, [d.message for d in result.diagnostics]
    return result.text


def meaning(text: str):
    syntax = parse(text, "test.plan")
    assert not syntax.diagnostics, [d.message for d in syntax.diagnostics]
    return resolve(syntax).plan_file


def comments(text: str) -> list[str]:
    return [c.text for c in parse(text).comments]


def assert_formats_safely(text: str) -> str:
    """Idempotent, same IR, same comments in the same order; returns the formatted text."""
    once = fmt(text)
    assert fmt(once) == once, "not idempotent"
    assert meaning(once) == meaning(text), "the IR changed"
    assert comments(once) == comments(text), "comments were lost or reordered"
    return once


# ---------------------------------------------------------------- the repository's plans


def test_the_corpus_is_there():
    assert len(CORPUS) >= 9 + 15


@pytest.mark.parametrize("path", CORPUS, ids=relative)
def test_corpus_round_trips(path: Path):
    assert_formats_safely(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [p for p in CORPUS if "tests/plans/" not in relative(p)], ids=relative)
def test_sample_plans_are_in_canonical_layout(path: Path):
    text = path.read_text(encoding="utf-8")
    assert fmt(text) == text, f"run `revplan fmt {relative(path)}`"


# ---------------------------------------------------------------- layout rules, before -> after

HEADER = """\
revplan 1

comp plan "X" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@a" finance "@b"
"""


def plan(body: str) -> str:
    """A comp plan with its header, then `body` (written at plan level, dedented)."""
    return HEADER + textwrap.indent(textwrap.dedent(body), "  ", lambda line: True).replace("  \n", "\n")


CASES = {
    "spacing of keywords and operators": (
        'revplan   1\nmeasure  b=sum ( deal.amount )where deal.stage="won"and deal.amount>=5\n',
        'revplan 1\n\nmeasure b = sum(deal.amount) where deal.stage = "won" and deal.amount >= 5\n',
    ),
    "numbers group thousands, decimals kept as written": (
        "revplan 1\nmeasure a = 1000 + 1234567.50 + 10100.00USD + 0.5 + 007\n"
        "measure b = 12.5% + 1000% + 2,000 USD + 100,000.000 EUR\n",
        "revplan 1\n\nmeasure a = 1,000 + 1,234,567.50 + 10,100.00 USD + 0.5 + 7\n"
        "measure b = 12.5% + 1,000% + 2,000 USD + 100,000.000 EUR\n",
    ),
    "whole numbers (versions, priorities, periods) stay plain": (
        plan("""\
            draw 3000 USD per period for  3 periods recoverable
            credit rollup depth 02
            """).replace("version 1", "version 0012"),
        plan("""\
            draw 3,000 USD per period for 3 periods recoverable
            credit rollup depth 2
            """).replace("version 1", "version 12"),
    ),
    "indentation becomes two spaces per level": (
        'revplan 1\ncomp plan "X" version 1\n    effective 2027-01-01 to 2027-12-31\n    period quarter\n'
        '    currency USD\n    owners sales "@a" finance "@b"\n    component "C"\n'
        "          rate 10%\n",
        plan("""\

            component "C"
              rate 10%
            """),
    ),
    "tier bands line up in columns": (
        plan("""\

            component "C" on bookings
              graduated tiers on attainment
                0%..50% pays 5%
                50% .. 100%   pays 8%
                100%..   pays   12.5%
            """),
        plan("""\

            component "C" on bookings
              graduated tiers on attainment
                0%   .. 50%  pays 5%
                50%  .. 100% pays 8%
                100% ..      pays 12.5%
            """),
    ),
    "money bands and a decelerator": (
        plan("""\

            component "C" on bookings
              retroactive tiers on bookings with   decelerator
                0 USD .. 50000 USD pays 5%
                50000 USD .. pays 4%
            """),
        plan("""\

            component "C" on bookings
              retroactive tiers on bookings with decelerator
                0 USD      .. 50,000 USD pays 5%
                50,000 USD ..            pays 4%
            """),
    ),
    "bands without an upper bound": (
        plan("""\

            component "C" on bookings
              graduated tiers on attainment
                0% ..  pays 5%
            """),
        plan("""\

            component "C" on bookings
              graduated tiers on attainment
                0% .. pays 5%
            """),
    ),
    "curve points line up": (
        plan("""\

            component "C"
              curve on attainment of target_incentive
                0% pays 0%
                100%   pays 100%
                150% pays 200%
            """),
        plan("""\

            component "C"
              curve on attainment of target_incentive
                0%   pays 0%
                100% pays 100%
                150% pays 200%
            """),
    ),
    "comments kept at their block's indentation, trailing after two spaces": (
        "revplan 1\n# about b\nmeasure b = 1   #   trailing, text kept\n"
        'comp plan "X" version 1\n'
        "      # first line of the plan\n"
        "  effective 2027-01-01 to 2027-12-31\n  period quarter\n  currency USD\n"
        '  owners sales "@a" finance "@b"\n'
        '  component "C"\n'
        "# at column 0, but inside the component\n"
        "    rate 10%\n"
        "      # still in the component\n"
        "  # before the test\n"
        '  test "t"\n'
        '    given rep id "A"\n'
        "# end of file\n",
        "revplan 1\n\n# about b\nmeasure b = 1  #   trailing, text kept\n\n"
        'comp plan "X" version 1\n'
        "  # first line of the plan\n"
        "  effective 2027-01-01 to 2027-12-31\n  period quarter\n  currency USD\n"
        '  owners sales "@a" finance "@b"\n\n'
        '  component "C"\n'
        "    # at column 0, but inside the component\n"
        "    rate 10%\n"
        "    # still in the component\n\n"
        "  # before the test\n"
        '  test "t"\n'
        '    given rep id "A"\n'
        "# end of file\n",
    ),
    "a '#' inside a string is not a comment": (
        'revplan 1\nmeasure b = sum(deal.amount) where deal.stage = "#1"   # real\n',
        'revplan 1\n\nmeasure b = sum(deal.amount) where deal.stage = "#1"  # real\n',
    ),
    "blank-line runs collapse; none at the start or end of a file or block": (
        "\n\n\nrevplan 1\n\n\n\nmeasure a = 1\n\n\n\nmeasure b = 2\nmeasure c = 3\n"
        'comp plan "X" version 1\n\n\n  effective 2027-01-01 to 2027-12-31\n  period quarter\n\n\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n\n\n\n',
        "revplan 1\n\nmeasure a = 1\n\nmeasure b = 2\nmeasure c = 3\n\n"
        'comp plan "X" version 1\n  effective 2027-01-01 to 2027-12-31\n  period quarter\n\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n',
    ),
    "a blank line before and after each component and test, above its comments": (
        plan("""\
            credit owner
            # the commission
            component "A"
              rate 1%
            component "B"
              rate 2%
            attainment = bookings / quota
            test "t"
              given rep id "A"
            """),
        plan("""\
            credit owner

            # the commission
            component "A"
              rate 1%

            component "B"
              rate 2%

            attainment = bookings / quota

            test "t"
              given rep id "A"
            """),
    ),
    "statement order is kept": (
        plan("""\
            measure z = 1
            credit splits
            measure a = 2
            credit owner
            """),
        plan("""\
            measure z = 1
            credit splits
            measure a = 2
            credit owner
            """),
    ),
    "parentheses: needed ones and the author's are kept, doubled ones collapse": (
        "revplan 1\nmeasure a = (b + c) * d - (e) + ((f))\nmeasure g = not(h > 1) or (i and j)\n"
        "measure k = -(l - m) / (n * o)\nmeasure p = (q or r) and not s\n",
        "revplan 1\n\nmeasure a = (b + c) * d - (e) + (f)\nmeasure g = not (h > 1) or (i and j)\n"
        "measure k = -(l - m) / (n * o)\nmeasure p = (q or r) and not s\n",
    ),
    "lists, in, is null, aggregates": (
        'revplan 1\nmeasure a = count( deal )where deal.stage in("a" ,"b")and deal.x not in (1000,2)\n'
        "measure b = count_distinct (deal.account_id) where deal.y is not  null or deal.z is null\n",
        'revplan 1\n\nmeasure a = count(deal) where deal.stage in ("a", "b") and deal.x not in (1,000, 2)\n'
        "measure b = count_distinct(deal.account_id) where deal.y is not null or deal.z is null\n",
    ),
    "durations, dates, negative test values": (
        plan("""\
            clawback cancelled deals within 90day

            test "t"
              expect payout rep "A" ,amount -5000.00 USD,x null ,y true,d 2027-01-01
              given quota n 1, p - 5%
            """),
        plan("""\
            clawback cancelled deals within 90 days

            test "t"
              expect payout rep "A", amount -5,000.00 USD, x null, y true, d 2027-01-01
              given quota n 1, p -5%
            """),
    ),
    "quota plan statements": (
        'revplan 1\nquota plan "Q" version 1\n  effective 2027-01-01 to 2027-12-31\n  period quarter\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n  target 72000000 USD\n  over_assign 10%\n'
        "  allocate by territory_potential 60% ,prior_bookings 40%\n  allocate by weights\n"
        '  weight "R1"  1.2\n  phasing 22%,24% , 25%, 29%\n  ramp 50%,75%\n'
        '  override "R2" period "2027-Q1"   1500000 USD\n  override "R3" 600000 USD\n'
        "  round up to 5000 USD\n  round down to 1 USD\n  round to nearest 1000 USD\n",
        'revplan 1\n\nquota plan "Q" version 1\n  effective 2027-01-01 to 2027-12-31\n  period quarter\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n  target 72,000,000 USD\n  over_assign 10%\n'
        "  allocate by territory_potential 60%, prior_bookings 40%\n  allocate by weights\n"
        '  weight "R1" 1.2\n  phasing 22%, 24%, 25%, 29%\n  ramp 50%, 75%\n'
        '  override "R2" period "2027-Q1" 1,500,000 USD\n  override "R3" 600,000 USD\n'
        "  round up to 5,000 USD\n  round down to 1 USD\n  round to nearest 1,000 USD\n",
    ),
    "territory plan statements": (
        'revplan 1\nterritory plan "T" version 1\n  effective 2027-01-01 to 2027-12-31\n  period year\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n  territory "S"\n     owner "R1"  from 2027-07-01\n'
        '     overlay "R2"\n  territory "Empty"\n'
        '  assign named accounts "a1" ,"a2" to "S" priority 01\n'
        '  assign accounts where account.employees>=1000 to "S" priority 2\n'
        '  move account "a3" to "S" on 2027-07-01\n  tolerance cv 25%\n  tolerance max_min_ratio 1.5\n',
        'revplan 1\n\nterritory plan "T" version 1\n  effective 2027-01-01 to 2027-12-31\n  period year\n'
        '  currency USD\n  owners sales "@a" finance "@b"\n  territory "S"\n    owner "R1" from 2027-07-01\n'
        '    overlay "R2"\n  territory "Empty"\n'
        '  assign named accounts "a1", "a2" to "S" priority 1\n'
        '  assign accounts where account.employees >= 1,000 to "S" priority 2\n'
        '  move account "a3" to "S" on 2027-07-01\n  tolerance cv 25%\n  tolerance max_min_ratio 1.5\n',
    ),
    "comp plan statements": (
        plan("""\
            applies to reps
            credit  overlay
            quota from plan  "Q"
            quota from quotas
            attainment=bookings/quota
            measured per   period
            measured year_to_date  with true_up
            prorate by  active_days
            paid on  payment
            fx at  period_end
            draw 100 USD per period non_recoverable
            component "C"on bookings
              rate target_incentive/quota
              multiplier 1.5 where deal.product="n"
              multiplier 1.1 when win_rate>=30%
              gate attainment>=50%
              cap 2x target_incentive
              cap 40000 USD per  year
            component "D"
              spiff 500USD per deal where deal.p="a" from 2027-03-01 to 2027-03-31
            component "E"
              mbo 1500 USD from  mbo_scores
            """),
        plan("""\
            applies to reps
            credit overlay
            quota from plan "Q"
            quota from quotas
            attainment = bookings / quota
            measured per period
            measured year_to_date with true_up
            prorate by active_days
            paid on payment
            fx at period_end
            draw 100 USD per period non_recoverable

            component "C" on bookings
              rate target_incentive / quota
              multiplier 1.5 where deal.product = "n"
              multiplier 1.1 when win_rate >= 30%
              gate attainment >= 50%
              cap 2 x target_incentive
              cap 40,000 USD per year

            component "D"
              spiff 500 USD per deal where deal.p = "a" from 2027-03-01 to 2027-03-31

            component "E"
              mbo 1,500 USD from mbo_scores
            """),
    ),
    "CRLF line endings and no final newline": (
        "revplan 1\r\n# c\r\nmeasure b = 1 # t\r\nmeasure c = 2",
        "revplan 1\n\n# c\nmeasure b = 1  # t\nmeasure c = 2\n",
    ),
}


@pytest.mark.parametrize("before, after", CASES.values(), ids=CASES.keys())
def test_layout(before: str, after: str):
    assert fmt(before) == after
    assert fmt(after) == after
    assert meaning(after) == meaning(before)
    assert comments(after) == comments(before)


def test_text_that_does_not_parse_comes_back_unchanged_with_diagnostics():
    text = "revplan 1\nmeasure b = sum(deal.amount) where\n"
    result = format_text(text, "bad.plan")
    assert result.text == text
    assert [d.code for d in result.diagnostics] == ["RP001"]
    assert format_text("", "empty.plan").diagnostics[0].code == "RP003"


# ---------------------------------------------------------------- generated plans

# Expressions as (text, precedence), precedence as in dsl/format.py. The
# generator parenthesises where the grammar needs it and, at random, where
# it does not, and spaces tokens at random.
space = st.sampled_from([" ", "  ", "   ", "\t"])
tight = st.sampled_from(["", " ", "  "])

number_text = st.sampled_from(["0", "1", "7", "1000", "1,000", "25000", "1234567.50", "10,100.00", "0.5", "007"])
leaves = st.one_of(
    st.sampled_from(["bookings", "quota", "attainment", "target_incentive", "deal.amount", "rep.segment"]),
    number_text,
    number_text.map(lambda n: n + "%"),
    st.tuples(number_text, st.sampled_from(["USD", "EUR"]), space).map(lambda t: t[0] + t[2] + t[1]),
    st.sampled_from(['"closed_won"', '"a#b"', '"x\\"y"', "2027-01-01", "90 days", "1 day", "true", "false"]),
    st.tuples(st.sampled_from(["sum", "count", "max"]), tight, tight).map(
        lambda t: f"{t[0]}{t[1]}({t[2]}deal.amount{t[2]})"
    ),
).map(lambda text: (text, 9))


@st.composite
def wrap(draw, child: tuple[str, int], minimum: int) -> str:
    text, precedence = child
    if precedence < minimum or draw(st.integers(0, 5)) == 0:
        return f"({draw(tight)}{text}{draw(tight)})"
    return text


@st.composite
def combine(draw, children) -> tuple[str, int]:
    kind = draw(st.sampled_from(["or", "and", "not", "compare", "in", "null", "+", "-", "*", "/", "neg"]))
    left, right = draw(children), draw(children)
    gap = draw(space)
    if kind in ("or", "and"):
        precedence = 1 if kind == "or" else 2
        return f"{draw(wrap(left, precedence + 1))}{gap}{kind}{gap}{draw(wrap(right, precedence + 1))}", precedence
    if kind == "not":
        return f"not{gap}{draw(wrap(left, 3))}", 3
    if kind == "compare":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        return f"{draw(wrap(left, 5))}{draw(tight)}{op}{draw(tight)}{draw(wrap(right, 5))}", 4
    if kind == "in":
        values = draw(st.lists(st.sampled_from(['"a"', "1,000", "5%", "2 USD"]), min_size=1, max_size=3))
        negated = draw(st.booleans())
        keyword = f"{gap}not{gap}in" if negated else f"{gap}in"
        return f"{draw(wrap(left, 5))}{keyword}{draw(tight)}({', '.join(values)})", 4
    if kind == "null":
        return f"{draw(wrap(left, 5))}{gap}is{gap}{draw(st.sampled_from(['', 'not ']))}null", 4
    if kind == "neg":
        return f"-{draw(tight)}{draw(wrap(left, 7))}", 7
    precedence = 5 if kind in "+-" else 6
    # ' - ' keeps a subtraction of numbers from reading as a date (2027-01-01).
    return f"{draw(wrap(left, precedence))} {kind} {draw(wrap(right, precedence + 1))}", precedence


expressions = st.recursive(leaves, lambda children: combine(children), max_leaves=8)
comment = st.sampled_from(["# note", "#", "# a # b", '# "quoted"', "#x  "])


@st.composite
def generated_plans(draw) -> str:
    """A small comp plan with random expressions, bands, spacing, comments and blank lines."""
    indent = draw(st.sampled_from([2, 3, 4]))

    def at(level: int, text: str) -> str:
        trailing = f"{draw(space)}{draw(comment)}" if draw(st.integers(0, 6)) == 0 else ""
        return " " * (indent * level) + text + trailing

    lines = ["revplan 1"]
    for index in range(draw(st.integers(0, 3))):
        lines.append(f"measure{draw(space)}m{index}{draw(tight)}={draw(tight)}{draw(expressions)[0]}")
    lines += [
        f'comp{draw(space)}plan "P"{draw(space)}version 1',
        at(1, "effective 2027-01-01 to 2027-12-31"),
        at(1, "period quarter"),
        at(1, "currency USD"),
        at(1, 'owners sales "@a" finance "@b"'),
        at(1, f"applies to reps where {draw(expressions)[0]}"),
    ]
    for index in range(draw(st.integers(1, 3))):
        lines.append(at(1, f'component "C{index}" on bookings'))
        if draw(st.booleans()):
            lines.append(at(2, f"rate {draw(expressions)[0]}"))
        else:
            lines.append(at(2, "graduated tiers on attainment"))
            bounds = draw(st.lists(st.sampled_from(["0%", "50%", "100%", "1,000%", "12.5%"]), min_size=1, max_size=4))
            for lower in bounds:
                upper = draw(st.sampled_from(["", "150%", "75.25%"]))
                lines.append(
                    at(3, f"{lower}{draw(tight)}..{draw(tight)}{upper}{draw(space)}pays {draw(expressions)[0]}")
                )
        if draw(st.booleans()):
            lines.append(at(2, f"gate{draw(space)}{draw(expressions)[0]}"))
    lines.append(at(1, 'test "t"'))
    lines.append(at(2, 'given deal id "D1", amount -5000 USD, close_date 2027-01-20, x null'))
    # Comment lines at any indentation and blank lines, anywhere after the language line.
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(1, len(lines)))
        extra = draw(st.one_of(st.just(""), comment.map(lambda c: " " * draw(st.integers(0, 8)) + c)))
        lines.insert(position, extra)
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_plans())
def test_generated_plans_format_safely(text: str):
    assert_formats_safely(text)


# ---------------------------------------------------------------- mutated sample plans


def widen_spaces(line: str, draw) -> str:
    """Widen the spaces between tokens (outside strings and comments); indentation untouched."""
    code_start = len(line) - len(line.lstrip(" "))
    out, in_string = [line[:code_start]], False
    for index in range(code_start, len(line)):
        char = line[index]
        if char == "#" and not in_string:
            out.append(line[index:])
            break
        if char == '"':
            in_string = not in_string  # sample plans have no escaped quotes
        out.append(draw(space) if char == " " and not in_string else char)
    return "".join(out)


# Plans already in canonical layout (two-space indentation), to re-lay out.
CANONICAL_TEXTS = [t for t in CORPUS_TEXTS if format_text(t).text == t]


@st.composite
def relaid_plans(draw) -> tuple[str, str]:
    """(original, the same plan with only layout changed: spaces, indent width, blank runs, CRLF)."""
    original = draw(st.sampled_from(CANONICAL_TEXTS))
    width = draw(st.sampled_from([1, 2, 3, 4, 8]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for line in original.split("\n"):
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 2
        line = " " * (width * depth) + stripped
        if stripped and not stripped.startswith("#") and draw(st.integers(0, 3)) == 0:
            line = widen_spaces(line, draw)
        if not stripped and draw(st.booleans()):
            line = "\n" * draw(st.integers(1, 3))  # a longer run of blank lines
        lines.append(line + draw(st.sampled_from(["", " ", "\t"])) * (not stripped.startswith("#")))
    return original, newline.join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(relaid_plans())
def test_layout_changes_alone_do_not_change_the_formatted_text(pair: tuple[str, str]):
    original, relaid = pair
    assert fmt(relaid) == fmt(original)


@st.composite
def commented_plans(draw) -> str:
    """A sample plan with comment lines, trailing comments and blank lines added anywhere."""
    lines = draw(st.sampled_from(CORPUS_TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(lines) - 1))
        choice = draw(st.sampled_from(["comment line", "trailing comment", "blank"]))
        if choice == "comment line":
            lines.insert(index, " " * draw(st.integers(0, 10)) + draw(comment))
        elif choice == "trailing comment" and "#" not in lines[index] and lines[index].strip():
            lines[index] += draw(space) + draw(comment)
        elif choice == "blank":
            lines.insert(index, "")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commented_plans())
def test_added_comments_and_blank_lines_format_safely(text: str):
    assert_formats_safely(text)
