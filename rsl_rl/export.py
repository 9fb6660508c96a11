"""Export of a trained policy: observation normaliser + network → action mean, as ONNX and TorchScript.

MLP policies: input ``obs [batch, obs_dim]`` (the actor's observation groups concatenated in ``obs_groups`` order),
output ``actions [batch, num_actions]``, as rsl_rl exports. Recurrent policies add explicit state: inputs ``obs, h_in``
(and ``c_in`` for an LSTM), outputs ``actions, h_out`` (and ``c_out``), each state ``[layers, batch, hidden]``.
``deploy/export.py`` adds metadata and the parity check that every deployment export runs.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn

from rsl_rl.atomic import atomic_write
from rsl_rl.modules.mlp import MLPModel
from rsl_rl.modules.normalizer import EmpiricalNormalization
from rsl_rl.modules.rnn import RNNModel
from rsl_rl.modules.sac_models import SquashedGaussianActor

Actor = MLPModel | RNNModel | SquashedGaussianActor
"""Every actor a runner can export: PPO's MLP or RNN, SAC's squashed Gaussian."""

ONNX_OPSET = 18


class InferencePolicy(nn.Module):
    """Deterministic policy: selects the actor's observation groups and returns the action mean.

    Accepts the env's observation TensorDict (as rsl_rl's inference policy does) or an already concatenated tensor.
    """

    def __init__(self, actor: MLPModel | SquashedGaussianActor, obs_groups: list[str]) -> None:
        super().__init__()
        self.actor = actor
        self.obs_groups = list(obs_groups)

    def forward(self, obs: TensorDict | torch.Tensor) -> torch.Tensor:
        if isinstance(obs, torch.Tensor):
            return self.actor(obs)
        return self.actor(torch.cat([obs[g] for g in self.obs_groups], dim=-1))

    def reset(self, dones: torch.Tensor | None = None) -> None:
        """Start new episodes (nothing to do without memory)."""


class RecurrentInferencePolicy(nn.Module):
    """Deterministic recurrent policy that carries its hidden state between calls; ``reset(dones)`` zeroes it for
    envs that start a new episode (all envs with ``dones=None``)."""

    def __init__(self, actor: RNNModel, obs_groups: list[str]) -> None:
        super().__init__()
        self.actor = actor
        self.obs_groups = list(obs_groups)
        self.hidden: tuple[torch.Tensor, ...] | None = None

    def forward(self, obs: TensorDict | torch.Tensor) -> torch.Tensor:
        x = obs if isinstance(obs, torch.Tensor) else torch.cat([obs[g] for g in self.obs_groups], dim=-1)
        if self.hidden is None or self.hidden[0].shape[1] != x.shape[0]:
            self.hidden = self.actor.initial_hidden(x.shape[0], x.device)
        mean, self.hidden = self.actor(x, self.hidden)
        return mean

    def reset(self, dones: torch.Tensor | None = None) -> None:
        if dones is None or self.hidden is None:
            self.hidden = None
            return
        keep = (~dones).to(self.hidden[0].dtype).unsqueeze(-1)
        self.hidden = tuple(h * keep for h in self.hidden)


def inference_policy(actor: Actor, obs_groups: list[str]) -> InferencePolicy | RecurrentInferencePolicy:
    """The deterministic policy of an actor: stateless for an MLP, with a carried hidden state for an RNN."""
    if isinstance(actor, RNNModel):
        return RecurrentInferencePolicy(actor, obs_groups)
    return InferencePolicy(actor, obs_groups)


class _Normalize(nn.Module):
    """The running statistics frozen into constants: ``(obs − offset) / scale``."""

    def __init__(self, actor: Actor) -> None:
        super().__init__()
        normalizer = actor.obs_normalizer
        if isinstance(normalizer, EmpiricalNormalization):
            offset, scale = normalizer.mean.detach().clone(), (normalizer.std + normalizer.eps).detach().clone()
        else:
            offset, scale = torch.zeros(actor.obs_dim), torch.ones(actor.obs_dim)
        # Frozen parameters rather than buffers: typed attributes that TorchScript and ONNX both handle.
        self.offset = nn.Parameter(offset.cpu(), requires_grad=False)
        self.scale = nn.Parameter(scale.cpu(), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.offset) / self.scale


class ExportedPolicy(nn.Module):
    """A standalone copy of normaliser + MLP, free of training state, for tracing and scripting."""

    def __init__(self, actor: MLPModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.normalize(obs))


class ExportedSACPolicy(nn.Module):
    """SAC's deterministic action: normaliser, MLP, the mean half of its output, tanh, onto the bounds
    (:func:`rsl_rl.modules.sac_models.squash_to_bounds`)."""

    def __init__(self, actor: SquashedGaussianActor) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        self.num_actions = actor.output_dim
        center = actor.action_center.detach().cpu()
        self.center = nn.Parameter(center.clone(), requires_grad=False)
        self.up = nn.Parameter((actor.action_high.detach().cpu() - center).clone(), requires_grad=False)
        self.down = nn.Parameter((center - actor.action_low.detach().cpu()).clone(), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.mlp(self.normalize(obs))[:, : self.num_actions])
        return self.center + u * torch.where(u >= 0, self.up, self.down)


class ExportedGRUPolicy(nn.Module):
    """``(obs, h_in) → (actions, h_out)``."""

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_out = self.rnn(self.normalize(obs).unsqueeze(0), h_in)
        return self.mlp(y.squeeze(0)), h_out


class ExportedLSTMPolicy(nn.Module):
    """``(obs, h_in, c_in) → (actions, h_out, c_out)``."""

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()

    def forward(
        self, obs: torch.Tensor, h_in: torch.Tensor, c_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h_out, c_out) = self.rnn(self.normalize(obs).unsqueeze(0), (h_in, c_in))
        return self.mlp(y.squeeze(0)), h_out, c_out


def exportable(actor: Actor) -> nn.Module:
    """The export module of an actor."""
    if isinstance(actor, SquashedGaussianActor):
        return ExportedSACPolicy(actor)
    if isinstance(actor, RNNModel):
        return ExportedGRUPolicy(actor) if actor.cfg.rnn_type == "gru" else ExportedLSTMPolicy(actor)
    return ExportedPolicy(actor)


def io_names(actor: Actor) -> tuple[list[str], list[str]]:
    """ONNX input and output names."""
    if isinstance(actor, RNNModel):
        if actor.cfg.rnn_type == "gru":
            return ["obs", "h_in"], ["actions", "h_out"]
        return ["obs", "h_in", "c_in"], ["actions", "h_out", "c_out"]
    return ["obs"], ["actions"]


def example_inputs(actor: Actor, batch: int = 1) -> tuple[torch.Tensor, ...]:
    obs = torch.zeros(batch, actor.obs_dim)
    if isinstance(actor, RNNModel):
        return (obs, *actor.initial_hidden(batch))
    return (obs,)


def export_onnx(actor: Actor, path: str | os.PathLike[str], opset: int = ONNX_OPSET, verbose: bool = False) -> Path:
    """Write the deterministic policy as ONNX with a dynamic batch axis (atomic write)."""
    model = exportable(actor)
    inputs, outputs = io_names(actor)
    dynamic: dict[str, Any] = {"obs": {0: "batch"}, "actions": {0: "batch"}}
    dynamic.update({name: {1: "batch"} for name in inputs[1:] + outputs[1:]})  # states: [layers, batch, hidden]

    def write(f: object) -> None:
        torch.onnx.export(
            model,
            example_inputs(actor),
            f,  # type: ignore[arg-type]
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=opset,
            verbose=verbose,
            dynamo=False,
        )

    return atomic_write(path, write)


def export_jit(actor: Actor, path: str | os.PathLike[str], extra_files: dict[str, str] | None = None) -> Path:
    """Write the deterministic policy as a scripted TorchScript module (atomic write)."""
    scripted = torch.jit.script(exportable(actor))
    return atomic_write(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra_files or {}))
