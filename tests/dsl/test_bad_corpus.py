"""The bad-plan corpus: every `tests/plans/bad/*.plan` with the exact diagnostics it must produce.

Each bad plan is loaded as its own project (`dsl.project.load_paths`), and
its diagnostics, rendered for a person (`render_human`: caret and hints), must
equal the sibling `*.expected` file. The good plans (`tests/plans/good/`, one
project with its own revplan.toml) must produce no diagnostic at all.

After a deliberate change of wording, refresh the expected files with

    pytest tests/dsl/test_bad_corpus.py --update-golden

and read the diff before committing it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl.diagnostics import render_human
from dsl.project import load_paths

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "plans" / "bad"
GOOD = ROOT / "tests" / "plans" / "good"
BAD_PLANS = sorted(BAD.glob("*.plan"))


def rendered(path: Path) -> str:
    """The diagnostics of one file checked on its own, as `revplan check` prints them."""
    project = load_paths([path.relative_to(ROOT).as_posix()])
    blocks = [render_human(d, project.sources.get(d.span.file) if d.span else None) for d in project.diagnostics]
    return "\n\n".join(blocks) + "\n"


@pytest.fixture(autouse=True)
def _from_repository_root(monkeypatch):
    """Relative paths in the expected files, whatever directory pytest runs from."""
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", BAD_PLANS, ids=lambda p: p.stem)
def test_bad_plan_gives_its_expected_diagnostics(path: Path, request: pytest.FixtureRequest):
    actual = rendered(path)
    expected_path = path.with_suffix(".expected")
    if request.config.getoption("--update-golden"):
        expected_path.write_text(actual, encoding="utf-8")
        return
    assert expected_path.is_file(), f"no {expected_path.name}; run pytest --update-golden"
    assert actual.strip(), f"{path.name} gives no diagnostic at all"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_no_stale_expected_files():
    stale = [p.name for p in BAD.glob("*.expected") if not p.with_suffix(".plan").is_file()]
    assert not stale, f"expected files without a plan: {stale}"


def check_codes() -> set[str]:
    """Every RP2xx / RP3xx code the checker can emit (RP299 is the internal-error code)."""
    sources = (ROOT / "dsl" / "check.py").read_text() + (ROOT / "dsl" / "infer.py").read_text()
    return set(re.findall(r'"(RP[23]\d\d)"', sources)) - {"RP299"}


def test_every_check_code_has_a_bad_plan():
    corpus = "".join(p.read_text(encoding="utf-8") for p in BAD.glob("*.expected"))
    missing = sorted(code for code in check_codes() if f"[{code}]" not in corpus)
    assert not missing, f"codes without a bad plan in tests/plans/bad: {missing}"


def test_every_code_is_documented():
    """Every RPxxx code revplan can emit is in dsl/README.md's tables (audit: RP006, RP007 and the run's RP4xx
    were in none). RP110-117 and RP416-418 are rows of ranges."""
    readme = (ROOT / "dsl" / "README.md").read_text()
    sources = "".join(p.read_text() for folder in ("dsl", "compiler", "runtime", "revplan", "reports")
                      for p in (ROOT / folder).glob("*.py"))
    emitted = set(re.findall(r'"(RP\d{3})"', sources)) | check_codes() | {"RP299"}
    ranges = {f"RP{n}" for n in [*range(110, 118), *range(416, 419)]}
    missing = sorted(code for code in emitted - ranges if code not in readme)
    assert not missing, f"codes missing from the tables in dsl/README.md: {missing}"


def test_good_plans_check_clean():
    project = load_paths(["tests/plans/good"])
    shown = [render_human(d, project.sources.get(d.span.file) if d.span else None) for d in project.diagnostics]
    assert not project.diagnostics, "\n\n".join(shown)
    assert project.schema.entity("deal").field("multi_year") is not None, "tests/plans/good/revplan.toml was not read"
    assert len(project.plans) >= 9
