"""Non-LLM baselines of the gameplay study (Oota et al., 2026): per-frame pixel, motion-energy and random features.

Every function maps a frame sequence to one row per frame,
``(n_frames, dim)`` float32; resample rows to TR times with
:func:`brainalign.timing.lanczos_resample` like any other feature.
RL-agent features are in :mod:`brainalign.features.rl_agent`, the
dataset's EMPA/DDQN regressors in :mod:`brainalign.features.bson_reader`;
:func:`baseline_features` dispatches on a config's ``kind``.

Frames are uint8 arrays ``(n_frames, H, W, 3)`` (RGB) or ``(n_frames, H, W)``
(grey), or floats in [0, 1] of the same shapes.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .frames import area_downsample, grey_frames

__all__ = [
    "pixel_features",
    "motion_energy_features",
    "motion_energy_channels",
    "random_features",
    "baseline_features",
    "BASELINE_KINDS",
]


def pixel_features(frames: Any, size: tuple[int, int] = (16, 16)) -> np.ndarray:
    """Downsampled grey frames, one flattened row per frame.

    Parameters
    ----------
    frames : (n_frames, H, W, 3) or (n_frames, H, W), uint8 or floats in [0, 1]
    size : (h, w)
        Output grid (area averaging).

    Returns
    -------
    float32 (n_frames, h * w), luminance in [0, 1]
    """
    grey = grey_frames(frames)
    return area_downsample(grey, size).reshape(grey.shape[0], -1).astype(np.float32)


def motion_energy_channels(
    size: tuple[int, int],
    spatial_freqs: Sequence[float] = (2.0, 4.0, 8.0),
    temporal_freqs: Sequence[float] = (0.0, 2.0, 4.0),
    n_directions: int = 8,
) -> list[dict[str, float]]:
    """The channels :func:`motion_energy_features` computes, in column order.

    Each dict has ``sf`` (cycles per image width), ``tf`` (Hz), ``direction``
    (degrees; motion direction for tf > 0), ``x``, ``y`` (envelope centre,
    fraction of width / height). Static channels (tf = 0) use orientations in
    [0, 180) only, since opposite directions give the same energy.
    """
    h, w = size
    out = []
    for sf in spatial_freqs:
        # envelope sd = 1/(2 sf) image widths (about one cycle across +-1 sd); centres one sd apart
        sd = 1.0 / (2.0 * sf)
        nx = max(1, int(round(1.0 / (2 * sd))))
        ny = max(1, int(round((h / w) / (2 * sd))))
        centres = [((i + 0.5) / nx, (j + 0.5) / ny) for j in range(ny) for i in range(nx)]
        for tf in temporal_freqs:
            n_dir = n_directions if tf > 0 else max(1, n_directions // 2)
            for d in range(n_dir):
                for x, y in centres:
                    out.append({"sf": float(sf), "tf": float(tf), "direction": 360.0 * d / n_directions,
                                "x": x, "y": y, "sd": sd})
    return out


def motion_energy_features(
    frames: Any,
    fps: float,
    *,
    size: tuple[int, int] = (32, 32),
    spatial_freqs: Sequence[float] = (2.0, 4.0, 8.0),
    temporal_freqs: Sequence[float] = (0.0, 2.0, 4.0),
    n_directions: int = 8,
    window_s: float = 0.5,
) -> np.ndarray:
    """Spatio-temporal Gabor energy per frame (Adelson & Bergen 1985; Nishimoto et al. 2011).

    Hand-written here because ``pymoten`` is not installed in this
    environment (and is not maintained on PyPI for current numpy); the
    construction follows the same model. Frames are turned into luminance,
    area-downsampled to ``size``; each channel is a quadrature pair of 3-D
    Gabor filters: a Gaussian spatial envelope (sd = 1/(2 sf) image widths)
    times a carrier of ``sf`` cycles per image width moving in ``direction``
    at ``tf`` Hz, under a Gaussian temporal envelope (sd = window_s / 4,
    centred on the frame, zero padding at the clip ends). Spatial filters are
    made zero-mean, so uniform luminance gives no energy. The 3-D filters are
    separable into spatial and temporal quadrature pairs
    (cos(a + b) = cos a cos b - sin a sin b), which is how they are applied.
    The output is ``log(1 + sqrt(even**2 + odd**2))``.

    Parameters
    ----------
    frames : (n_frames, H, W, 3) or (n_frames, H, W), uint8 or floats in [0, 1]
    fps : float
        Frame rate of ``frames``.
    size : (h, w)
        Working resolution.
    spatial_freqs, temporal_freqs : sequences of float
        Cycles per image width; Hz (0 = static channels). Temporal
        frequencies above fps / 2 alias and are rejected.
    n_directions : int
    window_s : float
        Temporal support of the filters in seconds.

    Returns
    -------
    float32 (n_frames, n_channels); :func:`motion_energy_channels` names the columns.
    """
    if not fps > 0:
        raise ValueError(f"fps={fps!r}; give the frame rate of the clip (> 0).")
    if any(tf > fps / 2 for tf in temporal_freqs):
        raise ValueError(f"temporal_freqs={tuple(temporal_freqs)} exceed the Nyquist limit fps/2 = {fps / 2:g} Hz.")
    if any(sf <= 0 for sf in spatial_freqs) or any(sf > min(size) / 2 for sf in spatial_freqs):
        raise ValueError(f"spatial_freqs={tuple(spatial_freqs)} must be in (0, {min(size) / 2:g}] for size={size}.")
    grey = area_downsample(grey_frames(frames), size)  # (n, h, w)
    n, h, w = grey.shape
    channels = motion_energy_channels(size, spatial_freqs, temporal_freqs, n_directions)

    # spatial quadrature pairs, unit-free coordinates: x in image widths, y in image widths too
    xs = (np.arange(w) + 0.5) / w
    ys = (np.arange(h) + 0.5) / w
    X, Y = np.meshgrid(xs, ys)
    spatial_cos, spatial_sin = [], []
    for c in channels:
        theta = np.deg2rad(c["direction"])
        env = np.exp(-((X - c["x"]) ** 2 + (Y - c["y"] * h / w) ** 2) / (2 * c["sd"] ** 2))
        phase = 2 * np.pi * c["sf"] * (np.cos(theta) * (X - c["x"]) + np.sin(theta) * (Y - c["y"] * h / w))
        for carrier, bank in ((np.cos(phase), spatial_cos), (np.sin(phase), spatial_sin)):
            f = env * carrier
            f = f - env * (f.sum() / env.sum())  # zero DC, same envelope
            bank.append(f.ravel() / np.linalg.norm(env))
    flat = grey.reshape(n, -1)
    s_cos = flat @ np.stack(spatial_cos, 1)  # (n, K)
    s_sin = flat @ np.stack(spatial_sin, 1)

    half = max(1, int(round(window_s * fps / 2)))
    t = np.arange(-half, half + 1) / fps
    t_env = np.exp(-(t**2) / (2 * (window_s / 4) ** 2))
    tfs = np.array([c["tf"] for c in channels])
    # time-reversed kernels so that the sum runs over frame[i + k] * kernel[k] (correlation, centred)
    t_cos = t_env[:, None] * np.cos(2 * np.pi * tfs[None] * t[:, None])  # (T, K)
    t_sin = t_env[:, None] * np.sin(2 * np.pi * tfs[None] * t[:, None])

    def correlate(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        padded = np.concatenate([np.zeros((half, x.shape[1])), x, np.zeros((half, x.shape[1]))])
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (n, K, T)
        return np.einsum("nkt,tk->nk", windows, k)

    # a carrier moving along +direction at tf Hz: phase = 2 pi (sf . x - tf t), with t = frame time offset
    even = correlate(s_cos, t_cos) + correlate(s_sin, t_sin)
    odd = correlate(s_sin, t_cos) - correlate(s_cos, t_sin)
    return np.log1p(np.sqrt(even**2 + odd**2)).astype(np.float32)


def random_features(n_frames: int, dim: int = 256, *, seed: int = 0, distribution: str = "normal") -> np.ndarray:
    """Seeded random features, one row per frame (a chance-level control).

    The first k rows do not depend on ``n_frames`` (rows are drawn in order).

    Parameters
    ----------
    n_frames, dim : int
    seed : int
    distribution : {"normal", "uniform"}
        Standard normal, or uniform in [0, 1) (Xiao et al.'s ``-rand_feature``).

    Returns
    -------
    float32 (n_frames, dim)
    """
    if int(n_frames) < 1 or int(dim) < 1:
        raise ValueError(f"n_frames={n_frames!r}, dim={dim!r}: both must be positive integers.")
    rng = np.random.default_rng(seed)
    if distribution == "normal":
        out = rng.standard_normal((int(n_frames), int(dim)))
    elif distribution == "uniform":
        out = rng.random((int(n_frames), int(dim)))
    else:
        raise ValueError(f"distribution={distribution!r}: use 'normal' or 'uniform'.")
    return out.astype(np.float32)


def _rl_agent(frames, *, agent, **options):
    from .rl_agent import rl_agent_features

    return rl_agent_features(frames, agent, **options)


def _bson_regressors(frames=None, *, path, field, where=None, **options):
    from .bson_reader import bson_regressor_features

    return bson_regressor_features(path, field, where=where, **options)


def _random(frames=None, *, n_frames=None, **options):
    if n_frames is None:
        if frames is None:
            raise ValueError("kind='random' needs frames (their count is used) or n_frames.")
        n_frames = len(frames)
    return random_features(n_frames, **options)


#: config ``kind`` -> function(frames, **options) -> (n_frames, dim) float32
BASELINE_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "pixels": pixel_features,
    "motion_energy": motion_energy_features,
    "random": _random,
    "rl_agent": _rl_agent,
    "bson_regressors": _bson_regressors,
}


def baseline_features(kind: str, frames: Any = None, **options: Any) -> np.ndarray:
    """Features of a gameplay-study baseline named by a config's ``kind``.

    ``pixels``: ``size``; ``motion_energy``: ``fps`` (required), ``size``,
    ``spatial_freqs``, ``temporal_freqs``, ``n_directions``, ``window_s``;
    ``random``: ``dim``, ``seed``, ``distribution`` (``n_frames`` when no
    frames are given); ``rl_agent``: ``agent`` (path to a stable-baselines3
    DQN / QR-DQN zip, or a loaded network), ``output``, ``frame_stack``;
    ``bson_regressors``: ``path``, ``field``, ``where`` (no frames).

    Returns
    -------
    float32 (n_rows, dim)
    """
    if kind not in BASELINE_KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(BASELINE_KINDS)}.")
    if kind in ("pixels", "motion_energy", "rl_agent") and frames is None:
        raise ValueError(f"kind={kind!r} needs frames ((n_frames, H, W, 3) uint8).")
    return BASELINE_KINDS[kind](frames, **options)
