"""Golden IR: what each plan in plans/ means, as reviewed JSON.

`tests/golden/ir/<path with / replaced by __>.json` holds
`dsl.ir.to_json(plan_file, spans=False)` of every plan file under plans/.
A change to a plan, the grammar or the resolver that changes a plan's
meaning shows up as a diff of these files in review. Refresh them with

    pytest tests/dsl/test_golden_ir.py --update-golden

and read the diff before committing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dsl import ir
from dsl.diagnostics import render_human
from dsl.parse import parse
from dsl.resolve import resolve

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "ir"
PLAN_FILES = sorted((ROOT / "plans").rglob("*.plan"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def golden_path(path: Path) -> Path:
    return GOLDEN / (relative(path).replace("/", "__") + ".json")


def resolved(path: Path) -> ir.PlanFile:
    text = path.read_text(encoding="utf-8")
    result = resolve(parse(text, relative(path)))
    assert not result.diagnostics, "\n".join(render_human(d, text) for d in result.diagnostics)
    return result.plan_file


def test_there_are_plans():
    assert len(PLAN_FILES) >= 9, [relative(p) for p in PLAN_FILES]


@pytest.mark.parametrize("path", PLAN_FILES, ids=relative)
def test_golden_ir(path: Path, request: pytest.FixtureRequest):
    plan_file = resolved(path)
    actual = ir.to_json(plan_file, spans=False)
    golden = golden_path(path)
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
        return
    assert golden.is_file(), f"no golden file {golden.relative_to(ROOT)}; run pytest --update-golden"
    expected = golden.read_text(encoding="utf-8")
    assert actual == expected, f"{relative(path)} means something else now; review, then run pytest --update-golden"
    # The golden file is a complete description: it loads back to the same IR.
    assert ir.plan_file_from_json(expected) == plan_file


def test_no_stale_golden_files(request: pytest.FixtureRequest):
    wanted = {golden_path(p) for p in PLAN_FILES}
    stale = sorted(p for p in GOLDEN.glob("*.json") if p not in wanted)
    if request.config.getoption("--update-golden"):
        for path in stale:
            path.unlink()
        return
    assert not stale, f"golden files without a plan: {[p.name for p in stale]}; run pytest --update-golden"


@pytest.mark.skipif(importlib.util.find_spec("dsl.check") is None, reason="dsl/check.py is not written yet")
def test_plans_check_clean():
    from dsl.project import load_paths

    project = load_paths([ROOT / "plans"])
    rendered = [render_human(d, project.sources.get(d.span.file) if d.span else None) for d in project.diagnostics]
    assert not project.diagnostics, "\n".join(rendered)
