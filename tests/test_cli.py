"""The command line as a user meets it: exit codes, messages, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from revplan.cli import main

ROOT = Path(__file__).resolve().parents[1]

GOOD = """revplan 1

measure bookings = sum(deal.amount) where deal.stage = "closed_won"

comp plan "Flat" version 1
  effective 2027-01-01 to 2027-12-31
  period quarter
  currency USD
  owners sales "@acme/sales-ops" finance "@acme/fpa"

  component "Commission" on bookings
    rate 10%
"""

BAD = GOOD.replace("rate 10%", "rate 10% + 5,000 USD").replace("on bookings", "on bokings")


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_check_clean_plan_exits_zero(tmp_path, capsys):
    write(tmp_path, "flat.plan", GOOD)
    assert main(["check", str(tmp_path)]) == 0
    assert "0 errors" in capsys.readouterr().err


def test_check_reports_every_error_with_caret_and_hint(tmp_path, capsys):
    path = write(tmp_path, "flat.plan", BAD)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:11:29: error" in err  # unknown measure, at its column (`bokings` starts at 29)
    assert "^^^^^^" in err
    assert "did you mean 'bookings'?" in err
    assert err.count("error[") >= 2  # the unit error is reported too
    assert "Traceback" not in err


def test_check_strict_makes_warnings_errors(tmp_path, capsys):
    """A tier table that stops short (RP309) is a warning; payroll CI can refuse it with --strict."""
    short = GOOD.replace("    rate 10%", "    graduated tiers on bookings\n      0 USD .. 100,000 USD pays 10%")
    path = write(tmp_path, "short.plan", short)
    assert main(["check", str(path)]) == 0
    assert "warning[RP309]" in capsys.readouterr().err
    assert main(["check", "--strict", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:13:7: error[RP309]" in err and "1 error, 0 warnings" in err
    write(tmp_path, "short.plan", GOOD)
    assert main(["check", "--strict", str(path)]) == 0


def test_check_json_format(tmp_path, capsys):
    path = write(tmp_path, "flat.plan", BAD)
    assert main(["check", "--format", "json", str(path)]) == 1
    items = json.loads(capsys.readouterr().out)
    assert {item["span"]["line"] for item in items} >= {11}
    assert all(item["code"].startswith("RP") for item in items)


def test_check_github_annotations(tmp_path, capsys):
    path = write(tmp_path, "flat.plan", BAD)
    assert main(["check", "--format", "github", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"::error file={path},line=11,col=29")


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: d / "empty_dir", "no plan files (.plan) in directory"),
        (lambda d: write(d, "blank.plan", "\n\n"), "empty file"),
        (lambda d: write(d, "latin1.plan", "revplan 1\n# caf\xe9\n".encode("latin-1")), "is not UTF-8 text"),
        (lambda d: write(d, "kind.plan", GOOD.replace("comp plan", "bonus plan")), "unknown plan kind 'bonus'"),
        (lambda d: d / "missing.plan", "no such file or directory"),
        (lambda d: _linked(d / "folder" / "gone.plan", d / "nowhere.plan"), "cannot read"),  # not skipped
    ],
    ids=["empty-directory", "empty-file", "not-utf8", "unknown-kind", "missing-path", "dangling-link-in-folder"],
)
def test_check_bad_inputs_get_clear_messages(tmp_path, capsys, setup, expected):
    (tmp_path / "empty_dir").mkdir()
    target = setup(tmp_path)
    assert main(["check", str(target)]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


HUGE = "9" * 5_000  # past Python's int() limit of 4,300 digits


@pytest.mark.parametrize("where", [
    ("version 1", f"version {HUGE}"),
    ("revplan 1", f"revplan {HUGE}"),
    ("rate 10%", f"rate {HUGE}%"),
    ("rate 10%", f"rate 10%\n    cap {HUGE} x target_incentive"),
    ("rate 10%", "rate 10%\n  test \"t\"\n    given rep id \"A\", target_incentive " + HUGE
     + " USD\n    expect payout rep \"A\", amount 0 USD"),
], ids=["version", "language", "rate", "cap", "given"])
@pytest.mark.parametrize("command", ["check", "fmt", "test"])
def test_a_number_of_thousands_of_digits_is_refused_not_a_traceback(tmp_path, capsys, where, command):
    path = write(tmp_path, "huge.plan", GOOD.replace(*where))
    assert main([command, str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[RP308]: a number of 5,000 digits is too large" in err and "Traceback" not in err
    assert path.read_text() == GOOD.replace(*where)  # fmt leaves it as it is


def test_an_expression_too_deep_for_python_is_an_error_at_its_line(tmp_path, capsys):
    """A chain of 600 terms passes Python's recursion limit: RP120 at its line, in check and fmt alike, and fmt
    still formats (and says so) the other files (audit: a bare RP120, no file, nothing on --format github)."""
    deep = GOOD.replace("  component", "  measure m = " + " + ".join(["bookings"] * 600) + "\n  component")
    write(tmp_path, "deep.plan", deep)
    other = write(tmp_path, "other.plan", "revplan 1\nmeasure   x = sum(deal.amount)\n")
    assert main(["check", "--format", "github", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"::error file={tmp_path / 'deep.plan'},line=11,col=3,")
    assert main(["fmt", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'deep.plan'}:11:3: error[RP120]" in err and f"reformatted {other}" in err
    assert (tmp_path / "deep.plan").read_text() == deep


def test_fmt_rewrites_a_linked_plan_where_it_lives_with_its_permissions(tmp_path):
    shared = write(tmp_path / "shared", "measures.plan", "revplan 1\nmeasure   x = sum(deal.amount)\n")
    shared.chmod(0o640)
    link = tmp_path / "plans" / "measures.plan"
    link.parent.mkdir()
    link.symlink_to(shared)
    assert main(["fmt", str(tmp_path / "plans")]) == 0
    assert link.is_symlink() and shared.read_text() == "revplan 1\n\nmeasure x = sum(deal.amount)\n"
    assert shared.stat().st_mode & 0o777 == 0o640


def _linked(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    return link.parent


def test_plan_files_in_a_folder_are_found_in_any_case(tmp_path, capsys):
    write(tmp_path / "plans", "FLAT.PLAN", GOOD)
    assert main(["check", str(tmp_path / "plans")]) == 0
    assert "checked 1 file" in capsys.readouterr().err


def test_plan_files_in_a_linked_folder_are_found_once(tmp_path, capsys):
    """A team's folder linked into plans/ holds plans as any folder does (audit: check and run skipped it);
    a link back up the tree is followed once, never for ever."""
    write(tmp_path / "plans", "flat.plan", GOOD)
    write(tmp_path / "team_plans", "bad.plan", BAD)
    (tmp_path / "plans" / "team").symlink_to(tmp_path / "team_plans")
    (tmp_path / "plans" / "again").symlink_to(tmp_path / "team_plans")
    (tmp_path / "team_plans" / "up").symlink_to(tmp_path / "plans")
    assert main(["check", str(tmp_path / "plans")]) == 1
    err = capsys.readouterr().err
    assert err.count("bad.plan:11:29") == 1 and "checked 2 files" in err


def test_fmt_check_and_rewrite(tmp_path, capsys):
    messy = GOOD.replace("  period quarter", "  period    quarter").replace("rate 10%", "rate   10%")
    path = write(tmp_path, "flat.plan", messy)
    assert main(["fmt", "--check", str(path)]) == 1
    assert path.read_text() == messy  # --check changes nothing
    assert main(["fmt", str(path)]) == 0
    assert main(["fmt", "--check", str(path)]) == 0
    assert "period quarter" in path.read_text()


def test_python_dash_m_and_console_script_agree():
    out = subprocess.run([sys.executable, "-m", "revplan", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    assert "check" in out.stdout and "fmt" in out.stdout


def test_sample_plans_check_and_are_formatted(capsys):
    assert main(["check", str(ROOT / "plans")]) == 0, capsys.readouterr().err
    assert main(["fmt", "--check", str(ROOT / "plans")]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("started, on_path, expected", [
    (".venv/bin/revplan", None, ".venv/bin/revplan"),  # the README's quick start: the venv is not activated
    (".venv/bin/revplan", ".venv/bin/revplan", "revplan"),  # activated: the same revplan is on the PATH
    (".venv/bin/revplan", "/usr/bin/revplan", ".venv/bin/revplan"),  # another revplan would answer `revplan`
    ("-m", None, "revplan"),  # python -m revplan
])
def test_demo_suggests_next_commands_as_they_can_be_typed_here(tmp_path, monkeypatch, started, on_path, expected):
    import revplan.cli as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "revplan").touch()
    monkeypatch.setattr(sys, "argv", [str(tmp_path / started) if started != "-m" else "-m"])
    found = str(tmp_path / on_path) if on_path and not on_path.startswith("/") else on_path
    monkeypatch.setattr(cli.shutil, "which", lambda name: found)
    assert cli._command_name() == expected


@pytest.mark.parametrize("raised, code, said", [
    (RuntimeError("boom"), 3, "internal error (a bug in revplan, not in your plans)"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_what_a_command_raises_becomes_an_exit_code(monkeypatch, capsys, raised, code, said):
    import revplan.cli

    def fail(args):
        raise raised

    monkeypatch.setattr(revplan.cli, "cmd_check", fail)
    monkeypatch.delenv("REVPLAN_DEBUG", raising=False)
    assert main(["check", "plans"]) == code
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("command, terms", [("check", 700), ("compile", 200), ("test", 200)])
def test_a_chain_of_hundreds_of_terms_is_a_diagnostic_not_a_crash(tmp_path, capsys, command, terms):
    """Python's recursion limit is reached at some stage (check at 700 terms, compile and test at 200):
    each says what to change (RP120), exit 1."""
    from tests.cli import run_cli

    text = (ROOT / "tests" / "examples" / "w01_graduated_tiers.plan").read_text(encoding="utf-8")
    measure = 'measure bookings = sum(deal.amount) where deal.stage = "closed_won"'
    chain = "measure bookings = sum(deal.amount)" + " + sum(deal.amount)" * terms + ' where deal.stage = "closed_won"'
    plan = tmp_path / "deep.plan"
    plan.write_text(text.replace(measure, chain), encoding="utf-8")
    code, out, err = run_cli(capsys, command, plan)
    assert code == 1 and "nested too deeply" in out + err
