"""Recurrent actor/critic: observation normaliser → GRU/LSTM → MLP head, and the hidden-state helpers that let the
algorithms treat MLP and recurrent models alike.

Acting runs one control step at a time with an explicit hidden state (as a robot runs the exported policy). Training
runs whole rollout segments (truncated back-propagation through time) with :func:`model_sequence`: the hidden state
is zeroed after every step at which an episode ended, exactly as acting resets it, so both give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rsl_rl.modules.distribution import GaussianDistribution
from rsl_rl.modules.mlp import MLP, ActorConfig, MLPModel, ModelConfig, validate_mlp
from rsl_rl.modules.normalizer import EmpiricalNormalization

RNN_TYPES = ("gru", "lstm")


@dataclass
class RNNConfig(ActorConfig):
    """A recurrent model (rsl_rl's ``RNNModel`` section); ``distribution_cfg`` is unused for a critic."""

    class_name: str = "RNNModel"
    """Only ``"RNNModel"``."""
    rnn_type: str = "gru"
    """``gru`` or ``lstm``."""
    rnn_hidden_dim: int = 128
    """Hidden units per recurrent layer."""
    rnn_num_layers: int = 1
    """Stacked recurrent layers."""

    def __post_init__(self) -> None:
        name = self.class_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        if name != "RNNModel":
            raise ValueError(f"class_name={self.class_name!r}; allowed: 'RNNModel'")
        validate_mlp(self.hidden_dims, self.activation)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        self.rnn_type = self.rnn_type.lower()
        if self.rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type={self.rnn_type!r}; allowed: {list(RNN_TYPES)}")
        if self.rnn_hidden_dim < 1 or self.rnn_num_layers < 1:
            raise ValueError("rnn_hidden_dim and rnn_num_layers must be >= 1")


Hidden = tuple[torch.Tensor, ...]
"""``(h,)`` for a GRU, ``(h, c)`` for an LSTM; each ``[layers, batch, hidden]``. ``()`` for an MLP model."""


class RNNModel(nn.Module):
    """``obs[B, D]`` and hidden state → ``(output [B, O], next hidden state)``; an actor's output is the action mean."""

    is_recurrent = True

    def __init__(self, obs_dim: int, output_dim: int, cfg: RNNConfig, actor: bool = True) -> None:
        super().__init__()
        self.obs_dim, self.output_dim, self.cfg = obs_dim, output_dim, cfg
        self.obs_normalization = cfg.obs_normalization
        self.obs_normalizer: nn.Module = EmpiricalNormalization(obs_dim) if cfg.obs_normalization else nn.Identity()
        rnn_cls = nn.GRU if cfg.rnn_type == "gru" else nn.LSTM
        self.rnn = rnn_cls(obs_dim, cfg.rnn_hidden_dim, cfg.rnn_num_layers)
        self.mlp = MLP(cfg.rnn_hidden_dim, output_dim, cfg.hidden_dims, cfg.activation)
        self.distribution = GaussianDistribution(output_dim, cfg.distribution_cfg) if actor else None

    @property
    def num_hidden(self) -> int:
        return 1 if self.cfg.rnn_type == "gru" else 2

    def initial_hidden(self, batch: int = 1, device: torch.device | str | None = None) -> Hidden:
        shape = (self.cfg.rnn_num_layers, batch, self.cfg.rnn_hidden_dim)
        return tuple(torch.zeros(shape, device=device) for _ in range(self.num_hidden))

    def _rnn(self, x: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """``x[T, B, D]`` (already normalised) → ``(y[T, B, H], hidden)``."""
        if self.cfg.rnn_type == "gru":
            y, h = self.rnn(x, hidden[0])
            return y, (h,)
        y, (h, c) = self.rnn(x, (hidden[0], hidden[1]))
        return y, (h, c)

    def forward(self, obs: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        y, new_hidden = self._rnn(self.obs_normalizer(obs).unsqueeze(0), hidden)  # a sequence of length 1
        return self.mlp(y.squeeze(0)), new_hidden

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
        return self.mlp(torch.cat(ys)), hidden

    def std(self) -> torch.Tensor:
        if self.distribution is None:
            raise RuntimeError("this model has no action distribution")
        return self.distribution.std()

    def update_normalization(self, obs: torch.Tensor) -> None:
        """Fold a batch of raw observations into the normaliser's statistics."""
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(obs)


# --- one interface for MLP and recurrent models (used by recurrent PPO and distillation) ----------------------------

Model = MLPModel | RNNModel


def initial_hidden(model: Model, batch: int, device: torch.device | str | None = None) -> Hidden:
    """Zero hidden state of ``batch`` envs; ``()`` for an MLP model."""
    return model.initial_hidden(batch, device) if isinstance(model, RNNModel) else ()


def model_step(model: Model, obs: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
    """One control step: ``obs[B, D]`` → ``(output [B, O], next hidden)``."""
    if isinstance(model, RNNModel):
        return model(obs, hidden)
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


def build_model(obs_dim: int, output_dim: int, cfg: ModelConfig, actor: bool = True) -> Model:
    """An :class:`RNNModel` for an :class:`RNNConfig`, else an :class:`MLPModel` (an actor if ``cfg`` has a
    distribution)."""
    if isinstance(cfg, RNNConfig):
        return RNNModel(obs_dim, output_dim, cfg, actor=actor)
    return MLPModel(obs_dim, output_dim, cfg)
