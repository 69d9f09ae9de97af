"""The data sections of an experiment config: ``brain`` (fMRI, ROIs) and ``stimuli`` (one class per format).

Re-exported by :mod:`brainalign.config`; :class:`~brainalign.config.Experiment` holds one
:class:`BrainSpec` and one of the :data:`Stimuli` formats.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PositiveFloat, Tag, field_validator, model_validator

from brainalign.config._base import StrictModel  # the one base of every config section: unknown keys are errors

__all__ = ["RoiSpec", "BrainSpec", "BRAIN_FORMATS", "StimulusSpec", "ImageStimuli", "TextItemStimuli",
           "GameplayStimuli", "MovieClipStimuli", "Stimuli", "STIMULUS_FORMATS"]


class RoiSpec(StrictModel):
    """Regions of interest from a label (dseg) image on the BOLD grid, and their hierarchy."""

    image: str | None = Field(
        None, description="3-D NIfTI label image on the BOLD grid (same shape and affine as brain.mask); relative to "
        "the config, or '{data_root}/...' inside the dataset folder (dataset formats). null = the dataset's own ROI "
        "files (format nsd: the files of brain.options.rois, labels named by their .ctab tables).")
    table: str | dict[int, str] | None = Field(
        None, description="Label value → ROI name: a mapping, or a CSV/TSV (index, name), JSON or '<index> <name>' "
        "text file (with image; null with the dataset's own ROI files).",
    )
    surface_labels: list[str] | None = Field(
        None, min_length=2, max_length=2,
        description="Surface recordings (format movie10): [left, right] label files on the recording's mesh "
        "(.label.gii or .annot, e.g. TemplateFlow's tpl-fsaverage6_hemi-L_desc-MMP_dseg.label.gii); their embedded "
        "tables name the labels unless brain.rois.table is given. '{data_root}/...' inside the dataset folder.",
    )
    groups: dict[str, list[str | int]] | None = Field(
        None, description="ROI name → the labels (names or values) it joins; null = every label is its own ROI."
    )
    hierarchy: list[str] | None = Field(
        None, description="ROI names ordered early → late (e.g. early visual … motor) for the prompt-gain slope."
    )
    early: list[str] | None = Field(None, description="ROIs of the early end of the ratio (default: first of hierarchy).")
    late: list[str] | None = Field(None, description="ROIs of the late end of the ratio (default: last of hierarchy).")
    how: Literal["mean", "median"] = Field("mean", description="Statistic over an ROI's voxels.")

    @model_validator(mode="after")
    def _hierarchy_ok(self) -> RoiSpec:
        if self.surface_labels is not None:
            if self.image is not None:
                raise ValueError("brain.rois: give image (a volume) or surface_labels (two surface files), not both.")
        elif (self.image is None) != (self.table is None):
            raise ValueError("brain.rois.image and brain.rois.table go together: give both (a label image and its "
                             "table), or neither (the dataset's own ROI files, format nsd).")
        h = self.hierarchy
        if h is not None:
            if len(h) < 2:
                raise ValueError(f"brain.rois.hierarchy needs at least 2 ROIs for a slope, got {h}.")
            if len(set(h)) != len(h):
                raise ValueError(f"brain.rois.hierarchy has duplicates: {h}.")
            for nm, ends in (("early", self.early), ("late", self.late)):
                bad = [r for r in (ends or []) if r not in h]
                if bad:
                    raise ValueError(f"brain.rois.{nm} names {bad}, which are not in brain.rois.hierarchy {h}.")
        elif self.early or self.late:
            raise ValueError("brain.rois.early/late need brain.rois.hierarchy; list the ROIs in order first.")
        if self.groups is not None:
            empty = [g for g, m in self.groups.items() if not m]
            if empty:
                raise ValueError(f"brain.rois.groups {empty} list no labels; give at least one label per group.")
        return self


BRAIN_FORMATS = ("nifti", "bids", "nsd", "glmsingle", "movie10", "vwt_hdf5")


class BrainSpec(StrictModel):
    """The fMRI data: one 4-D NIfTI series (``format: nifti``) or a dataset read by a loader of
    :mod:`brainalign.brain` (``bids``, ``nsd``, ``glmsingle``, ``movie10``, ``vwt_hdf5``)."""

    format: Literal["nifti", "bids", "nsd", "glmsingle", "movie10", "vwt_hdf5"] = Field(
        "nifti", description="'nifti': bold + mask + tr below; otherwise a dataset loader with `options`."
    )
    bold: str | None = Field(None, validate_default=True, description="nifti: 4-D NIfTI BOLD image (runs concatenated).")
    mask: str | None = Field(None, validate_default=True, description="nifti: 3-D NIfTI mask; non-zero voxels are analysed.")
    tr: PositiveFloat | None = Field(
        None, validate_default=True, description="Repetition time in seconds (nifti: required; datasets: read from the data, checked "
        "against this value when given)."
    )
    subject: str = "01"
    subjects: list[str] | None = Field(
        None, description="Several subjects, each passed to the loader as `subject`; results get a subject "
        "column and group tables (null = the one `subject`)."
    )
    data_root: str | None = Field(
        None, description="Dataset folder (datasets only), relative to the config; `--data-root` replaces it."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the dataset loader (brainalign.brain.load_brain), "
        "e.g. sessions, mask, movies, task, runs."
    )
    detrend: bool = Field(True, description="Remove a linear trend within each run (time series only).")
    standardize: bool = Field(True, description="Z-score each voxel within each run (time series only).")
    rois: RoiSpec | None = Field(None, description="Regions of interest (null = whole-brain results only).")

    @field_validator("bold", "mask", "tr")
    @classmethod
    def _nifti_needs(cls, v, info):
        if v is None and info.data.get("format", "nifti") == "nifti":
            raise ValueError(f"required key is missing: format 'nifti' needs brain.{info.field_name}; or set "
                             f"brain.format to a dataset loader ({', '.join(BRAIN_FORMATS[1:])}).")
        return v

    @model_validator(mode="after")
    def _format_fields(self) -> BrainSpec:
        if self.format == "nifti":
            if self.options:
                raise ValueError("brain.options are loader arguments of dataset formats; format 'nifti' takes none.")
        else:
            given = [k for k in ("bold", "mask") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"brain.{given[0]} belongs to format 'nifti'; with format '{self.format}' put "
                                 "loader arguments under brain.options.")
            if "subject" in self.options:
                raise ValueError("put the subject in brain.subject or brain.subjects, not brain.options.subject.")
            from brainalign.brain.loaders import check_loader_options  # lazy: keeps config import light

            check_loader_options(self.format, self.options)
        if self.rois is not None and self.rois.surface_labels is not None and self.format != "movie10":
            raise ValueError(f"brain.rois.surface_labels select vertices of a surface recording (format movie10); "
                             f"format '{self.format}' gives volumes: use brain.rois.image and brain.rois.table.")
        if (self.rois is not None and self.rois.image is None and self.rois.surface_labels is None
                and not (self.format == "nsd" and self.options.get("rois"))):
            raise ValueError("brain.rois without image/table selects ROIs from the dataset's own ROI files, which only "
                             "format 'nsd' reads (list them in brain.options.rois, e.g. [prf-visualrois, floc-faces]); "
                             "otherwise give brain.rois.image and brain.rois.table.")
        if self.rois is not None:
            named = [("image", self.rois.image), ("table", self.rois.table)]
            named += [(f"surface_labels[{i}]", v) for i, v in enumerate(self.rois.surface_labels or [])]
            for k, v in named:
                if not isinstance(v, str) or "{data_root}" not in v:
                    continue
                if not v.startswith("{data_root}"):
                    raise ValueError(f"brain.rois.{k}={v!r}: '{{data_root}}' can only start the path.")
                if self.format == "nifti":
                    raise ValueError(f"brain.rois.{k}={v!r}: '{{data_root}}' is the dataset folder of the dataset "
                                     "formats; with format 'nifti' give the path relative to the config.")
        if self.subjects is not None:
            if not self.subjects:
                raise ValueError("brain.subjects is empty; list at least one subject or remove the key.")
            if len(set(self.subjects)) != len(self.subjects):
                raise ValueError(f"brain.subjects has duplicates: {self.subjects}.")
        return self

    @property
    def subject_list(self) -> list[str]:
        return list(self.subjects) if self.subjects is not None else [self.subject]


class StimulusSpec(StrictModel):
    """Stimulus timing given as one label per TR (blocked designs such as Haxby 2001)."""

    format: Literal["tr-labels"] = "tr-labels"
    events: str = Field(description="Table with one row per TR: '<label> <run>' (whitespace separated).")
    labels: dict[int, str] = Field(description="Label code → stimulus name (the text put into prompts).")
    rest: list[int] = Field(default_factory=lambda: [0], description="Label codes meaning 'no stimulus'.")

    @field_validator("labels")
    @classmethod
    def _names_not_empty(cls, v: dict[int, str]) -> dict[int, str]:
        if not v:
            raise ValueError("labels is empty; map every stimulus code to a name, e.g. {1: face}.")
        for code, name in v.items():
            if not str(name).strip():
                raise ValueError(f"label {code} has an empty name; give the text that goes into the prompts.")
        return v


class ImageStimuli(StrictModel):
    """NSD images: one image per item (``nsd_id`` of the item table), read from ``nsd_stimuli.hdf5``."""

    format: Literal["nsd-images"]
    path: str = Field(
        "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
        description="The images file, relative to brain.data_root (dataset 'imgBrick', 73k × 425 × 425 × 3).",
    )
    size: int | None = Field(None, gt=0, description="Resize images to size × size before the model (null = as stored).")
    name: str = Field("image", description="Text put into prompts for '{stimulus}' (images have no name).")


class TextItemStimuli(StrictModel):
    """Text items (e.g. ds003076 reasoning problems): the text of each item of the item table."""

    format: Literal["text-items"]
    columns: list[str] = Field(
        default_factory=lambda: ["premise1", "premise2", "premise3", "conclusion"],
        description="Item-table columns joined (missing values skipped) into each item's text.",
    )


class GameplayStimuli(StrictModel):
    """Gameplay frames (ds004323): the ``plays`` export gives when each frame was on screen, the frames
    themselves are image files rendered by replaying the actions (layout: ``docs/choices.md``,
    :mod:`brainalign.study.gameplay`). Each TR gets the mean of the features of its frames."""

    format: Literal["gameplay-frames"]
    plays: str = Field("ds004323/behavior/plays.json", description="mongoexport --jsonArray of the 'plays' "
                       "collection, relative to brain.data_root; '{subject}' is filled in.")
    frames: str = Field("ds004323/derivatives/frames", description="Folder of rendered frames, relative to "
                        "brain.data_root: <frames>/sub-<subject>/run-<RR>/<game>_p<play>_f<frame>.<extension>.")
    extension: Literal["png", "npy"] = Field("png", description="Frame files: RGB PNG or uint8 (H, W, 3) .npy.")
    lead_in: float = Field(14.0, ge=0, description="Seconds from the run start to the first play (7 TRs × 2 s).")
    time_unit: Literal["ms", "s"] = Field("ms", description="Unit of the plays' timestamps.")
    window: int = Field(1, ge=1, description="TRs per feature window (sliding, stride 1 TR, ending at the TR).")
    max_frames: int | None = Field(4, gt=0, description="Frames per window, evenly spaced, newest kept (null = all).")
    size: int | None = Field(None, gt=0, description="Resize frames to size × size before the model (null = as stored).")
    name: str = Field("game frame", description="Text put into prompts for '{stimulus}'.")


class MovieClipStimuli(StrictModel):
    """One clip per TR cut from the movie files (Movie10: ``stimuli/<movie>/<movie><seg>.mkv``)."""

    format: Literal["movie-clips"]
    path: str = Field("movie10/stimuli", description="Folder of <movie>/<movie><seg>.mkv, relative to brain.data_root.")
    raw_root: str = Field(
        "movie10", description="Raw movie10 BIDS root (task-<movie><seg>_events.tsv give each segment's length), "
        "relative to brain.data_root.",
    )
    n_frames: int = Field(8, ge=1, description="Frames per clip for video models (seeded stratified sampling).")
    size: int | None = Field(224, gt=0, description="Frames resized to size × size (null = as decoded).")
    sampling_rate: int = Field(16000, gt=0, description="Audio clips' rate in Hz (audio models).")
    seed: int = Field(0, description="Seed of the frame sampler.")
    name: str = Field("video", description="Text put into prompts for '{stimulus}'.")
    segment_trs: dict[str, list[int]] | None = Field(
        None, description="TRs of each segment of a movie in the brain arrays, {movie: [n_seg01, n_seg02, ...]}, "
        "when the arrays do not record segment boundaries (npy source) and the events' durations do not give them "
        "exactly (null = inferred from the events; a mismatch with the arrays' length is warned about).",
    )

    @field_validator("segment_trs")
    @classmethod
    def _segments_ok(cls, v):
        for movie, lengths in (v or {}).items():
            if not lengths or any(int(n) < 1 for n in lengths):
                raise ValueError(f"stimuli.segment_trs[{movie!r}] must list at least one positive TR count per "
                                 f"segment, got {lengths}.")
        return v


def _stimulus_format(v: Any) -> str:
    if isinstance(v, dict):
        return v.get("format", "tr-labels")
    return getattr(v, "format", "tr-labels")


Stimuli = Annotated[
    Union[
        Annotated[StimulusSpec, Tag("tr-labels")],
        Annotated[ImageStimuli, Tag("nsd-images")],
        Annotated[TextItemStimuli, Tag("text-items")],
        Annotated[MovieClipStimuli, Tag("movie-clips")],
        Annotated[GameplayStimuli, Tag("gameplay-frames")],
    ],
    Discriminator(_stimulus_format),
]
STIMULUS_FORMATS = ("tr-labels", "nsd-images", "text-items", "movie-clips", "gameplay-frames")
