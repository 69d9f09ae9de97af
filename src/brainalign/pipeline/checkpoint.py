"""Resumable encoding: one checkpoint per (feature space, outer fold).

A run keeps its work in ``<parent>/.<OUT name>.work/`` until the results are
complete. ``config_hash`` there records which experiment the work belongs to;
``checkpoints/`` holds one ``.npz`` per finished (space, fold) fit with a
sidecar carrying its sha256 (``checkpoints/partition/`` the same per (partition, fold), see
:meth:`EncodingCheckpoint.for_stage`): entries of :class:`brainalign._utils.npz_store.NpzStore`,
the store of ``RidgeCV(store=...)`` too. Entries are written atomically, so ``kill -9``
loses at most the fit in flight; a corrupt entry is warned about and refitted.
Arrays are stored exactly (no pickle), so a resumed run gives byte-identical
tables. What is particular to a pipeline run stays here: the work folder, the
resume/force rules, and the inputs digest checked per entry.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from brainalign._utils.atomic import atomic_write_text
from brainalign._utils.errors import ConfigError
from brainalign._utils.faults import stall_point
from brainalign._utils.npz_store import NpzStore, inputs_digest

__all__ = ["EncodingCheckpoint", "work_dir", "prepare_work_dir", "ResumeError", "stall_point"]


class ResumeError(ConfigError):
    """The working folder cannot be continued (different config, nothing to resume...)."""


def work_dir(out: str | Path) -> Path:
    """The working folder of a run writing ``out`` (a hidden sibling that survives crashes)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.work"


def prepare_work_dir(out: str | Path, config_hash: str, *, resume: bool, force: bool) -> Path:
    """Create or reopen the working folder of ``out``.

    Parameters
    ----------
    out : path
        The results folder.
    config_hash : str
        ``Experiment.config_hash()`` of the run.
    resume : bool
        Continue an interrupted run (its config hash must equal ``config_hash``).
    force : bool
        Discard any earlier work and start over.

    Raises
    ------
    ResumeError
        When resuming work of a different config, or when earlier work exists
        and neither ``resume`` nor ``force`` was given.
    """
    import shutil

    out = Path(out)
    wd = work_dir(out)
    stamp = wd / "config_hash"
    if force and not resume and wd.exists():
        shutil.rmtree(wd)
    if wd.exists():
        old = stamp.read_text().strip() if stamp.is_file() else None
        if not resume:
            raise ResumeError(
                f"an interrupted run left its work in {wd}; pass --resume to continue it (same config), or "
                "--force to discard it and start over."
            )
        if old != config_hash:
            raise ResumeError(
                f"cannot resume: the work in {wd} belongs to a different config (hash {str(old)[:12]}..., this "
                f"config {config_hash[:12]}...); undo the config change, or pass --force instead of --resume to "
                "start over."
            )
    elif resume:
        done = out / "manifest.json"
        if done.is_file():
            try:
                old = json.loads(done.read_text()).get("config_hash")
            except ValueError:
                old = None
            if old != config_hash:
                raise ResumeError(
                    f"cannot resume: {out} holds results of a different config (hash {str(old)[:12]}..., this config "
                    f"{config_hash[:12]}...); choose another --out, or pass --force to replace them."
                )
    wd.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, config_hash + "\n")
    return wd


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class EncodingCheckpoint:
    """Finished (space, fold) fits of one run.

    Parameters
    ----------
    root : path
        Folder of the entries (created on first write).

    Attributes
    ----------
    loaded, fitted : list of (space, fold)
        What was read back and what was computed during this run.
    """

    def __init__(self, root: str | Path, stage: str = "encoding", unit: str = "(space, fold)") -> None:
        self.root = Path(root)
        self.stage = stage
        self.unit = unit
        self.loaded: list[tuple[str, int]] = []
        self.fitted: list[tuple[str, int]] = []
        self._stages: dict[str, EncodingCheckpoint] = {}
        self._entries = NpzStore(self.root, what=f"{stage} checkpoint", redo="refitting")

    def for_stage(self, stage: str, unit: str) -> "EncodingCheckpoint":
        """The checkpoint of another stage of the same run (entries in the subfolder ``stage``; one object per
        stage, so its ``loaded``/``fitted`` lists and :meth:`summary` cover the whole run)."""
        if stage not in self._stages:
            self._stages[stage] = EncodingCheckpoint(self.root / stage, stage=stage, unit=unit)
        return self._stages[stage]

    def _name(self, space: str, fold: int) -> str:
        digest = hashlib.sha256(space.encode()).hexdigest()[:10]
        return f"fold{fold:03d}-{_safe(space)}-{digest}"

    def _paths(self, space: str, fold: int) -> tuple[Path, Path]:
        npz = self._entries.path(self._name(space, fold))
        return npz, NpzStore.sidecar(npz)

    def get(self, space: str, fold: int) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or corrupt (corrupt entries are warned about)."""
        got = self._entries.get(self._name(space, fold), stacklevel=3)
        if got is None:
            return None
        if str(got.pop("_space", space)) != space:  # the file name holds only 40 bits of the name's hash
            warnings.warn(f"{self.stage} checkpoint {self._paths(space, fold)[0]} holds another {self.unit} fit; "
                          "refitting it.", stacklevel=2)
            return None
        return got

    def put(self, space: str, fold: int, arrays: dict[str, np.ndarray]) -> None:
        self._entries.put(self._name(space, fold), dict(arrays, _space=np.array(space)))

    def discard(self, space: str, fold: int) -> None:
        """Delete the entry of (space, fold), if any (what the pipeline needed of it is stored elsewhere: a
        space's statistics entry). The checksum goes first, so a half-deleted entry reads as absent."""
        npz, side = self._paths(space, fold)
        side.unlink(missing_ok=True)
        npz.unlink(missing_ok=True)

    def lookup(self, space: str, fold: int, digest: str) -> dict[str, np.ndarray] | None:
        """The stored arrays of (space, fold) if they were fitted on inputs with this ``digest``
        (:func:`inputs_digest`), else None (an entry fitted on other inputs is warned about)."""
        got = self.get(space, fold)
        if got is None:
            return None
        stored = got.pop("_inputs", None)
        if stored is None or str(stored) == digest:
            self.loaded.append((space, fold))
            return got
        warnings.warn(f"{self.stage} checkpoint of {space!r}, fold {fold} was fitted on other inputs (features or "
                      "data changed since the interrupted run); refitting it.", stacklevel=2)
        return None

    def store(self, space: str, fold: int, arrays: dict[str, np.ndarray], digest: str) -> None:
        """Store a finished fit (atomically) and count it as fitted in this run."""
        self.put(space, fold, dict(arrays, _inputs=np.array(digest)))
        self.fitted.append((space, fold))
        stall_point(f"{self.stage}-fit")

    def fit_or_load(self, space: str, fold: int, fit: Callable[[], dict[str, np.ndarray]],
                    inputs: tuple = ()) -> dict[str, np.ndarray]:
        """The arrays of (space, fold): read back when finished earlier, else ``fit()`` and stored.

        ``inputs`` (arrays such as X, Y and the fold's indices) are hashed into the entry: a stored fit is reused
        only for the very same inputs (a model or data file that changed between the kill and the resume is
        refitted, with a warning).
        """
        digest = inputs_digest(*inputs)
        got = self.lookup(space, fold, digest)
        if got is not None:
            return got
        arrays = fit()
        self.store(space, fold, arrays, digest)
        return arrays

    @staticmethod
    def digest(*arrays) -> str:
        """:func:`inputs_digest`, to hash a large shared input once and pass the string in ``inputs``."""
        return inputs_digest(*arrays)

    def summary(self) -> str:
        return (f"{self.stage} checkpoints: {len(self.loaded)} {self.unit} fits loaded from {self.root}, "
                f"{len(self.fitted)} fitted")
