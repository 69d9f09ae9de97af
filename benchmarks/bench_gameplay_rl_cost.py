"""What the two RL baselines (DDQN, EMPA: ``baseline: bson_regressors``) add to the gameplay study's miniature run.

Builds the miniature of ``tests/test_study_gameplay.py`` (2 subjects × 3 runs × 40 TRs, tiny models) and runs
``brainalign run`` on the config twice in this process' session, alternating: as shipped, and with the two
``bson_regressors`` models removed (the peer). Both use one warm feature cache (filled by an untimed first run),
so the difference is the regressors' reading and placement plus their fits, statistics and tables. Prints wall
seconds of each and the ratio.

    .venv/bin/python benchmarks/bench_gameplay_rl_cost.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gameplay_action_vs_reasoning.yaml"
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from test_study_gameplay import mini_overrides

    from brainalign.testing.gameplay_fixture import write_ds004323_study

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_rl_"))
    mini = write_ds004323_study(tmp / "data", subjects=("01", "02"), n_runs=3, n_trs=40)
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["models"] = [m for m in cfg["models"] if m.get("baseline") != "bson_regressors"]
    peer = CONFIG.parent / f".bench_no_rl_{os.getpid()}.yaml"  # beside the original: same relative paths
    peer.write_text(yaml.safe_dump(cfg, sort_keys=False))
    exe = Path(sys.executable).with_name("brainalign")
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(config: Path, out: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run([str(exe), "run", str(config), "--data-root", str(mini["root"]), "--models", "tiny",
                        "--cache", str(tmp / "cache"), "--out", str(out), *mini_overrides()], check=True, env=env,
                       capture_output=True)
        return time.perf_counter() - t0

    try:
        run(CONFIG, tmp / "warm")  # fills the feature cache
        times = {"with DDQN + EMPA": [], "without (peer)": []}
        for i in range(args.repeats):
            times["without (peer)"].append(run(peer, tmp / f"peer{i}"))
            times["with DDQN + EMPA"].append(run(CONFIG, tmp / f"rl{i}"))
    finally:
        peer.unlink()
    load = os.getloadavg()[0]
    for name, ts in times.items():
        print(f"{name:18s} {min(ts):7.1f} s (min of {len(ts)})")
    ratio = min(times["with DDQN + EMPA"]) / min(times["without (peer)"])
    print(f"ratio with / without: {ratio:.3f}; load average {load:.1f} on {os.cpu_count()} cores; scratch {tmp}")


if __name__ == "__main__":
    main()
