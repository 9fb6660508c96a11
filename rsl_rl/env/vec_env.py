"""rsl-rl-lib 5.x's abstract vectorized environment, at the module path frameworks import it from
(``from rsl_rl.env.vec_env import VecEnv``; Isaac Lab and mjlab subclass it)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from tensordict import TensorDict


class VecEnv(ABC):
    """rsl-rl-lib 5.x's abstract vectorized environment (the base Isaac Lab and mjlab wrappers subclass).

    ``step`` returns ``(obs, rewards[N], dones[N], extras)`` where ``dones`` covers terminations and time-outs and
    ``extras["time_outs"]`` marks the time-outs. Drive one with :class:`RslRlEnvAdapter` (the runner does it for you).
    """

    num_envs: int
    """Number of environments."""
    num_actions: int
    """Number of actions."""
    max_episode_length: int | torch.Tensor
    """Maximum episode length, scalar or per env."""
    episode_length_buf: torch.Tensor
    """Current episode lengths."""
    device: torch.device | str
    """Device of the returned tensors."""
    cfg: dict | object
    """Configuration object."""

    @abstractmethod
    def get_observations(self) -> TensorDict:
        """Return the current observations."""
        raise NotImplementedError

    @abstractmethod
    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply ``actions[num_envs, num_actions]``; return ``(obs, rewards, dones, extras)``."""
        raise NotImplementedError
