"""Test support: memory tasks that a feed-forward policy cannot solve.

* :class:`CueRecallEnv` -- a cue ±1 is shown at the first step of each episode only; every step is rewarded
  −|a − cue|. An MLP sees zeros after the first step and can at best output 0 (return −(L − 1)); a recurrent policy
  that remembers the cue reaches a return near 0.
* :class:`PartialPendulum` -- Pendulum with an extra ``student`` group (cos θ, sin θ) without the angular velocity,
  which a policy must infer from the history of angles.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult


class CueRecallEnv(Env):
    """``policy`` = (cue at the first step else 0, first-step flag); ``critic`` adds the cue and the phase."""

    def __init__(self, num_envs: int = 64, episode_length: int = 10, seed: int = 0) -> None:
        self.num_envs, self.num_actions, self.device = num_envs, 1, torch.device("cpu")
        self.max_episode_length, self.step_dt, self.cfg = episode_length, 0.1, {"name": "cue_recall"}
        self.generator = torch.Generator().manual_seed(seed)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.cue = self._draw(num_envs)

    def _draw(self, n: int) -> torch.Tensor:
        return torch.randint(0, 2, (n,), generator=self.generator).float() * 2.0 - 1.0

    def get_observations(self) -> TensorDict:
        first = (self.episode_length_buf == 0).float()
        policy = torch.stack([self.cue * first, first], dim=-1)
        phase = self.episode_length_buf.float() / self.max_episode_length
        critic = torch.stack([self.cue * first, first, self.cue, phase], dim=-1)
        return TensorDict({"policy": policy, "critic": critic}, batch_size=[self.num_envs])

    def reset(self) -> TensorDict:
        self.episode_length_buf.zero_()
        self.cue = self._draw(self.num_envs)
        return self.get_observations()

    def step(self, actions: torch.Tensor) -> StepResult:
        reward = -(actions[:, 0].clamp(-2.0, 2.0) - self.cue).abs()
        self.episode_length_buf += 1
        truncated = self.episode_length_buf >= self.max_episode_length
        final_obs = self.get_observations()
        self.episode_length_buf = torch.where(truncated, 0, self.episode_length_buf)
        self.cue = torch.where(truncated, self._draw(self.num_envs), self.cue)
        terminated = torch.zeros_like(truncated)
        return self.get_observations(), reward, terminated, truncated, {"final_obs": final_obs}


def add_student_group(obs: TensorDict) -> TensorDict:
    """Add ``student`` = the first two columns of ``policy`` (cos θ, sin θ: no velocity)."""
    obs["student"] = obs["policy"][:, :2].clone()
    return obs


class PartialPendulum(Env):
    """Wraps a Pendulum env: same dynamics and reward, plus the velocity-free ``student`` group."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.num_envs, self.num_actions, self.device = env.num_envs, env.num_actions, env.device
        self.max_episode_length, self.step_dt, self.cfg = env.max_episode_length, env.step_dt, env.cfg

    @property
    def episode_length_buf(self) -> torch.Tensor:  # type: ignore[override]
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def reset(self) -> TensorDict:
        return add_student_group(self.env.reset())

    def get_observations(self) -> TensorDict:
        return add_student_group(self.env.get_observations())

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        if "final_obs" in extras:
            extras["final_obs"] = add_student_group(extras["final_obs"])
        return add_student_group(obs), reward, terminated, truncated, extras
