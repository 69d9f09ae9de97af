"""Peak memory and time of streaming NSD betas against loading whole sessions, in the same run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_nsd_stream.py [--shape 24 30 24] [--sessions 2]

Writes a miniature NSD tree (real file layout, 750 int16 trials per session)
with a larger volume, then measures with tracemalloc:

* ``stream``: :func:`brainalign.brain.nsd.load_nsd_betas` (NIfTI, 125-trial
  chunks, nsdgeneral voxels only, repeat averaging);
* ``hdf5``: the same from ``betas_session{ss}.hdf5`` (chunked one voxel × 750 trials), read one z-plane at a time;
* ``whole``: the NSD study's load: ``nib.load(...).get_fdata()`` of each whole
  session, masked afterwards, then averaged — peers on the same files.

Both results are checked to agree. Real NSD 1.8 mm sessions are 81×104×83×750
(≈1.05 GB int16, 8.4 GB as float64 via get_fdata); the streamed peak scales with
the chunk and the mask instead.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np

from brainalign.brain.nsd import load_nsd_betas
from brainalign.testing.fixtures import write_nsd


def whole(root: Path, sessions, mask, ids):
    rows = []
    for s in sessions:
        p = root / f"nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{s:02d}.nii.gz"
        rows.append(nib.load(p).get_fdata()[mask].T / 300.0)
    trials = np.concatenate(rows)
    uniq = np.unique(ids)
    return np.stack([trials[ids == u].mean(0) for u in uniq])


def measure(fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=[24, 30, 24])
    ap.add_argument("--sessions", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nsd = write_nsd(Path(tmp) / "NSD", n_sessions=a.sessions, shape=tuple(a.shape), hdf5_betas=True)
        sessions = list(range(1, a.sessions + 1))
        n_vox = int(nsd["nsdgeneral"].sum())
        ids = nsd["trial_nsd_ids"][1][: 750 * a.sessions]
        s_out, s_dt, s_peak = measure(lambda: load_nsd_betas(nsd["root"], 1, sessions, source="nifti"))
        h_out, h_dt, h_peak = measure(lambda: load_nsd_betas(nsd["root"], 1, sessions, source="hdf5"))
        w_out, w_dt, w_peak = measure(lambda: whole(nsd["root"], sessions, nsd["nsdgeneral"], ids))
        np.testing.assert_allclose(s_out.data, w_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h_out.data, w_out, rtol=1e-5, atol=1e-6)
        vol = int(np.prod(a.shape))
        print(f"volume {tuple(a.shape)} = {vol} voxels, nsdgeneral {n_vox}, {a.sessions} sessions x 750 trials")
        print(f"result {s_out.data.shape} float32 = {s_out.data.nbytes / 2**20:.1f} MiB")
        print(f"stream : peak {s_peak / 2**20:8.1f} MiB  time {s_dt:6.2f} s")
        print(f"hdf5   : peak {h_peak / 2**20:8.1f} MiB  time {h_dt:6.2f} s  (z-plane reads of the per-voxel chunks)")
        print(f"whole  : peak {w_peak / 2**20:8.1f} MiB  time {w_dt:6.2f} s")
        print(f"ratio whole/stream: memory {w_peak / s_peak:.1f}x, time {w_dt / s_dt:.2f}x")


if __name__ == "__main__":
    main()
