"""Planted-truth brains: data whose answer is known, to test the pipeline.

Every generator is seeded and returns the ground truth it planted, so tests
can check that an effect that exists is found and one that does not is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PlantedEncoding",
    "planted_encoding",
    "PlantedPartition",
    "planted_partition",
    "PlantedSubjects",
    "planted_subjects",
    "PlantedLayers",
    "planted_layers",
    "PlantedHierarchy",
    "planted_hierarchy",
]


@dataclass
class PlantedEncoding:
    """A feature space, the responses it drives, and what was planted.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        Features that drive the informative voxels.
    X_null : ndarray of shape (n_samples, n_features), float32
        Independent features of the same size and autocorrelation (a null space).
    Y : ndarray of shape (n_samples, n_voxels), float32
    runs : ndarray of shape (n_samples,), int
    informative : ndarray of shape (n_voxels,), bool
        True where the voxel depends on ``X``.
    r2_true : ndarray of shape (n_voxels,)
        Planted fraction of variance explained by ``X`` (0 for null voxels).
    """

    X: np.ndarray
    X_null: np.ndarray
    Y: np.ndarray
    runs: np.ndarray
    informative: np.ndarray
    r2_true: np.ndarray


def _ar1(rng: np.random.Generator, shape: tuple[int, int], runs: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance AR(1) noise restarted at every run boundary."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    scale = np.sqrt(1.0 - phi**2)
    for t in range(shape[0]):
        if t == 0 or runs[t] != runs[t - 1]:
            out[t] = e[t]
        else:
            out[t] = phi * out[t - 1] + scale * e[t]
    return out


def planted_encoding(
    n_runs: int = 6,
    n_samples_per_run: int = 100,
    n_features: int = 20,
    n_voxels: int = 200,
    informative_fraction: float = 0.5,
    r2: float = 0.3,
    autocorrelation: float = 0.3,
    seed: int = 0,
) -> PlantedEncoding:
    """Voxels that are a noisy linear readout of ``X``, and null voxels that are not.

    Parameters
    ----------
    n_runs, n_samples_per_run : int
        Design: ``n_runs`` contiguous runs.
    n_features : int
        Dimensionality of ``X`` and ``X_null``.
    n_voxels : int
    informative_fraction : float in [0, 1]
        Share of voxels driven by ``X``; the rest are pure AR(1) noise.
    r2 : float in (0, 1)
        Planted variance fraction explained by ``X`` in informative voxels.
    autocorrelation : float in [0, 1)
        AR(1) coefficient of features and noise within runs.
    seed : int

    Returns
    -------
    PlantedEncoding
    """
    if not 0 < r2 < 1:
        raise ValueError(f"r2 must be in (0, 1), got {r2}.")
    if not 0 <= informative_fraction <= 1:
        raise ValueError(f"informative_fraction must be in [0, 1], got {informative_fraction}.")
    rng = np.random.default_rng(seed)
    n = n_runs * n_samples_per_run
    runs = np.repeat(np.arange(n_runs), n_samples_per_run)
    X = _ar1(rng, (n, n_features), runs, autocorrelation)
    X_null = _ar1(rng, (n, n_features), runs, autocorrelation)
    informative = np.zeros(n_voxels, dtype=bool)
    informative[: int(round(informative_fraction * n_voxels))] = True
    rng.shuffle(informative)
    W = rng.standard_normal((n_features, n_voxels))
    signal = X @ W
    signal /= signal.std(0, keepdims=True)
    noise = _ar1(rng, (n, n_voxels), runs, autocorrelation)
    noise /= noise.std(0, keepdims=True)
    r2_true = np.where(informative, r2, 0.0)
    Y = np.sqrt(r2_true) * signal + np.sqrt(1.0 - r2_true) * noise
    return PlantedEncoding(
        X=X.astype(np.float32),
        X_null=X_null.astype(np.float32),
        Y=Y.astype(np.float32),
        runs=runs,
        informative=informative,
        r2_true=r2_true,
    )


# --------------------------------------------------------------------------- variance partitioning
def _part_name(members: tuple[str, ...], n_spaces: int) -> str:
    """Column name of a set-theoretic part, as :func:`brainalign.analysis.partition.variance_partition` writes it."""
    if len(members) == 1:
        return f"unique_{members[0]}"
    if n_spaces == 2:
        return "shared"
    return "shared_" + "_".join(members)


@dataclass
class PlantedPartition:
    """Feature spaces built from shared and unique latent blocks, and voxels with known fractions.

    Attributes
    ----------
    spaces : dict of str -> ndarray of shape (n_samples, n_features), float32
        Each space is a random orthogonal mixture of the latent blocks it contains.
    Y : ndarray of shape (n_samples, n_voxels), float32
    runs : ndarray of shape (n_samples,), int
    fractions : dict of str -> ndarray of shape (n_voxels,)
        Planted variance fraction of every set-theoretic part, keyed by the
        column name ``variance_partition`` uses (``unique_<name>``, ``shared``
        for two spaces, ``shared_<a>_<b>[_<c>]`` for three).
    null : ndarray of shape (n_voxels,), bool
        Voxels with no planted signal.
    """

    spaces: dict
    Y: np.ndarray
    runs: np.ndarray
    fractions: dict
    null: np.ndarray


def planted_partition(
    names: tuple[str, ...] = ("a", "b"),
    n_runs: int = 8,
    n_samples_per_run: int = 200,
    n_latent: int = 4,
    n_voxels: int = 300,
    null_fraction: float = 0.1,
    total_r2: tuple[float, float] = (0.3, 0.6),
    autocorrelation: float = 0.3,
    seed: int = 0,
) -> PlantedPartition:
    """Two or three feature spaces sharing latent blocks, with planted shared/unique fractions.

    There is one latent block (``n_latent`` AR(1) dimensions) per non-empty
    subset of ``names``; space ``s`` holds every block whose subset contains
    ``s``, mixed by a random orthogonal matrix. Each informative voxel draws a
    total explained fraction uniformly in ``total_r2`` and splits it over the
    parts with Dirichlet(2, ..., 2) weights; the rest is AR(1) noise.

    Parameters
    ----------
    names : tuple of 2 or 3 str
    n_runs, n_samples_per_run : int
    n_latent : int
        Dimensions per latent block.
    n_voxels : int
    null_fraction : float in [0, 1)
        Share of voxels with pure noise.
    total_r2 : (low, high)
        Range of the planted total explained variance of informative voxels.
    autocorrelation : float in [0, 1)
    seed : int

    Returns
    -------
    PlantedPartition
    """
    from itertools import combinations

    names = tuple(names)
    if len(names) not in (2, 3) or len(set(names)) != len(names):
        raise ValueError(f"names must be 2 or 3 distinct space names, got {names!r}.")
    lo, hi = total_r2
    if not 0 < lo <= hi < 1:
        raise ValueError(f"total_r2 must satisfy 0 < low <= high < 1, got {total_r2}.")
    if not 0 <= null_fraction < 1:
        raise ValueError(f"null_fraction must be in [0, 1), got {null_fraction}.")
    rng = np.random.default_rng(seed)
    n = n_runs * n_samples_per_run
    runs = np.repeat(np.arange(n_runs), n_samples_per_run)
    parts = [c for k in range(1, len(names) + 1) for c in combinations(names, k)]
    latents = {}
    for p in parts:
        z = _ar1(rng, (n, n_latent), runs, autocorrelation)
        latents[p] = (z - z.mean(0)) / z.std(0)
    spaces = {}
    for s in names:
        Z = np.hstack([latents[p] for p in parts if s in p])
        # orthogonal mixing: features are not aligned with the latents, but the space
        # stays well conditioned (an ill-conditioned mixing makes ridge shrink some
        # latent directions, which biases every partition estimate toward less shared variance)
        M, _ = np.linalg.qr(rng.standard_normal((Z.shape[1], Z.shape[1])))
        spaces[s] = (Z @ M).astype(np.float32)

    null = np.zeros(n_voxels, dtype=bool)
    null[: int(round(null_fraction * n_voxels))] = True
    rng.shuffle(null)
    total = np.where(null, 0.0, rng.uniform(lo, hi, n_voxels))
    weights = rng.dirichlet(np.full(len(parts), 2.0), size=n_voxels)
    frac = weights * total[:, None]
    noise = _ar1(rng, (n, n_voxels), runs, autocorrelation)
    noise = (noise - noise.mean(0)) / noise.std(0)
    Y = np.sqrt(1.0 - total) * noise
    fractions = {}
    for k, p in enumerate(parts):
        sig = latents[p] @ rng.standard_normal((n_latent, n_voxels))
        sig = (sig - sig.mean(0)) / sig.std(0)
        Y = Y + np.sqrt(frac[:, k]) * sig
        fractions[_part_name(p, len(names))] = frac[:, k]
    return PlantedPartition(spaces=spaces, Y=Y.astype(np.float32), runs=runs, fractions=fractions, null=null)


# --------------------------------------------------------------------------- noise ceilings
@dataclass
class PlantedSubjects:
    """Several subjects seeing the same stimuli: a shared signal plus subject-specific noise.

    Attributes
    ----------
    responses : list of ndarray of shape (n_samples, n_voxels), float32
        One array per subject; voxel ``v`` is the same functional unit in every subject.
    runs : ndarray of shape (n_samples,), int
    signal_fraction : ndarray of shape (n_voxels,)
        Planted share of each voxel's variance that is stimulus-driven (same in every subject).
    ceiling_r : ndarray of shape (n_voxels,)
        ``sqrt(signal_fraction)``: the correlation that a perfect model of the
        shared signal reaches, i.e. the planted v0 of the subject-subset extrapolation.
    repeats : ndarray of shape (n_repeats, n_samples, n_voxels), float32
        Subject 0 measured ``n_repeats`` times with fresh noise (for repeat-based ceilings).
    """

    responses: list
    runs: np.ndarray
    signal_fraction: np.ndarray
    ceiling_r: np.ndarray
    repeats: np.ndarray


def planted_subjects(
    n_subjects: int = 6,
    n_runs: int = 6,
    n_samples_per_run: int = 100,
    n_voxels: int = 40,
    n_latent: int = 4,
    signal_fraction: tuple[float, float] = (0.1, 0.6),
    n_repeats: int = 3,
    autocorrelation: float = 0.3,
    seed: int = 0,
) -> PlantedSubjects:
    """Subjects whose voxels share a low-dimensional stimulus-driven signal.

    Parameters
    ----------
    n_subjects : int
    n_runs, n_samples_per_run : int
    n_voxels : int
    n_latent : int
        Dimensions of the shared stimulus signal.
    signal_fraction : (low, high)
        Per-voxel signal share, drawn uniformly.
    n_repeats : int
        Repeated measurements of subject 0 returned in ``repeats``.
    autocorrelation : float
    seed : int

    Returns
    -------
    PlantedSubjects
    """
    lo, hi = signal_fraction
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"signal_fraction must satisfy 0 <= low <= high <= 1, got {signal_fraction}.")
    if n_subjects < 2:
        raise ValueError(f"n_subjects must be >= 2, got {n_subjects}.")
    rng = np.random.default_rng(seed)
    n = n_runs * n_samples_per_run
    runs = np.repeat(np.arange(n_runs), n_samples_per_run)
    Z = _ar1(rng, (n, n_latent), runs, autocorrelation)
    S = Z @ rng.standard_normal((n_latent, n_voxels))
    S = (S - S.mean(0)) / S.std(0)
    f = rng.uniform(lo, hi, n_voxels)

    def measure():
        e = _ar1(rng, (n, n_voxels), runs, autocorrelation)
        e = (e - e.mean(0)) / e.std(0)
        return (np.sqrt(f) * S + np.sqrt(1 - f) * e).astype(np.float32)

    responses = [measure() for _ in range(n_subjects)]
    repeats = np.stack([responses[0]] + [measure() for _ in range(n_repeats - 1)])
    return PlantedSubjects(responses=responses, runs=runs, signal_fraction=f, ceiling_r=np.sqrt(f), repeats=repeats)


# --------------------------------------------------------------------------- layers and hierarchy
@dataclass
class PlantedLayers:
    """Per-layer features of a model whose layers carry each ROI's signal at a planted depth.

    Attributes
    ----------
    layers : list of ndarray of shape (n_samples, n_features), float32
        Features of every layer.
    Y : ndarray of shape (n_samples, n_voxels), float32
    runs : ndarray of shape (n_samples,), int
    masks : dict of str -> bool ndarray of shape (n_voxels,)
    peaks : dict of str -> int
        Planted peak layer of every ROI.
    """

    layers: list
    Y: np.ndarray
    runs: np.ndarray
    masks: dict
    peaks: dict


def planted_layers(
    peaks: dict | None = None,
    n_layers: int = 8,
    n_runs: int = 5,
    n_samples_per_run: int = 120,
    n_voxels_per_roi: int = 30,
    n_latent: int = 3,
    width: float = 1.5,
    signal_fraction: float = 0.4,
    autocorrelation: float = 0.3,
    seed: int = 0,
) -> PlantedLayers:
    """Layers whose share of an ROI's latent signal peaks at a planted layer.

    Layer ``l`` carries ROI ``r``'s latent with weight
    ``exp(-(l - peak_r)^2 / (2 width^2))`` and fills the rest with noise, so
    an encoder fitted on layer ``l`` predicts ROI ``r`` best at ``peak_r``.

    Parameters
    ----------
    peaks : dict of ROI name -> peak layer, default {"early": 1, "late": n_layers - 2}
    n_layers : int
    n_runs, n_samples_per_run : int
    n_voxels_per_roi : int
    n_latent : int
        Latent dimensions per ROI.
    width : float
        Width (in layers) of the bump.
    signal_fraction : float in (0, 1)
        Variance of each voxel driven by its ROI's latent.
    autocorrelation : float
    seed : int

    Returns
    -------
    PlantedLayers
    """
    peaks = {"early": 1, "late": n_layers - 2} if peaks is None else dict(peaks)
    for r, p in peaks.items():
        if not 0 <= int(p) < n_layers:
            raise ValueError(f"peaks[{r!r}] = {p} is outside 0..{n_layers - 1}.")
    rng = np.random.default_rng(seed)
    n = n_runs * n_samples_per_run
    runs = np.repeat(np.arange(n_runs), n_samples_per_run)
    latents = {r: _ar1(rng, (n, n_latent), runs, autocorrelation) for r in peaks}
    layers = []
    for layer in range(n_layers):
        blocks = []
        for r, p in peaks.items():
            w = np.exp(-((layer - p) ** 2) / (2 * width**2))
            blocks.append(np.sqrt(w) * latents[r] + np.sqrt(1 - w) * _ar1(rng, (n, n_latent), runs, autocorrelation))
        layers.append(np.hstack(blocks).astype(np.float32))
    n_vox = n_voxels_per_roi * len(peaks)
    Y = np.empty((n, n_vox))
    masks = {}
    for k, r in enumerate(peaks):
        sl = slice(k * n_voxels_per_roi, (k + 1) * n_voxels_per_roi)
        sig = latents[r] @ rng.standard_normal((n_latent, n_voxels_per_roi))
        sig = (sig - sig.mean(0)) / sig.std(0)
        e = _ar1(rng, (n, n_voxels_per_roi), runs, autocorrelation)
        Y[:, sl] = np.sqrt(signal_fraction) * sig + np.sqrt(1 - signal_fraction) * e
        m = np.zeros(n_vox, dtype=bool)
        m[sl] = True
        masks[r] = m
    return PlantedLayers(layers=layers, Y=Y.astype(np.float32), runs=runs, masks=masks,
                         peaks={r: int(p) for r, p in peaks.items()})


@dataclass
class PlantedHierarchy:
    """Voxel scores of a baseline and a prompted model with a planted gain per hierarchy level.

    Attributes
    ----------
    baseline, prompted : ndarray of shape (n_subjects, n_voxels)
    masks : dict of str -> bool ndarray of shape (n_voxels,)
        One ROI per (level, roi) pair, named ``<level>_roi<k>``.
    hierarchy : list of (level, [ROI names])
    gains : dict of level -> planted mean gain
    """

    baseline: np.ndarray
    prompted: np.ndarray
    masks: dict
    hierarchy: list
    gains: dict


def planted_hierarchy(
    gains: dict | None = None,
    n_subjects: int = 8,
    rois_per_level: int = 2,
    n_voxels_per_roi: int = 50,
    voxel_noise: float = 0.05,
    subject_noise: float = 0.01,
    seed: int = 0,
) -> PlantedHierarchy:
    """Prompt-driven gains that change along an ordered hierarchy of ROIs.

    Parameters
    ----------
    gains : dict of level -> mean gain (ordered bottom to top)
        Default: early_visual 0.02, dorsal_mt 0.025, temporal_parietal 0.03,
        frontal 0.04, motor 0.04 (early ≈ half of frontal/motor, the gameplay study's claim).
    n_subjects, rois_per_level, n_voxels_per_roi : int
    voxel_noise : float
        SD of voxel-level noise on each score.
    subject_noise : float
        SD of a per-subject, per-ROI offset of the gain.
    seed : int
    """
    gains = {"early_visual": 0.02, "dorsal_mt": 0.025, "temporal_parietal": 0.03, "frontal": 0.04, "motor": 0.04} \
        if gains is None else dict(gains)
    rng = np.random.default_rng(seed)
    names, hierarchy, gain_vox = [], [], []
    for level, g in gains.items():
        members = [f"{level}_roi{k}" for k in range(rois_per_level)]
        hierarchy.append((level, members))
        names += members
        gain_vox += [g] * (rois_per_level * n_voxels_per_roi)
    n_vox = len(names) * n_voxels_per_roi
    masks = {}
    for k, nm in enumerate(names):
        m = np.zeros(n_vox, dtype=bool)
        m[k * n_voxels_per_roi:(k + 1) * n_voxels_per_roi] = True
        masks[nm] = m
    base = rng.uniform(0.05, 0.3, n_vox)
    baseline = base + voxel_noise * rng.standard_normal((n_subjects, n_vox))
    offsets = np.repeat(subject_noise * rng.standard_normal((n_subjects, len(names))), n_voxels_per_roi, axis=1)
    prompted = base + np.asarray(gain_vox) + offsets + voxel_noise * rng.standard_normal((n_subjects, n_vox))
    return PlantedHierarchy(baseline=baseline, prompted=prompted, masks=masks, hierarchy=hierarchy, gains=gains)
