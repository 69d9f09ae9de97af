"""Peak memory and scratch disk of the voxel statistics as the number of feature spaces grows (issue 19 §2).

A synthetic case shaped like the movies study (seed001: 13,021 rows in 3 runs × 81,924 vertices × ~50 spaces
per model, leave-one-run-out), scaled down to ``--rows`` × ``--voxels`` with 5, 10, 20, 40 spaces. Each point
runs in its own subprocess (peak RSS = its ``VmHWM``), twice:

- ``kept``: the pre-streaming way, ``pipeline.cross_validate`` (every space's held-out predictions kept) then
  ``pipeline.voxel_scores`` over all of them, with (space, fold) checkpoints that keep every prediction;
- ``streamed``: ``pipeline.cross_validate_statistics`` (what ``run`` does now): each space scored as its folds
  finish, one space's predictions at a time, checkpoints compacted to one statistics entry per finished space.

Scratch disk = the peak of (held-out predictions that would be memory-mapped in TMPDIR past
``encoding.predictions_in_memory_gib``) + (the checkpoint folder), sampled after every write. The script checks
that both ways give the same voxel table (bit for bit), prints the ratios, and extrapolates both to
13,021 × 81,924 × 50 spaces by a straight-line fit in the number of spaces, scaled by rows × voxels.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_streaming_stats.py [--rows 2000 --voxels 8000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REAL = dict(rows=13021, voxels=81924, spaces=50)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def worker(way: str, n_spaces: int, rows: int, voxels: int, n_perm: int) -> dict:
    from brainalign.brain.recording import Recording
    from brainalign.cli import demo_config_path
    from brainalign.config import load_config
    from brainalign.encoding import held_out
    from brainalign.pipeline import runner as pipeline
    from brainalign.pipeline.checkpoint import EncodingCheckpoint

    base = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmRSS"))  # the interpreter and its imports, before any data
    rng = np.random.default_rng(0)
    runs = np.repeat(np.arange(3), rows // 3 + 1)[:rows]  # 3 runs (movies), held out in turn
    latent = rng.standard_normal((rows, 8)).astype(np.float32)
    Y = (latent @ rng.standard_normal((8, voxels)).astype(np.float32) * 0.3
         + rng.standard_normal((rows, voxels)).astype(np.float32))
    spaces = [pipeline.FeatureSpace(f"m/none/L{i}", np.ascontiguousarray(
        latent @ rng.standard_normal((8, 16)).astype(np.float32) + rng.standard_normal((rows, 16)).astype(np.float32)),
        "model", model="m", prompt="none", layer=i, depth=i / n_spaces) for i in range(n_spaces)]
    exp = load_config(demo_config_path())
    exp.analysis.reference = spaces[0].name
    exp.analysis.n_permutations = n_perm
    exp.analysis.block_length = 10
    exp.analysis.controls = None
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [1.0, 100.0, 10000.0]
    exp.encoding.predictions_in_memory_gib = 1000.0  # in RAM: RSS shows them; TMPDIR bytes are counted below
    data = pipeline.StudyData(recording=Recording(data=Y, runs=runs, tr=1.49, mask_img=None), events=None,
                              stimuli=[], design=np.zeros((rows, 0)))
    live: dict[int, int] = {}
    peak = dict(predictions=0, scratch=0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    ck = EncodingCheckpoint(tmp / "ck")

    def sample():
        peak["predictions"] = max(peak["predictions"], sum(live.values()))
        peak["scratch"] = max(peak["scratch"], sum(live.values()) + _folder_bytes(tmp / "ck"))

    init, close, put = held_out.HeldOut.__init__, held_out.HeldOut.close, EncodingCheckpoint.put

    def spy_init(self, names, shape, *a, **k):
        init(self, names, shape, *a, **k)
        live[id(self)] = len(names) * int(np.prod(shape)) * 4
        sample()

    def spy_close(self):
        live.pop(id(self), None)
        close(self)

    def spy_put(self, *a, **k):
        put(self, *a, **k)
        sample()

    held_out.HeldOut.__init__, held_out.HeldOut.close, EncodingCheckpoint.put = spy_init, spy_close, spy_put
    if way == "kept":
        _, preds, _ = pipeline.cross_validate(exp, data, spaces, checkpoint=ck)
        vox = pipeline.voxel_scores(exp, data, preds)
        preds.close()
    else:
        vox = pipeline.cross_validate_statistics(exp, data, spaces, checkpoint=ck)[1]
    import shutil

    shutil.rmtree(tmp)
    hwm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM"))
    digest = __import__("hashlib").sha256(vox[["r", "p", "q"]].to_numpy().tobytes()).hexdigest()
    return dict(way=way, spaces=n_spaces, rss=hwm, base=base, data=Y.nbytes, **peak, table=digest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--voxels", type=int, default=8000)
    ap.add_argument("--spaces", default="5,10,20,40")
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--worker", nargs=2, metavar=("WAY", "SPACES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.rows, args.voxels, args.permutations)))
        return
    results = {}
    for n in [int(x) for x in args.spaces.split(",")]:
        for way in ("kept", "streamed"):
            proc = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--voxels", str(args.voxels),
                                   "--permutations", str(args.permutations), "--worker", way, str(n)],
                                  capture_output=True, text=True, check=True)
            results[way, n] = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 2**20
    print(f"{args.rows} rows (3 runs) x {args.voxels} voxels, {args.permutations} permutations; "
          f"Y alone {results['kept', int(args.spaces.split(',')[0])]['data'] / mib:.0f} MiB")
    print(f"{'spaces':>6} | {'peak RSS kept':>13} {'streamed':>9} {'ratio':>6} | {'scratch kept':>12} {'streamed':>9} "
          f"{'ratio':>6} | same table")
    ns = sorted({n for _, n in results})
    for n in ns:
        k, s = results["kept", n], results["streamed", n]
        print(f"{n:>6} | {k['rss'] / mib:>9.0f} MiB {s['rss'] / mib:>5.0f} MiB {k['rss'] / s['rss']:>6.2f} | "
              f"{k['scratch'] / mib:>8.0f} MiB {s['scratch'] / mib:>5.0f} MiB {k['scratch'] / s['scratch']:>6.2f} | "
              f"{k['table'] == s['table']}")
    scale_rv = REAL["rows"] * REAL["voxels"] / (args.rows * args.voxels)
    scale_v = REAL["voxels"] / args.voxels
    print(f"extrapolated to {REAL['rows']} x {REAL['voxels']} x {REAL['spaces']} spaces: a straight line in the "
          f"number of spaces; its intercept above the bare interpreter (data, one space's arrays) x {scale_rv:.0f} "
          f"(rows x voxels); its slope x {scale_rv:.0f} for 'kept' (a prediction array per space) and x "
          f"{scale_v:.1f} (voxels) for 'streamed' (a few numbers per voxel per space):")
    for way in ("kept", "streamed"):
        for what in ("rss", "scratch"):
            y = np.array([results[way, n][what] for n in ns], dtype=float)
            base = np.mean([results[way, n]["base"] for n in ns]) if what == "rss" else 0.0
            slope, icpt = np.polyfit(ns, y, 1)
            real = base + (icpt - base) * scale_rv + slope * REAL["spaces"] * (scale_rv if way == "kept" else scale_v)
            print(f"  {way:>8} {what:>7}: {slope / mib:7.2f} MiB per space here -> about {real / 2**30:,.1f} GiB")


if __name__ == "__main__":
    main()
