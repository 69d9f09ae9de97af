"""Apply each domain mutant (``domain_mutants.py``) to a scratch copy of ``src/`` and run the tests that must catch
it; print a table of mutant, the test that caught it, and the time. Run by hand (``make mutants``), not in CI.

    python mutation/run_mutants.py                 # every mutant
    python mutation/run_mutants.py --only delays   # mutants whose name contains "delays"
    python mutation/run_mutants.py --list

Exit status 1 when a mutant survives or no longer applies. mutmut and cosmic-ray generate syntactic mutants; these
are the semantic ones (leakage, miscalibration, miswiring) that a reviewer names, so they are kept by hand.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domain_mutants import MUTANTS, Mutant  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def apply(src_copy: Path, m: Mutant) -> None:
    path = src_copy / "brainalign" / m.path
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        raise LookupError(f"{m.path}: the mutant's original text occurs {n} times (expected once); "
                          "the code moved: update domain_mutants.py")
    path.write_text(text.replace(m.old, m.new))


def _pytest(python: str, src: Path, tests) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", "-rf", *tests],
                          cwd=REPO, env=env, capture_output=True, text=True)
    return proc, time.perf_counter() - t0


def run_one(m: Mutant, python: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.name}-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        try:
            apply(src, m)
        except LookupError as err:
            return dict(name=m.name, status="does not apply", caught_by=str(err), seconds=0.0)
        proc, seconds = _pytest(python, src, m.tests)
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
    if proc.returncode == 0:
        status, by = "SURVIVED", ""
    elif failed:
        status, by = "killed", failed[0]
    else:  # collection error, crash: still caught, but say how
        status, by = "killed", (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return dict(name=m.name, status=status, caught_by=by, seconds=seconds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="run the mutants whose name contains this text")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only in m.name]
    console = Console(width=max(160, shutil.get_terminal_size().columns))
    if args.list:
        for m in chosen:
            console.print(f"{m.name:40s} {m.path:24s} {m.story}")
        return 0
    # the control: on the unmutated source the same tests pass, or a "kill" would mean nothing
    tests = sorted({t for m in chosen for t in m.tests})
    proc, seconds = _pytest(sys.executable, REPO / "src", tests)
    if proc.returncode != 0:
        console.print(proc.stdout[-3000:])
        console.print(f"[red]the mutants' tests fail on the unmutated source ({seconds:.0f} s); fix that first[/]")
        return 2
    console.print(f"unmutated source: {len(tests)} test files pass ({seconds:.0f} s)")
    table = Table(title=f"domain mutants ({len(chosen)})")
    for col in ("mutant", "status", "caught by", "s"):
        table.add_column(col)
    results = []
    for m in chosen:
        r = run_one(m, sys.executable)
        results.append(r)
        console.print(f"{r['name']}: {r['status']} ({r['seconds']:.1f} s)")
        table.add_row(r["name"], r["status"], r["caught_by"], f"{r['seconds']:.1f}")
    console.print(table)
    killed = sum(r["status"] == "killed" for r in results)
    console.print(f"killed {killed} of {len(results)}")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
