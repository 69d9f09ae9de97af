"""ds004323 gameplay frames from the plays export, aligned to the TR grid."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.brain.bids import load_bids
from brainalign.stimuli.gameplay import frames_per_tr, gameplay_frames, read_plays
from brainalign.testing.fixtures import write_ds004323


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_ds004323(tmp_path_factory.mktemp("g") / "ds004323", n_runs=2, n_trs=300, shape=(3, 3, 2))


def test_frames_timed_from_run_start(ds):
    plays = read_plays(ds["root"] / "behavior" / "plays.json")
    fr = gameplay_frames(plays, "01", 2)
    # the fixture's first play of a run starts after a 7-TR (14 s) lead-in; actions every 0.5 s
    assert fr.onset.iloc[0] == pytest.approx(14.0)
    assert fr.game.iloc[0] == "vgfmri3_lemmings" and set(fr.game) == {"vgfmri3_lemmings", "vgfmri3_plaqueAttack", "vgfmri3_zelda"}
    np.testing.assert_allclose(fr[fr.play == 0].onset.diff().dropna(), 0.5)
    second = fr[fr.play == 1].onset.iloc[0]
    assert second == pytest.approx(14.0 + 92 * 2.0)
    assert fr.stimulus.is_unique
    with pytest.raises(ValueError, match="no plays for subject"):
        gameplay_frames(plays, "07", 1)


def test_frames_per_tr_windows(ds):
    plays = read_plays(ds["root"] / "behavior" / "plays.json")
    rec, _ = load_bids(ds["root"], "01", "gameplay", derivatives=ds["derivatives"], runs=[1])
    fr = gameplay_frames(plays, "01", 1)
    per = frames_per_tr(fr, rec.runs, rec.tr)
    assert len(per) == (rec.runs == 1).sum()
    assert per.n_frames.sum() == len(fr)  # each frame in exactly one TR
    k = int(np.floor(fr.onset.iloc[5] / 2.0))
    assert 5 in per.frames.iloc[k]
    wide = frames_per_tr(fr, rec.runs, rec.tr, window=3, max_frames=2)
    assert wide.n_frames.max() == 2
    assert per.frames.iloc[k][-1] in wide.frames.iloc[k]  # the newest frame is kept
