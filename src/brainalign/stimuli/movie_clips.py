"""Per-TR movie clips: time windows, a seeded frame sampler, audio sample ranges, frame decoding.

The video-audio study (Oota et al., 2025) cut the movie into one clip per TR (1.49 s) and fed a few frames of
each clip to video models, sampling frames without a seed. Here the
sampler is a pure function of (TR index, seed): it splits every TR window
into ``n_frames`` equal bins and draws one frame uniformly in each bin
(stratified, so frames are spread over the clip and in temporal order), or
takes the bin centres when ``jitter=False``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainalign._utils.errors import DataError

__all__ = ["tr_windows", "sample_clip_frames", "audio_sample_ranges", "read_video_frames"]


def tr_windows(n_trs: int, tr: float, offset: float = 0.0) -> np.ndarray:
    """(n_trs, 2) start and end seconds of each TR's clip: [offset + k·tr, offset + (k+1)·tr)."""
    if tr <= 0 or n_trs < 0:
        raise DataError(f"need tr > 0 and n_trs >= 0, got tr={tr}, n_trs={n_trs}.")
    k = np.arange(n_trs, dtype=np.float64)
    return np.stack([offset + k * tr, offset + (k + 1) * tr], axis=1)


def sample_clip_frames(
    n_trs: int,
    tr: float,
    fps: float,
    n_frames: int,
    seed: int = 0,
    jitter: bool = True,
    n_video_frames: int | None = None,
) -> np.ndarray:
    """Frame indices for every TR clip, reproducible from ``seed``.

    Parameters
    ----------
    n_trs : int
    tr : float
        Seconds per TR (clip length).
    fps : float
        Video frame rate.
    n_frames : int
        Frames per clip; must not exceed the frames a clip holds (``tr · fps``).
    seed : int
    jitter : bool
        Uniform draw within each of ``n_frames`` equal bins (True) or bin centres (False).
    n_video_frames : int, optional
        Frames in the file; indices are clipped to it (the last clip may be short).

    Returns
    -------
    ndarray of shape (n_trs, n_frames), int64, increasing within each row and
    lying in ``[floor(k·tr·fps), floor((k+1)·tr·fps))`` for row k.
    """
    if n_frames < 1:
        raise DataError(f"n_frames must be >= 1, got {n_frames}.")
    if fps <= 0:
        raise DataError(f"fps must be > 0, got {fps}.")
    per_clip = tr * fps
    if n_frames > int(np.floor(per_clip)):
        raise DataError(f"n_frames={n_frames} but a {tr} s clip at {fps} fps holds only {int(np.floor(per_clip))} frames; lower n_frames.")
    rng = np.random.default_rng(seed)
    bins = (np.arange(n_frames) + (rng.random((n_trs, n_frames)) if jitter else 0.5)) / n_frames  # in [0, 1)
    start = np.floor(np.arange(n_trs) * per_clip)
    stop = np.floor((np.arange(n_trs) + 1) * per_clip)
    idx = np.floor(start[:, None] + bins * (stop - start)[:, None]).astype(np.int64)
    idx = np.maximum.accumulate(idx, axis=1)
    if n_video_frames is not None:
        idx = np.minimum(idx, n_video_frames - 1)
    return idx


def audio_sample_ranges(n_trs: int, tr: float, sample_rate: int) -> np.ndarray:
    """(n_trs, 2) [start, stop) sample indices of each TR's audio; contiguous, no gaps or overlap."""
    edges = np.round(np.arange(n_trs + 1) * tr * sample_rate).astype(np.int64)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def read_video_frames(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Decode the given frame indices of a video file as uint8 (n, H, W, 3).

    Needs PyAV (``pip install av``), which brainalign does not require otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: movie file not found; Movie10 clips live in stimuli/<movie>/<movie><seg>.mkv.")
    try:
        import av
    except ImportError:
        raise ImportError("decoding movie frames needs PyAV: pip install av") from None
    want = np.asarray(indices, dtype=np.int64).ravel()
    order = np.argsort(want, kind="stable")
    out: list = [None] * want.size
    j = 0
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            while j < want.size and want[order[j]] == i:
                out[order[j]] = frame.to_ndarray(format="rgb24")
                j += 1
            if j == want.size:
                break
    if j < want.size:
        raise DataError(f"{path} has fewer frames than index {int(want.max())}.")
    return np.stack(out)
