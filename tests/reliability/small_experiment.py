"""A cut-down copy of the demo experiment for crash/resume tests: the first runs of the embedded Haxby data,
two MiniLM layers, two prompts, two baselines, no permutations (a whole run takes seconds)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from brainalign.cli import demo_config_path
from brainalign.config import resolve_path

BRAINALIGN = str(Path(sys.executable).with_name("brainalign"))
TABLES = ("scores.csv", "scores.parquet", "run_scores.parquet", "voxel_scores.parquet", "spaces.csv",
          "comparisons.csv", "layers.csv", "prompt_gain.csv", "mask.nii.gz", "config.yaml")
PARTITION_TABLES = ("partition.csv", "partition_voxels.csv")
# one variance partition over spaces the small experiment fits (4 outer folds -> 4 (partition, fold) fits)
ONE_PARTITION = [dict(name="action-vs-onset", spaces=["MiniLM-L6/action/L6", "baseline/onoff"])]


def make_small_experiment(folder: Path, n_runs: int = 4, layers=(3, 6), **overrides) -> Path:
    """Write trimmed data and a config under ``folder``; returns the config path.

    ``overrides`` maps dotted keys (``"analysis.n_permutations"``) to values.
    """
    folder = Path(folder)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    demo = yaml.safe_load(demo_config_path().read_text())
    base = demo_config_path().parent
    table = np.loadtxt(resolve_path(demo["stimuli"]["events"], base), dtype=int)
    keep = np.isin(table[:, 1], np.unique(table[:, 1])[:n_runs])
    np.savetxt(data / "attributes.txt", table[keep], fmt="%d")
    img = nib.load(resolve_path(demo["brain"]["bold"], base))
    bold = nib.Nifti1Image(np.asarray(img.dataobj)[..., keep], img.affine, img.header)
    nib.save(bold, data / "bold.nii.gz")
    mask = nib.load(resolve_path(demo["brain"]["mask"], base))
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj), mask.affine, mask.header), data / "mask.nii.gz")
    cfg = dict(demo)
    cfg["name"] = "small-resume-test"
    cfg["brain"] = dict(demo["brain"], bold="data/bold.nii.gz", mask="data/mask.nii.gz")
    cfg["stimuli"] = dict(demo["stimuli"], events="data/attributes.txt")
    cfg["models"] = [dict(demo["models"][0], layers=list(layers))]
    cfg["prompts"] = {k: demo["prompts"][k] for k in ("unprompted", "action")}
    cfg["encoding"] = dict(demo["encoding"], alphas=[1.0, 100.0, 10000.0])
    cfg["analysis"] = dict(demo["analysis"], baselines=["onoff", "category"], n_permutations=0, partitions=[])
    cfg["analysis"].pop("controls", None)  # the demo's controls name prompts this cut-down copy drops
    for dotted, value in overrides.items():
        node = cfg
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def with_workers(config: Path, n_workers: int) -> Path:
    """A copy of ``config`` (same folder, so the same data paths) that fits on ``n_workers`` processes."""
    cfg = yaml.safe_load(config.read_text())
    cfg["encoding"]["n_workers"] = n_workers
    path = config.with_name(f"{config.stem}-{n_workers}workers.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``brainalign`` command to completion (never raises on failure)."""
    full = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="400", **(env or {}))
    return subprocess.run([BRAINALIGN, *args], capture_output=True, text=True, env=full, timeout=timeout)


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    full = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="400", **(env or {}))
    return subprocess.Popen([BRAINALIGN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def run_until_stalled_then_kill(args: list[str], stall_at: str, marker: Path, timeout: float = 240,
                                while_stalled=None) -> str:
    """Start ``brainalign *args`` with the fault hook ``stall_at`` (e.g. ``encoding-fit:5``), wait until the
    process reaches it, call ``while_stalled(pid)``, then SIGKILL it. Returns its stderr."""
    proc = start_cli(*args, env=dict(BRAINALIGN_STALL_AT=stall_at, BRAINALIGN_STALL_MARKER=str(marker)))
    t0 = time.monotonic()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {stall_at}:\n{proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"the run did not reach {stall_at} in {timeout} s")
        time.sleep(0.05)
    try:
        if while_stalled is not None:
            while_stalled(proc.pid)
            assert proc.poll() is None, "the stalled run ended while we waited"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return proc.stderr.read()


def one_line(text: str) -> str:
    """Collapse whitespace (rich wraps long messages)."""
    return " ".join(text.split())
