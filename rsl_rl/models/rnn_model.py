"""Recurrent model: observation normaliser → GRU/LSTM → MLP head, and the hidden-state helpers that let the
algorithms treat MLP and recurrent models alike.

Acting runs one control step at a time with an explicit hidden state (as a robot runs the exported policy). Training
runs whole rollout segments (truncated back-propagation through time) with :func:`model_sequence`: the hidden state
is zeroed after every step at which an episode ended, exactly as acting resets it, so both give the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import torch
from tensordict import TensorDict
from torch import nn

from rsl_rl.models.cnn_model import CNNModel
from rsl_rl.models.mlp_model import MLPModel, Observations, with_deterministic_output
from rsl_rl.modules.cnn import CNNConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ModelConfig
from rsl_rl.modules.rnn import RNN, HiddenState, RNNConfig

Hidden = tuple[torch.Tensor, ...]
"""``(h,)`` for a GRU, ``(h, c)`` for an LSTM; each ``[layers, batch, hidden]``. ``()`` for an MLP model."""


class RNNModel(MLPModel):
    """Observation normaliser → GRU/LSTM → MLP head (rsl-rl-lib 5.x's ``RNNModel``); an actor's output is the action.

    Two ways to carry the hidden state:

    * explicit, this library's: ``step(obs, hidden) → (output, hidden)`` per control step and
      ``forward_sequence(obs, hidden, dones)`` over a rollout segment -- what the algorithms and exports use;
    * stored in ``self.rnn.hidden_state``, rsl-rl-lib's: ``model(obs)`` advances it, ``reset(dones)`` zeroes it for
      finished envs, ``get_hidden_state()`` / ``detach_hidden_state()``; ``model(obs, masks, hidden_state)`` runs
      padded trajectories ``[T, B, D]`` from ``hidden_state`` and returns their valid steps.
    """

    is_recurrent: bool = True
    cfg: RNNConfig
    """The network (rnn_type, widths); ``distribution`` is the action distribution actually used."""

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
        rnn_type: str = "lstm",
        rnn_hidden_dim: int = 256,
        rnn_num_layers: int = 1,
    ) -> None:
        """rsl-rl-lib's constructor (see :class:`MLPModel`); the recurrent layer reads the normalised groups."""
        cfg = RNNConfig(
            hidden_dims=tuple(hidden_dims),
            activation=activation,
            obs_normalization=obs_normalization,
            rnn_type=rnn_type,
            rnn_hidden_dim=rnn_hidden_dim,
            rnn_num_layers=rnn_num_layers,
        )
        if isinstance(distribution_cfg, DistributionConfig):
            cfg.distribution_cfg = distribution_cfg
        self.latent_dim = rnn_hidden_dim
        super().__init__(
            obs, obs_groups, obs_set, output_dim, hidden_dims, activation, obs_normalization, distribution_cfg
        )
        self.cfg = cfg
        self.rnn = RNN(self.obs_dim, rnn_hidden_dim, rnn_num_layers, rnn_type)
        self._register_load_state_dict_pre_hook(_rename_previous_rnn_keys)

    @classmethod
    def from_config(
        cls,
        obs_dim: int,
        output_dim: int,
        cfg: ModelConfig,
        obs_groups: Sequence[str] = ("policy",),
        actor: bool = True,
    ) -> Self:
        """This library's constructor, from an :class:`RNNConfig`; ``actor=False`` leaves out the distribution."""
        if not isinstance(cfg, RNNConfig):
            raise TypeError(f"RNNModel.from_config needs an RNNConfig, got {type(cfg).__name__}")
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model.obs_groups, model.obs_dim, model.cfg, model.latent_dim = (
            list(obs_groups),
            obs_dim,
            cfg,
            cfg.rnn_hidden_dim,
        )
        # Created before the MLP, as this library always has (a seeded initialisation stays what it was); registered
        # after it, in rsl-rl-lib's order -- distribution, MLP, RNN -- because optimisers match saved state by position.
        rnn = RNN(obs_dim, cfg.rnn_hidden_dim, cfg.rnn_num_layers, cfg.rnn_type)
        distribution = cfg.distribution_cfg if actor else None
        model._build(output_dim, cfg.hidden_dims, cfg.activation, cfg.obs_normalization, distribution)
        model.rnn = rnn
        model._register_load_state_dict_pre_hook(_rename_previous_rnn_keys)
        return model

    # --- explicit hidden state (this library's algorithms and exports) ------------------------------------------------

    @property
    def num_hidden(self) -> int:
        return 1 if self.cfg.rnn_type == "gru" else 2

    def initial_hidden(self, batch: int = 1, device: torch.device | str | None = None) -> Hidden:
        shape = (self.cfg.rnn_num_layers, batch, self.cfg.rnn_hidden_dim)
        return tuple(torch.zeros(shape, device=device) for _ in range(self.num_hidden))

    def _rnn(self, x: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """``x[T, B, D]`` (already normalised) → ``(y[T, B, H], hidden)``."""
        rnn = self.rnn.rnn
        if isinstance(rnn, nn.GRU):
            y, h = rnn(x, hidden[0])
            return y, (h,)
        y, (h, c) = rnn(x, (hidden[0], hidden[1]))
        return y, (h, c)

    def _output(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return mlp_output if self.distribution is None else self.distribution.deterministic_output(mlp_output)

    def step(self, obs: Observations, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """One control step: ``obs[B, D]`` and the state → ``(output [B, O], next state)``."""
        x = self.obs_normalizer(self._select(obs))
        y, new_hidden = self._rnn(x.unsqueeze(0), hidden)  # a sequence of length 1
        return self._output(self.mlp(y.squeeze(0))), new_hidden

    def forward_sequence(self, obs: torch.Tensor, hidden: Hidden, dones: torch.Tensor) -> tuple[torch.Tensor, Hidden]:
        """``obs[T, B, D]``, ``dones[T, B]`` bool → ``(output [T, B, O], hidden after step T−1, reset where done)``.

        Step by step, because the state must be zeroed inside the sequence where an episode ended (h ← 0 where d_t,
        after step t); gradients flow through the whole sequence.
        """
        x = self.obs_normalizer(obs)
        ys = []
        for t in range(obs.shape[0]):
            y, hidden = self._rnn(x[t : t + 1], hidden)
            hidden = reset_hidden(hidden, dones[t])
            ys.append(y)
        return self._output(self.mlp(torch.cat(ys))), hidden

    # --- stored hidden state (rsl-rl-lib's interface) -----------------------------------------------------------------

    def get_latent(
        self, obs: Observations, masks: torch.Tensor | None = None, hidden_state: HiddenState = None
    ) -> torch.Tensor:
        """Normalised groups through the recurrent layer, from its stored state (or, with ``masks``, from
        ``hidden_state`` over padded trajectories)."""
        return self.rnn(super().get_latent(obs), masks, hidden_state).squeeze(0)

    def reset(self, dones: torch.Tensor | None = None, hidden_state: HiddenState = None) -> None:
        """Zero the stored state of envs whose ``dones`` is non-zero (any dtype), or of all envs (``dones=None``; or
        set it to ``hidden_state``)."""
        self.rnn.reset(dones, hidden_state)

    def get_hidden_state(self) -> HiddenState:
        return self.rnn.hidden_state

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """Cut the stored state from the graph (truncated back-propagation), of every env or of those in ``dones``."""
        self.rnn.detach_hidden_state(dones)

    # --- export -------------------------------------------------------------------------------------------------------

    def as_jit(self) -> nn.Module:
        """TorchScript-able and stateful as rsl-rl-lib's: ``forward(obs) → actions`` carries the state from call to
        call, ``reset()`` forgets it."""
        from rsl_rl.export import ScriptedGRUPolicy, ScriptedLSTMPolicy  # lazy: rsl_rl.export imports the models

        policy = ScriptedGRUPolicy(self) if self.cfg.rnn_type == "gru" else ScriptedLSTMPolicy(self)
        return with_deterministic_output(policy, self)

    def _get_latent_dim(self) -> int:
        return self.latent_dim


def _rename_previous_rnn_keys(state_dict: dict[str, torch.Tensor], prefix: str, *_: object) -> None:
    """State dicts written before the recurrent layer moved into :class:`RNN` name it ``rnn.weight_*``."""
    for key in [k for k in state_dict if k.startswith(f"{prefix}rnn.") and not k.startswith(f"{prefix}rnn.rnn.")]:
        state_dict[f"{prefix}rnn.rnn.{key[len(prefix) + 4 :]}"] = state_dict.pop(key)


# --- one interface for MLP and recurrent models (used by recurrent PPO and distillation) ------------------------------

Model = MLPModel | RNNModel


def initial_hidden(model: Model, batch: int, device: torch.device | str | None = None) -> Hidden:
    """Zero hidden state of ``batch`` envs; ``()`` for an MLP model."""
    return model.initial_hidden(batch, device) if isinstance(model, RNNModel) else ()


def model_step(model: Model, obs: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
    """One control step: ``obs[B, D]`` → ``(output [B, O], next hidden)``."""
    if isinstance(model, RNNModel):
        return model.step(obs, hidden)
    return model(obs), hidden


def model_sequence(model: Model, obs: torch.Tensor, hidden: Hidden, dones: torch.Tensor) -> tuple[torch.Tensor, Hidden]:
    """A rollout segment: ``obs[T, B, D]``, ``dones[T, B]`` → ``(output [T, B, O], hidden after it)``."""
    if isinstance(model, RNNModel):
        return model.forward_sequence(obs, hidden, dones)
    return model(obs), hidden


def reset_hidden(hidden: Hidden, dones: torch.Tensor) -> Hidden:
    """Zero the state of envs whose episode ended (``dones[B]`` bool), by a mask: no host sync.

    torch.where, not a product with (1 − d): a state made NaN by a NaN observation must not outlive its episode.
    """
    done = dones.unsqueeze(-1)
    return tuple(torch.where(done, 0.0, h) for h in hidden)


def restore_hidden(current: Hidden, saved: list[torch.Tensor] | tuple[torch.Tensor, ...], name: str) -> Hidden:
    """``saved`` (a checkpoint's copy of a hidden state) on ``current``'s device, after checking its shapes."""
    if [tuple(h.shape) for h in saved] != [tuple(h.shape) for h in current]:
        raise ValueError(
            f"the checkpoint's hidden state of the {name} has shapes {[tuple(h.shape) for h in saved]}, this run's "
            f"{[tuple(h.shape) for h in current]}: exact resume needs the checkpoint's num_envs and model"
        )
    return tuple(h.to(c.device).clone() for h, c in zip(saved, current, strict=True))


def select_hidden(hidden: Hidden, envs: torch.Tensor) -> Hidden:
    """The state of the envs ``envs`` (indices into the batch axis)."""
    return tuple(h[:, envs] for h in hidden)


def build_model(
    obs_dim: int,
    output_dim: int,
    cfg: ModelConfig,
    actor: bool = True,
    obs_groups: Sequence[str] = ("policy",),
    obs: TensorDict | None = None,
    share_with: MLPModel | None = None,
) -> Model:
    """An :class:`RNNModel` for an :class:`RNNConfig`, a :class:`CNNModel` for a :class:`CNNConfig`, else an
    :class:`MLPModel` (an actor if ``cfg`` has a distribution); ``obs_groups`` are the groups a TensorDict input is read
    from. A CNN model needs ``obs`` (the image shapes) and, with ``cfg.share_cnn_encoders``, ``share_with``: the
    CNN model (the actor) whose encoders it uses."""
    if isinstance(cfg, CNNConfig):
        if obs is None:
            raise ValueError("a CNNModel is built from an observation TensorDict (its image shapes): pass obs")
        cnns = None
        if cfg.share_cnn_encoders:
            if not isinstance(share_with, CNNModel):
                raise ValueError("share_cnn_encoders needs the actor to be a CNNModel (its encoders are shared)")
            cnns = share_with.cnns
        return CNNModel.from_obs(obs, obs_groups, output_dim, cfg, actor, cnns)
    if isinstance(cfg, RNNConfig):
        return RNNModel.from_config(obs_dim, output_dim, cfg, obs_groups, actor=actor)
    return MLPModel.from_config(obs_dim, output_dim, cfg, obs_groups)
