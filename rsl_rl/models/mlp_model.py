"""MLP model (rsl-rl-lib 5.x's ``MLPModel``): observation normaliser → MLP → output; with a distribution, the output
is the distribution's deterministic action (its mean) or a sample of it.

Two constructors build the same module (same parameter names, registered in rsl-rl-lib's order):

* ``MLPModel(obs, obs_groups, obs_set, output_dim, ...)``: rsl-rl-lib's, for frameworks and user code written against
  it (the observation groups of ``obs_groups[obs_set]`` are selected from the env's observation TensorDict);
* ``MLPModel.from_config(obs_dim, output_dim, cfg)``: this library's, from a dataclass config.

The model takes either the observation TensorDict or one flat tensor ``[B, obs_dim]``: our algorithms concatenate the
groups once per step, which keeps the hot path free of dictionary work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import torch
from tensordict import TensorDict
from torch import nn

from rsl_rl.modules.distribution import Distribution, DistributionConfig, build_distribution
from rsl_rl.modules.mlp import MLP, ActorConfig, ModelConfig
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.rnn import HiddenState
from rsl_rl.utils.utils import unpad_trajectories

Observations = TensorDict | torch.Tensor
"""The env's observation groups, or the model's groups already concatenated into ``[..., obs_dim]``."""


class MLPModel(nn.Module):
    """Observation normaliser → MLP → output (an action for an actor, a value for a critic).

    Subclasses change what feeds the MLP through three hooks, as rsl-rl-lib's CNN and RNN models do:
    :meth:`_get_obs_dim` (which groups, how wide), :meth:`_get_latent_dim` (the MLP's input width) and
    :meth:`get_latent` (observations → MLP input).
    """

    is_recurrent: bool = False
    """Whether the model carries a hidden state."""

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
    ) -> None:
        """``obs``: an observation TensorDict (for the groups' widths); ``obs_groups[obs_set]``: the groups this model
        reads; ``distribution_cfg``: ``{"class_name": ..., **kwargs}`` of the output distribution (None: a
        deterministic model such as a critic)."""
        super().__init__()
        self.obs_groups, self.obs_dim = self._get_obs_dim(obs, obs_groups, obs_set)
        self._build(output_dim, hidden_dims, activation, obs_normalization, distribution_cfg)

    @classmethod
    def from_config(
        cls, obs_dim: int, output_dim: int, cfg: ModelConfig, obs_groups: Sequence[str] = ("policy",)
    ) -> Self:
        """This library's constructor: an actor (Gaussian head) for an :class:`ActorConfig`, else a deterministic model.
        ``obs_groups`` name the groups a TensorDict input is read from (the algorithms pass flat tensors)."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.obs_groups, model.obs_dim = list(obs_groups), obs_dim
        distribution = cfg.distribution_cfg if isinstance(cfg, ActorConfig) else None
        model._build(output_dim, cfg.hidden_dims, cfg.activation, cfg.obs_normalization, distribution)
        return model

    def _build(
        self,
        output_dim: int,
        hidden_dims: tuple[int, ...] | list[int],
        activation: str,
        obs_normalization: bool,
        distribution_cfg: dict[str, Any] | DistributionConfig | None,
    ) -> None:
        """Normaliser, distribution, MLP -- registered in rsl-rl-lib's order: optimisers match their saved state to
        parameters by position, so an rsl-rl-lib checkpoint's Adam state must land on the same parameters here."""
        self.output_dim = output_dim
        self.obs_normalization = obs_normalization
        self.obs_normalizer: nn.Module = EmpiricalNormalization(self.obs_dim) if obs_normalization else nn.Identity()
        self.distribution: Distribution | None = build_distribution(output_dim, distribution_cfg)
        mlp_output_dim = output_dim if self.distribution is None else self.distribution.input_dim
        self.mlp = MLP(self._get_latent_dim(), mlp_output_dim, hidden_dims, activation)
        if self.distribution is not None:
            self.distribution.init_mlp_weights(self.mlp)

    # --- forward ------------------------------------------------------------------------------------------------------

    def forward(
        self,
        obs: Observations,
        masks: torch.Tensor | None = None,
        hidden_state: HiddenState = None,
        stochastic_output: bool = False,
    ) -> torch.Tensor:
        """Observations → the deterministic output ``[..., output_dim]`` (action mean, or value); with
        ``stochastic_output`` a sample of the distribution, which stays set for ``output_*`` and ``get_output_*``.

        ``masks`` marks the valid steps of padded trajectories ``[T, B, ...]`` (rsl-rl-lib's recurrent mini-batches):
        a model without memory just drops the padding.
        """
        if masks is not None and not self.is_recurrent:
            obs = unpad_trajectories(obs, masks)
        out = self.mlp(self.get_latent(obs, masks, hidden_state))
        if self.distribution is None:
            return out
        if stochastic_output:
            self.distribution.update(out)
            return self.distribution.sample()
        return self.distribution.deterministic_output(out)

    def get_latent(
        self, obs: Observations, masks: torch.Tensor | None = None, hidden_state: HiddenState = None
    ) -> torch.Tensor:
        """The MLP's input: the model's groups concatenated (a flat tensor is taken as already concatenated), then
        normalised."""
        return self.obs_normalizer(self._select(obs))

    def _select(self, obs: Observations) -> torch.Tensor:
        """The model's groups of ``obs`` concatenated (a flat tensor is taken as already concatenated)."""
        return obs if isinstance(obs, torch.Tensor) else torch.cat([obs[g] for g in self.obs_groups], dim=-1)

    def std(self) -> torch.Tensor:
        """Action std ``[A]`` of a Gaussian actor (state-independent: what this library's PPO trains)."""
        if self.distribution is None:
            raise RuntimeError("this model has no action distribution")
        return self.distribution.std_vector()

    def update_normalization(self, obs: Observations) -> None:
        """Fold a batch of raw observations (TensorDict or flat tensor) into the normaliser's statistics."""
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(self._select(obs))

    # --- rsl-rl-lib's recurrent interface: nothing to remember --------------------------------------------------------

    def reset(self, dones: torch.Tensor | None = None, hidden_state: HiddenState = None) -> None:
        """Start new episodes: a model without memory has nothing to forget."""

    def get_hidden_state(self) -> HiddenState:
        return None

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """Nothing to detach."""

    # --- the distribution set by the last stochastic forward ----------------------------------------------------------

    @property
    def output_mean(self) -> torch.Tensor:
        return self._distribution().mean

    @property
    def output_std(self) -> torch.Tensor:
        return self._distribution().std

    @property
    def output_entropy(self) -> torch.Tensor:
        return self._distribution().entropy

    @property
    def output_distribution_params(self) -> tuple[torch.Tensor, ...]:
        return self._distribution().params

    def get_output_log_prob(self, outputs: torch.Tensor) -> torch.Tensor:
        """log p(outputs) ``[B]`` under the distribution of the last stochastic forward."""
        return self._distribution().log_prob(outputs)

    def get_kl_divergence(
        self, old_params: tuple[torch.Tensor, ...], new_params: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """KL(old ‖ new) ``[B]`` between two ``output_distribution_params``."""
        return self._distribution().kl_divergence(old_params, new_params)

    def _distribution(self) -> Distribution:
        if self.distribution is None:
            raise RuntimeError("this model is deterministic (built without distribution_cfg)")
        return self.distribution

    # --- export -------------------------------------------------------------------------------------------------------

    def as_jit(self) -> nn.Module:
        """A TorchScript-able copy for deployment: ``forward(obs) → actions`` (the deterministic output) and
        ``reset()``; ``obs`` is the model's groups concatenated."""
        from rsl_rl.export import exportable  # lazy: rsl_rl.export imports the models

        return with_deterministic_output(exportable(self), self)

    def as_onnx(self, verbose: bool = False) -> OnnxPolicy:
        """An ONNX-exportable copy with ``get_dummy_inputs()``, ``input_names`` (``["obs"]``), ``output_names``
        (``["actions"]``) and ``is_recurrent``, for ``torch.onnx.export`` (``verbose`` is kept for the exporter)."""
        return OnnxPolicy(self, verbose)

    # --- hooks for subclasses -----------------------------------------------------------------------------------------

    def _get_obs_dim(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str) -> tuple[list[str], int]:
        """The groups of ``obs_set`` and their total width; each must be a flat ``[B, D]`` group."""
        groups = list(obs_groups[obs_set])
        for group in groups:
            if obs[group].dim() != 2:
                raise ValueError(
                    f"observation group {group!r} has shape {tuple(obs[group].shape)}; an MLP model reads [B, D] groups"
                )
        return groups, sum(int(obs[g].shape[-1]) for g in groups)

    def _get_latent_dim(self) -> int:
        """Width of the MLP's input."""
        return self.obs_dim


def with_deterministic_output(policy: nn.Module, model: MLPModel) -> nn.Module:
    """A TorchScript export module of ``model`` (``forward(obs)``, ``reset()``) followed by its distribution's
    deterministic output; the module itself where that is the identity (a Gaussian's mean is the MLP output)."""
    head = nn.Identity() if model.distribution is None else model.distribution.as_deterministic_output_module()
    return policy if isinstance(head, nn.Identity) else _JitWithHead(policy, head)


class _JitWithHead(nn.Module):
    """``head(policy(obs))`` with the policy's ``reset()``."""

    def __init__(self, policy: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.policy, self.head = policy, head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.policy(obs))

    @torch.jit.export
    def reset(self) -> None:
        # TorchScript needs the plain submodule call; pyright types a submodule attribute as Tensor | Module.
        self.policy.reset()  # pyright: ignore[reportCallIssue]


class OnnxPolicy(nn.Module):
    """What ``as_onnx`` returns: the export module of :func:`rsl_rl.export.exportable` (normaliser frozen into
    constants, MLP, a recurrent state as explicit inputs and outputs) followed by the distribution's deterministic
    output, with the metadata rsl-rl-lib's exporters read."""

    def __init__(self, model: MLPModel, verbose: bool = False) -> None:
        from rsl_rl.export import example_inputs, exportable, io_names  # lazy: rsl_rl.export imports the models

        super().__init__()
        self.policy = exportable(model)
        self.head = nn.Identity() if model.distribution is None else model.distribution.as_deterministic_output_module()
        self.verbose = verbose
        self.is_recurrent = model.is_recurrent
        self.input_size = model.obs_dim
        self.input_names, self.output_names = io_names(model)
        self._dummy_shapes = [tuple(x.shape) for x in example_inputs(model)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``obs`` (and ``h_in``, ``c_in``) → ``actions`` (and ``h_out``, ``c_out``)."""
        out = self.policy(*inputs)
        if isinstance(out, tuple):
            return (self.head(out[0]), *out[1:])
        return self.head(out)

    def get_dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        """Zeros of one env's input shapes (``obs``, and the zero state of a recurrent model)."""
        return tuple(torch.zeros(shape) for shape in self._dummy_shapes)
