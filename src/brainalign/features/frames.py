"""Frame helpers shared by the frame baselines and the RL agent: validated luminance and area downsampling.

Frames are uint8 arrays ``(n_frames, H, W, 3)`` (RGB) or ``(n_frames, H, W)`` (grey), or floats in [0, 1] of
the same shapes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["grey_frames", "area_downsample"]

# ITU-R BT.601 luma weights
_LUMA = np.array([0.299, 0.587, 0.114])


def grey_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """Validate frames and return luminance in [0, 1], float64 of shape (n_frames, H, W).

    Raises
    ------
    ValueError
        Wrong number of dimensions, a last axis that is not RGB, an empty
        sequence, an integer dtype other than uint8, or floats outside [0, 1].
    """
    arr = np.asarray(frames)
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3) or (arr.ndim == 3 and arr.shape[-1] == 3):
        raise ValueError(
            f"{name} has shape {arr.shape}; pass (n_frames, H, W, 3) RGB or (n_frames, H, W) grey frames "
            "(a single frame needs a leading axis: frames[None]; grey frames 3 pixels wide are taken for one "
            "RGB frame)."
        )
    if arr.shape[0] == 0 or min(arr.shape[1:3]) == 0:
        raise ValueError(f"{name} has shape {arr.shape}; it holds no pixels.")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise ValueError(
                f"{name} are floats outside [0, 1] (min {np.nanmin(arr):.3g}, max {np.nanmax(arr):.3g}) or not "
                "finite; pass uint8 frames or floats scaled to [0, 1]."
            )
    else:
        raise ValueError(f"{name} has dtype {arr.dtype}; pass uint8 frames or floats in [0, 1].")
    return arr @ _LUMA if arr.ndim == 4 else arr


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights averaging the input cells each output cell covers (fractional overlaps)."""
    edges_out = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges_out[:-1, None], np.arange(n_in)[None])
    hi = np.minimum(edges_out[1:, None], np.arange(n_in)[None] + 1)
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum(1, keepdims=True)


def area_downsample(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average (n, H, W) images to (n, h, w); exact block means when the sides divide.

    Parameters
    ----------
    images : float array (n, H, W)
    size : (h, w), each at most the input side
    """
    h, w = (int(s) for s in size)
    n, H, W = images.shape
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"size={size!r}: each side must be in 1..the frame side ({H}, {W}); no upsampling.")
    return np.einsum("hH,nHW,wW->nhw", _area_matrix(H, h), images, _area_matrix(W, w), optimize=True)
