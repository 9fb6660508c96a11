"""Export of a trained policy: observation normaliser + MLP → action mean, as ONNX and TorchScript.

Input ``obs [batch, obs_dim]`` (the actor's observation groups concatenated in ``obs_groups`` order), output
``actions [batch, num_actions]``, as rsl_rl exports. ``deploy/export.py`` adds metadata and a parity check.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn

from rsl_rl.modules.mlp import MLPModel
from rsl_rl.modules.normalizer import EmpiricalNormalization
from rsl_rl.runners.checkpoint import atomic_write

ONNX_OPSET = 18


class InferencePolicy(nn.Module):
    """Deterministic policy: selects the actor's observation groups and returns the action mean.

    Accepts the env's observation TensorDict (as rsl_rl's inference policy does) or an already concatenated tensor.
    """

    def __init__(self, actor: MLPModel, obs_groups: list[str]) -> None:
        super().__init__()
        self.actor = actor
        self.obs_groups = list(obs_groups)

    def forward(self, obs: TensorDict | torch.Tensor) -> torch.Tensor:
        if isinstance(obs, torch.Tensor):
            return self.actor(obs)
        return self.actor(torch.cat([obs[g] for g in self.obs_groups], dim=-1))


class ExportedPolicy(nn.Module):
    """A standalone copy of normaliser + MLP, free of training state, for tracing and scripting.

    The running statistics are frozen into two constants: ``actions = mlp((obs − offset) / scale)``.
    """

    def __init__(self, actor: MLPModel) -> None:
        super().__init__()
        normalizer = actor.obs_normalizer
        if isinstance(normalizer, EmpiricalNormalization):
            offset, scale = normalizer.mean.detach().clone(), (normalizer.std + normalizer.eps).detach().clone()
        else:
            offset, scale = torch.zeros(actor.obs_dim), torch.ones(actor.obs_dim)
        # Frozen parameters rather than buffers: typed attributes that TorchScript and ONNX both handle.
        self.offset = nn.Parameter(offset.cpu(), requires_grad=False)
        self.scale = nn.Parameter(scale.cpu(), requires_grad=False)
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        self.obs_dim = actor.obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp((obs - self.offset) / self.scale)


def export_onnx(actor: MLPModel, path: str | os.PathLike[str], opset: int = ONNX_OPSET, verbose: bool = False) -> Path:
    """Write the deterministic policy as ONNX with a dynamic batch axis (atomic write)."""
    model = ExportedPolicy(actor)
    dummy = torch.zeros(1, model.obs_dim)

    def write(f: object) -> None:
        torch.onnx.export(
            model,
            (dummy,),
            f,  # type: ignore[arg-type]
            input_names=["obs"],
            output_names=["actions"],
            dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}},
            opset_version=opset,
            verbose=verbose,
            dynamo=False,
        )

    return atomic_write(path, write)


def export_jit(actor: MLPModel, path: str | os.PathLike[str]) -> Path:
    """Write the deterministic policy as a scripted TorchScript module (atomic write)."""
    scripted = torch.jit.script(ExportedPolicy(actor))
    return atomic_write(path, lambda f: torch.jit.save(scripted, f))
