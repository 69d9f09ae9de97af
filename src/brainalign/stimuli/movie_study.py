"""Per-TR movie clips (video frames or audio) of a Movie10-style study, decoded lazily from the movie files.

One stimulus per fMRI TR: the clip shown during ``[k·TR, (k+1)·TR)`` of its
segment file (:func:`brainalign.brain.movie10.movie10_tr_table`). Video
clips are ``n_frames`` frames drawn by the seeded stratified sampler
(:func:`~brainalign.stimuli.movie_clips.sample_clip_frames`), resized to
``size``; audio clips are the TR's samples of the soundtrack, mono, resampled
to ``sampling_rate``. A :class:`MovieClips` decodes one segment file at a
time (kept until the next segment is asked for), so a whole movie is never
held in memory as frames unless a caller materialises it.

Decoding needs PyAV (``pip install brainalign[video]``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError
from .movie_clips import audio_sample_ranges, read_video_frames, sample_clip_frames

__all__ = ["MovieClips", "read_audio", "video_info"]


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("decoding movie files needs PyAV: pip install 'brainalign[video]' (or pip install av)") from None
    return av


def video_info(path: str | Path) -> tuple[float, int]:
    """(frames per second, number of frames) of a video file's first video stream."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: movie file not found; Movie10 clips live in stimuli/<movie>/<movie><seg>.mkv "
                                "(courtois-neuromod/movie10.stimuli).")
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise DataError(f"{path} has no video stream.")
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate)
        n = s.frames or sum(1 for _ in c.decode(video=0))
    return fps, int(n)


def read_audio(path: str | Path, sampling_rate: int) -> np.ndarray:
    """The soundtrack of a movie file as mono float32 in [-1, 1] at ``sampling_rate`` Hz."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: movie file not found.")
    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise DataError(f"{path} has no audio stream; audio models need the movie's soundtrack.")
        res = av.AudioResampler(format="flt", layout="mono", rate=int(sampling_rate))
        parts = []
        for frame in c.decode(audio=0):
            for out in res.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in res.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _resize(frames: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return frames
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames])


class MovieClips(Sequence):
    """The per-TR clips of a TR table, decoded on demand.

    Parameters
    ----------
    table : DataFrame
        :func:`~brainalign.brain.movie10.movie10_tr_table` rows (stim_file, segment, clip_start), one per TR.
    tr : float
    modality : {"video", "audio", "image"}
        "image": the middle one of the clip's ``n_frames`` sampled frames (image encoders such as ViT-H).
    n_frames : int
        Frames per video clip.
    size : int or None
        Square frame size after resizing (None keeps the file's).
    seed : int
        Seed of the frame sampler (same seed → same frames).
    sampling_rate : int
        Audio clips' rate in Hz.

    Items are :class:`brainalign.stimuli.inputs.Video` (video), float32 waveforms (audio) or uint8 frames
    (H, W, 3) (image).
    """

    def __init__(self, table: pd.DataFrame, tr: float, modality: str = "video", n_frames: int = 8,
                 size: int | None = 224, seed: int = 0, sampling_rate: int = 16000):
        if modality not in ("video", "audio", "image"):
            raise DataError(f"modality={modality!r}; use 'video', 'audio' or 'image'.")
        self.table = table.reset_index(drop=True)
        self.tr, self.modality, self.n_frames, self.size = float(tr), modality, int(n_frames), size
        self.seed, self.sampling_rate = int(seed), int(sampling_rate)
        self._cached: tuple[str, dict] | None = None

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self.table.iloc[int(i)]
        seg = self._segment(str(row["stim_file"]))
        j = int(round(float(row["clip_start"]) / self.tr))
        if self.modality == "audio":
            a, b = seg["ranges"][j] if j < len(seg["ranges"]) else (0, 0)
            wave = seg["audio"][a:b]
            if wave.size < b - a:  # the soundtrack ends inside this TR: pad with silence, never shift
                wave = np.pad(wave, (0, b - a - wave.size))
            return wave
        if self.modality == "image":
            return seg["frames"][j][self.n_frames // 2]
        from brainalign.stimuli.inputs import Video

        return Video(seg["frames"][j], fps=self.n_frames / self.tr)

    def _segment(self, path: str) -> dict:
        if self._cached is not None and self._cached[0] == path:
            return self._cached[1]
        starts = self.table.loc[self.table["stim_file"] == path, "clip_start"]
        n_trs = int(round(float(starts.max()) / self.tr)) + 1  # TRs of this file that the study uses
        if self.modality == "audio":
            audio = read_audio(path, self.sampling_rate)
            seg = dict(audio=audio, ranges=audio_sample_ranges(n_trs, self.tr, self.sampling_rate))
        else:
            fps, n_video = video_info(path)
            idx = sample_clip_frames(n_trs, self.tr, fps, self.n_frames, seed=self.seed, n_video_frames=n_video)
            frames = read_video_frames(path, idx.ravel())
            frames = _resize(frames, self.size)
            frames = frames.reshape(n_trs, self.n_frames, *frames.shape[1:])
            seg = dict(frames=frames)
        self._cached = (path, seg)
        return seg
