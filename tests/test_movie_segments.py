"""Movie10 segment lengths: inferred from the events only when that cannot silently misalign clips and BOLD
(issue: wolf's events give 7009 TRs against the arrays' 6989, and only the sum was checked)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign._utils.errors import DataError
from brainalign.brain.movie10 import segment_trs_from_events
from brainalign.brain.recording import Recording
from brainalign.config.data import MovieClipStimuli
from brainalign.study.load import _segment_lengths
from brainalign.testing.fixtures import write_movie10


def _rec(n, meta=None):
    return Recording(data=np.zeros((n, 3), np.float32), runs=np.zeros(n, int), tr=1.49, mask_img=None,
                     space="fsaverage6", n_vertices=(2, 1), meta=meta or {})


def test_inferred_lengths_warn_refuse_or_pass(tmp_path):
    truth = write_movie10(tmp_path, segments={"wolf": 3}, trs_per_segment=6, n_vertices=4)
    raw = tmp_path / "movie10"
    seg = segment_trs_from_events(raw, "wolf", 1.49)
    spec = MovieClipStimuli(format="movie-clips")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _segment_lengths(spec, _rec(sum(seg)), "wolf", raw, sum(seg)) == seg  # exact: silent
    with pytest.warns(UserWarning, match=r"wolf: segment lengths inferred .* stimuli.segment_trs\['wolf'\]"):
        assert _segment_lengths(spec, _rec(sum(seg) - 2), "wolf", raw, sum(seg) - 2) == seg
    with pytest.raises(DataError, match="more than the whole last segment"):
        _segment_lengths(spec, _rec(sum(seg) - seg[-1]), "wolf", raw, sum(seg) - seg[-1])
    with pytest.raises(DataError, match="give stimuli.segment_trs"):
        _segment_lengths(spec, _rec(sum(seg) + 1), "wolf", raw, sum(seg) + 1)
    assert truth["seg_trs"]["wolf"] == seg


def test_given_or_recorded_lengths_are_used_exactly(tmp_path):
    write_movie10(tmp_path, segments={"wolf": 3}, trs_per_segment=6, n_vertices=4)
    raw = tmp_path / "movie10"
    spec = MovieClipStimuli(format="movie-clips", segment_trs={"wolf": [5, 6, 7]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _segment_lengths(spec, _rec(17), "wolf", raw, 17) == [5, 6, 7]
        assert _segment_lengths(MovieClipStimuli(format="movie-clips"), _rec(9, dict(segment_trs={"wolf": [4, 5]})),
                                "wolf", raw, 9) == [4, 5]
    with pytest.raises(DataError, match=r"fix stimuli.segment_trs\['wolf'\]"):
        _segment_lengths(spec, _rec(19), "wolf", raw, 19)
    with pytest.raises(ValueError, match="positive TR count"):
        MovieClipStimuli(format="movie-clips", segment_trs={"wolf": [5, 0]})
