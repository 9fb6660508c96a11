"""The benchmark task: 12 point masses tracking random targets, an rsl_rl 5.x ``VecEnv`` in pure torch.

It imports ``rsl_rl.env.VecEnv``, which exists in rsl-rl-lib and in this library, so the very same file runs under both
(in separate virtual environments). Observation 48 (positions, velocities and targets of the 12 masses, plus 12 zero
columns), 12 actions (forces), 250-step episodes ending in time-outs, as in reference/measurements.md §5.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import VecEnv


class PointMassEnv(VecEnv):
    def __init__(self, num_envs: int = 4096, device: str = "cpu", seed: int = 0, max_episode_length: int = 250) -> None:
        self.num_envs = num_envs
        self.num_actions = 12
        self.max_episode_length = max_episode_length
        self.device = device
        self.cfg: dict[str, Any] = {}
        self.dt = 0.02
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.pos = self._sample()
        self.vel = torch.zeros(num_envs, 12, device=device)
        self.target = self._sample()
        self.padding = torch.zeros(num_envs, 12, device=device)

    def _sample(self) -> torch.Tensor:
        return torch.rand(self.num_envs, 12, generator=self.generator, device=self.device) * 2.0 - 1.0

    def get_observations(self) -> TensorDict:
        obs = torch.cat([self.pos, self.vel, self.target, self.padding], dim=-1)
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        self.vel = 0.98 * self.vel + self.dt * actions.clamp(-1.0, 1.0) * 5.0
        self.pos = (self.pos + self.dt * self.vel).clamp(-2.0, 2.0)
        error = (self.pos - self.target).square().sum(-1)
        reward = -error - 0.01 * actions.square().sum(-1)
        self.episode_length_buf += 1
        time_outs = self.episode_length_buf >= self.max_episode_length
        reset = time_outs.unsqueeze(-1)
        self.pos = torch.where(reset, self._sample(), self.pos)
        self.vel = torch.where(reset, 0.0, self.vel)
        self.target = torch.where(reset, self._sample(), self.target)
        self.episode_length_buf = torch.where(time_outs, 0, self.episode_length_buf)
        return self.get_observations(), reward, time_outs, {"time_outs": time_outs}
