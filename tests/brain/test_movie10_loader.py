"""Movie10 on a miniature fsaverage6-style tree: truncation, per-movie z-scoring, split, sources agree."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.brain.movie10 import load_movie10, movie10_split, movie10_tr_table
from brainalign.stimuli.movie_clips import audio_sample_ranges, sample_clip_frames, tr_windows
from brainalign.testing.fixtures import write_movie10

# the miniature has fewer segments than the real movies; test_gifti_source_matches_npy checks the warning
pytestmark = pytest.mark.filterwarnings("ignore:.*segments found")


@pytest.fixture(scope="module")
def m10(tmp_path_factory):
    return write_movie10(tmp_path_factory.mktemp("m10"))


def _expect(m10, movie, n):
    x = m10["data"][("01", movie)][:n].astype(np.float64)
    return (x - x.mean(0)) / x.std(0)


def test_truncation_and_per_movie_zscore(m10):
    trunc = {"bourne": 15, "wolf": 25, "life": 12}
    rec = load_movie10(m10["npy"], "01", truncate=trunc, n_vertices=(42, 42))
    assert rec.tr == 1.49 and rec.space == "fsaverage6" and rec.mask_img is None
    assert rec.run_ids == ("bourne", "wolf", "life")
    for k, movie in enumerate(rec.run_ids, 1):
        block = rec.data[rec.runs == k]
        assert block.shape == (trunc[movie], 84)
        # z-scored within the movie (not over the concatenation): hand computation
        np.testing.assert_allclose(block, _expect(m10, movie, trunc[movie]), rtol=1e-4, atol=1e-5)
    # the movies have different offsets: global z-scoring would leave per-movie means far from 0
    raw = np.concatenate([m10["data"][("01", m)][: trunc[m]] for m in rec.run_ids])
    glob = (raw - raw.mean(0)) / raw.std(0)
    assert abs(glob[rec.runs == 1].mean()) > 0.5


def test_gifti_source_matches_npy(m10):
    a = load_movie10(m10["npy"], "01", truncate=None, n_vertices=(42, 42))
    with pytest.warns(UserWarning, match="2 of 10 segments found"):  # the miniature has fewer segments
        b = load_movie10(m10["fmriprep"], "01", source="gifti", raw_root=m10["raw"], truncate=None, n_vertices=(42, 42))
    np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-5)
    assert b.meta["segment_trs"]["wolf"] == m10["seg_trs"]["wolf"]
    # the second viewing of life is a different run
    with pytest.warns(UserWarning, match="2 of 5 segments found"):
        c = load_movie10(m10["fmriprep"], "01", movies=("life",), source="gifti", viewing=2, truncate=None, n_vertices=(42, 42))
    assert c.data.shape == b.data[b.runs == 3].shape and not np.allclose(c.data, b.data[b.runs == 3])


def test_split_train_bourne_wolf_test_life(m10):
    rec = load_movie10(m10["npy"], "1", truncate=None, n_vertices=(42, 42))
    train, test = movie10_split(rec)
    assert test.sum() == sum(m10["seg_trs"]["life"])
    assert train.sum() == sum(m10["seg_trs"]["bourne"]) + sum(m10["seg_trs"]["wolf"])
    assert set(rec.runs[test]) == {3}
    with pytest.raises(ValueError, match="figures"):
        movie10_split(rec, test=("figures",))


def test_bad_inputs(m10, tmp_path):
    with pytest.raises(ValueError, match="lower truncate\\['life'\\]"):
        load_movie10(m10["npy"], "01", truncate={"life": 10_000}, n_vertices=(42, 42))
    with pytest.raises(ValueError, match="fsaverage6"):
        load_movie10(m10["npy"], "01", truncate=None)  # default 2 × 40962
    with pytest.raises(FileNotFoundError, match="sub2-bourne-fsaverage6.npy"):
        load_movie10(m10["npy"], "02", n_vertices=(42, 42))
    with pytest.raises(FileNotFoundError, match="--output-spaces fsaverage6"):
        load_movie10(m10["fmriprep"], "01", movies=("figures",), source="gifti", n_vertices=(42, 42))


def test_gifti_sidecar_tr_mismatch(tmp_path):
    m = write_movie10(tmp_path, segments={"life": 1})
    side = next(m["fmriprep"].glob("**/*task-life01_run-1_space-fsaverage6_hemi-L_bold.json"))
    side.write_text('{"RepetitionTime": 2.0}')
    with pytest.raises(ValueError, match="TR mismatch.*RepetitionTime=2.0"):
        load_movie10(m["fmriprep"], "01", movies=("life",), source="gifti", truncate=None, n_vertices=(42, 42))


def test_tr_table_and_frame_sampler(m10):
    table = movie10_tr_table("bourne", m10["seg_trs"]["bourne"], n_trs=15)
    assert len(table) == 15 and table.segment.iloc[-1] == 2
    assert table.stim_file.iloc[0].endswith("bourne/bourne01.mkv")
    np.testing.assert_allclose(table.clip_start.iloc[10], 0.0)  # first TR of segment 2
    fps, tr = 25.0, 1.49
    a = sample_clip_frames(40, tr, fps, 4, seed=3)
    np.testing.assert_array_equal(a, sample_clip_frames(40, tr, fps, 4, seed=3))
    assert not np.array_equal(a, sample_clip_frames(40, tr, fps, 4, seed=4))
    lo = np.floor(np.arange(40) * tr * fps)[:, None]
    hi = np.floor((np.arange(40) + 1) * tr * fps)[:, None]
    assert ((a >= lo) & (a < hi)).all() and (np.diff(a, axis=1) >= 0).all()
    w = tr_windows(3, tr)
    np.testing.assert_allclose(w[:, 1] - w[:, 0], tr)
    r = audio_sample_ranges(100, tr, 16000)
    assert (r[1:, 0] == r[:-1, 1]).all() and r[-1, 1] == round(100 * tr * 16000)
    with pytest.raises(ValueError, match="lower n_frames"):
        sample_clip_frames(2, tr, 2.0, 5)


def test_chunked_zscore_and_medial_wall_dropped(m10, tmp_path):
    for movie in ("bourne", "wolf", "life"):
        arr = np.load(m10["npy"] / f"sub1-{movie}-fsaverage6.npy")
        arr[[3, 50]] = 0.0  # "medial wall": constant vertices
        np.save(tmp_path / f"sub1-{movie}-fsaverage6.npy", arr)
    with pytest.warns(UserWarning, match="2 vertices are constant"):
        big = load_movie10(tmp_path, "01", truncate=None, n_vertices=(42, 42))
    with pytest.warns(UserWarning, match="2 vertices are constant"):
        small = load_movie10(tmp_path, "01", truncate=None, n_vertices=(42, 42), chunk_vertices=5)
    np.testing.assert_array_equal(big.meta["kept_vertices"], np.setdiff1d(np.arange(84), [3, 50]))
    assert big.dropped_voxels == 2 and big.data.shape[1] == 82
    np.testing.assert_allclose(small.data, big.data, rtol=1e-6, atol=1e-6)
    keep = big.meta["kept_vertices"]
    np.testing.assert_allclose(big.data[big.runs == 2], _expect(m10, "wolf", 10_000)[:, keep], rtol=1e-4, atol=1e-5)


def test_segment_trs_from_raw_events(m10):
    from brainalign.brain.movie10 import segment_trs_from_events

    # the fixture's clip durations are round(n_trs * 1.49, 2): ceil recovers the TR counts
    assert segment_trs_from_events(m10["raw"], "wolf") == m10["seg_trs"]["wolf"]
    rec = load_movie10(m10["npy"], "01", movies=("wolf",), truncate=None, n_vertices=(42, 42))
    table = movie10_tr_table("wolf", segment_trs_from_events(m10["raw"], "wolf"), n_trs=rec.data.shape[0])
    assert len(table) == rec.data.shape[0] and table.segment.nunique() == 3
    with pytest.raises(FileNotFoundError, match="top level"):
        segment_trs_from_events(m10["npy"], "life")
