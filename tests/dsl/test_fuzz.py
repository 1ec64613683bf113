"""Random and mutated plan text gives diagnostics, never an exception.

The whole front end (parse -> resolve -> check) runs on each input; the only
acceptable outcome is a Project whose diagnostics point inside the text.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.project import load_texts

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted((ROOT / "plans").rglob("*.plan")) + sorted((ROOT / "tests" / "examples").rglob("*.plan"))
SEED_TEXTS = [p.read_text(encoding="utf-8") for p in SEEDS] or [
    'revplan 1\ncomp plan "X" version 1\n  effective 2027-01-01 to 2027-12-31\n  period quarter\n'
    '  currency USD\n  owners sales "@a" finance "@b"\n  component "C" on b\n    rate 10%\n'
]

# Pieces of the language, so random text gets past the lexer now and then.
TOKENS = [
    "revplan 1", "comp", "quota", "territory", "plan", '"X"', "version", "1", "effective", "2027-01-01",
    "to", "period", "quarter", "currency", "USD", "owners", "sales", "finance", "applies", "reps", "where",
    "measure", "=", "sum(deal.amount)", "component", "on", "rate", "10%", "graduated", "tiers", "attainment",
    "..", "pays", "cap", "2", "x", "target_incentive", "gate", ">=", "50%", "and", "or", "not", "(", ")",
    "5,000 USD", "90 days", "test", "given", "expect", "\n", "\n  ", "\n    ", "#", ",", "-", "/", "*",
    "true", "false", "fx_rate.from", "quota.period",
]


def assert_only_diagnostics(text: str) -> None:
    project = load_texts([("fuzz.plan", text)])
    line_count = max(1, len(text.splitlines()) + 1)
    for diagnostic in project.diagnostics:
        assert diagnostic.code and diagnostic.message
        if diagnostic.span is not None:
            assert 1 <= diagnostic.span.line <= line_count, diagnostic


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_gives_only_diagnostics(text: str) -> None:
    assert_only_diagnostics(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_unicode_gives_only_diagnostics(text: str) -> None:
    assert_only_diagnostics(text)


@st.composite
def mutated_plans(draw) -> str:
    lines = draw(st.sampled_from(SEED_TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, max(0, len(lines) - 1)))
        mutation = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "truncate", "insert", "swap"]))
        line = lines[index] if lines else ""
        if mutation == "delete" and lines:
            del lines[index]
        elif mutation == "duplicate":
            lines.insert(index, line)
        elif mutation == "indent":
            lines[index] = "   " + line
        elif mutation == "dedent":
            lines[index] = line.lstrip()
        elif mutation == "truncate" and line:
            lines[index] = line[: draw(st.integers(0, len(line)))]
        elif mutation == "insert":
            position = draw(st.integers(0, len(line)))
            lines[index] = line[:position] + draw(st.sampled_from(TOKENS)) + line[position:]
        elif mutation == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "\n".join(lines)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_mutated_plans_give_only_diagnostics(text: str) -> None:
    assert_only_diagnostics(text)
