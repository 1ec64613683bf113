"""The parser (dsl/parse.py, dsl/revplan.lark): keywords against names, reserved words, the table cache.

The grammar is lexed contextually: in each parser state a word is read as a
keyword only if that state can take the keyword, and as a NAME otherwise. So
a keyword of one statement (`quota from`, `rate 10%`, `from ... to`) is an
ordinary name wherever the grammar expects a name: a plan kind, a measure, an
entity field after '.'. These tables hold that for every keyword of the
grammar (read from the parser, so a new keyword is covered the day it is
added) in every place an expression or a plan may stand.
"""

from __future__ import annotations

import os
import re
import stat

import pytest
from lark import Tree

from dsl.parse import KEEP_PARSERS, RESERVED_NAMES, _parser, build_parser, parse, parser_cache_dir
from dsl.resolve import resolve

HEADER = """  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@s" finance "@f"
"""

KEYWORDS = sorted(
    {
        t.pattern.value
        for t in _parser().terminals
        if t.pattern.type == "str" and re.fullmatch(r"[a-z_][a-z0-9_]*", t.pattern.value)
    }
)


def test_the_keyword_list_is_read_from_the_grammar():
    assert {"quota", "territory", "rate", "from", "to", "period", "target", "where", "true", "not"} <= set(KEYWORDS)


def plan(kind: str, body: str = "") -> str:
    return f'{kind} plan "P" version 1\n{HEADER}{body}'


# ---------------------------------------------------------------- plans after a shared measure

BEFORE_A_PLAN = {
    "measure": "measure b = sum(deal.amount)\n",
    "measure with where": 'measure b = sum(deal.amount) where deal.stage = "closed_won"\n',
    "measure, comments and blank lines": "measure b = sum(deal.amount)  # why\n\n# the plan\n",
    "two measures": "measure a = 1\nmeasure b = a * 2\n",
    "plan, then measure": plan("comp") + "\nmeasure b = 1\n",
}


@pytest.mark.parametrize("kind", ["comp", "quota", "territory"])
@pytest.mark.parametrize("before", BEFORE_A_PLAN.values(), ids=BEFORE_A_PLAN.keys())
def test_any_plan_kind_may_follow_a_shared_measure(kind: str, before: str):
    """Regression: `quota plan` / `territory plan` right after a measure was 'unexpected quota'."""
    syntax = parse(f"revplan 1\n{before}{plan(kind)}")
    assert not syntax.diagnostics, [d.message for d in syntax.diagnostics]
    resolved = resolve(syntax)
    assert not resolved.diagnostics, [d.message for d in resolved.diagnostics]
    assert resolved.plan_file.plans[-1].kind == kind


def test_a_keyword_as_plan_kind_after_a_measure_is_an_unknown_kind():
    """After a measure, the plan kind is read as a name: `target plan` is RP102, not a syntax error.

    (`measure plan` is the one exception: there `measure` starts the next measure.)
    """
    wrong = []
    for word in KEYWORDS:
        if word == "measure":
            continue
        syntax = parse(f"revplan 1\nmeasure b = 1\n{plan(word)}")
        codes = [d.code for d in syntax.diagnostics] or [d.code for d in resolve(syntax).diagnostics]
        if codes != ([] if word in ("quota", "territory") else ["RP102"]):
            wrong.append((word, codes))
    assert not wrong


# ---------------------------------------------------------------- expressions in every place

COMPONENT = '  component "C" on b\n'
# Every place an expression stands, `{x}` the expression.
EXPRESSION_PLACES = {
    "shared measure": "measure m = {x}\n",
    "shared measure where": "measure m = 1 where {x}\n",
    "plan measure": plan("comp", "  measure m = {x} where {x}\n"),
    "applies to": plan("comp", "  applies to reps where {x}\n"),
    "draw": plan("comp", "  draw {x} per period for 2 periods recoverable\n"),
    "rate": plan("comp", COMPONENT + "    rate {x}\n"),
    "tier rate": plan("comp", COMPONENT + "    graduated tiers on b\n      0% .. pays {x}\n"),
    "bonus": plan("comp", COMPONENT + "    bonus {x} when {x}\n"),
    "spiff": plan("comp", COMPONENT + "    spiff {x} per deal where {x} from 2027-01-01 to 2027-02-01\n"),
    "mbo": plan("comp", COMPONENT + "    mbo {x} from mbo_scores\n"),
    "deal multiplier": plan("comp", COMPONENT + "    rate 1%\n    multiplier {x} where {x}\n"),
    "measure multiplier": plan("comp", COMPONENT + "    rate 1%\n    multiplier {x} when {x}\n"),
    "gate": plan("comp", COMPONENT + "    rate 1%\n    gate {x}\n"),
    "cap": plan("comp", COMPONENT + "    rate 1%\n    cap {x} per year\n"),
    "target": plan("quota", "  target {x}\n"),
    "over_assign": plan("quota", "  over_assign {x}\n"),
    "allocate": plan("quota", "  allocate by weights {x}, equal {x}\n"),
    "weight": plan("quota", '  weight "r" {x}\n'),
    "phasing": plan("quota", "  phasing {x}, {x}\n"),
    "ramp": plan("quota", "  ramp {x}\n"),
    "override": plan("quota", '  override "r" {x}\n'),
    "override for a period": plan("quota", '  override "r" period "2027-Q1" {x}\n'),
    "round": plan("quota", "  round to nearest {x}\n"),
    "assign": plan("territory", '  assign accounts where {x} to "T" priority 1\n'),
    "tolerance": plan("territory", "  tolerance cv {x}\n"),
}


def parsed(place: str, expression: str, prefix: str = "") -> Tree | str:
    """The syntax tree of the place with the expression in it, or the first syntax error."""
    template = EXPRESSION_PLACES[place]
    syntax = parse("revplan 1\n" + prefix + template.replace("{x}", expression))
    if syntax.diagnostics:
        first = syntax.diagnostics[0]
        return f"{first.message} at {first.span.line}:{first.span.column}" if first.span else first.message
    return syntax.tree


def slots(place: str) -> int:
    return EXPRESSION_PLACES[place].count("{x}")


@pytest.mark.parametrize("place", EXPRESSION_PLACES)
def test_every_keyword_is_a_field_name_after_a_dot(place: str):
    """`fx_rate.rate`, `fx_rate.from`, `fx_rate.to`, `quota.period`, `deal.to`, ...: after '.', a field."""
    wrong = {}
    for word in KEYWORDS:
        expression = f"sum(fx_rate.{word}) + fx_rate.{word} > 1 or fx_rate.{word} in (1) or fx_rate.{word} is null"
        tree = parsed(place, expression)
        if isinstance(tree, str):
            wrong[word] = tree
            continue
        fields = [str(node.children[1]) for node in tree.find_data("field_ref")]
        fields += [str(node.children[2]) for node in tree.find_data("aggregate")]
        if fields != [word] * 4 * slots(place):
            wrong[word] = fields
    assert not wrong


# A measure may be named by any keyword but the reserved words. One place
# reads the word as its keyword first: `override "r" period ...` is the
# override of one period (and an override takes a fixed amount, never a measure).
KEYWORD_FIRST = {("override", "period")}


@pytest.mark.parametrize("place", EXPRESSION_PLACES)
def test_every_keyword_but_the_reserved_words_can_name_a_measure(place: str):
    wrong = {}
    for word in KEYWORDS:
        if word in RESERVED_NAMES or (place, word) in KEYWORD_FIRST:
            continue
        tree = parsed(place, f"{word} + {word} * 2 > 1", prefix=f"measure {word} = sum(deal.amount)\n")
        if isinstance(tree, str):
            wrong[word] = tree
            continue
        names = [str(node.children[0]) for node in tree.find_data("name_ref")]
        defined = [str(node.children[0]) for node in tree.find_data("measure_def")]
        if names != [word] * 2 * slots(place) or word not in defined:
            wrong[word] = names
    assert not wrong


@pytest.mark.parametrize("word", RESERVED_NAMES)
@pytest.mark.parametrize("where", ["shared", "in a plan"])
def test_a_reserved_word_cannot_name_a_measure(word: str, where: str):
    line = f"measure {word} = count(deal)\n"
    text = "revplan 1\n" + (line if where == "shared" else plan("comp", "  " + line))
    syntax = parse(text)
    assert syntax.tree is None
    assert [(d.code, d.message) for d in syntax.diagnostics] == [
        ("RP001", f"'{word}' is a reserved word; it cannot name a measure")
    ]
    span = syntax.diagnostics[0].span
    column = text.splitlines()[span.line - 1].index(word) + 1
    assert (span.column, span.end_column) == (column, column + len(word))


def test_a_reserved_word_is_reported_with_other_syntax_errors():
    text = "revplan 1\nmeasure true = 1\nmeasure b = = 2\nmeasure not = 3\n"
    assert [(d.span.line, d.code) for d in parse(text).diagnostics] == [(3, "RP001"), (2, "RP001"), (4, "RP001")]


def test_names_meet_keywords_only_where_intended():
    """The root of the `quota plan` bug, as a property of the parse table.

    A word is lexed as a keyword wherever the parser state can take that
    keyword, even if the state can take a NAME too. The shared measure and a
    plan's measure used to share their states, so the state after a shared
    measure took every plan statement keyword besides the next plan's kind.
    Now the states that take a NAME and a keyword are only these, each meant:
    - true, false, not: an expression starts with a name or these words (so
      they are reserved: no measure may take them);
    - period: `override "r" period "2027-Q1" ...` or `override "r" <amount>`;
    - for: `draw ... per period for 3 periods recoverable` or `... recoverable`;
    - measure: at the top level, a measure or a plan (`comp plan`).
    """
    parser = _parser()
    words = {
        t.name: t.pattern.value
        for t in parser.terminals
        if t.pattern.type == "str" and re.fullmatch(r"[a-z_][a-z0-9_]*", t.pattern.value)
    }
    states = parser.parser.parser.parser.parse_table.states  # Lark internals: state -> {terminal: action}
    meeting = {words[t] for actions in states.values() if "NAME" in actions for t in actions if t in words}
    assert meeting == {"true", "false", "not", "period", "for", "measure"}


# ---------------------------------------------------------------- the parser cache

SAMPLE = "revplan 1\nmeasure b = sum(deal.amount)\n" + plan("quota", "  target 1,000 USD\n")


def test_the_parser_tables_are_cached_and_reused(tmp_path):
    built = build_parser(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("grammar-"), files  # no partial file left behind
    cached = tmp_path / files[0]
    written = cached.stat().st_mtime_ns
    loaded = build_parser(tmp_path)
    assert cached.stat().st_mtime_ns == written  # read, not rebuilt
    assert loaded.parse(SAMPLE) == built.parse(SAMPLE) == build_parser(None).parse(SAMPLE)


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    build_parser(tmp_path)
    (cached,) = tmp_path.iterdir()
    cached.write_bytes(cached.read_bytes()[:1000])
    assert build_parser(tmp_path).parse(SAMPLE) == build_parser(None).parse(SAMPLE)
    assert build_parser(tmp_path).parse(SAMPLE) == build_parser(None).parse(SAMPLE)


def test_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("REVPLAN_CACHE_DIR", "")
    assert parser_cache_dir() is None
    monkeypatch.setenv("REVPLAN_CACHE_DIR", str(tmp_path / "made"))
    assert parser_cache_dir() == tmp_path / "made"
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) & 0o077 == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("REVPLAN_CACHE_DIR", str(shared))
    assert parser_cache_dir() is None  # others could plant a pickle there
    monkeypatch.delenv("REVPLAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert parser_cache_dir() == tmp_path / "xdg" / "revplan"


def test_the_cache_keeps_a_few_parsers(tmp_path):
    for index in range(12):
        stale = tmp_path / f"grammar-stale{index:02d}.lark"
        stale.write_bytes(b"old")
        os.utime(stale, (1_000_000 + index, 1_000_000 + index))
    build_parser(tmp_path)
    kept = sorted(p.name for p in tmp_path.glob("grammar-*.lark") if "stale" in p.name)
    newest = [f"grammar-stale{index:02d}.lark" for index in range(12 - (KEEP_PARSERS - 1), 12)]
    assert kept == newest  # with the new parser, KEEP_PARSERS files; the oldest went first
    assert len(list(tmp_path.glob("grammar-*.lark"))) == KEEP_PARSERS


def test_a_byte_order_mark_is_not_text():
    """Windows editors may write one first; the file reads as if it were not there."""
    text = 'revplan 1\nmeasure b = sum(deal.amount)\n'
    assert parse("\ufeff" + text).diagnostics == ()
    assert parse("\ufeff" + text).tree == parse(text).tree
