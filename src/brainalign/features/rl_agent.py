"""RL-agent features (gameplay study): a stable-baselines3 DQN / QR-DQN Q-network read per frame, without pickle.

A stable-baselines3 ``model.save("agent.zip")`` archive holds ``policy.pth``
(the policy's ``state_dict``, written with ``torch.save``), ``data`` (JSON;
its class and space entries carry pickled ``:serialized:`` blobs, which are
never decoded here), and version files. :func:`load_q_network` reads only
``policy.pth`` with ``torch.load(weights_only=True)`` (plain tensors, no
arbitrary objects) into :class:`NatureQNetwork`, the Atari CNN of Mnih et al.
(2015) that SB3's ``CnnPolicy`` uses (``NatureCNN``: 8x8/4, 4x4/2, 3x3/1
convolutions, 512-unit linear layer, then the Q head). Architecture sizes
(input channels, image side, actions, quantiles) are read from the tensor
shapes.

:func:`rl_agent_features` turns frames into the agent's observation (grey,
area-resized to 84 x 84, the last ``frame_stack`` frames stacked, scaled to
[0, 1] as SB3's ``normalize_images``) and returns, per frame, the hidden
layer (512 units) and/or the softmax of the Q-values over actions.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .frames import area_downsample, grey_frames

__all__ = ["NatureQNetwork", "load_q_network", "rl_agent_features", "sb3_state_dict_keys"]

_PREFIXES = {"dqn": ("q_net.features_extractor.", "q_net.q_net."),
             "qrdqn": ("quantile_net.features_extractor.", "quantile_net.quantile_net.")}


def sb3_state_dict_keys(algo: str = "dqn") -> list[str]:
    """Parameter names of the online network in an SB3 ``policy.pth`` (``dqn`` or ``qrdqn``)."""
    feat, head = _PREFIXES[algo]
    convs = [f"{feat}cnn.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
    return convs + [f"{feat}linear.0.weight", f"{feat}linear.0.bias", f"{head}0.weight", f"{head}0.bias"]


class NatureQNetwork(nn.Module):
    """NatureCNN features + linear Q (or quantile) head.

    Parameters
    ----------
    in_channels : int
        Stacked frames (x colour channels) of the observation.
    side : int
        Observation side in pixels (84 for SB3 Atari wrappers).
    n_actions : int
    n_quantiles : int
        1 for DQN; QR-DQN's head outputs n_actions * n_quantiles values whose
        mean over quantiles is the Q-value.
    hidden : int
        Width of the linear feature layer (512 in NatureCNN).
    """

    def __init__(self, in_channels: int, side: int, n_actions: int, n_quantiles: int = 1, hidden: int = 512):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = int(self.cnn(torch.zeros(1, in_channels, side, side)).shape[1])
        self.linear = nn.Sequential(nn.Linear(n_flat, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_actions * n_quantiles)
        self.in_channels, self.side, self.n_actions, self.n_quantiles = in_channels, side, n_actions, n_quantiles

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden layer (batch, hidden) and Q-values (batch, n_actions) of observations in [0, 1]."""
        h = self.linear(self.cnn(obs))
        # sb3-contrib's QuantileNetwork lays its output out as (n_quantiles, n_actions)
        q = self.head(h).reshape(obs.shape[0], self.n_quantiles, self.n_actions).mean(1)
        return h, q


def _side_from_flat(n_flat: int, channels: int = 64) -> int:
    """Input side whose NatureCNN output flattens to ``n_flat`` features."""
    for side in range(36, 1024):
        s = ((side - 8) // 4 + 1 - 4) // 2 + 1 - 3 + 1
        if s > 0 and channels * s * s == n_flat:
            return side
        if s > 0 and channels * s * s > n_flat:
            break
    raise ValueError(f"no square input side gives {n_flat} NatureCNN features.")


def load_q_network(path: str | Path) -> NatureQNetwork:
    """Read a stable-baselines3 DQN / QR-DQN ``.zip`` into a :class:`NatureQNetwork` (no unpickling).

    Raises
    ------
    ValueError
        Not a zip, no ``policy.pth``, a ``policy.pth`` that needs pickle
        (``weights_only`` refused it), or tensors that are not a NatureCNN
        Q-network (e.g. an MLP policy).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "policy.pth" not in names:
                raise ValueError(
                    f"agent={str(path)!r} has no policy.pth (entries: {sorted(names)}); pass a zip written by "
                    "stable-baselines3's model.save()."
                )
            blob = zf.read("policy.pth")
            data = json.loads(zf.read("data")) if "data" in names else {}
    except zipfile.BadZipFile:
        raise ValueError(f"agent={str(path)!r} is not a zip archive; pass a stable-baselines3 model.save() file.") \
            from None
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError depending on the payload
        raise ValueError(
            f"agent={str(path)!r}: policy.pth is not a plain tensor state dict (torch.load(weights_only=True) "
            f"refused it: {type(err).__name__}). brainalign never unpickles agent files; re-save the weights with "
            "torch.save(model.policy.state_dict(), ...)."
        ) from None
    algo = next((a for a, (feat, _) in _PREFIXES.items() if f"{feat}cnn.0.weight" in state), None)
    if algo is None:
        raise ValueError(
            f"agent={str(path)!r}: policy.pth has no NatureCNN Q-network ({sorted(state)[:6]}...); only CnnPolicy "
            "DQN / QR-DQN agents are supported."
        )
    feat, head = _PREFIXES[algo]
    in_channels = int(state[f"{feat}cnn.0.weight"].shape[1])
    n_flat = int(state[f"{feat}linear.0.weight"].shape[1])
    hidden = int(state[f"{feat}linear.0.weight"].shape[0])
    n_out = int(state[f"{head}0.weight"].shape[0])
    n_actions = int(data.get("action_space", {}).get("n", 0) or 0) if isinstance(data, dict) else 0
    if algo == "dqn":
        n_actions, n_quantiles = n_out, 1
    else:
        n_quantiles = int(data.get("policy_kwargs", {}).get("n_quantiles", 0) or 0) or (n_out // n_actions
                                                                                            if n_actions else 0)
        if not n_quantiles or n_out % n_quantiles:
            raise ValueError(f"agent={str(path)!r}: cannot tell QR-DQN's quantiles from actions ({n_out} outputs); "
                             "the zip's data JSON needs action_space.n.")
        n_actions = n_out // n_quantiles
    net = NatureQNetwork(in_channels, _side_from_flat(n_flat), n_actions, n_quantiles, hidden)
    mapping = dict(zip([f"cnn.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")] +
                       ["linear.0.weight", "linear.0.bias", "head.weight", "head.bias"], sb3_state_dict_keys(algo)))
    net.load_state_dict({ours: state[theirs] for ours, theirs in mapping.items()})
    net.algo = algo
    return net.eval()


def rl_agent_features(
    frames: Any,
    agent: str | Path | NatureQNetwork,
    *,
    output: str = "both",
    frame_stack: int | None = None,
    temperature: float = 1.0,
    batch_size: int = 256,
) -> np.ndarray:
    """Per-frame hidden layer and/or action distribution of a DQN / QR-DQN agent.

    Parameters
    ----------
    frames : (n_frames, H, W, 3) or (n_frames, H, W), uint8 or floats in [0, 1]
        The game screen over time (H, W >= the network's input side).
    agent : path to an SB3 zip, or a :class:`NatureQNetwork`
    output : {"hidden", "actions", "both"}
        Hidden layer (512), softmax(Q / temperature) over actions, or both
        concatenated (hidden first).
    frame_stack : int, optional
        Frames per observation; defaults to the network's input channels.
        Frame i sees frames i - k + 1 .. i; the first frames repeat frame 0.
    temperature : float
    batch_size : int

    Returns
    -------
    float32 (n_frames, dim)
    """
    net = agent if isinstance(agent, NatureQNetwork) else load_q_network(agent)
    if output not in ("hidden", "actions", "both"):
        raise ValueError(f"output={output!r}: use 'hidden', 'actions' or 'both'.")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be > 0.")
    k = int(frame_stack or net.in_channels)
    if k != net.in_channels:
        raise ValueError(f"frame_stack={k} but the agent's network takes {net.in_channels} stacked frames.")
    grey = grey_frames(frames)
    if min(grey.shape[1:]) < net.side:
        raise ValueError(f"frames are {grey.shape[1:]} pixels; the agent needs at least {net.side} x {net.side}.")
    # as SB3's Atari wrappers: BT.601 grey, area resize, uint8 observation scaled by 1/255
    small = np.round(area_downsample(grey, (net.side, net.side)) * 255.0) / 255.0
    idx = np.clip(np.arange(len(small))[:, None] + np.arange(-k + 1, 1)[None], 0, None)  # (n, k), oldest first
    outs = []
    with torch.inference_mode():
        for start in range(0, len(small), batch_size):
            obs = torch.from_numpy(small[idx[start:start + batch_size]]).float()  # (b, k, side, side)
            h, q = net(obs)
            parts = {"hidden": [h], "actions": [torch.softmax(q / temperature, -1)]}.get(
                output, [h, torch.softmax(q / temperature, -1)])
            outs.append(torch.cat(parts, -1).numpy())
    return np.concatenate(outs).astype(np.float32)
