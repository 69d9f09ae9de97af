"""One entry point for every dataset loader, driven by plain keyword arguments (a config section).

``load_brain("nsd", data_root, subject=1, sessions=[1, 2])`` calls the
matching loader with paths resolved under ``data_root`` and returns the
responses and the events table (None for item-wise formats). Unknown keyword
arguments are rejected with the list of accepted ones, so a config typo
fails before any data are read. :func:`brain_manifest` gives the files the
same call would read (for ``brainalign validate``).
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd

from brainalign._utils.errors import DataError
from .betas import items_from_events, load_item_betas
from .bids import load_bids
from .items import ItemResponses
from .manifest import RequiredFile, bids_manifest, movie10_manifest, nsd_manifest
from .movie10 import load_movie10
from .nsd import NSDLayout, load_nsd_betas, load_nsd_ncsnr, load_nsd_rois
from .recording import Recording
from .vwt_hdf5 import load_vwt_hdf5

__all__ = ["FORMATS", "load_brain", "brain_manifest", "check_loader_options", "fill_subject"]

FORMATS = ("bids", "nsd", "glmsingle", "movie10", "vwt_hdf5")


def _check_kwargs(fmt: str, fn, kwargs: dict, extra: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
    params = [p for p in inspect.signature(fn).parameters if p not in drop] + list(extra)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise DataError(f"brain format {fmt!r} does not take {unknown}; accepted: {sorted(params)}.")


def check_loader_options(fmt: str, options: dict) -> None:
    """Reject loader arguments that ``load_brain(fmt, ...)`` would not accept (before any data are read).

    Raises
    ------
    ValueError
        Listing the unknown keys and the accepted ones.
    """
    table = {
        "bids": (load_bids, ("dataset",), ("root",)),
        "nsd": (load_nsd_betas, ("rois", "hemispheres", "ncsnr"), ("root",)),
        "glmsingle": (load_item_betas, (), ()),
        "movie10": (load_movie10, ("path",), ("root",)),
        "vwt_hdf5": (load_vwt_hdf5, (), ()),
    }
    if fmt not in table:
        raise DataError(f"unknown brain format {fmt!r}; use one of {list(FORMATS)}.")
    fn, extra, drop = table[fmt]
    _check_kwargs(fmt, fn, options, extra=extra, drop=drop)


def fill_subject(options, subject: str):
    """Options with ``{subject}`` in any string (nested in lists/dicts) replaced by the subject id."""
    if isinstance(options, str):
        return options.replace("{subject}", str(subject))
    if isinstance(options, dict):
        return {k: fill_subject(v, subject) for k, v in options.items()}
    if isinstance(options, (list, tuple)):
        return type(options)(fill_subject(v, subject) for v in options)
    return options


def _under(root: Path, p) -> Path | None:
    if p is None:
        return None
    p = Path(p)
    return p if p.is_absolute() else root / p


def load_brain(fmt: str, data_root: str | Path, **kwargs) -> tuple[Recording | ItemResponses, pd.DataFrame | None]:
    """Load responses with the loader of ``fmt``; relative paths are under ``data_root``.

    Parameters
    ----------
    fmt : {"bids", "nsd", "glmsingle", "movie10", "vwt_hdf5"}
    data_root : path
    **kwargs
        * bids: ``dataset`` (folder under data_root, e.g. ``ds004323``) + :func:`~brainalign.brain.bids.load_bids`
          arguments (``derivatives`` relative to the dataset);
        * nsd: :func:`~brainalign.brain.nsd.load_nsd_betas` arguments + ``rois`` (ROI files whose label
          masks go to ``meta["rois"]``);
        * glmsingle: ``path``, ``items`` (relative) + :func:`~brainalign.brain.betas.load_item_betas` arguments;
          ``items`` may also be ``{"bids": {...load_bids kwargs...}, "exclude": [...]}`` to build the table from events;
        * movie10: ``path`` (folder, default data_root) + :func:`~brainalign.brain.movie10.load_movie10` arguments;
        * vwt_hdf5: ``path`` + :func:`~brainalign.brain.vwt_hdf5.load_vwt_hdf5` arguments.

    Returns
    -------
    responses : Recording (time series) or ItemResponses (one row per item)
    events : DataFrame or None
    """
    root = Path(data_root)
    if fmt == "bids":
        _check_kwargs(fmt, load_bids, kwargs, extra=("dataset",), drop=("root",))
        ds = root / kwargs.pop("dataset", "")
        if kwargs.get("derivatives") is not None:
            kwargs["derivatives"] = _under(ds, kwargs["derivatives"])
        if kwargs.get("mask") is not None:
            kwargs["mask"] = _under(root, kwargs["mask"])
        return load_bids(ds, **kwargs)
    if fmt == "nsd":
        _check_kwargs(fmt, load_nsd_betas, kwargs, extra=("rois", "hemispheres", "ncsnr"), drop=("root",))
        rois = kwargs.pop("rois", None)
        hemis = kwargs.pop("hemispheres", False)
        with_ncsnr = kwargs.pop("ncsnr", False)
        if kwargs.get("mask") is not None and str(kwargs["mask"]).endswith((".nii", ".nii.gz")):
            kwargs["mask"] = _under(root, kwargs["mask"])
        resp = load_nsd_betas(root, **kwargs)
        if rois:
            layout = NSDLayout(root, kwargs["subject"], kwargs.get("resolution", "func1pt8mm"),
                               kwargs.get("glm", "betas_fithrf_GLMdenoise_RR"))
            resp.meta["rois"] = load_nsd_rois(layout, rois, mask_img=resp.mask_img, hemispheres=hemis)
        if with_ncsnr:  # NSD's own noise-ceiling SNR per voxel (analysis.ceiling.method: ncsnr)
            layout = NSDLayout(root, kwargs["subject"], kwargs.get("resolution", "func1pt8mm"),
                               kwargs.get("glm", "betas_fithrf_GLMdenoise_RR"))
            resp.meta["ncsnr"], _ = load_nsd_ncsnr(layout, resp.mask_img)
        return resp, None
    if fmt == "glmsingle":
        _check_kwargs(fmt, load_item_betas, kwargs)
        path = _under(root, kwargs.pop("path"))
        items = kwargs.pop("items", None)
        if isinstance(items, dict):
            spec = dict(items)
            bids_kw = dict(spec.pop("bids"))
            task = bids_kw.get("task")
            _, ev = load_brain("bids", root, **bids_kw)
            items = items_from_events(ev, exclude=spec.pop("exclude", ("control",)), task=task)
        elif items is not None and not isinstance(items, (list, tuple, pd.DataFrame)):
            items = _under(root, items)
        if kwargs.get("mask") is not None:
            kwargs["mask"] = _under(root, kwargs["mask"])
        return load_item_betas(path, items, **kwargs), None
    if fmt == "movie10":
        _check_kwargs(fmt, load_movie10, kwargs, extra=("path",), drop=("root",))
        path = _under(root, kwargs.pop("path", "."))
        if kwargs.get("raw_root") is not None:
            kwargs["raw_root"] = _under(root, kwargs["raw_root"])
        return load_movie10(path, **kwargs), None
    if fmt == "vwt_hdf5":
        _check_kwargs(fmt, load_vwt_hdf5, kwargs)
        path = _under(root, kwargs.pop("path"))
        return load_vwt_hdf5(path, **kwargs), None
    raise DataError(f"unknown brain format {fmt!r}; use one of {list(FORMATS)}.")


def brain_manifest(fmt: str, **kwargs) -> list[RequiredFile]:
    """Files (relative to the data root) that ``load_brain(fmt, root, **kwargs)`` reads.

    ``bids``: needs ``dataset``, ``subject``, ``task``, ``runs``; ``nsd``: ``subject``, ``sessions``;
    ``movie10``: ``subject`` (npy source). Other formats name a single file (``path``).
    """
    if fmt == "bids":
        ds = kwargs["dataset"]
        if kwargs.get("runs") is None:
            raise DataError("list brain.runs explicitly so that validate can name every missing run.")
        man = bids_manifest(ds, kwargs["subject"], kwargs["task"], kwargs["runs"], derivatives=kwargs.get("derivatives"),
                            space=kwargs.get("space") or "MNI152NLin2009cAsym", events=kwargs.get("require_events", False))
        return [RequiredFile(f"{ds}/{m.path}", m.dataset, m.source) for m in man]
    if fmt == "nsd":
        return nsd_manifest(kwargs["subject"], kwargs["sessions"], kwargs.get("resolution", "func1pt8mm"),
                            kwargs.get("glm", "betas_fithrf_GLMdenoise_RR"), kwargs.get("mask", "nsdgeneral"),
                            kwargs.get("rois", ()), kwargs.get("hemispheres", False),
                            betas_format="hdf5" if kwargs.get("source") == "hdf5" else "nii.gz",
                            ncsnr=kwargs.get("ncsnr", False))
    if fmt == "movie10":
        man = movie10_manifest(kwargs["subject"], kwargs.get("movies", ("bourne", "wolf", "life")),
                               kwargs.get("pattern", "sub{subject}-{movie}-fsaverage6.npy"))
        sub = kwargs.get("path", ".")
        return [RequiredFile(str(Path(sub) / m.path), m.dataset, m.source) for m in man]
    if fmt in ("glmsingle", "vwt_hdf5"):
        what = "GLMsingle output (run GLMsingle on the preprocessed runs)" if fmt == "glmsingle" else "voxelwise_tutorials responses file"
        out = [RequiredFile(str(kwargs["path"]), fmt, what)]
        if fmt == "glmsingle" and isinstance(kwargs.get("items"), str):
            out.append(RequiredFile(kwargs["items"], fmt, "item table (one row per beta, in file order)"))
        return out
    raise DataError(f"unknown brain format {fmt!r}; use one of {list(FORMATS)}.")
