"""BIDS loader: raw BOLD runs or fMRIPrep derivatives, TR from the sidecars, events, confounds.

The loader reads one subject and one task, one run at a time (a run is the
largest array held in memory), masks it, regresses confounds and cleans it
with :func:`nilearn.signal.clean`, and returns a :class:`Recording` plus an
events table (columns ``run, onset, duration, stimulus`` and every column of
the ``events.tsv`` files).

Layouts handled (see ``docs/choices.md``):

* raw BIDS: ``sub-XX[/ses-YYY]/func/sub-XX[_ses-YYY]_task-T[_run-R]_bold.nii.gz``
  with sidecars inherited from ``task-T_bold.json`` at the top level
  (ds004323, ds003076);
* fMRIPrep derivatives: ``…_task-T[_run-R]_space-S_desc-preproc_bold.nii.gz``
  with ``…_desc-brain_mask.nii.gz`` and ``…_desc-confounds_timeseries.tsv``.
  or, for a surface ``space`` such as ``fsaverage6``, the GIFTI pair
  ``…_space-fsaverage6_hemi-{L,R}_bold.func.gii`` (vertices, left first), or for
  ``space="fsLR"`` the CIFTI grayordinates ``…_space-fsLR_den-91k_bold.dtseries.nii``
  (the public Movie10 derivative);
  raw and derivative run entities are matched by value, so raw ``run-01``
  pairs with derivative ``run-1`` (Movie10).
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import masking, signal

from brainalign._utils.errors import DataError
from .recording import Recording
from .voxels import mask_of_kept, varying_voxels

__all__ = [
    "BidsRun",
    "parse_entities",
    "find_bold_runs",
    "read_sidecar",
    "repetition_time",
    "read_events",
    "select_confounds",
    "load_bids",
]

_ENTITY = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9+]+)$")


def parse_entities(name: str) -> tuple[dict[str, str], str]:
    """Split a BIDS file name into its entities and suffix.

    ``sub-01_task-gameplay_run-01_bold.nii.gz`` → ``({'sub': '01', 'task':
    'gameplay', 'run': '01'}, 'bold')``.
    """
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    ents: dict[str, str] = {}
    for p in parts[:-1]:
        m = _ENTITY.match(p)
        if m:
            ents[m.group(1)] = m.group(2)
    return ents, parts[-1]


@dataclass
class BidsRun:
    """One BOLD run found on disk.

    Attributes
    ----------
    bold : Path
        The 4-D image (raw or fMRIPrep preproc).
    entities : dict
        Its BIDS entities (``sub``, ``ses``, ``task``, ``run``, ``space`` ...).
    label : int
        Run label used in ``Recording.runs`` and the events table: the BIDS
        run number, or the order of the run when it has no run entity.
    run_id : str
        ``"[ses-YYY_]task-T[_run-R]"``.
    """

    bold: Path
    entities: dict
    label: int
    run_id: str
    bold_rh: Path | None = None

    @property
    def surface(self) -> bool:
        """True for a GIFTI surface run (``bold`` is hemi-L, ``bold_rh`` hemi-R)."""
        return self.bold_rh is not None

    def sibling(self, suffix: str) -> Path:
        """Derivative file next to the BOLD, e.g. ``desc-brain_mask.nii.gz``."""
        name = self.bold.name
        if suffix.startswith("desc-brain_mask"):
            return self.bold.with_name(name.replace("desc-preproc_bold", "desc-brain_mask"))
        base = name.split("_desc-preproc")[0] if "_desc-preproc" in name else name.rsplit("_bold", 1)[0]
        base = re.sub(r"_(space|res|den|hemi)-[^_]+", "", base)
        return self.bold.with_name(f"{base}_{suffix}")


def _sub(subject: str) -> str:
    subject = str(subject)
    return subject[4:] if subject.startswith("sub-") else subject


def find_bold_runs(
    root: str | Path,
    subject: str,
    task: str,
    space: str | None = None,
    runs: Sequence[int] | None = None,
    sessions: Sequence[str] | None = None,
) -> list[BidsRun]:
    """BOLD runs of one subject and task, in (session, run) order.

    Parameters
    ----------
    root : path
        A raw BIDS dataset (``space=None``) or an fMRIPrep derivatives folder.
    subject : str
        ``"01"`` or ``"sub-01"``.
    task : str
    space : str, optional
        fMRIPrep output space (``"MNI152NLin2009cAsym"``); None for raw data.
    runs : sequence of int, optional
        Keep only these run numbers.
    sessions : sequence of str, optional
        Keep only these sessions.

    Raises
    ------
    FileNotFoundError
        When the subject folder or every matching run is missing.
    """
    root = Path(root)
    sub = _sub(subject)
    subdir = root / f"sub-{sub}"
    if not subdir.is_dir():
        raise FileNotFoundError(
            f"{subdir}: subject folder not found in the BIDS dataset {root}; "
            f"check brain.subject and the data root (available: {sorted(p.name for p in root.glob('sub-*'))[:10]})."
        )
    cifti = bool(space) and str(space).startswith("fsLR")
    surface = bool(space) and str(space).startswith("fs") and not cifti
    if cifti:
        pattern = f"sub-{sub}_*task-{task}_*space-{space}*_bold.dtseries.nii"
    elif surface:
        pattern = f"sub-{sub}_*task-{task}_*space-{space}*_bold.func.gii"
    elif space:
        pattern = f"sub-{sub}_*task-{task}_*space-{space}_desc-preproc_bold.nii*"
    else:
        pattern = f"sub-{sub}_*task-{task}_*bold.nii*"
    found = sorted(subdir.glob(f"**/func/{pattern}"))
    if not space:
        found = [p for p in found if "_desc-" not in p.name and "__dup" not in p.name]
        # also runs without any entity after task (task-T_bold.nii.gz)
    extra = sorted(subdir.glob(f"**/func/sub-{sub}*_task-{task}_bold.nii*")) if not space else []
    found = sorted(set(found) | set(extra))
    items = []
    rh_of: dict[str, Path] = {}
    if surface:
        for p in found:
            ents, _ = parse_entities(p.name)
            if ents.get("hemi") == "R":
                rh_of[p.name.replace("hemi-R", "hemi-L")] = p
        found = [p for p in found if parse_entities(p.name)[0].get("hemi") == "L"]
        lonely = [p.name for p in found if p.name not in rh_of]
        if lonely:
            raise FileNotFoundError(f"hemi-R GIFTI missing for {lonely[:3]} under {subdir}; both hemispheres are needed.")
    for p in found:
        ents, suffix = parse_entities(p.name)
        if suffix != "bold" or ents.get("task") != task or (space and ents.get("space") != space):
            continue
        if sessions is not None and ents.get("ses") not in {str(s) for s in sessions}:
            continue
        if runs is not None and ("run" not in ents or int(ents["run"]) not in {int(r) for r in runs}):
            continue
        items.append((ents.get("ses", ""), int(ents.get("run", 0)), p, ents))
    if not items:
        where = f"space-{space} desc-preproc " if space else ""
        raise FileNotFoundError(
            f"no {where}BOLD runs for sub-{sub} task-{task} under {subdir} (pattern {pattern}"
            f"{f', runs {list(runs)}' if runs is not None else ''}); "
            + ("run fMRIPrep with this output space or check brain.space." if space else "check brain.task and brain.runs.")
        )
    items.sort(key=lambda t: (t[0], t[1]))
    out = []
    for i, (ses, run, p, ents) in enumerate(items):
        rid = "_".join(x for x in (f"ses-{ses}" if ses else "", f"task-{task}", f"run-{ents['run']}" if "run" in ents else "") if x)
        label = run if ("run" in ents and not ses) else i + 1
        out.append(BidsRun(bold=p, entities=ents, label=label, run_id=rid, bold_rh=rh_of.get(p.name)))
    if len({r.label for r in out}) != len(out):
        out = [BidsRun(r.bold, r.entities, i + 1, r.run_id, r.bold_rh) for i, r in enumerate(out)]
    return out


def read_sidecar(bold: str | Path, raw_root: str | Path | None = None) -> dict:
    """Merged JSON metadata of a BOLD file, following BIDS inheritance.

    The most specific file wins: the JSON next to the image, then the raw
    dataset's run-level, session-level, subject-level and top-level
    ``task-T_bold.json`` (matched by entity values, so derivative ``run-1``
    finds raw ``run-01``).
    """
    bold = Path(bold)
    ents, _ = parse_entities(bold.name)
    chain: list[Path] = []
    own = bold.with_name(bold.name.split(".", 1)[0] + ".json")  # .nii.gz and .func.gii
    if own.is_file():
        chain.append(own)
    if raw_root is not None:
        raw_root = Path(raw_root)
        sub = ents.get("sub")
        cands = []
        if sub:
            cands += list((raw_root / f"sub-{sub}").glob("**/*_bold.json"))
        cands += list(raw_root.glob("*_bold.json"))
        scored = []
        for c in cands:
            cents, _ = parse_entities(c.name)
            ok = True
            for k, v in cents.items():
                if k not in ents:
                    ok = False
                elif k == "run":
                    ok = ok and int(v) == int(ents[k])
                else:
                    ok = ok and v == ents[k]
            if ok and c != own:
                scored.append((len(cents), c))
        chain += [c for _, c in sorted(scored, key=lambda t: -t[0])]
    meta: dict = {}
    for c in reversed(chain):  # general first, specific overrides
        try:
            meta.update(json.loads(c.read_text()))
        except json.JSONDecodeError as err:
            raise DataError(f"{c}: invalid JSON sidecar ({err}).") from None
    meta["_sidecars"] = [str(c) for c in chain]
    return meta


def _header_tr(img) -> tuple[float, str]:
    try:
        zooms = img.header.get_zooms()
    except AttributeError:  # GIFTI: the TR lives in the sidecar only
        return 0.0, "unknown"
    if len(zooms) < 4:
        return 0.0, "unknown"
    tr = float(zooms[3])
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # noqa: BLE001  (non-NIfTI headers)
        unit = "unknown"
    if unit == "msec":
        tr /= 1000.0
    elif unit == "usec":
        tr /= 1e6
    return tr, unit


def repetition_time(bold: str | Path, raw_root: str | Path | None = None, expected: float | None = None) -> float:
    """TR in seconds from the JSON sidecars, cross-checked with the NIfTI header.

    Parameters
    ----------
    bold : path
    raw_root : path, optional
        Raw BIDS root, for inherited sidecars (``task-T_bold.json``).
    expected : float, optional
        TR given by the user (config); must agree with the sidecar.

    Raises
    ------
    ValueError
        No ``RepetitionTime`` in any sidecar, or sidecar, header and
        ``expected`` disagreeing by more than 1 ms.
    """
    bold = Path(bold)
    meta = read_sidecar(bold, raw_root)
    if "RepetitionTime" not in meta:
        raise DataError(
            f"{bold}: no RepetitionTime in its JSON sidecars ({meta['_sidecars'] or 'none found'}); "
            f"add it to task-<task>_bold.json at the dataset root (BIDS requires it)."
        )
    tr = float(meta["RepetitionTime"])
    htr, unit = _header_tr(nib.load(bold))
    # An unset NIfTI TR reads as 0 or 1 with unknown units: only a real value is checked.
    if htr > 0 and (unit in ("sec", "msec", "usec") or htr != 1.0) and abs(htr - tr) > 1e-3:
        raise DataError(
            f"TR mismatch for {bold}: the JSON sidecar ({meta['_sidecars'][0]}) says RepetitionTime={tr} s "
            f"but the NIfTI header says {htr} s; fix the header (nibabel: img.header.set_zooms) "
            "or the sidecar so that they agree."
        )
    if expected is not None and abs(float(expected) - tr) > 1e-3:
        raise DataError(
            f"brain.tr={expected} s but the BIDS sidecar of {bold} says RepetitionTime={tr} s; "
            "remove brain.tr (it is read from the sidecar) or correct it."
        )
    return tr


def read_events(path: str | Path, label: int, stimulus_column: str | None = None) -> pd.DataFrame:
    """One ``events.tsv`` as an events table.

    Parameters
    ----------
    path : path
        Tab-separated, with ``onset`` and ``duration`` columns; ``n/a`` is missing.
    label : int
        Run label written in the ``run`` column.
    stimulus_column : str, optional
        Column naming the stimulus; default ``trial_type``, else ``stim_file``.

    Returns
    -------
    DataFrame with columns run, onset, duration, stimulus and the file's own columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: events file not found; BIDS puts it next to the BOLD run (…_events.tsv).")
    ev = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    missing = {"onset", "duration"} - set(ev.columns)
    if missing:
        raise DataError(f"{path}: events.tsv lacks the required column(s) {sorted(missing)}; columns are {list(ev.columns)}.")
    col = stimulus_column or next((c for c in ("trial_type", "stim_file") if c in ev.columns), None)
    if col is None or col not in ev.columns:
        raise DataError(
            f"{path}: no stimulus column {stimulus_column or 'trial_type/stim_file'!r}; columns are {list(ev.columns)}."
        )
    out = ev.copy()
    out.insert(0, "stimulus", ev[col].astype(str))
    out.insert(0, "run", label)
    cols = ["run", "onset", "duration", "stimulus"] + [c for c in out.columns if c not in ("run", "onset", "duration", "stimulus")]
    return out[cols]


def _events_path(run: BidsRun, raw_root: Path | None) -> Path | None:
    ents = run.entities
    sub, task = ents["sub"], ents["task"]
    search = [run.bold.parent]
    if raw_root is not None:
        search.insert(0, raw_root / f"sub-{sub}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func")
    for d in search:
        for c in sorted(d.glob(f"sub-{sub}*task-{task}*_events.tsv")):
            cents, _ = parse_entities(c.name)
            if cents.get("ses") == ents.get("ses") and (
                ("run" not in cents and "run" not in ents) or ("run" in cents and "run" in ents and int(cents["run"]) == int(ents["run"]))
            ):
                return c
    if raw_root is not None:  # top-level (inherited) events, as in Movie10
        top = raw_root / f"task-{task}_events.tsv"
        if top.is_file():
            return top
    return None


def select_confounds(path: str | Path, columns: Sequence[str], n_volumes: int | None = None) -> np.ndarray:
    """Columns of an fMRIPrep ``desc-confounds_timeseries.tsv``.

    ``n/a`` (first row of derivative columns) becomes 0.

    Returns
    -------
    ndarray of shape (n_volumes, len(columns)), float64
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: confounds file not found; fMRIPrep writes it next to the preprocessed BOLD "
            "(…_desc-confounds_timeseries.tsv)."
        )
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: confound column(s) {missing} not found; available: {list(table.columns)[:30]}.")
    conf = table[list(columns)].to_numpy(dtype=np.float64)
    conf = np.nan_to_num(conf, nan=0.0)
    if n_volumes is not None and conf.shape[0] != n_volumes:
        raise DataError(f"{path} has {conf.shape[0]} rows but the BOLD run has {n_volumes} volumes; they must match.")
    return conf


def load_bids(
    root: str | Path,
    subject: str,
    task: str,
    *,
    derivatives: str | Path | None = None,
    space: str | None = "MNI152NLin2009cAsym",
    runs: Sequence[int] | None = None,
    sessions: Sequence[str] | None = None,
    mask: str | Path | None = None,
    confounds: Sequence[str] | None = None,
    confounds_strategy: Sequence[str] | None = None,
    tr: float | None = None,
    detrend: bool = True,
    standardize: bool = True,
    high_pass: float | None = None,
    truncate_after_events: float | None = None,
    stimulus_column: str | None = None,
    require_events: bool = False,
) -> tuple[Recording, pd.DataFrame]:
    """Load one subject's runs of one task from a BIDS dataset.

    Parameters
    ----------
    root : path
        Raw BIDS dataset (sidecars, events.tsv).
    subject, task : str
    derivatives : path, optional
        fMRIPrep output folder; BOLD, masks and confounds are read there.
        Without it the raw ``_bold.nii.gz`` files are loaded (``space`` ignored).
    space : str
        fMRIPrep output space: a volume space (``MNI152NLin2009cAsym``) or a
        surface (``fsaverage``, ``fsaverage6``, ...; GIFTI, no mask, columns are
        vertices with the left hemisphere first), or ``fsLR`` (CIFTI dtseries;
        columns are the grayordinates, ``meta["structures"]`` gives their ranges).
    runs, sessions : optional
        Subset of run numbers / session labels.
    mask : path, optional
        3-D mask on the BOLD grid. Default: intersection of the fMRIPrep
        ``desc-brain_mask`` of every run (required for raw data).
    confounds : sequence of str, optional
        Columns of the confounds TSV to regress out.
    confounds_strategy : sequence of str, optional
        Instead of ``confounds``: a :func:`nilearn.interfaces.fmriprep.load_confounds`
        strategy, e.g. ``("motion", "wm_csf")``.
    tr : float, optional
        Expected TR; the sidecar value is used and must agree.
    detrend, standardize : bool
        Per-run linear detrending and z-scoring.
    high_pass : float, optional
        High-pass cutoff in Hz (nilearn.signal.clean).
    truncate_after_events : float, optional
        Keep only ``floor((last onset + duration + pad) / TR)`` volumes of each run
        (Brain-guided_LLM uses pad = 10 s for ds003076).
    stimulus_column : str, optional
        events.tsv column naming the stimulus (default trial_type, else stim_file).
    require_events : bool
        Raise if a run has no events.tsv (ds004323 ships none).

    Returns
    -------
    recording : Recording
        ``runs`` holds the run labels (BIDS run numbers), ``run_ids`` their names.
    events : DataFrame
        Columns run, onset, duration, stimulus + the events.tsv columns
        (empty when no events.tsv exists).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: BIDS dataset folder not found; check the data root.")
    if not (root / "dataset_description.json").is_file():
        raise FileNotFoundError(
            f"{root / 'dataset_description.json'} not found: {root} is not the root of a BIDS dataset "
            "(point the data root at the folder holding dataset_description.json)."
        )
    if confounds and confounds_strategy:
        raise DataError("give either confounds (column names) or confounds_strategy (nilearn load_confounds), not both.")
    src = Path(derivatives) if derivatives is not None else root
    if derivatives is not None and not src.is_dir():
        raise FileNotFoundError(f"{src}: fMRIPrep derivatives folder not found; check brain.derivatives.")
    found = find_bold_runs(src, subject, task, space=space if derivatives is not None else None, runs=runs, sessions=sessions)
    if runs is not None:
        missing = sorted({int(r) for r in runs} - {int(r.entities.get("run", -1)) for r in found})
        if missing:
            raise FileNotFoundError(
                f"run(s) {missing} of sub-{_sub(subject)} task-{task} not found under {src}; "
                f"available runs: {[r.entities.get('run') for r in found]}."
            )
    if (confounds or confounds_strategy) and derivatives is None:
        raise DataError("confounds need fMRIPrep derivatives (…_desc-confounds_timeseries.tsv); set derivatives=.")

    # ---------------------------------------------------------------- mask
    cifti = found[0].bold.name.endswith(".dtseries.nii")
    surface = found[0].surface or cifti
    if surface:
        if mask is not None:
            raise DataError(f"space={space!r} is a surface: vertices are not masked by a volume; remove mask=.")
        mask_img, mask_arr = None, None
    elif mask is not None:
        mask = Path(mask)
        if not mask.is_file():
            raise FileNotFoundError(f"{mask}: mask file not found; check brain.mask.")
        mask_img = nib.load(mask)
    elif derivatives is not None:
        mpaths = [r.sibling("desc-brain_mask.nii.gz") for r in found]
        for m in mpaths:
            if not m.is_file():
                raise FileNotFoundError(f"{m}: fMRIPrep brain mask not found (written next to the preproc BOLD); pass mask=.")
        mask_img = masking.intersect_masks([str(m) for m in mpaths], threshold=1, connected=False) if len(mpaths) > 1 else nib.load(mpaths[0])
    else:
        raise DataError(
            "raw BIDS data have no brain mask: pass mask= (a 3-D NIfTI on the BOLD grid) "
            "or load fMRIPrep derivatives with derivatives=."
        )
    if not surface:
        mask_arr = np.asarray(mask_img.dataobj) != 0
        if mask_arr.ndim != 3 or not mask_arr.any():
            raise DataError(f"mask must be a non-empty 3-D image, got shape {mask_arr.shape} with {int(mask_arr.sum())} voxels.")
        mask_img = nib.Nifti1Image(mask_arr.astype(np.uint8), mask_img.affine)

    conf_frames = None
    if confounds_strategy:
        from nilearn.interfaces.fmriprep import load_confounds

        conf_frames, _ = load_confounds([str(r.bold) for r in found], strategy=tuple(confounds_strategy))

    blocks, labels, event_tables, trs, run_meta, run_sd = [], [], [], [], [], []
    n_vertices: tuple = ()
    for i, run in enumerate(found):
        run_tr = repetition_time(run.bold, root, expected=tr if tr is not None else (trs[0] if trs else None))
        trs.append(run_tr)
        if cifti:
            cimg = nib.load(run.bold)
            series, models = cimg.header.get_axis(0), cimg.header.get_axis(1)
            step = float(series.step) * {"SECOND": 1.0, "MILLISECOND": 1e-3}.get(getattr(series, "unit", "SECOND"), 1.0)
            if abs(step - run_tr) > 1e-3:
                raise DataError(
                    f"TR mismatch for {run.bold}: the sidecar says RepetitionTime={run_tr} s but the CIFTI series step "
                    f"is {step} s; fix one of them."
                )
            structures = [(str(name), int(sl.start or 0), int(sl.stop if sl.stop is not None else len(models)))
                          for name, sl, _ in models.iter_structures()]
            nv = tuple(stop - start for name, start, stop in structures if name.endswith(("CORTEX_LEFT", "CORTEX_RIGHT")))
            if n_vertices and nv != n_vertices:
                raise DataError(f"{run.bold.name}: {nv} cortical grayordinates per hemisphere, other runs have {n_vertices}.")
            n_vertices = nv
            surf = np.asarray(cimg.dataobj, dtype=np.float32)
            img = None
        elif surface:
            hemis = [np.stack([d.data for d in nib.load(h).darrays]).astype(np.float32) for h in (run.bold, run.bold_rh)]
            if hemis[0].shape[0] != hemis[1].shape[0]:
                raise DataError(f"{run.bold.name} has {hemis[0].shape[0]} TRs but {run.bold_rh.name} has {hemis[1].shape[0]}.")
            nv = (hemis[0].shape[1], hemis[1].shape[1])
            if n_vertices and nv != n_vertices:
                raise DataError(f"{run.bold.name}: {nv} vertices per hemisphere, other runs have {n_vertices}.")
            n_vertices = nv
            surf = np.concatenate(hemis, axis=1)
            img = None
        else:
            img = nib.load(run.bold)
            if img.ndim != 4:
                raise DataError(f"{run.bold}: expected a 4-D BOLD image, got shape {img.shape}.")
        if not surface and (img.shape[:3] != mask_arr.shape or not np.allclose(img.affine, mask_img.affine, atol=1e-3)):
            raise DataError(
                f"the mask (shape {mask_arr.shape}) does not match the grid of {run.bold} (shape {img.shape[:3]}); "
                "use a mask in the same space (nilearn.image.resample_to_img(mask, bold, interpolation='nearest'))."
            )
        ev_path = _events_path(run, root)
        if ev_path is None:
            if require_events:
                raise FileNotFoundError(
                    f"no events.tsv for {run.bold.name} in {root}; BIDS expects …_events.tsv next to the raw run."
                )
            ev = None
        else:
            ev = read_events(ev_path, run.label, stimulus_column)
        n_vol = surf.shape[0] if surface else img.shape[3]
        n = n_vol
        if truncate_after_events is not None and ev is not None and len(ev):
            end = float((ev["onset"] + ev["duration"].fillna(0)).max()) + truncate_after_events
            n = min(n, int(np.floor(end / run_tr)))
        data = surf[:n] if surface else masking.apply_mask(img, mask_img)[:n].astype(np.float32)  # runs kept as float32; cleaned in float64 one by one
        conf = None
        if confounds:
            conf = select_confounds(run.sibling("desc-confounds_timeseries.tsv"), confounds, n_vol)[:n]
        elif conf_frames is not None:
            conf = np.asarray(conf_frames[i], dtype=np.float64)[:n]
        blocks.append((data, conf))
        run_sd.append(data.std(0, dtype=np.float64))
        labels.append(np.full(n, run.label))
        if ev is not None:
            event_tables.append(ev)
        run_meta.append(dict(bold=str(run.bold), events=str(ev_path) if ev_path else None, n_trs=n, run_id=run.run_id))
    if len(set(np.round(trs, 6))) > 1:
        raise DataError(f"runs of sub-{_sub(subject)} task-{task} have different TRs {sorted(set(trs))}; load them separately.")
    run_tr = trs[0]

    keep, message = varying_voxels(run_sd, f"sub-{_sub(subject)} task-{task}",
                                   run_names=[r.bold.name for r in found], unit="vertices" if surface else "mask voxels")
    dropped = int((~keep).sum())
    if message:
        warnings.warn(message, stacklevel=2)
        if not surface:
            mask_img = mask_of_kept(mask_arr, keep, mask_img.affine)
    cleaned = []
    while blocks:
        data, conf = blocks.pop(0)
        data = data[:, keep].astype(np.float64)
        if detrend or standardize or conf is not None or high_pass:
            data = signal.clean(
                data,
                confounds=conf,
                detrend=detrend,
                standardize="zscore_sample" if standardize else None,
                high_pass=high_pass,
                t_r=run_tr,
            )
        cleaned.append(data.astype(np.float32))
    events = (
        pd.concat(event_tables, ignore_index=True)
        if event_tables
        else pd.DataFrame(columns=["run", "onset", "duration", "stimulus"])
    )
    rec = Recording(
        data=np.concatenate(cleaned, axis=0),
        runs=np.concatenate(labels),
        tr=float(run_tr),
        mask_img=mask_img,
        subject=_sub(subject),
        dropped_voxels=dropped,
        meta=dict(
            loader="bids",
            task=task,
            space=space if derivatives is not None else "native",
            runs=run_meta,
            confounds=list(confounds) if confounds else (list(confounds_strategy) if confounds_strategy else None),
            **({"kept_vertices": np.flatnonzero(keep)} if surface else {}),
            **({"structures": structures} if cifti else {}),
        ),
        space=(f"{space}_den-{found[0].entities['den']}" if cifti and "den" in found[0].entities else str(space)) if surface else "volume",
        n_vertices=tuple(n_vertices),
        run_ids=tuple(r.run_id for r in found),
    )
    return rec, events
