"""Which files each loader will read, and where each one comes from.

``brainalign validate`` can list exactly what is missing below a data root:
every :class:`RequiredFile` names its path inside the dataset, the dataset
accession and how to obtain it. Nothing here opens a file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["RequiredFile", "missing_files", "nsd_manifest", "movie10_manifest", "bids_manifest"]


@dataclass(frozen=True)
class RequiredFile:
    """One file a loader needs.

    Attributes
    ----------
    path : str
        Relative to the dataset root given to the loader.
    dataset : str
        Accession / dataset name (``NSD``, ``OpenNeuro ds004323`` ...).
    source : str
        How to get it (URL, command, or the tool that produces it).
    """

    path: str
    dataset: str
    source: str

    def describe(self, root: str | Path | None = None) -> str:
        where = Path(root) / self.path if root is not None else Path(self.path)
        return f"{where}  [{self.dataset}: {self.source}]"


def missing_files(manifest: Sequence[RequiredFile], root: str | Path) -> list[RequiredFile]:
    """The entries of ``manifest`` that are not files under ``root``."""
    root = Path(root)
    return [f for f in manifest if not (root / f.path).is_file()]


_NSD = "NSD"
_NSD_SRC = "aws s3 cp s3://natural-scenes-dataset/{path} (data access agreement: https://naturalscenesdataset.org)"


def nsd_manifest(
    subject: int,
    sessions: Sequence[int],
    resolution: str = "func1pt8mm",
    glm: str = "betas_fithrf_GLMdenoise_RR",
    mask: str | None = "nsdgeneral",
    rois: Sequence[str] = (),
    hemispheres: bool = False,
    images: bool = True,
    betas_format: str = "nii.gz",
    ncsnr: bool = False,
) -> list[RequiredFile]:
    """Files :func:`brainalign.brain.nsd.load_nsd_betas` / ``load_nsd_rois`` / ``NSDImages`` read."""
    from .nsd import NSDLayout

    lay = NSDLayout(Path("."), subject, resolution, glm)
    rels = [lay.expdesign] + [lay.betas(s, betas_format) for s in sessions]
    if mask is not None and not str(mask).endswith((".nii", ".nii.gz")):
        rels.append(lay.roi(mask))
    for r in rois:
        rels += [lay.roi(r, h) for h in (("lh", "rh") if hemispheres else (None,))]
        rels.append(lay.label_table(r)[0])
    if ncsnr:
        rels.append(lay.ncsnr())
    if images:
        rels.append(lay.stimuli)
    return [RequiredFile(r, _NSD, _NSD_SRC.format(path=r)) for r in rels]


def movie10_manifest(
    subject: str, movies: Sequence[str] = ("bourne", "wolf", "life"), pattern: str = "sub{subject}-{movie}-fsaverage6.npy"
) -> list[RequiredFile]:
    """Files :func:`brainalign.brain.movie10.load_movie10` reads with ``source="npy"``."""
    n = int(str(subject).replace("sub-", "").replace("sub", ""))
    src = ("fsaverage6 projection of the CNeuroMod movie10 runs (register at https://docs.cneuromod.ca; "
           "project with fMRIPrep --output-spaces fsaverage6 or mri_vol2surf)")
    return [RequiredFile(pattern.format(subject=n, movie=m), "CNeuroMod movie10", src) for m in movies]


_OPENNEURO = "openneuro-py download --dataset {acc} --include '{path}' (or datalad get from https://github.com/OpenNeuroDatasets/{acc})"


def bids_manifest(
    accession: str,
    subject: str,
    task: str,
    runs: Sequence[int],
    derivatives: str | None = None,
    space: str = "MNI152NLin2009cAsym",
    events: bool = True,
    run_digits: int = 2,
) -> list[RequiredFile]:
    """Files :func:`brainalign.brain.bids.load_bids` reads for one subject (sessionless datasets).

    Parameters
    ----------
    accession : str
        OpenNeuro accession, e.g. ``"ds004323"``.
    derivatives : str, optional
        Derivatives folder relative to the dataset root (e.g. ``"derivatives/fmriprep"``); these
        files are produced by running fMRIPrep, not downloaded.
    events : bool
        Whether per-run ``events.tsv`` are expected (ds003076 yes, ds004323 no).
    """
    sub = str(subject).replace("sub-", "")
    acc = f"OpenNeuro {accession}"
    out = [RequiredFile("dataset_description.json", acc, _OPENNEURO.format(acc=accession, path="dataset_description.json")),
           RequiredFile(f"task-{task}_bold.json", acc, _OPENNEURO.format(acc=accession, path=f"task-{task}_bold.json"))]
    for r in runs:
        name = f"sub-{sub}_task-{task}_run-{int(r):0{run_digits}d}"
        raw = f"sub-{sub}/func/{name}_bold.nii.gz"
        if derivatives is None:
            out.append(RequiredFile(raw, acc, _OPENNEURO.format(acc=accession, path=raw)))
        else:
            prep = "fMRIPrep (https://fmriprep.org) run on " + accession
            d = f"{derivatives}/sub-{sub}/func/{name}"
            out += [RequiredFile(f"{d}_space-{space}_desc-preproc_bold.nii.gz", acc + " derivatives", prep),
                    RequiredFile(f"{d}_space-{space}_desc-brain_mask.nii.gz", acc + " derivatives", prep),
                    RequiredFile(f"{d}_desc-confounds_timeseries.tsv", acc + " derivatives", prep)]
        if events:
            ev = f"sub-{sub}/func/{name}_events.tsv"
            out.append(RequiredFile(ev, acc, _OPENNEURO.format(acc=accession, path=ev)))
    return out
