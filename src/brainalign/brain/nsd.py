"""Natural Scenes Dataset: session betas, experimental design, ROIs with label tables, images.

Layout and units follow the NSD data manual (cvnlab.slite.page; https://naturalscenesdataset.org):

* single-trial betas ``nsddata_betas/ppdata/subj{ss}/{func1pt8mm,func1mm}/<glm>/betas_session{ss}.{nii.gz,hdf5}``,
  int16 = percent signal change × 300, 750 trials per session;
* ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (trial → 1-based index into the
  subject's 10k images), ``subjectim`` (8 × 10000, nsdId + 1), ``sharedix``;
* ROI volumes ``nsddata/ppdata/subj{ss}/<res>/roi/{,lh.,rh.}<ROI>.nii.gz`` (-1 not cortex, 0 unlabelled,
  1..N labels) with tables ``nsddata/freesurfer/subj{ss}/label/<ROI>.mgz.ctab``;
* images ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` (``imgBrick``, (73000, 425, 425, 3) uint8, by nsdId).

Betas are streamed: one session at a time, in chunks of trials, keeping
only the voxels of the mask; repeat averaging accumulates per-image sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import sparse

from brainalign._utils.errors import DataError
from .atlas import load_label_table, roi_masks
from .items import ItemResponses

__all__ = [
    "NSD_TRIALS_PER_SESSION",
    "NSD_BETA_SCALE",
    "NSDLayout",
    "read_expdesign",
    "trial_table",
    "load_nsd_betas",
    "load_nsd_mask",
    "load_nsd_rois",
    "NSDImages",
    "NSD_SESSIONS_COMPLETED",
    "available_sessions",
    "load_nsd_ncsnr",
]

NSD_TRIALS_PER_SESSION = 750
#: int16 betas are percent signal change × 300 (export.m: int16(modelmd * 300)).
NSD_BETA_SCALE = 300.0
_S3 = "s3://natural-scenes-dataset"
#: Sessions each subject completed (Manual "Technical notes"); the public release holds back a few.
NSD_SESSIONS_COMPLETED = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}


@dataclass
class NSDLayout:
    """Paths of one subject's NSD files.

    Parameters
    ----------
    root : path
        Folder holding ``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``.
    subject : int
        1..8.
    resolution : {"func1pt8mm", "func1mm"}
    glm : str
        Beta version: ``betas_fithrf_GLMdenoise_RR`` (b3, default), ``betas_fithrf``, ``betas_assumehrf``.
    """

    root: Path
    subject: int
    resolution: str = "func1pt8mm"
    glm: str = "betas_fithrf_GLMdenoise_RR"

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        s = str(self.subject).lower().replace("subj", "")
        if not s.isdigit() or not 1 <= int(s) <= 8:
            raise DataError(f"subject={self.subject!r}; NSD subjects are 1..8.")
        self.subject = int(s)
        if self.resolution not in ("func1pt8mm", "func1mm"):
            raise DataError(f"resolution={self.resolution!r}; use 'func1pt8mm' or 'func1mm'.")

    @property
    def subj(self) -> str:
        return f"subj{self.subject:02d}"

    def require(self, rel: str) -> Path:
        """Absolute path of a release file; FileNotFoundError naming where it comes from."""
        path = self.root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"NSD file {rel} not found under {self.root}; it is part of the NSD release "
                f"({_S3}/{rel}, access via https://naturalscenesdataset.org). Download it or fix the data root."
            )
        return path

    # relative paths -------------------------------------------------------------------------
    expdesign = "nsddata/experiments/nsd/nsd_expdesign.mat"
    stimuli = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"

    def betas(self, session: int, ext: str = "nii.gz") -> str:
        return f"nsddata_betas/ppdata/{self.subj}/{self.resolution}/{self.glm}/betas_session{session:02d}.{ext}"

    def roi(self, name: str, hemi: str | None = None) -> str:
        return f"nsddata/ppdata/{self.subj}/{self.resolution}/roi/{hemi + '.' if hemi else ''}{name}.nii.gz"

    def label_table(self, name: str) -> list[str]:
        return [f"nsddata/freesurfer/{self.subj}/label/{name}.mgz.ctab", f"nsddata/freesurfer/fsaverage/label/{name}.mgz.ctab"]

    def brainmask(self) -> str:
        return f"nsddata/ppdata/{self.subj}/{self.resolution}/brainmask.nii.gz"

    def ncsnr(self, split: str = "") -> str:
        return f"nsddata_betas/ppdata/{self.subj}/{self.resolution}/{self.glm}/ncsnr{split}.nii.gz"


def available_sessions(layout: NSDLayout) -> list[int]:
    """Sessions whose betas (NIfTI or HDF5) are on disk, in order."""
    d = layout.root / Path(layout.betas(1)).parent
    found = set()
    for p in d.glob("betas_session*.*"):
        m = p.name[len("betas_session"):].split(".")[0]
        if m.isdigit() and (p.name.endswith(".nii.gz") or p.name.endswith(".hdf5")):
            found.add(int(m))
    return sorted(found)


# ------------------------------------------------------------------------------- design
def read_expdesign(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``nsd_expdesign.mat`` and convert its 1-based values to 0-based.

    Returns
    -------
    dict with
        masterordering : (n_trials,) int, index 0..9999 into the subject's ``subjectim`` row
        subjectim : (8, 10000) int, nsdId 0..72999
        sharedix : (1000,) int, nsdIds of the shared images
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nsd_expdesign.mat not found (NSD release: {_S3}/{NSDLayout.expdesign}).")
    mat = loadmat(path)
    for key in ("masterordering", "subjectim"):
        if key not in mat:
            raise DataError(f"{path} has no variable {key!r} (found {sorted(k for k in mat if not k.startswith('__'))}); is it nsd_expdesign.mat?")
    mo = np.asarray(mat["masterordering"]).ravel().astype(np.int64) - 1
    si = np.asarray(mat["subjectim"]).astype(np.int64) - 1
    if si.ndim != 2 or si.shape[1] < 1000:
        raise DataError(f"{path}: subjectim has shape {si.shape}; expected (8, 10000).")
    if mo.min() < 0 or mo.max() >= si.shape[1]:
        raise DataError(f"{path}: masterordering values must lie in 1..{si.shape[1]}.")
    out = dict(masterordering=mo, subjectim=si)
    if "sharedix" in mat:
        out["sharedix"] = np.asarray(mat["sharedix"]).ravel().astype(np.int64) - 1
    return out


def trial_table(design: dict, subject: int, sessions: Sequence[int]) -> pd.DataFrame:
    """One row per trial of the given sessions.

    Columns: session, trial (0..749 in the session), global_trial (0-based over the
    subject's 30000), image10k (0-based index into ``subjectim``), nsd_id (0-based),
    shared (the image is one of the shared 1000: ``masterordering`` ≤ 1000, 1-based).
    """
    mo, si = design["masterordering"], design["subjectim"]
    rows = []
    for s in sessions:
        g = (int(s) - 1) * NSD_TRIALS_PER_SESSION + np.arange(NSD_TRIALS_PER_SESSION)
        if g[-1] >= mo.size:
            raise DataError(f"session {s} lies beyond masterordering ({mo.size} trials = {mo.size // 750} sessions).")
        im = mo[g]
        rows.append(pd.DataFrame(dict(session=int(s), trial=np.arange(NSD_TRIALS_PER_SESSION), global_trial=g,
                                      image10k=im, nsd_id=si[subject - 1, im], shared=im < 1000)))
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------------------- masks
def _volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def load_nsd_mask(layout: NSDLayout, mask: str | Path | None = "nsdgeneral") -> nib.Nifti1Image | None:
    """The voxel mask: an NSD ROI name (voxels with label > 0), a NIfTI path, or None (whole volume)."""
    if mask is None:
        return None
    p = Path(mask)
    if p.suffix in (".gz", ".nii") and p.is_file():
        data, aff = _volume(p)
    elif p.suffix in (".gz", ".nii"):
        raise FileNotFoundError(f"{p}: mask file not found; check brain.mask.")
    else:
        data, aff = _volume(layout.require(layout.roi(str(mask))))
    sel = np.asarray(data) > 0
    if not sel.any():
        raise DataError(f"mask {mask!r} selects no voxel (no value > 0).")
    return nib.Nifti1Image(sel.astype(np.uint8), aff)


def load_nsd_rois(
    layout: NSDLayout,
    rois: Sequence[str],
    mask_img: nib.Nifti1Image | None = None,
    hemispheres: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Every labelled region of NSD ROI volumes, named from their label tables.

    Parameters
    ----------
    layout : NSDLayout
    rois : sequence of str
        ROI files, e.g. ``["prf-visualrois", "floc-faces"]``.
    mask_img : Nifti1Image, optional
        Masks are returned over its voxels (C order) — the columns of the
        loaded betas; else over the whole volume.
    hemispheres : bool
        Split each label with the ``lh.``/``rh.`` files (keys ``lh.FFA-1``…).

    Returns
    -------
    dict ROI file → {label name: boolean mask}, every label of the table
    (``0 Unknown`` and ``-1`` = not cortex are background).
    """
    brain = None if mask_img is None else np.asarray(mask_img.dataobj) > 0
    out: dict[str, dict[str, np.ndarray]] = {}
    for roi in rois:
        table_path = next((layout.root / t for t in layout.label_table(roi) if (layout.root / t).is_file()), None)
        if table_path is None:
            layout.require(layout.label_table(roi)[0])
        table = {k: v for k, v in load_label_table(table_path).items() if k > 0}
        files = [("", layout.roi(roi))] if not hemispheres else [("lh.", layout.roi(roi, "lh")), ("rh.", layout.roi(roi, "rh"))]
        masks: dict[str, np.ndarray] = {}
        for prefix, rel in files:
            lab, _ = _volume(layout.require(rel))
            lab = np.where(np.asarray(lab) > 0, np.round(lab), 0).astype(np.int64)
            if brain is not None and lab.shape != brain.shape:
                raise DataError(
                    f"{rel} has shape {lab.shape} but the data mask has {brain.shape}; use the ROI files of the same "
                    f"resolution ({layout.resolution})."
                )
            unknown = sorted(set(np.unique(lab[lab > 0]).tolist()) - set(table))
            if unknown:
                raise DataError(f"{rel} holds label values {unknown} that {table_path} does not name.")
            got = roi_masks(lab, table, labels=sorted(table), brain_mask=brain)
            masks.update({prefix + k: v for k, v in got.items()})
        out[roi] = masks
    return out


# ------------------------------------------------------------------------------- betas
def _session_chunks(layout: NSDLayout, session: int, source: str, mask: np.ndarray | None, chunk: int):
    """Yield (start, int16 betas (n, n_voxels)) of one session, reading ``chunk`` trials at a time."""
    nii, h5 = layout.root / layout.betas(session), layout.root / layout.betas(session, "hdf5")
    use = source
    if source == "auto":
        use = "hdf5" if h5.is_file() else "nifti"
    if use == "hdf5":
        import h5py

        path = layout.require(layout.betas(session, "hdf5"))
        with h5py.File(path, "r") as f:
            if "betas" not in f:
                raise DataError(f"{path} has no dataset '/betas' (found {list(f)}).")
            d = f["betas"]
            shape = tuple(d.shape[1:][::-1])  # h5py reads MATLAB's X×Y×Z×750 reversed
            _check_shape(shape, mask, path)
            n = d.shape[0]
            # The file is chunked one voxel × all 750 trials, so reading trial ranges would decompress every
            # chunk once per range. Read one z-plane at a time instead (each chunk once) and place its mask
            # voxels in their C-order columns: one session of masked int16 is held (750 × n_voxels × 2 bytes).
            m = mask if mask is not None else np.ones(shape, dtype=bool)
            col = np.cumsum(m.ravel()).reshape(shape) - 1
            sess = np.empty((n, int(m.sum())), dtype=d.dtype)
            for z in range(shape[2]):
                mz = m[:, :, z]
                if not mz.any():
                    continue
                plane = np.asarray(d[:, z, :, :]).transpose(0, 2, 1)  # (n, X, Y)
                sess[:, col[:, :, z][mz]] = plane[:, mz]
            for a in range(0, n, chunk):  # convert to float a chunk of trials at a time
                yield a, n, sess[a:a + chunk]
        return
    if use != "nifti":
        raise DataError(f"source={source!r}; use 'nifti', 'hdf5' or 'auto'.")
    path = layout.require(layout.betas(session))
    img = nib.load(path, keep_file_open=True)  # one gzip stream: each chunk continues where the last stopped
    if img.ndim != 4:
        raise DataError(f"{path}: expected X×Y×Z×750 betas, got shape {img.shape}.")
    _check_shape(img.shape[:3], mask, path)
    n = img.shape[3]
    for a in range(0, n, chunk):
        block = np.asarray(img.dataobj[..., a:min(a + chunk, n)])  # (X, Y, Z, n), contiguous in the file
        yield a, n, (block[mask].T if mask is not None else block.reshape(-1, block.shape[-1], order="C").T)


def _check_shape(shape: tuple, mask: np.ndarray | None, path: Path) -> None:
    if mask is not None and tuple(shape) != mask.shape:
        raise DataError(
            f"{path} has volume shape {tuple(shape)} but the mask has {mask.shape}; use the mask of the same "
            "resolution (func1pt8mm vs func1mm) and subject."
        )


def load_nsd_betas(
    root: str | Path,
    subject: int,
    sessions: Sequence[int],
    *,
    resolution: str = "func1pt8mm",
    glm: str = "betas_fithrf_GLMdenoise_RR",
    mask: str | Path | None = "nsdgeneral",
    average_repeats: bool = True,
    zscore_sessions: bool = False,
    source: str = "auto",
    chunk_trials: int = 125,
) -> ItemResponses:
    """Single-trial NSD betas of one subject, streamed session by session.

    Parameters
    ----------
    root : path
        NSD root (``nsddata/``, ``nsddata_betas/``...).
    subject : int
        1..8.
    sessions : sequence of int
        1-based session numbers (subj01: 1..40, of which the public release holds back the last 3).
    resolution, glm : str
        See :class:`NSDLayout`.
    mask : str, path or None
        ROI name whose voxels > 0 are kept (default ``nsdgeneral``), a NIfTI path, or None.
    average_repeats : bool
        Average the trials of each image (up to 3) into one row.
    zscore_sessions : bool
        Z-score every voxel within each session before averaging (off by default, as in the NSD study).
    source : {"auto", "nifti", "hdf5"}
        File format to read; ``auto`` prefers the chunked HDF5.
    chunk_trials : int
        NIfTI: trials read per chunk (memory ≈ chunk × volume × 2 bytes). HDF5 files
        (chunked per voxel) are read one z-plane at a time instead.

    Returns
    -------
    ItemResponses
        ``data`` in percent signal change, float32, shape (n_images or n_trials, n_voxels);
        ``items`` columns item (= nsd_id), nsd_id, image10k, n_repeats, split
        (``test`` = shared 1000, ``train`` otherwise), first_trial.
    """
    layout = NSDLayout(root, subject, resolution, glm)
    sessions = [int(s) for s in sessions]
    if not sessions:
        raise DataError("sessions is empty; give the NSD sessions to load, e.g. range(1, 38).")
    design = read_expdesign(layout.require(layout.expdesign))
    trials = trial_table(design, layout.subject, sessions)
    mimg = load_nsd_mask(layout, mask)
    mask_arr = None if mimg is None else np.asarray(mimg.dataobj) > 0
    if average_repeats:
        images, row_of_trial = np.unique(trials["nsd_id"].to_numpy(), return_inverse=True)
        n_rows = images.size
    else:
        row_of_trial = np.arange(len(trials))
        n_rows = len(trials)
    acc = None
    counts = np.zeros(n_rows, dtype=np.int64)

    def add(rows: np.ndarray, block: np.ndarray) -> None:
        # sum trials into their rows with a sparse incidence matrix (repeats within a block allowed)
        uniq, inv = np.unique(rows, return_inverse=True)
        inc = sparse.csr_matrix((np.ones(rows.size, np.float32), (inv, np.arange(rows.size))), shape=(uniq.size, rows.size))
        acc[uniq] += inc @ block
        np.add.at(counts, rows, 1)

    for k, s in enumerate(sessions):
        base = k * NSD_TRIALS_PER_SESSION
        sess = None
        for a, n, block in _session_chunks(layout, s, source, mask_arr, chunk_trials):
            if n != NSD_TRIALS_PER_SESSION:
                raise DataError(
                    f"{layout.betas(s)} holds {n} trials; NSD sessions have {NSD_TRIALS_PER_SESSION}. Is it a beta file?"
                )
            if acc is None:
                acc = np.zeros((n_rows, block.shape[1]), dtype=np.float32)
            block = block.astype(np.float32)
            block /= np.float32(NSD_BETA_SCALE)
            if not zscore_sessions:  # no session statistics needed: accumulate chunk by chunk
                add(row_of_trial[base + a: base + a + block.shape[0]], block)
                continue
            if sess is None:
                sess = np.empty((n, block.shape[1]), dtype=np.float32)
            sess[a:a + block.shape[0]] = block
        if zscore_sessions:
            mu = sess.mean(0, dtype=np.float64)
            sd = sess.std(0, dtype=np.float64)
            sess = ((sess - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
            add(row_of_trial[base: base + NSD_TRIALS_PER_SESSION], sess)
            del sess
    acc /= counts[:, None].astype(np.float32)  # in place: the result is the only full-size array
    data = acc
    if average_repeats:
        first = trials.groupby("nsd_id")["global_trial"].min()
        im10k = trials.groupby("nsd_id")["image10k"].first()
        items = pd.DataFrame(dict(item=images, nsd_id=images, image10k=im10k.loc[images].to_numpy(),
                                  n_repeats=counts, first_trial=first.loc[images].to_numpy()))
    else:
        items = trials.rename(columns={"global_trial": "first_trial"}).assign(item=trials["nsd_id"], n_repeats=1)
    items["split"] = np.where(items["image10k"].to_numpy() < 1000, "test", "train")
    return ItemResponses(
        data=data,
        items=items.reset_index(drop=True),
        mask_img=mimg,
        subject=f"{layout.subject:02d}",
        meta=dict(loader="nsd", sessions=sessions, resolution=resolution, glm=glm, units="percent signal change",
                  average_repeats=average_repeats, zscore_sessions=zscore_sessions, mask=str(mask)),
    )


def load_nsd_ncsnr(layout: NSDLayout, mask_img: nib.Nifti1Image | None, n_average: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """NSD's noise-ceiling SNR and the noise ceiling for averages of ``n_average`` trials.

    ``NC = 100 · ncsnr² / (ncsnr² + 1 / n_average)`` in percent of variance (export_noiseceiling.m).

    Returns
    -------
    ncsnr, noise_ceiling : ndarray of shape (n_voxels,), float32, over the voxels of ``mask_img``
    """
    if n_average < 1:
        raise DataError(f"n_average must be >= 1, got {n_average}.")
    data, _ = _volume(layout.require(layout.ncsnr()))
    data = np.asarray(data, dtype=np.float64)
    if mask_img is not None:
        m = np.asarray(mask_img.dataobj) > 0
        if m.shape != data.shape:
            raise DataError(f"{layout.ncsnr()} has shape {data.shape} but the mask has {m.shape}; use the same resolution.")
        data = data[m]
    else:
        data = data.ravel()
    nc = 100.0 * data**2 / (data**2 + 1.0 / n_average)
    return data.astype(np.float32), nc.astype(np.float32)


# ------------------------------------------------------------------------------- images
class NSDImages:
    """Lazy reader of ``nsd_stimuli.hdf5`` (``imgBrick``, indexed by 0-based nsdId).

    Use as a context manager or call :meth:`close`. ``images[ids]`` returns
    uint8 (n, H, W, 3) in the order of ``ids``.
    """

    def __init__(self, path: str | Path, dataset: str = "imgBrick") -> None:
        import h5py

        path = Path(path)
        if path.is_dir():
            path = path / NSDLayout.stimuli
        if not path.is_file():
            raise FileNotFoundError(f"{path}: nsd_stimuli.hdf5 not found (NSD release: {_S3}/{NSDLayout.stimuli}).")
        self._f = h5py.File(path, "r")
        if dataset not in self._f:
            raise DataError(f"{path} has no dataset {dataset!r} (found {list(self._f)}).")
        self._d = self._f[dataset]
        if self._d.ndim != 4 or self._d.shape[-1] != 3 or self._d.dtype != np.uint8:
            raise DataError(f"{path}:{dataset} is {self._d.shape} {self._d.dtype}; expected (73000, H, W, 3) uint8.")

    def __len__(self) -> int:
        return int(self._d.shape[0])

    @property
    def shape(self) -> tuple:
        return tuple(self._d.shape)

    def __getitem__(self, ids) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"nsdIds must lie in 0..{len(self) - 1}; got {ids.min()}..{ids.max()}.")
        uniq, inv = np.unique(ids, return_inverse=True)  # h5py needs increasing indices
        return self._d[uniq][inv]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> NSDImages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
