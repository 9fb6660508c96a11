"""Export of a trained policy: observation normaliser + network → action mean, as ONNX and TorchScript.

MLP policies: input ``obs [batch, obs_dim]`` (the actor's observation groups concatenated in ``obs_groups`` order),
output ``actions [batch, num_actions]``, as rsl_rl exports. CNN policies take the same one flat ``obs``: every group
flattened in ``obs_groups`` order, an image ``[C, H, W]`` row-major (:mod:`rsl_rl.models.cnn_model`), so the
deployment runtime and its metadata need nothing new; rsl-rl-lib's per-image inputs are ``CNNModel.as_onnx()``'s.
Recurrent ONNX policies add explicit state: inputs ``obs, h_in`` (and ``c_in`` for an LSTM), outputs ``actions,
h_out`` (and ``c_out``), each ``[layers, batch, hidden]``.
TorchScript exports are stateful as rsl-rl-lib's: ``forward(obs) → actions`` and ``reset()``.
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
from rsl_rl.models.cnn_model import CNNModel
from rsl_rl.models.mlp_model import MLPModel
from rsl_rl.models.rnn_model import RNNModel
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.sac_models import SquashedGaussianActor

Actor = MLPModel | RNNModel | CNNModel | SquashedGaussianActor
"""Every actor a runner can export: PPO's MLP, RNN or CNN model, SAC's squashed Gaussian."""

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
        # Flattened per group: an image group [N, C, H, W] joins the flat layout a CNN actor reads.
        return self.actor(torch.cat([obs[g].flatten(1) for g in self.obs_groups], dim=-1))

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
        mean, self.hidden = self.actor.step(x, self.hidden)
        return mean

    def reset(self, dones: torch.Tensor | None = None) -> None:
        if dones is None or self.hidden is None:
            self.hidden = None
            return
        # Any dtype of dones (Isaac Lab passes long: ~dones would be −1/−2); torch.where so NaN cannot survive.
        done = dones.to(torch.bool).reshape(1, -1, 1)
        self.hidden = tuple(torch.where(done, 0.0, h) for h in self.hidden)


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
        # A CNN model (and a SAC actor with images) normalises its vector part only.
        dim = actor.obs_dim_1d if isinstance(actor, CNNModel | SquashedGaussianActor) else actor.obs_dim
        if isinstance(normalizer, EmpiricalNormalization):
            offset, scale = normalizer.mean.detach().clone(), (normalizer.std + normalizer.eps).detach().clone()
        else:
            offset, scale = torch.zeros(dim), torch.ones(dim)
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

    @torch.jit.export
    def reset(self) -> None:
        """rsl-rl-lib's exported policies have ``reset()``; a stateless policy has nothing to forget."""


class ExportedCNNPolicy(nn.Module):
    """A standalone copy of a CNN actor: the flat ``obs`` split by the model's fixed column ranges, the vector part
    normalised, each image ``[C, H, W]`` through its encoder, the MLP (see :mod:`rsl_rl.models.cnn_model`)."""

    def __init__(self, actor: CNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.cnns = nn.ModuleList([copy.deepcopy(actor.cnns[g]).cpu().eval() for g in actor.obs_groups_2d])
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        self.has_vector = actor.obs_dim_1d > 0
        # Never empty (TorchScript infers the attributes' types from their values); unused without vector groups.
        self.vector_spans = list(actor.vector_spans) or [(0, 0)]
        self.image_spans = list(actor.image_spans)
        self.image_shapes = [list(actor.layout[g][1]) for g in actor.obs_groups_2d]

    def encode(self, vector: torch.Tensor, images: list[torch.Tensor]) -> torch.Tensor:
        """The MLP output for the vector groups ``[B, D1]`` and the images (each ``[B, C, H, W]``)."""
        latent = [self.normalize(vector)] if self.has_vector else []
        for i, cnn in enumerate(self.cnns):
            latent.append(cnn(images[i]))
        return self.mlp(torch.cat(latent, dim=-1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # Index loops rather than zip: TorchScript compiles this method too.
        vector = (
            torch.cat([obs[:, span[0] : span[1]] for span in self.vector_spans], dim=-1)
            if self.has_vector
            else obs[:, :0]
        )
        images: list[torch.Tensor] = []
        for i in range(len(self.image_spans)):
            start, end = self.image_spans[i]
            images.append(obs[:, start:end].reshape([-1] + self.image_shapes[i]))
        return self.encode(vector, images)

    @torch.jit.export
    def reset(self) -> None:
        """Stateless: nothing to forget (the method exists because rsl-rl-lib's exports have it)."""


class _SACImageTrunk(nn.Module):
    """A SAC actor's MLP input from the flat ``obs``: the vector part normalised, then the images' CNN features."""

    def __init__(self, actor: SquashedGaussianActor) -> None:
        super().__init__()
        assert actor.encoder is not None
        self.normalize = _Normalize(actor)
        self.encoder = copy.deepcopy(actor.encoder).cpu().eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        vector, images = self.encoder.split(obs)
        return self.encoder(self.normalize(vector) if self.encoder.has_vector else vector, images)


class ExportedSACPolicy(nn.Module):
    """SAC's deterministic action: normaliser (and CNN encoders of image groups), MLP, the mean half of its output,
    tanh, onto the bounds (:func:`rsl_rl.modules.sac_models.squash_to_bounds`)."""

    def __init__(self, actor: SquashedGaussianActor) -> None:
        super().__init__()
        self.normalize: nn.Module = _Normalize(actor) if actor.encoder is None else _SACImageTrunk(actor)
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        self.num_actions = actor.output_dim
        center = actor.action_center.detach().cpu()
        self.center = nn.Parameter(center.clone(), requires_grad=False)
        self.up = nn.Parameter((actor.action_high.detach().cpu() - center).clone(), requires_grad=False)
        self.down = nn.Parameter((center - actor.action_low.detach().cpu()).clone(), requires_grad=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.mlp(self.normalize(obs))[:, : self.num_actions])
        return self.center + u * torch.where(u >= 0, self.up, self.down)

    @torch.jit.export
    def reset(self) -> None:
        """Stateless: nothing to forget (the method exists because rsl-rl-lib's exports have it)."""


class ExportedGRUPolicy(nn.Module):
    """``(obs, h_in) → (actions, h_out)``."""

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_out = self.rnn(self.normalize(obs).unsqueeze(0), h_in)
        return self.mlp(y.squeeze(0)), h_out


class ExportedLSTMPolicy(nn.Module):
    """``(obs, h_in, c_in) → (actions, h_out, c_out)``."""

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()

    def forward(
        self, obs: torch.Tensor, h_in: torch.Tensor, c_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h_out, c_out) = self.rnn(self.normalize(obs).unsqueeze(0), (h_in, c_in))
        return self.mlp(y.squeeze(0)), h_out, c_out


class ScriptedGRUPolicy(nn.Module):
    """TorchScript export of a GRU actor, stateful as rsl-rl-lib's: ``forward(obs) → actions`` carries the hidden
    state from call to call, ``reset()`` forgets it. A batch of another size than the stored state starts from zeros.
    """

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        self.register_buffer("hidden_state", actor.initial_hidden(1)[0].cpu())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.hidden_state
        if h.shape[1] != obs.shape[0]:
            h = torch.zeros(h.shape[0], obs.shape[0], h.shape[2], dtype=h.dtype, device=h.device)
        y, h = self.rnn(self.normalize(obs).unsqueeze(0), h)
        self.hidden_state = h
        return self.mlp(y.squeeze(0))

    @torch.jit.export
    def reset(self) -> None:
        self.hidden_state = torch.zeros_like(self.hidden_state)


class ScriptedLSTMPolicy(nn.Module):
    """TorchScript export of an LSTM actor, stateful as rsl-rl-lib's (see :class:`ScriptedGRUPolicy`)."""

    def __init__(self, actor: RNNModel) -> None:
        super().__init__()
        self.normalize = _Normalize(actor)
        self.rnn = copy.deepcopy(actor.rnn.rnn).cpu().eval()
        self.mlp = copy.deepcopy(actor.mlp).cpu().eval()
        h, c = actor.initial_hidden(1)
        self.register_buffer("hidden_state", h.cpu())
        self.register_buffer("cell_state", c.cpu())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h, c = self.hidden_state, self.cell_state
        if h.shape[1] != obs.shape[0]:
            h = torch.zeros(h.shape[0], obs.shape[0], h.shape[2], dtype=h.dtype, device=h.device)
            c = torch.zeros_like(h)
        y, (h, c) = self.rnn(self.normalize(obs).unsqueeze(0), (h, c))
        self.hidden_state, self.cell_state = h, c
        return self.mlp(y.squeeze(0))

    @torch.jit.export
    def reset(self) -> None:
        self.hidden_state = torch.zeros_like(self.hidden_state)
        self.cell_state = torch.zeros_like(self.cell_state)


def exportable(actor: Actor) -> nn.Module:
    """The export module of an actor."""
    if isinstance(actor, SquashedGaussianActor):
        return ExportedSACPolicy(actor)
    if isinstance(actor, RNNModel):
        return ExportedGRUPolicy(actor) if actor.cfg.rnn_type == "gru" else ExportedLSTMPolicy(actor)
    if isinstance(actor, CNNModel):
        return ExportedCNNPolicy(actor)
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
    """Write the deterministic policy as a scripted TorchScript module (atomic write): ``forward(obs) → actions`` and
    ``reset()``, as rsl-rl-lib exports; a recurrent one keeps its hidden state inside (ONNX takes it explicitly)."""
    if isinstance(actor, RNNModel):
        module: nn.Module = ScriptedGRUPolicy(actor) if actor.cfg.rnn_type == "gru" else ScriptedLSTMPolicy(actor)
    else:
        module = exportable(actor)
    scripted = torch.jit.script(module)
    return atomic_write(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra_files or {}))
