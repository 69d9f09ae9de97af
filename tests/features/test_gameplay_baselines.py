"""Gameplay-study baselines: pixels, motion energy, random, RL agent (SB3 zip, no pickle), BSON regressors."""
from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainalign.features.baselines import (
    baseline_features,
    motion_energy_channels,
    motion_energy_features,
    pixel_features,
    random_features,
)
from brainalign.features.bson_reader import bson_regressor_features, decode_bson, julia_array, read_bson
from brainalign.testing.bson_writer import encode_document
from brainalign.features.frames import area_downsample
from brainalign.features.rl_agent import load_q_network, rl_agent_features, sb3_state_dict_keys

LUMA = np.array([0.299, 0.587, 0.114])


# ----------------------------------------------------------------------------- pixels
def test_pixels_are_block_means_of_luminance():
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)
    got = pixel_features(frames, size=(16, 12))
    grey = frames @ LUMA / 255.0
    want = grey.reshape(3, 16, 4, 12, 4).mean((2, 4)).reshape(3, -1)
    assert got.shape == (3, 192) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_area_downsample_with_fractional_cells():
    # reference: nearest-neighbour supersampling until the sides divide, then block means (exact area averages)
    img = np.random.default_rng(1).random((50, 70))
    fine = np.repeat(np.repeat(img, 9, axis=0), 8, axis=1)  # 450 x 560 -> blocks of 50 x 35
    ref = fine.reshape(9, 50, 16, 35).mean((1, 3))
    np.testing.assert_allclose(area_downsample(img[None], (9, 16))[0], ref, atol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((32, 32, 3), np.uint8), r"shape \(32, 32, 3\); pass \(n_frames, H, W, 3\)"),
    (np.full((2, 32, 32), 1.5), r"floats outside \[0, 1\]"),
    (np.zeros((2, 32, 32), np.int16), r"dtype int16"),
    (np.zeros((2, 32, 32, 4), np.uint8), r"shape \(2, 32, 32, 4\)"),
])
def test_pixels_reject_bad_frames(bad, match):
    with pytest.raises(ValueError, match=match):
        pixel_features(bad)


def test_pixels_reject_upsampling():
    with pytest.raises(ValueError, match=r"size=\(64, 64\)"):
        pixel_features(np.zeros((1, 32, 32), np.uint8), size=(64, 64))


# ----------------------------------------------------------------------------- motion energy
FPS = 15


def _grating(sf, direction, tf, n=30, side=64):
    t = np.arange(n) / FPS
    x = (np.arange(side) + 0.5) / side
    X, Y = np.meshgrid(x, x)
    th = np.deg2rad(direction)
    phase = 2 * np.pi * (sf * (np.cos(th) * X + np.sin(th) * Y)[None] - tf * t[:, None, None])
    return 0.5 + 0.5 * np.cos(phase)


def _channel_mean(feats, channels, **spec):
    """Mean filter amplitude (the log compression undone) of the matching channels, middle frames."""
    sel = np.array([all(abs(c[k] - v) < 1e-9 for k, v in spec.items()) for c in channels])
    return float(np.expm1(feats[10:20][:, sel]).mean())


@pytest.mark.parametrize("direction", [0, 90, 225])
def test_motion_energy_is_direction_and_frequency_selective(direction):
    feats = motion_energy_features(_grating(4, direction, 2.0), FPS)
    ch = motion_energy_channels((32, 32))
    assert feats.shape == (30, len(ch)) and feats.dtype == np.float32
    preferred = _channel_mean(feats, ch, sf=4, tf=2, direction=direction)
    opposite = _channel_mean(feats, ch, sf=4, tf=2, direction=(direction + 180) % 360)
    other_sf = _channel_mean(feats, ch, sf=8, tf=2, direction=direction)
    static = _channel_mean(feats, ch, sf=4, tf=0)
    assert preferred > 10 * opposite and preferred > 2 * other_sf and preferred > 2 * static


def test_motion_energy_static_and_uniform_inputs():
    ch = motion_energy_channels((32, 32))
    still = motion_energy_features(_grating(4, 0, 0.0), FPS)
    assert _channel_mean(still, ch, sf=4, tf=0, direction=0) > 3 * _channel_mean(still, ch, sf=4, tf=2, direction=0)
    flat = motion_energy_features(np.full((10, 32, 32), 0.3), FPS)
    assert np.abs(flat).max() < 1e-6  # zero-mean filters ignore uniform luminance


def test_motion_energy_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"fps=0"):
        motion_energy_features(np.zeros((4, 32, 32)), 0)
    with pytest.raises(ValueError, match=r"Nyquist"):
        motion_energy_features(np.zeros((4, 32, 32)), 6, temporal_freqs=(0, 4))


# ----------------------------------------------------------------------------- random
def test_random_features_are_seeded():
    a = random_features(50, 8, seed=3)
    assert a.shape == (50, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, random_features(50, 8, seed=3))
    np.testing.assert_array_equal(a[:20], random_features(20, 8, seed=3))  # prefix does not depend on length
    assert np.abs(a - random_features(50, 8, seed=4)).max() > 0.1
    u = random_features(2000, 4, seed=0, distribution="uniform")
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    with pytest.raises(ValueError, match=r"distribution='cauchy'"):
        random_features(5, 2, distribution="cauchy")


def test_dispatch_by_kind():
    frames = np.zeros((7, 32, 32, 3), np.uint8)
    assert baseline_features("random", frames, dim=5).shape == (7, 5)
    assert baseline_features("pixels", frames, size=(4, 4)).shape == (7, 16)
    with pytest.raises(ValueError, match=r"kind='pixel'.*pixels, motion_energy, random, rl_agent, bson_regressors"):
        baseline_features("pixel", frames)


# ----------------------------------------------------------------------------- RL agent
class _Payload:
    """An object whose unpickling would run code: it must never be unpickled."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Payload.ran = True
    return {}


def _sb3_state(algo, n_out, in_ch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(32, in_ch, 8, 8), (32,), (64, 32, 4, 4), (64,), (64, 64, 3, 3), (64,), (512, 3136), (512,),
              (n_out, 512), (n_out,)]
    online = {k: torch.randn(s, generator=g) * (0.05 if len(s) > 1 else 0.01)
              for k, s in zip(sb3_state_dict_keys(algo), shapes)}
    target = {k.replace("q_net.", "q_net_target.", 1).replace("quantile_net.", "quantile_net_target.", 1): v + 1
              for k, v in online.items()}
    return {**online, **target}


def _write_zip(path, state, n_actions, extra=None):
    buf = io.BytesIO()
    torch.save(state, buf)
    data = {  # as SB3 writes it: class/space entries carry pickled blobs that must stay unread
        "policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": base64.b64encode(b"\x80junk").decode()},
        "action_space": {":type:": "<class 'gymnasium.spaces.discrete.Discrete'>",
                         ":serialized:": base64.b64encode(b"\x80junk").decode(), "n": str(n_actions),
                         "start": "0"},  # numpy ints are written as their str()
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps(data))
        zf.writestr("policy.pth", buf.getvalue())
        zf.writestr("_stable_baselines3_version", "2.3.0")
    return path


def _reference(frames, state, prefix, n_actions, n_quantiles=1):
    """NatureCNN forward written with functional ops on the SB3 tensors."""
    grey = frames @ LUMA / 255.0
    small = np.round(grey.reshape(len(frames), 84, 2, 84, 2).mean((2, 4)) * 255) / 255
    idx = np.clip(np.arange(len(frames))[:, None] + np.arange(-3, 1)[None], 0, None)
    x = torch.from_numpy(small[idx]).float()
    feat, head = prefix
    for i, stride in ((0, 4), (2, 2), (4, 1)):
        x = F.relu(F.conv2d(x, state[f"{feat}cnn.{i}.weight"], state[f"{feat}cnn.{i}.bias"], stride=stride))
    h = F.relu(F.linear(x.flatten(1), state[f"{feat}linear.0.weight"], state[f"{feat}linear.0.bias"]))
    q = F.linear(h, state[f"{head}0.weight"], state[f"{head}0.bias"])
    q = q.view(-1, n_quantiles, n_actions).mean(dim=1)  # as sb3-contrib's QuantileNetwork + _predict
    return h.numpy(), torch.softmax(q, -1).numpy()


@pytest.fixture(scope="module")
def game_frames():
    # grey RGB frames constant on 2x2 blocks: the 84 x 84 observation is exact (no rounding ties)
    grey = np.random.default_rng(7).integers(0, 256, (6, 84, 84), dtype=np.uint8)
    return np.repeat(np.repeat(grey, 2, axis=1), 2, axis=2)[..., None].repeat(3, axis=3)


def test_dqn_zip_hidden_and_action_distribution(tmp_path, game_frames):
    state = _sb3_state("dqn", 6)
    agent = _write_zip(tmp_path / "dqn.zip", state, 6)
    h, p = _reference(game_frames, state, ("q_net.features_extractor.", "q_net.q_net."), 6)
    both = rl_agent_features(game_frames, agent)
    assert both.shape == (6, 512 + 6) and both.dtype == np.float32
    np.testing.assert_allclose(both[:, :512], h, atol=1e-5)
    np.testing.assert_allclose(both[:, 512:], p, atol=1e-6)
    np.testing.assert_allclose(rl_agent_features(game_frames, agent, output="actions").sum(1), 1.0, atol=1e-6)
    assert np.abs(p[0] - p[-1]).max() > 0  # the screen changes the policy


def test_qrdqn_zip_averages_quantiles(tmp_path, game_frames):
    state = _sb3_state("qrdqn", 4 * 5, seed=1)
    agent = _write_zip(tmp_path / "qrdqn.zip", state, 4)
    _, p = _reference(game_frames, state, ("quantile_net.features_extractor.", "quantile_net.quantile_net."), 4, 5)
    net = load_q_network(agent)
    assert (net.n_actions, net.n_quantiles) == (4, 5)
    np.testing.assert_allclose(rl_agent_features(game_frames, net, output="actions"), p, atol=1e-6)


def test_agent_zip_is_never_unpickled(tmp_path, game_frames):
    state = _sb3_state("dqn", 6)
    state["evil"] = _Payload()
    agent = _write_zip(tmp_path / "evil.zip", state, 6)
    with pytest.raises(ValueError, match=r"not a plain tensor state dict.*never unpickles"):
        rl_agent_features(game_frames, agent)
    assert not _Payload.ran


def test_bad_agents_and_frames_rejected(tmp_path, game_frames):
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with pytest.raises(ValueError, match=r"is not a zip archive"):
        load_q_network(tmp_path / "not.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("data", "{}")
    with pytest.raises(ValueError, match=r"has no policy.pth"):
        load_q_network(tmp_path / "empty.zip")
    mlp = {"q_net.q_net.0.weight": torch.zeros(2, 4), "q_net.q_net.0.bias": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"no NatureCNN Q-network"):
        load_q_network(_write_zip(tmp_path / "mlp.zip", mlp, 2))
    agent = _write_zip(tmp_path / "dqn.zip", _sb3_state("dqn", 3), 3)
    with pytest.raises(ValueError, match=r"at least 84 x 84"):
        rl_agent_features(game_frames[:, :60, :60], agent)
    with pytest.raises(ValueError, match=r"frame_stack=2 but the agent's network takes 4"):
        rl_agent_features(game_frames, agent, frame_stack=2)


# ----------------------------------------------------------------------------- BSON
_enc_doc = encode_document  # the fixtures' writer (independent of the decoder)


def test_bson_spec_examples():
    # the two examples of bsonspec.org
    hello = b"\x16\x00\x00\x00\x02hello\x00\x06\x00\x00\x00world\x00\x00"
    awesome = (b"\x31\x00\x00\x00\x04BSON\x00\x26\x00\x00\x00\x020\x00\x08\x00\x00\x00awesome\x00"
               b"\x011\x00\x33\x33\x33\x33\x33\x33\x14\x40\x102\x00\xc2\x07\x00\x00\x00\x00")
    assert decode_bson(hello) == [{"hello": "world"}]
    assert decode_bson(hello + awesome) == [{"hello": "world"}, {"BSON": ["awesome", 5.05, 1986]}]


def test_mongodump_regressors_selected_and_stacked(tmp_path):
    rng = np.random.default_rng(2)
    docs, want = [], {}
    for subj in (1, 2):
        for frame in (2, 0, 1):  # stored out of order
            row = rng.random(5).round(6).tolist()
            docs.append({"subj_id": subj, "run_id": 1, "frame": frame, "game": "chase", "regs": {"value": row},
                         "big": 2**40})
            want[(subj, frame)] = row
    path = tmp_path / "dqn_regressors_25M.bson"
    path.write_bytes(b"".join(_enc_doc(d) for d in docs))
    assert read_bson(path)[0]["big"] == 2**40
    got = bson_regressor_features(path, "regs.value", where={"subj_id": 2, "run_id": 1}, sort_by="frame")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.array([want[(2, f)] for f in (0, 1, 2)]), atol=1e-6)
    with pytest.raises(ValueError, match=r"no document .* matches where=\{'subj_id': 9\}"):
        bson_regressor_features(path, "regs.value", where={"subj_id": 9})
    with pytest.raises(ValueError, match=r"field='regs.val' is missing.*subj_id, run_id, frame"):
        bson_regressor_features(path, "regs.val")
    with pytest.raises(ValueError, match=r"field 'game' of document 0 is not numeric"):
        bson_regressor_features(path, "game")


def test_julia_arrays_and_ragged_rows(tmp_path):
    mat = np.arange(6, dtype=np.float64).reshape(3, 2)
    jl = {"tag": "array", "type": {"tag": "datatype", "name": ["Core", "Float64"], "params": []}, "size": [3, 2],
          "data": mat.tobytes(order="F")}
    path = tmp_path / "regressors.bson"
    path.write_bytes(_enc_doc({"X": jl, "ragged": [[1.0, 2.0], [3.0]]}))
    np.testing.assert_array_equal(julia_array(read_bson(path)[0]["X"]), mat)
    np.testing.assert_array_equal(bson_regressor_features(path, "X"), mat.astype(np.float32))
    with pytest.raises(ValueError, match=r"not numeric \(or its rows have different lengths\)"):
        bson_regressor_features(path, "ragged")


def test_truncated_bson_rejected(tmp_path):
    path = tmp_path / "cut.bson"
    path.write_bytes(_enc_doc({"a": 1.0, "b": "x"})[:-3])
    with pytest.raises(ValueError, match=r"cut.bson: bad document length .* at byte 0"):
        read_bson(path)
    path.write_bytes(b"\x0c\x00\x00\x00\x7fkey\x00\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=r"unsupported BSON type 0x7f"):
        read_bson(path)
