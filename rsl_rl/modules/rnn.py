"""The recurrent layer (rsl-rl-lib's ``RNN`` block) and the configuration of recurrent models.

Acting runs one control step at a time with an explicit hidden state (as a robot runs the exported policy). Training
runs whole rollout segments (truncated back-propagation through time) with :func:`model_sequence`: the hidden state
is zeroed after every step at which an episode ended, exactly as acting resets it, so both give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rsl_rl.modules.mlp import ActorConfig, validate_mlp
from rsl_rl.utils.class_names import short_class_name

RNN_TYPES = ("gru", "lstm")


@dataclass
class RNNConfig(ActorConfig):
    """A recurrent model (rsl_rl's ``RNNModel`` section); ``distribution_cfg`` is unused for a critic."""

    class_name: str = "RNNModel"
    """Only ``"RNNModel"``."""
    rnn_type: str = "lstm"
    """``lstm`` or ``gru`` (default as rsl-rl-lib 5.x)."""
    rnn_hidden_dim: int = 256
    """Hidden units per recurrent layer."""
    rnn_num_layers: int = 1
    """Stacked recurrent layers."""

    def __post_init__(self) -> None:
        short_class_name(self.class_name, ["RNNModel"], "class_name")
        validate_mlp(self.hidden_dims, self.activation)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        self.rnn_type = self.rnn_type.lower()
        if self.rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type={self.rnn_type!r}; allowed: {list(RNN_TYPES)}")
        if self.rnn_hidden_dim < 1 or self.rnn_num_layers < 1:
            raise ValueError("rnn_hidden_dim and rnn_num_layers must be >= 1")


HiddenState = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None
"""rsl-rl-lib's hidden state: ``h`` of a GRU, ``(h, c)`` of an LSTM, each ``[layers, batch, hidden]``; or None."""


class RNN(nn.Module):
    """A GRU or LSTM held as ``self.rnn``, so parameters are named ``rnn.rnn.weight_*`` as in rsl-rl-lib.

    Our models call ``self.rnn.rnn`` with an explicit state (:mod:`rsl_rl.models.rnn_model`). The stateful interface
    below is rsl-rl-lib's, for code written against it: ``forward`` without ``masks`` runs one step from the stored
    state; with ``masks`` (padded trajectories ``[T, B, D]`` and their validity mask ``[T, B]``) it runs the sequences
    from ``hidden_state`` and returns the valid steps.
    """

    def __init__(self, input_size: int, hidden_dim: int = 256, num_layers: int = 1, type: str = "lstm") -> None:  # noqa: A002 -- rsl-rl-lib's keyword
        super().__init__()
        if type.lower() not in RNN_TYPES:
            raise ValueError(f"type={type!r}; allowed: {list(RNN_TYPES)}")
        rnn_cls = nn.GRU if type.lower() == "gru" else nn.LSTM
        self.rnn: nn.GRU | nn.LSTM = rnn_cls(input_size=input_size, hidden_size=hidden_dim, num_layers=num_layers)
        self.hidden_state: HiddenState = None

    def forward(
        self,
        input: torch.Tensor,
        masks: torch.Tensor | None = None,
        hidden_state: HiddenState = None,  # noqa: A002
    ) -> torch.Tensor:
        if masks is not None:
            if hidden_state is None:
                raise ValueError("RNN.forward with masks (a batch of padded trajectories) needs hidden_state")
            out, _ = self.rnn(input, hidden_state)
            valid = masks.to(torch.bool).transpose(0, 1)  # [B, T]
            # The valid steps of each trajectory, back in [T, B', H] layout (rsl-rl-lib's unpadding).
            return out.transpose(0, 1)[valid].view(-1, out.shape[0], out.shape[-1]).transpose(0, 1)
        out, self.hidden_state = self.rnn(input.unsqueeze(0), self.hidden_state)
        return out

    def reset(self, dones: torch.Tensor | None = None, hidden_state: HiddenState = None) -> None:
        """Forget the stored state (``dones=None``: of every env, or set it to ``hidden_state``); else zero it for the
        envs where ``dones`` is non-zero (any dtype: Isaac Lab passes long)."""
        if dones is None:
            self.hidden_state = hidden_state
            return
        if hidden_state is not None:
            raise ValueError("reset(dones, hidden_state): give either dones (zero those envs) or a hidden_state")
        if self.hidden_state is None:
            return
        done = dones.to(torch.bool).reshape(1, -1, 1)
        states = self.hidden_state if isinstance(self.hidden_state, tuple) else (self.hidden_state,)
        zeroed = tuple(torch.where(done, 0.0, h) for h in states)
        self.hidden_state = (zeroed[0], zeroed[1]) if len(zeroed) == 2 else zeroed[0]

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """Cut the stored state from the graph (truncated back-propagation), of all envs or of those in ``dones``."""
        if self.hidden_state is None:
            return
        states = self.hidden_state if isinstance(self.hidden_state, tuple) else (self.hidden_state,)
        if dones is None:
            detached = tuple(h.detach() for h in states)
        else:
            done = dones.to(torch.bool).reshape(1, -1, 1)
            detached = tuple(torch.where(done, h.detach(), h) for h in states)
        self.hidden_state = (detached[0], detached[1]) if len(detached) == 2 else detached[0]
