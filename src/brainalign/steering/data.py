"""Files the ds003076 study needs, and a check that names each missing one (for ``brainalign validate``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["SEED002_SUBJECTS", "expected_files", "missing_files", "describe_missing"]

SEED002_SUBJECTS = ("sub-1001", "sub-1004", "sub-1008", "sub-1014", "sub-1017", "sub-1019", "sub-1022", "sub-1027",
                    "sub-1030", "sub-1034")
BETAS = "derivatives/glmsingle/top-10%/all_extracted_beta_{task}/{subject}/{subject}.mat"


def expected_files(root: str | Path, subjects: Sequence[str] = SEED002_SUBJECTS,
                   betas: str = BETAS) -> dict[Path, str]:
    """Every input file of the study under ``root``, with what it is for."""
    root = Path(root)
    out = {root / "neuroimaging_info/task_items.pkl": "the 72 items (premises, conclusion, trial type) per run",
           root / "neuroimaging_info/events.pkl": "per-subject behaviour (accuracy, RT): intervention sets"}
    for sub in subjects:
        for task in ("syllogism", "transitive"):
            out[root / betas.format(task=task, subject=sub)] = (
                f"GLMsingle betas of {sub}, top-10 % voxels of the {task} t-map (key all_voxels, 72 x n_vox)")
    return out


def missing_files(root: str | Path, subjects: Sequence[str] = SEED002_SUBJECTS, betas: str = BETAS) -> dict[Path, str]:
    """The subset of :func:`expected_files` that does not exist."""
    return {p: why for p, why in expected_files(root, subjects, betas).items() if not p.is_file()}


def describe_missing(root: str | Path, subjects: Sequence[str] = SEED002_SUBJECTS, betas: str = BETAS) -> str:
    """Human-readable report: empty string when everything is there."""
    miss = missing_files(root, subjects, betas)
    if not miss:
        return ""
    lines = [f"{len(miss)} of {len(expected_files(root, subjects, betas))} ds003076 input files are missing under "
             f"{Path(root)} (OpenNeuro ds003076 + GLMsingle betas, methods.md §3.1):"]
    lines += [f"  - {p}: {why}" for p, why in miss.items()]
    return "\n".join(lines)
