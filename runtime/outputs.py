"""Write a run's results: payout lines, per-rep statements, deals behind lines, manifest.

Everything is written into a temporary folder beside the target and swapped
in with renames, so a crash never leaves half-written outputs; the previous
run's folder stays intact until the new one is complete. The manifest records
what is needed to reproduce a payout: plan files (hashes, git commit), data
fingerprint, revplan version and engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import pandas as pd

MONEY_COLUMNS = ("base", "uncapped", "amount", "quota", "target_incentive")


def statements(payout_lines: pd.DataFrame) -> pd.DataFrame:
    """Per rep and period: payout by line type, and the total.

    >>> lines = pd.DataFrame({"rep_id": ["A", "A"], "period": ["2027-Q1"] * 2, "currency": ["USD"] * 2,
    ...     "line_type": ["commission", "bonus"], "amount": [Decimal("10.00"), Decimal("5.00")]})
    >>> statements(lines)[["rep_id", "commission", "bonus", "total"]].to_dict("records")
    [{'rep_id': 'A', 'commission': Decimal('10.00'), 'bonus': Decimal('5.00'), 'total': Decimal('15.00')}]
    """
    keys = ["rep_id", "period", "currency"]
    if payout_lines.empty:
        return pd.DataFrame(columns=[*keys, "total"])
    # Python sums of Decimal objects keep money exact (pandas would not for floats).
    by_type = (
        payout_lines.groupby([*keys, "line_type"], sort=True)["amount"]
        .agg(lambda amounts: sum(amounts, Decimal("0.00")))
        .unstack("line_type")
    )
    by_type = by_type.apply(lambda column: column.map(lambda v: Decimal("0.00") if pd.isna(v) else v))
    by_type["total"] = by_type.apply(lambda row: sum(row, Decimal("0.00")), axis=1)
    by_type.columns.name = None
    return by_type.reset_index()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(folder: Path) -> dict[str, object] | None:
    """The commit the plan files come from, and whether they differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head, "uncommitted_changes": bool(dirty)}


def build_manifest(
    *,
    plan_paths: Sequence[Path],
    data_fingerprint: str,
    engine: str,
    revplan_version: str,
    periods: Sequence[str],
    payout_lines: pd.DataFrame,
) -> dict[str, object]:
    folders = {p.resolve().parent for p in plan_paths}
    return {
        "revplan_version": revplan_version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "engine": engine,
        "periods": list(periods),
        "plans": [{"path": str(p), "sha256": file_sha256(p)} for p in plan_paths],
        "git": git_commit(sorted(folders)[0]) if folders else None,
        "data_fingerprint": data_fingerprint,
        "payout_lines": int(len(payout_lines)),
        "total_payout": _total(payout_lines),
    }


def _total(payout_lines: pd.DataFrame) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for currency, amount in zip(payout_lines.get("currency", []), payout_lines.get("amount", []), strict=False):
        totals[currency] = totals.get(currency, Decimal("0.00")) + amount
    return {currency: str(total) for currency, total in sorted(totals.items())}


def write_run(out_dir: Path, tables: Mapping[str, pd.DataFrame], manifest: Mapping[str, object]) -> Path:
    """Write tables as CSV (exact decimal text) plus manifest.json, atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, frame in tables.items():
            frame.to_csv(staging / f"{name}.csv", index=False)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    previous = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
