"""Results of one experiment: tidy tables, the brain mask, and the manifest.

On disk (``Results.save(dir)``)::

    scores.csv / scores.parquet   tidy run-level scores (one row per space × held-out run × metric)
    voxel_scores.parquet          r, p, q, significant, alpha per space × voxel (all held-out TRs)
    <table>.csv                   spaces, comparisons, layers, prompt_gain, controls, partition(_voxels) and,
                                  with brain.rois: roi_scores (space, roi, run, value), roi_comparisons,
                                  roi_layers, roi_peaks, roi_gain, roi_hierarchy; roi_ceilings (roi, ceiling
                                  [, ceiling_low, ceiling_high], in the ROI score's unit) when a ceiling was computed
    mask.nii.gz                   maps voxel indices back into the volume (volume data)
    vertices.npy                  surface data: the mesh vertex of every column (left hemisphere first); the space
                                  name and the vertices per hemisphere are in manifest.json ``data``
    config.yaml                   the experiment, as run
    manifest.json                 config hash, input hashes, package versions, seed, timings
"""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from brainalign import __version__
from brainalign._utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from brainalign.config import Experiment

__all__ = ["Results", "file_sha256", "package_versions"]

CSV_TABLES = ("spaces", "comparisons", "layers", "prompt_gain", "partition", "partition_voxels", "controls",
              "roi_scores", "roi_comparisons", "roi_layers", "roi_peaks", "roi_gain", "roi_hierarchy",
              "group_layers", "subject_run_scores", "subject_comparisons", "subject_layers", "subject_prompt_gain",
              "subject_controls", "subject_roi_scores", "roi_ceilings",
              "layer_medians", "best_layer", "ceiling", "normalised_scores", "normalised_summary",
              "partition_dominance", "partition_vif", "partition_banded", "partition_controls",
              "partition_control_runs", "coupling", "coupling_similarity",
              "group_scores", "group_comparisons", "group_prompt_gain", "group_roi_scores", "group_roi_comparisons",
              "group_best_layer", "equivalence", "subject_equivalence",
              "partition_rois", "partition_asymmetry", "partition_roi_asymmetry", "subject_partition",
              "subject_partition_rois", "roi_prompts", "roi_normalised", "arm_scores", "arm_comparisons",
              "subject_arm_comparisons", "subject_coupling", "subject_roi_normalised", "group_roi_normalised",
              "rl_baselines")
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "himalaya", "nilearn", "nibabel", "torch",
            "transformers", "pydantic", "matplotlib")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in a process (movie files are hashed for every
    subject's manifest otherwise)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "brainalign": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class Results:
    """Everything an experiment produced.

    Attributes
    ----------
    experiment : Experiment
    tables : dict of DataFrame
        ``run_scores`` (space, run, mean_r, median_r, n_voxels), ``voxel_scores``
        (space, voxel, r), ``spaces``, ``comparisons``, ``layers`` and, when an
        unprompted reference exists, ``prompt_gain``.
    mask_img : Nifti1Image
        Column order of the voxel tables (volume data; None on a surface).
    surface : dict or None
        Surface data only: ``space`` (e.g. ``"fsaverage5"``), ``n_vertices``
        (left, right) and ``vertices``, an int array of shape (n_voxels,) giving
        the mesh vertex of every column (left hemisphere first, right ones
        offset by ``n_vertices[0]``).
    manifest : dict
    """

    def __init__(self, experiment, tables, mask_img=None, manifest=None, recording=None,
                 inputs=None, model_meta=None, timings=None, feature_cache=None, surface=None):
        self.experiment = experiment
        self.tables = tables
        self.mask_img = mask_img if mask_img is not None else (recording.mask_img if recording else None)
        self.surface = surface if surface is not None else _surface_of(recording)
        if manifest is None:
            manifest = self._make_manifest(recording, inputs or {}, model_meta or {}, timings or {},
                                           feature_cache or {})
        self.manifest = manifest

    def _make_manifest(self, recording, inputs, model_meta, timings, feature_cache) -> dict:
        exp = self.experiment
        return dict(
            brainalign_version=__version__,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            experiment=exp.name,
            seed=exp.seed,
            config_hash=exp.config_hash(),
            config=exp.model_dump(mode="json"),
            inputs={k: dict(path=str(p), sha256=file_sha256(p)) for k, p in inputs.items()},
            data=dict(
                n_trs=int(recording.data.shape[0]) if recording else None,
                n_voxels=int(recording.n_voxels) if recording else None,
                dropped_voxels=int(recording.dropped_voxels) if recording else None,
                tr=float(recording.tr) if recording else None,
                subject=recording.subject if recording else None,
                # surface data only (volumes keep their mask.nii.gz): what the report needs to redraw the mesh
                **(dict(space=self.surface["space"], n_vertices=list(self.surface["n_vertices"]))
                   if self.surface else {}),
            ),
            models=model_meta,
            feature_cache=feature_cache,
            versions=package_versions(),
            platform=platform.platform(),
            timings_s={k: round(v, 3) for k, v in timings.items()},
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy long table: subject, space, kind, model, prompt, layer, depth, run, metric, value."""
        rs = self.tables["run_scores"]
        if "subject" not in rs.columns:
            subject = self.manifest.get("data", {}).get("subject") if self.manifest else None
            rs = rs.assign(subject=str(subject or self.experiment.brain.subject))
        long = rs.melt(id_vars=["subject", "space", "run"], value_vars=["mean_r", "median_r"], var_name="metric",
                       value_name="value")
        info = self.tables["spaces"][["space", "kind", "model", "prompt", "layer", "depth"]].drop_duplicates("space")
        long = long.merge(info, on="space", how="left")
        cols = ["subject", "space", "kind", "model", "prompt", "layer", "depth", "run", "metric", "value"]
        return long[cols].sort_values(["subject", "space", "run", "metric"], ignore_index=True)

    def save(self, out_dir: str | Path) -> Path:
        """Write every table, the mask, the config and the manifest (each file atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        frame = self.to_frame()
        atomic_write_text(out / "scores.csv", frame.to_csv(index=False))
        atomic_write_bytes(out / "scores.parquet", _parquet_bytes(frame))
        if "voxel_scores" in self.tables:  # absent from group results (voxels differ between subjects)
            atomic_write_bytes(out / "voxel_scores.parquet", _parquet_bytes(self.tables["voxel_scores"]))
        atomic_write_bytes(out / "run_scores.parquet", _parquet_bytes(self.tables["run_scores"]))
        for name in CSV_TABLES:
            if name in self.tables:
                atomic_write_text(out / f"{name}.csv", self.tables[name].to_csv(index=False))
        if self.mask_img is not None:
            atomic_write_bytes(out / "mask.nii.gz", _nifti_bytes(self.mask_img))
        if self.surface is not None:
            atomic_write_bytes(out / "vertices.npy", _npy_bytes(self.surface["vertices"]))
        atomic_write_text(out / "config.yaml", self.experiment.to_yaml())
        atomic_write_json(out / "manifest.json", self.manifest)
        return out

    @classmethod
    def load(cls, out_dir: str | Path) -> Results:
        """Read what :meth:`save` wrote."""
        out = Path(out_dir)
        need = ["manifest.json", "config.yaml", "run_scores.parquet", "spaces.csv"]
        missing = [n for n in need if not (out / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{out} is not a brainalign results folder: missing {missing}.")
        exp = Experiment.model_validate(yaml.safe_load((out / "config.yaml").read_text()))
        tables = dict(run_scores=pd.read_parquet(out / "run_scores.parquet"))
        if (out / "voxel_scores.parquet").is_file():
            tables["voxel_scores"] = pd.read_parquet(out / "voxel_scores.parquet")
        for name in CSV_TABLES:
            if (out / name).with_suffix(".csv").is_file():
                tables[name] = pd.read_csv(out / f"{name}.csv", keep_default_na=True)
        mask = nib.load(out / "mask.nii.gz") if (out / "mask.nii.gz").is_file() else None
        if mask is not None:
            mask = nib.Nifti1Image(np.asarray(mask.dataobj), mask.affine)
        manifest = json.loads((out / "manifest.json").read_text())
        data = manifest.get("data", {})
        surface = None
        if data.get("n_vertices"):
            n_vertices = tuple(int(n) for n in data["n_vertices"])
            vertices = (np.load(out / "vertices.npy", allow_pickle=False) if (out / "vertices.npy").is_file()
                        else np.arange(sum(n_vertices)))
            surface = dict(space=str(data.get("space")), n_vertices=n_vertices, vertices=vertices.astype(np.int64))
        return cls(exp, tables, mask_img=mask, manifest=manifest, surface=surface)


def _surface_of(recording) -> dict | None:
    """Space, vertices per hemisphere and the vertex of every column of a surface recording (None for volumes)."""
    if recording is None or getattr(recording, "mask_img", None) is not None:
        return None
    space = getattr(recording, "space", "volume")
    n_vertices = tuple(int(n) for n in getattr(recording, "n_vertices", ()) or ())
    if space == "volume" or not n_vertices:
        return None
    kept = (recording.meta or {}).get("kept_vertices")
    vertices = np.arange(recording.n_voxels) if kept is None else np.asarray(kept, dtype=np.int64)
    if vertices.shape != (recording.n_voxels,):
        raise ValueError(f"recording.meta['kept_vertices'] has shape {vertices.shape} but the recording has "
                         f"{recording.n_voxels} columns; give the mesh vertex of every column.")
    return dict(space=str(space), n_vertices=n_vertices, vertices=vertices.astype(np.int64))


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _nifti_bytes(img: nib.Nifti1Image) -> bytes:
    import gzip

    raw = nib.Nifti1Image(np.asarray(img.dataobj), img.affine).to_bytes()
    return gzip.compress(raw, mtime=0)
