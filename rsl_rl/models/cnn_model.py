"""CNN model (rsl-rl-lib 5.x's ``CNNModel``): CNN encoders for image groups ``[B, C, H, W]``, their features
concatenated after the normalised vector groups ``[B, D]``, then the MLP and, for an actor, the action distribution.

**Inputs.** Like every model here it takes the env's observation TensorDict (rsl-rl-lib's call) or one flat tensor
``[..., obs_dim]``: the model's groups in ``obs_groups[obs_set]`` order, each flattened (an image row-major, C·H·W).
The flat form is what the algorithms store in their preallocated rollout storage and what :mod:`rsl_rl.export` and
the deployment runtime feed, so PPO runs a CNN actor without knowing it is one. The model splits the flat tensor by
fixed column ranges (:attr:`layout`) and reshapes the images; nothing is copied for the vector part when its groups
are adjacent.

**Attributes** are rsl-rl-lib's (``obs_groups``: the vector groups; ``obs_groups_2d``, ``obs_dims_2d``,
``obs_channels_2d``, ``cnns``, ``cnn_latent_dim``) except ``obs_dim``, which is the flat input width here (rsl-rl-lib:
the vector width, here ``obs_dim_1d``): algorithms and exports size their inputs by ``obs_dim``. Parameter names and
registration order (normaliser, distribution, MLP, then ``cnns.<group>.<layer>``) are rsl-rl-lib's, so its CNN
checkpoints and optimiser states load.

**Exports.** ``as_jit()``/``as_onnx()`` keep rsl-rl-lib's inputs (``obs`` = the vector groups, then one input per
image group) for frameworks that export through them; this library's exporters (:func:`rsl_rl.export.export_onnx`,
``deploy.export``) write one flat ``obs`` input, the layout above, which the torch-free runtime reads unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import torch
from tensordict import TensorDict
from torch import nn

from rsl_rl.models.mlp_model import MLPModel, Observations
from rsl_rl.modules.cnn import CNN, CNNConfig, is_per_group
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ModelConfig
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.rnn import HiddenState

if TYPE_CHECKING:
    from rsl_rl.export import ExportedCNNPolicy

Span = tuple[int, int]
"""``[start, end)`` columns of a group in the flat input."""


class CNNModel(MLPModel):
    """Vector groups (normalised) and CNN features of image groups → MLP → output."""

    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        hidden_dims: tuple[int, ...] | list[int] = (256, 256, 256),
        activation: str = "elu",
        obs_normalization: bool = False,
        distribution_cfg: dict[str, Any] | DistributionConfig | None = None,
        cnn_cfg: dict[str, Any] | None = None,
        cnns: nn.ModuleDict | dict[str, nn.Module] | None = None,
    ) -> None:
        """rsl-rl-lib's constructor (see :class:`MLPModel`). ``cnn_cfg``: :class:`CNN` keyword arguments for every
        image group, or ``{group: kwargs}``; ``cnns``: existing encoders to use instead (shared with another model,
        e.g. the critic using the actor's), keyed by image group. ``obs_normalization`` applies to the vector groups.
        """
        self._get_obs_dim(obs, obs_groups, obs_set)
        # Created before the MLP, as rsl-rl-lib does, so a seeded initialisation draws the same numbers; registered
        # after it, in rsl-rl-lib's parameter order.
        encoders = self._encoders(cnn_cfg, cnns)
        self.cnn_latent_dim = 0
        for group, cnn in encoders.items():
            width = getattr(cnn, "output_dim", None)
            if getattr(cnn, "output_channels", None) is not None or not isinstance(width, int):
                raise ValueError(f"the encoder of image group {group!r} must flatten its output (a CNN with flatten)")
            self.cnn_latent_dim += width
        super().__init__(
            obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization, distribution_cfg
        )
        self.cnns = encoders if isinstance(encoders, nn.ModuleDict) else nn.ModuleDict(encoders)
        self.obs_dim = self.input_dim  # the flat width the algorithms store; the MLP's vector part is obs_dim_1d

    @classmethod
    def from_obs(
        cls,
        obs: TensorDict,
        groups: Sequence[str],
        output_dim: int,
        cfg: CNNConfig,
        actor: bool = True,
        cnns: nn.ModuleDict | None = None,
    ) -> Self:
        """This library's constructor, from a :class:`CNNConfig`; ``actor=False`` leaves out the distribution."""
        return cls(
            obs,
            {"model": list(groups)},
            "model",
            output_dim,
            cfg.hidden_dims,
            cfg.activation,
            cfg.obs_normalization,
            cfg.distribution_cfg if actor else None,
            cfg.cnn_cfg,
            cnns,
        )

    @classmethod
    def from_config(
        cls, obs_dim: int, output_dim: int, cfg: ModelConfig, obs_groups: Sequence[str] = ("policy",)
    ) -> Self:
        """Not available: a width does not say the images' shapes. Use :meth:`from_obs`."""
        raise TypeError("a CNNModel is built from an observation TensorDict (image shapes): use CNNModel.from_obs")

    def _encoders(
        self, cnn_cfg: dict[str, Any] | None, cnns: nn.ModuleDict | dict[str, nn.Module] | None
    ) -> nn.ModuleDict | dict[str, nn.Module]:
        """The given encoders (checked against the image groups), or new ones from ``cnn_cfg``."""
        groups = self.obs_groups_2d
        if cnns is not None:
            if set(cnns.keys()) != set(groups):
                raise ValueError(
                    f"shared CNN encoders are for the image groups {sorted(cnns.keys())}, this model reads "
                    f"{sorted(groups)}: models sharing encoders must read the same image groups"
                )
            return cnns
        if cnn_cfg is None:
            raise ValueError("cnn_cfg is required when no CNN encoders (cnns) are given")
        per_group = cnn_cfg if is_per_group(cnn_cfg) else dict.fromkeys(groups, cnn_cfg)
        if set(per_group) != set(groups):
            raise ValueError(f"cnn_cfg has configs for {sorted(per_group)}; the image groups are {sorted(groups)}")
        return {g: CNN(self.obs_dims_2d[i], self.obs_channels_2d[i], **per_group[g]) for i, g in enumerate(groups)}

    # --- the flat layout ----------------------------------------------------------------------------------------------

    def _get_obs_dim(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str) -> tuple[list[str], int]:
        """Sort the groups of ``obs_set`` into vector ``[B, D]`` and image ``[B, C, H, W]`` groups and lay them out
        in the flat input; returns the vector groups and their width (what the normaliser reads)."""
        self.layout: dict[str, tuple[Span, tuple[int, ...]]] = {}
        """Group → (its columns in the flat input, its shape per sample)."""
        groups_1d: list[str] = []
        self.obs_groups_2d: list[str] = []
        self.obs_dims_2d: list[tuple[int, int]] = []
        self.obs_channels_2d: list[int] = []
        start = 0
        for group in obs_groups[obs_set]:
            shape = tuple(int(d) for d in obs[group].shape[1:])
            if len(shape) == 3:
                self.obs_groups_2d.append(group)
                self.obs_channels_2d.append(shape[0])
                self.obs_dims_2d.append((shape[1], shape[2]))
            elif len(shape) == 1:
                groups_1d.append(group)
            else:
                raise ValueError(
                    f"observation group {group!r} has shape {tuple(obs[group].shape)}; a CNN model reads [B, D] "
                    "vector and [B, C, H, W] image groups"
                )
            width = int(torch.Size(shape).numel())
            self.layout[group] = ((start, start + width), shape)
            start += width
        if not self.obs_groups_2d:
            raise ValueError(f"obs_groups['{obs_set}'] has no image group [B, C, H, W]; use an MLPModel")
        self.input_dim = start
        """Width of the flat input: every group flattened, in ``obs_groups[obs_set]`` order."""
        self.vector_spans = _merge([self.layout[g][0] for g in groups_1d])
        """Columns of the vector groups in the flat input (adjacent groups merged into one span)."""
        self.image_spans = [self.layout[g][0] for g in self.obs_groups_2d]
        self.obs_dim_1d = sum(int(obs[g].shape[-1]) for g in groups_1d)
        return groups_1d, self.obs_dim_1d

    def _get_latent_dim(self) -> int:
        return self.obs_dim_1d + self.cnn_latent_dim

    def _select(self, obs: Observations) -> torch.Tensor:
        """The vector groups ``[..., obs_dim_1d]`` (what the normaliser reads) of a TensorDict or flat input."""
        if isinstance(obs, torch.Tensor):
            if len(self.vector_spans) == 1:
                return obs[..., self.vector_spans[0][0] : self.vector_spans[0][1]]
            return (
                torch.cat([obs[..., a:b] for a, b in self.vector_spans], dim=-1) if self.vector_spans else obs[..., :0]
            )
        if not self.obs_groups:
            return obs[self.obs_groups_2d[0]].flatten(-3)[..., :0]
        return torch.cat([obs[g] for g in self.obs_groups], dim=-1)

    def images(self, obs: Observations) -> list[torch.Tensor]:
        """The image groups of a TensorDict or flat input, each ``[..., C, H, W]``."""
        if isinstance(obs, torch.Tensor):
            lead = obs.shape[:-1]
            return [
                obs[..., a:b].reshape(*lead, *self.layout[g][1])
                for g, (a, b) in zip(self.obs_groups_2d, self.image_spans, strict=True)
            ]
        return [obs[g] for g in self.obs_groups_2d]

    # --- forward ------------------------------------------------------------------------------------------------------

    def get_latent(
        self, obs: Observations, masks: torch.Tensor | None = None, hidden_state: HiddenState = None
    ) -> torch.Tensor:
        """The MLP's input: the normalised vector groups, then every image group's CNN features (rsl-rl-lib's
        order). Leading axes (a batch, or time and batch) are kept."""
        features = []
        for group, image in zip(self.obs_groups_2d, self.images(obs), strict=True):
            lead = image.shape[:-3]
            features.append(self.cnns[group](image.reshape(-1, *image.shape[-3:])).reshape(*lead, -1))
        if not self.obs_groups:
            return torch.cat(features, dim=-1)
        return torch.cat([self.obs_normalizer(self._select(obs)), *features], dim=-1)

    def update_normalization(self, obs: Observations) -> None:
        """Fold a batch into the vector normaliser's statistics (images are not normalised)."""
        if self.obs_dim_1d > 0 and isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(self._select(obs))

    # --- export -------------------------------------------------------------------------------------------------------

    def as_jit(self) -> ScriptedCNNPolicy:
        """rsl-rl-lib's TorchScript-able policy: ``forward(obs_1d, obs_2d: list[Tensor]) → actions`` (the vector
        groups, then the images in ``obs_groups_2d`` order) and ``reset()``."""
        return ScriptedCNNPolicy(self)

    def as_onnx(self, verbose: bool = False) -> OnnxCNNPolicy:
        """rsl-rl-lib's ONNX-exportable policy: ``forward(obs, *images)`` with ``input_names`` ``["obs",
        *obs_groups_2d]``, ``output_names`` ``["actions"]`` and ``get_dummy_inputs()``. (This library's own exporters
        write one flat ``obs`` input instead: see the module docstring.)"""
        return OnnxCNNPolicy(self, verbose)


def _merge(spans: list[Span]) -> list[Span]:
    """Adjacent spans joined, so adjacent vector groups are read as one slice."""
    merged: list[Span] = []
    for a, b in spans:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _export_parts(model: CNNModel) -> tuple[ExportedCNNPolicy, nn.Module]:
    """The export module (:class:`rsl_rl.export.ExportedCNNPolicy`) and the distribution's deterministic output."""
    from rsl_rl.export import ExportedCNNPolicy  # lazy: rsl_rl.export imports the models

    head = nn.Identity() if model.distribution is None else model.distribution.as_deterministic_output_module()
    return ExportedCNNPolicy(model), head


class ScriptedCNNPolicy(nn.Module):
    """TorchScript export behind rsl-rl-lib's inputs: ``(obs_1d, obs_2d)`` → the deterministic action."""

    def __init__(self, model: CNNModel) -> None:
        super().__init__()
        self.policy, self.head = _export_parts(model)

    def forward(self, obs_1d: torch.Tensor, obs_2d: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.policy.encode(obs_1d, obs_2d))

    @torch.jit.export
    def reset(self) -> None:
        """Stateless: nothing to forget."""


class OnnxCNNPolicy(nn.Module):
    """ONNX export behind rsl-rl-lib's inputs (the images as separate arguments), with the metadata its exporters
    read."""

    def __init__(self, model: CNNModel, verbose: bool = False) -> None:
        super().__init__()
        self.policy, self.head = _export_parts(model)
        self.verbose = verbose
        self.is_recurrent = False
        self.input_names = ["obs", *model.obs_groups_2d]
        self.output_names = ["actions"]
        self._dummy_shapes = [(1, model.obs_dim_1d)] + [(1, *model.layout[g][1]) for g in model.obs_groups_2d]

    def forward(self, obs_1d: torch.Tensor, *obs_2d: torch.Tensor) -> torch.Tensor:
        return self.head(self.policy.encode(obs_1d, list(obs_2d)))

    def get_dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        """Zeros of one sample's inputs: the vector groups, then each image."""
        return tuple(torch.zeros(shape) for shape in self._dummy_shapes)
