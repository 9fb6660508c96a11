"""Recurrent actor: observation normaliser → GRU/LSTM → MLP head → action mean, one control step at a time.

This model serves inference and export (an ONNX/TorchScript policy with explicit hidden-state inputs and outputs, as a
robot runs it). Training it with PPO needs recurrent storage and truncated back-propagation through time, which the
legged-locomotion work adds; the layer names here are what that training will use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rsl_rl.modules.distribution import DistributionConfig, GaussianDistribution
from rsl_rl.modules.mlp import MLP, ModelConfig, validate_mlp
from rsl_rl.modules.normalizer import EmpiricalNormalization

RNN_TYPES = ("gru", "lstm")


@dataclass
class RNNConfig(ModelConfig):
    """A recurrent actor (rsl_rl's ``RNNModel`` section)."""

    class_name: str = "RNNModel"
    """Only ``"RNNModel"``."""
    rnn_type: str = "gru"
    """``gru`` or ``lstm``."""
    rnn_hidden_dim: int = 128
    """Hidden units per recurrent layer."""
    rnn_num_layers: int = 1
    """Stacked recurrent layers."""
    distribution_cfg: DistributionConfig = field(default_factory=DistributionConfig)
    """The action distribution."""

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
"""``(h,)`` for a GRU, ``(h, c)`` for an LSTM; each ``[layers, batch, hidden]``."""


class RNNModel(nn.Module):
    """``obs[B, D]`` and hidden state → ``(action mean [B, A], next hidden state)``."""

    is_recurrent = True

    def __init__(self, obs_dim: int, output_dim: int, cfg: RNNConfig) -> None:
        super().__init__()
        self.obs_dim, self.output_dim, self.cfg = obs_dim, output_dim, cfg
        self.obs_normalization = cfg.obs_normalization
        self.obs_normalizer: nn.Module = EmpiricalNormalization(obs_dim) if cfg.obs_normalization else nn.Identity()
        rnn_cls = nn.GRU if cfg.rnn_type == "gru" else nn.LSTM
        self.rnn = rnn_cls(obs_dim, cfg.rnn_hidden_dim, cfg.rnn_num_layers)
        self.mlp = MLP(cfg.rnn_hidden_dim, output_dim, cfg.hidden_dims, cfg.activation)
        self.distribution = GaussianDistribution(output_dim, cfg.distribution_cfg)

    @property
    def num_hidden(self) -> int:
        return 1 if self.cfg.rnn_type == "gru" else 2

    def initial_hidden(self, batch: int = 1) -> Hidden:
        shape = (self.cfg.rnn_num_layers, batch, self.cfg.rnn_hidden_dim)
        return tuple(torch.zeros(shape) for _ in range(self.num_hidden))

    def forward(self, obs: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        x = self.obs_normalizer(obs).unsqueeze(0)  # a sequence of length 1
        if self.cfg.rnn_type == "gru":
            y, h = self.rnn(x, hidden[0])
            new_hidden: Hidden = (h,)
        else:
            y, (h, c) = self.rnn(x, (hidden[0], hidden[1]))
            new_hidden = (h, c)
        return self.mlp(y.squeeze(0)), new_hidden

    def std(self) -> torch.Tensor:
        return self.distribution.std()

    def update_normalization(self, obs: torch.Tensor) -> None:
        """Fold a batch of raw observations into the normaliser's statistics."""
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(obs)
