"""Generated (syntactic) mutants of chosen modules with mutmut, in a scratch copy of the repository.

    python mutation/run_mutmut.py analysis/stats.py tests/analysis/test_stats.py
    python mutation/run_mutmut.py encoding/delays.py tests/encoding/test_delays.py --children 2
    python mutation/run_mutmut.py encoding/ridge.py tests/encoding/test_ridge.py --keep --only "*x_fit_chunk__mutmut_*"
    python mutation/run_mutmut.py encoding/estimators.py tests/encoding/test_ridge.py \
        --deselect "tests/encoding/test_ridge.py::test_parity_with_himalaya[wide-False]"

mutmut is a maintainer's tool, not a dependency: it is installed once into ``.mutmut-lib/`` (pinned, ``--no-deps``:
only the packages the locked environment lacks, so its pytest, click and rich stay as they are; nothing is ever
deleted outside the scratch copy). The repository is copied to a temporary folder with a ``[tool.mutmut]``
section that mutates only the named modules, so the working tree is never touched. Prints the kill rate and the
survivors per function; ``--keep`` keeps the copy (its path is printed first) so that ``mutmut show <name>`` or
``mutmut run <glob>`` can be run there; ``--only`` runs only the mutants whose names match (the others stay "not
checked"), to measure a large module function by function.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / ".mutmut-lib"
# mutmut and what it needs beyond the locked environment (pytest, click, rich, pygments, pyyaml come from there)
PACKAGES = ["mutmut==3.8.1", "libcst==1.9.0", "coverage==7.18.0", "setproctitle==1.3.8", "textual==8.2.8",
            "mdit-py-plugins==0.7.0", "linkify-it-py==2.2.0", "platformdirs==4.14.9"]


def ensure_mutmut() -> None:
    if not (LIB / "mutmut").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(LIB),
                        *PACKAGES], check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="modules under src/brainalign/ (e.g. analysis/stats.py), then tests/...")
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy and print its path")
    ap.add_argument("--deselect", action="append", default=[], metavar="NODE",
                    help="a slow test (pytest node id) to leave out of the selection; repeatable")
    ap.add_argument("--only", action="append", default=[], metavar="GLOB",
                    help="run only the mutants whose name matches (fnmatch, e.g. '*x_fit_chunk__mutmut_*'); repeatable")
    args = ap.parse_args(argv)
    modules = [m for m in args.paths if not m.startswith("tests/")]
    tests = [m for m in args.paths if m.startswith("tests/")]
    if not modules or not tests:
        ap.error("give at least one module under src/brainalign/ and one tests/ path")
    missing = [m for m in modules if not (REPO / "src" / "brainalign" / m).is_file()]
    if missing:
        ap.error(f"no such module under src/brainalign/: {missing}")
    ensure_mutmut()
    scratch = Path(tempfile.mkdtemp(prefix="mutmut-"))
    repo = scratch / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".mutmut-lib", "__pycache__", "*.egg-info", "results", "mutants", ".import_linter_cache"))
    targets = {f"src/brainalign/{m}" for m in modules}
    others = sorted(str(p.relative_to(repo)) for p in (repo / "src").rglob("*.py")
                    if str(p.relative_to(repo)) not in targets)
    q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731 (TOML list of strings)
    with open(repo / "pyproject.toml", "a") as fh:
        fh.write(f'\n[tool.mutmut]\nsource_paths = ["src/"]\ndo_not_mutate = {q(others)}\n'
                 f'also_copy = ["tests", "configs"]\n'
                 f'pytest_add_cli_args_test_selection = {q(tests + [a for n in args.deselect for a in ("--deselect", n)])}\n'
                 'pytest_add_cli_args = ["-n", "0", "-p", "no:cacheprovider"]\n')
    if args.keep:
        print(f"scratch copy: {repo}", flush=True)
    env = dict(os.environ, PYTHONPATH=str(LIB), PATH=f"{LIB / 'bin'}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.children), *args.only], cwd=repo, env=env,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=repo, env=env,
                         capture_output=True, text=True).stdout
    rows = [line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line]
    status = Counter(s for _, s in rows)
    survivors = Counter(re.sub(r"__mutmut_\d+$", "", name) for name, s in rows if s == "survived")
    total = sum(status.values())
    print(f"modules: {', '.join(modules)}; tests: {', '.join(tests)}")
    print(", ".join(f"{k}: {v}" for k, v in status.most_common()))
    if total:
        print(f"kill rate: {status.get('killed', 0) / total:.1%} of {total} generated mutants")
    per_module: dict[str, Counter] = {}
    for name, s in rows:
        per_module.setdefault(re.sub(r"\.x[ǁ_].*$", "", name), Counter())[s] += 1
    if len(per_module) > 1:
        for module, c in sorted(per_module.items()):
            n = sum(c.values())
            rest = ", ".join(f"{k}: {v}" for k, v in c.most_common() if k != "killed")
            print(f"  {module}: {c.get('killed', 0)} of {n} killed ({c.get('killed', 0) / n:.1%})"
                  + (f"; {rest}" if rest else ""))
    for name, n in survivors.most_common():
        print(f"  {n:4d} survived in {name}")
    if args.keep:
        print(f"scratch copy: {repo} (run 'mutmut show <name>' there with PYTHONPATH={LIB})")
    else:
        shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
