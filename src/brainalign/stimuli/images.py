"""Image stimuli: NSD images by nsdId, resized as the NSD study fed them to models.

The NSD instruction-tuning study (Oota et al., 2025) read a 227-px copy of
``nsd_stimuli.hdf5`` (``nsd_stimuli_227.hdf5``);
:func:`nsd_images` reads the released 425-px ``imgBrick`` and resizes on the
fly (bicubic, PIL), so no second copy of the 73,000 images is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from brainalign._utils.errors import DataError
from ..brain.nsd import NSDImages

__all__ = ["resize_images", "nsd_images", "iter_nsd_images"]


def resize_images(images: np.ndarray, size: int | None) -> np.ndarray:
    """Resize uint8 (n, H, W, 3) images to (n, size, size, 3) with bicubic interpolation (None: unchanged)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"images must have shape (n, H, W, 3), got {images.shape}.")
    if size is None or images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])


def nsd_images(path: str | Path, nsd_ids: Sequence[int], size: int | None = None) -> np.ndarray:
    """Images of the given nsdIds (0-based) from ``nsd_stimuli.hdf5`` (or the NSD root), in that order."""
    with NSDImages(path) as imgs:
        return resize_images(imgs[np.asarray(nsd_ids)], size)


def iter_nsd_images(path: str | Path, nsd_ids: Sequence[int], batch_size: int = 64, size: int | None = None) -> Iterator[np.ndarray]:
    """Batches of images, reading ``batch_size`` at a time (for feature extraction over thousands of images)."""
    ids = np.asarray(nsd_ids)
    with NSDImages(path) as imgs:
        for a in range(0, ids.size, batch_size):
            yield resize_images(imgs[ids[a:a + batch_size]], size)
