"""Base of the pure-torch tasks: a state tensor ``[N, S]`` advanced by analytic torch dynamics.

A task subclass supplies ``sample_initial_state``, ``dynamics``, ``observe`` and ``terminated``; rewards, episodes and
the masked auto-reset come from :class:`tasks.task.BatchedTask`. Everything runs on the env's device.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch

from tasks.task import BatchedTask, load_tensors

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchTask(BatchedTask):
    """Batched task with analytic torch dynamics.

    ``self.state`` is the state after the last step; ``self.prev_state`` the state the last action was applied in;
    ``self.action`` the last action after clipping. Reward terms read these.
    """

    state_dim: int
    num_actions: int
    action_limit: float
    """Actions are clipped to ``[-action_limit, action_limit]`` before they act."""

    def __init__(self, cfg: Any, device: torch.device | str = "cpu", seed: int = 0) -> None:
        if cfg.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {cfg.num_envs}")
        if cfg.dtype not in DTYPES:
            raise ValueError(f"dtype={cfg.dtype!r}; allowed: {list(DTYPES)}")
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device(device)
        self.dtype = DTYPES[cfg.dtype]
        self.max_episode_length = cfg.max_episode_steps
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.init_buffers()
        self.state = torch.zeros(self.num_envs, self.state_dim, dtype=self.dtype, device=self.device)
        self.reset()
        self.prev_state = self.state

    # --- what a task defines -----------------------------------------------------------------------------------------

    @abstractmethod
    def sample_initial_state(self, n: int) -> torch.Tensor:
        """Draw ``n`` initial states ``[n, S]`` from ``self.generator``."""

    @abstractmethod
    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next state ``[N, S]`` from state ``[N, S]`` and clipped action ``[N, A]``."""

    # --- BatchedTask -------------------------------------------------------------------------------------------------

    def uniform(self, n: int, low: torch.Tensor | float, high: torch.Tensor | float, dim: int) -> torch.Tensor:
        """``U(low, high)`` samples ``[n, dim]`` from the task's generator."""
        u = torch.rand(n, dim, generator=self.generator, dtype=self.dtype, device=self.device)
        return low + (high - low) * u

    def process_action(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.to(self.dtype).clamp(-self.action_limit, self.action_limit)

    def physics_step(self) -> torch.Tensor:
        self.prev_state = self.state
        self.state = self.dynamics(self.state, self.action)
        return ~torch.isfinite(self.state).all(dim=-1)

    def reset_envs(self, mask: torch.Tensor) -> None:
        # Fresh states are drawn for every env and kept only where the mask is set: no host sync.
        fresh = self.sample_initial_state(self.num_envs)
        self.state = torch.where(mask.unsqueeze(-1), fresh, self.state)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": self.state.clone(), "prev_state": self.prev_state.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_tensors(self, state, ("state", "prev_state"))
