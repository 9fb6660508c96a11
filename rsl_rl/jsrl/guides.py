"""Guides: fixed policies that act for the first h steps of each episode (JSRL's π^g).

A guide is any callable ``guide(obs) -> actions [N, A]``: the env's observation TensorDict in, env actions out
(the units the env's ``step`` takes), computed without gradients on the whole batch. Three sources:

* a scripted controller: the callable itself (``TaskSpec.scripted_policy(env)`` gives one for tasks that have it);
* a training checkpoint of this library: :func:`guide_from_checkpoint` (the deterministic policy of its actor);
* an exported ONNX file (``deploy/export.py``, ``rsl-rl export``): :func:`guide_from_onnx`.

Guides are stateless: the combined policy calls them on every env every step, and a recurrent policy's memory would
need per-env resets (refused here with that reason).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from tensordict import TensorDict


class Guide(Protocol):
    """``guide(obs) -> actions [N, A]`` in env units, without gradients."""

    def __call__(self, obs: TensorDict, /) -> torch.Tensor: ...


def guide_from_checkpoint(
    path: str | os.PathLike[str],
    env: Any,
    device: str | torch.device = "cpu",
    train_cfg: Any = None,
) -> Guide:
    """The deterministic policy of a checkpoint's actor (PPO or SAC) on ``env``'s observations.

    ``path``: a ``model_<it>.pt`` or a run directory (its latest checkpoint). The actor is rebuilt from the
    checkpoint's own training config (``train_cfg``, a config or rsl-rl-lib dict, for checkpoints without one, such as
    rsl-rl-lib's). The runner built to load it has the smallest storage its algorithm allows.
    """
    from rsl_rl.runners import (  # local: ONNX and scripted guides need no runner
        SACTrainConfig,
        TrainConfig,
        make_runner,
    )
    from rsl_rl.runners.checkpoint import latest_checkpoint, load_checkpoint
    from rsl_rl.runners.config import train_config_from_dict

    path = Path(path)
    path = latest_checkpoint(path) if path.is_dir() else path
    state = load_checkpoint(path, map_location="cpu")
    given = state.get("config", train_cfg)
    if given is None:
        raise ValueError(f"{path} holds no training config: pass train_cfg= (the config it was trained with)")
    cfg = copy.deepcopy(given) if isinstance(given, TrainConfig | SACTrainConfig) else train_config_from_dict(given)
    if cfg.recurrent:
        raise ValueError(f"{path}: a recurrent guide is not supported (its memory would need per-env resets)")
    cfg.logger, cfg.num_steps_per_env = "none", 1
    if isinstance(cfg, SACTrainConfig):  # acting needs neither the demos nor a full replay
        cfg.algorithm.demos, cfg.algorithm.save_replay = "", False
        cfg.algorithm.replay_capacity = cfg.algorithm.n_step + 2
    runner = make_runner(env, cfg, None, device, show_progress=False)
    runner.load(path, load_cfg={"actor": True})
    policy = runner.get_inference_policy(device)

    @torch.no_grad()
    def guide(obs: TensorDict) -> torch.Tensor:
        return policy(obs)

    return guide


def guide_from_onnx(path: str | os.PathLike[str], obs_group: str | Sequence[str] = "policy") -> Guide:
    """An exported policy run by onnxruntime on the batch: its input ``obs`` is ``obs_group`` (or several groups
    concatenated in order, as the actor read them), its first output the actions.

    onnxruntime runs on the host: the observations are copied there and the actions back every step (a checkpoint
    guide stays on the device).
    """
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    if inputs != ["obs"]:
        raise ValueError(
            f"{path}: inputs {inputs}; a guide takes one input 'obs' (a recurrent policy's state inputs are not "
            "supported: its memory would need per-env resets)"
        )
    output = session.get_outputs()[0].name
    groups = [obs_group] if isinstance(obs_group, str) else list(obs_group)

    def guide(obs: TensorDict) -> torch.Tensor:
        x = torch.cat([obs[g].flatten(1).float() for g in groups], dim=-1)
        actions = session.run([output], {"obs": np.ascontiguousarray(x.detach().cpu().numpy())})[0]
        return torch.from_numpy(np.asarray(actions)).to(x.device)

    return guide
