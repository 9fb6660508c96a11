"""Base of the pure-torch tasks: a state tensor ``[N, S]`` advanced by torch ops, reward terms, masked auto-reset.

A task subclass supplies four pieces: ``sample_initial_state``, ``dynamics``, ``observe`` and ``terminated``. Rewards
are plain functions ``term(env, **params) -> Tensor[N]`` collected with weights in the config's ``rewards`` dict, so a
variant of a task is a config edit. Everything runs on the env's device with no host synchronisation.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RewardTerm:
    """One weighted reward term: ``weight · func(env, **params)``."""

    func: Callable[..., torch.Tensor]
    """``func(env, **params) -> Tensor[N]``."""
    weight: float = 1.0
    """Multiplier of the term in the reward sum."""
    params: dict[str, float] = field(default_factory=dict)
    """Keyword arguments of ``func``."""


class TorchTask(Env):
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
        self.reward_names = list(cfg.rewards)
        n = self.num_envs
        self.state = torch.zeros(n, self.state_dim, dtype=self.dtype, device=self.device)
        self.prev_state = self.state
        self.action = torch.zeros(n, self.num_actions, dtype=self.dtype, device=self.device)
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=self.device)
        self.episode_sums = torch.zeros(n, len(self.reward_names), dtype=self.dtype, device=self.device)
        self.reset()

    # --- what a task defines -----------------------------------------------------------------------------------------

    @abstractmethod
    def sample_initial_state(self, n: int) -> torch.Tensor:
        """Draw ``n`` initial states ``[n, S]`` from ``self.generator``."""

    @abstractmethod
    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next state ``[N, S]`` from state ``[N, S]`` and clipped action ``[N, A]``."""

    @abstractmethod
    def observe(self) -> TensorDict:
        """Observation groups of ``self.state`` (float32)."""

    @abstractmethod
    def terminated(self) -> torch.Tensor:
        """``bool[N]``: ``self.state`` is terminal."""

    # --- the contract ------------------------------------------------------------------------------------------------

    def uniform(self, n: int, low: torch.Tensor | float, high: torch.Tensor | float, dim: int) -> torch.Tensor:
        """``U(low, high)`` samples ``[n, dim]`` from the task's generator."""
        u = torch.rand(n, dim, generator=self.generator, dtype=self.dtype, device=self.device)
        return low + (high - low) * u

    def reset(self) -> TensorDict:
        self.state = self.sample_initial_state(self.num_envs)
        self.prev_state = self.state
        self.action = torch.zeros_like(self.action)
        self.episode_length_buf = torch.zeros_like(self.episode_length_buf)
        self.episode_sums = torch.zeros_like(self.episode_sums)
        return self.observe()

    def get_observations(self) -> TensorDict:
        return self.observe()

    def step(self, actions: torch.Tensor) -> StepResult:
        self.action = actions.to(self.dtype).clamp(-self.action_limit, self.action_limit)
        self.prev_state = self.state
        self.state = self.dynamics(self.state, self.action)
        terms = torch.stack(
            [term.weight * term.func(self, **term.params) for term in self.cfg.rewards.values()], dim=-1
        )
        reward = terms.sum(-1)
        episode_sums = self.episode_sums + terms
        length = self.episode_length_buf + 1
        terminated = self.terminated()
        truncated = (length >= self.max_episode_length) & ~terminated
        done = terminated | truncated
        final_obs = self.observe()
        extras: dict[str, Any] = {
            "final_obs": final_obs,
            "episode": {f"reward/{name}": episode_sums[:, i] for i, name in enumerate(self.reward_names)},
        }
        # Masked auto-reset: fresh states are drawn for every env and kept only where the episode ended.
        fresh = self.sample_initial_state(self.num_envs)
        self.state = torch.where(done.unsqueeze(-1), fresh, self.state)
        self.episode_length_buf = torch.where(done, 0, length)
        self.episode_sums = torch.where(done.unsqueeze(-1), 0.0, episode_sums)
        return self.observe(), reward.float(), terminated, truncated, extras

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.clone(),
            "prev_state": self.prev_state.clone(),
            "action": self.action.clone(),
            "episode_length_buf": self.episode_length_buf.clone(),
            "episode_sums": self.episode_sums.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("state", "prev_state", "action", "episode_length_buf", "episode_sums"):
            current = getattr(self, key)
            if state[key].shape != current.shape:
                raise ValueError(
                    f"env state '{key}' has shape {tuple(state[key].shape)}, expected {tuple(current.shape)}"
                )
            setattr(self, key, state[key].to(device=self.device, dtype=current.dtype).clone())
        self.generator.set_state(state["generator"].cpu())
