"""Validation and content digests of the stimuli and prompts given to feature extractors (no torch needed).

A stimulus is an image (uint8 (H, W, 3) or PIL), a sequence of frames
(consecutive images before the prompt), a :class:`Video`, or, for audio
models, a 1-D float waveform (checked by
:func:`brainalign.features.hf_audio.check_waveforms`). Every multimodal
adapter validates with these functions, and the feature cache keys on
:func:`stimulus_digest`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from brainalign._utils.errors import DataError

__all__ = ["Video", "check_images", "check_stimuli", "stimulus_digest", "check_prompts"]


def _check_frame(img: Any, where: str) -> np.ndarray:
    if hasattr(img, "convert") and hasattr(img, "size"):  # PIL.Image
        img = np.asarray(img.convert("RGB"))
    if not isinstance(img, np.ndarray):
        raise DataError(
            f"{where} is a {type(img).__name__}; pass a uint8 numpy array of shape (H, W, 3) or a PIL image."
        )
    if img.dtype != np.uint8:
        raise DataError(
            f"{where} has dtype {img.dtype}; images must be uint8 in [0, 255]. "
            "Convert floats in [0, 1] with (img * 255).round().astype(np.uint8)."
        )
    if img.ndim != 3 or img.shape[2] != 3:
        raise DataError(
            f"{where} has shape {img.shape}; images must be (H, W, 3) RGB. "
            "Stack grey images with np.repeat(img[..., None], 3, axis=2); drop alpha with img[..., :3]."
        )
    if min(img.shape[:2]) < 28:
        raise DataError(f"{where} has shape {img.shape}; both sides must be at least 28 pixels.")
    return np.ascontiguousarray(img)


def _check_sequence(images: Any, name: str, what: str) -> list:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
        raise DataError(f"{name} must be a sequence of {what}.")
    if len(images) == 0:
        raise DataError(f"{name} is empty: pass at least one image.")
    return list(images)


@dataclass
class Video:
    """A clip given to a video-capable model as one video (not as separate images).

    Attributes
    ----------
    frames : uint8 array (n_frames, H, W, 3) or list of frames, all the same size
    fps : float
        Frames per second of ``frames`` (sets the temporal positions of
        Qwen2.5-VL's M-RoPE).
    """

    frames: Any
    fps: float = 2.0


def check_images(images: Sequence[Any], name: str = "images") -> list[np.ndarray]:
    """Validate images and return them as uint8 arrays of shape (H, W, 3).

    Accepts PIL images (converted to RGB) and uint8 numpy arrays (H, W, 3);
    a 4-D array (n, H, W, 3) is n images.
    """
    images = _check_sequence(images, name, "images (uint8 arrays (H, W, 3) or PIL images)")
    return [_check_frame(img, f"{name}[{i}]") for i, img in enumerate(images)]


def check_stimuli(stimuli: Sequence[Any], name: str = "stimuli") -> list[list[np.ndarray]]:
    """Validate stimuli: each is one image or a sequence of frames.

    A stimulus may be a uint8 array (H, W, 3), a PIL image, a uint8 array
    (n_frames, H, W, 3) or a list of frames; a 4-D array passed as
    ``stimuli`` itself is a batch of single images.

    Returns
    -------
    list (one per stimulus) of lists of uint8 (H, W, 3) frames, or of
    :class:`Video` (frames validated) for stimuli given as videos
    """
    stimuli = _check_sequence(stimuli, name, "stimuli (images, or sequences of frames)")
    out: list = []
    for i, stim in enumerate(stimuli):
        if isinstance(stim, Video):
            frames = _check_sequence(stim.frames, f"{name}[{i}].frames", "frames")
            frames = [_check_frame(f, f"{name}[{i}].frames[{j}]") for j, f in enumerate(frames)]
            if len({f.shape for f in frames}) != 1:
                raise DataError(f"{name}[{i}].frames have different shapes; all frames of a video must match.")
            if not stim.fps > 0:
                raise DataError(f"{name}[{i}].fps={stim.fps!r}; give the clip's frames per second (> 0).")
            out.append(Video(frames, float(stim.fps)))
        elif isinstance(stim, np.ndarray) and stim.ndim == 4 or isinstance(stim, (list, tuple)):
            frames = _check_sequence(stim, f"{name}[{i}]", "frames")
            out.append([_check_frame(f, f"{name}[{i}][{j}]") for j, f in enumerate(frames)])
        else:
            out.append([_check_frame(stim, f"{name}[{i}]")])
    return out


def stimulus_digest(stimulus: Any, sampling_rate: int | None = None) -> str:
    """sha256 of a stimulus' content: image, frame sequence, :class:`Video` (with fps) or waveform.

    Two stimuli with the same pixels (or samples) get the same digest whatever
    their file name, so a feature cache can key on it.
    """
    h = hashlib.sha256()
    if isinstance(stimulus, Video):
        h.update(f"video fps={float(stimulus.fps)!r}".encode())
        frames = list(stimulus.frames)
    elif isinstance(stimulus, (list, tuple)) or isinstance(stimulus, np.ndarray) and stimulus.ndim == 4:
        h.update(b"frames")
        frames = list(stimulus)
    else:
        frames = [stimulus]
    if sampling_rate is not None:
        h.update(f"sr={int(sampling_rate)}".encode())
    for f in frames:
        if hasattr(f, "convert") and hasattr(f, "size"):  # PIL.Image
            f = np.asarray(f.convert("RGB"))
        f = np.ascontiguousarray(f)
        h.update(f"{f.dtype.str}{f.shape}".encode())
        h.update(f.tobytes())
    return h.hexdigest()


def check_prompts(prompts: dict[str, str] | Sequence[str] | str, name: str = "prompts") -> dict[str, str]:
    """Validate prompts; a list becomes ``{"p00": ..., "p01": ...}``."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, dict):
        prompts = list(prompts)
        prompts = {f"p{i:02d}": p for i, p in enumerate(prompts)}
    if len(prompts) == 0:
        raise DataError(f"{name} is empty: pass at least one prompt, e.g. {{'describe': 'Describe this image.'}}.")
    for key, text in prompts.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"{name}[{key!r}] is empty ({text!r}); every prompt needs text. "
                "For features without an instruction use a unimodal model or pooling='stimulus'."
            )
    return dict(prompts)
