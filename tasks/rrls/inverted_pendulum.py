"""InvertedPendulum, as gymnasium's ``InvertedPendulum-v5``: keep the pole up on a cart.

obs = (qpos, qvel) (4); reward 1 per step while |pole angle| ≤ 0.2 (0 on the step that ends it); terminates when
|angle| > 0.2; 1000-step episodes; reset: qpos0 + U(±0.01), qvel + U(±0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tensordict import TensorDict

from tasks.mujoco.task import MujocoTask, MujocoTaskCfg, gymnasium_asset
from tasks.task import RewardTerm


def upright(env: InvertedPendulumEnv) -> torch.Tensor:
    """1 while the pole is within the angle limit."""
    return (~env.terminated()).to(env.dtype)


def inverted_pendulum_rewards() -> dict[str, RewardTerm]:
    return {"upright": RewardTerm(upright, 1.0)}


@dataclass
class InvertedPendulumCfg(MujocoTaskCfg):
    """InvertedPendulum-v5 settings."""

    decimation: int = 2
    """Physics steps per env step (frame_skip)."""
    reset_noise_scale: float = 0.01
    """Initial-state noise."""
    angle_limit: float = 0.2
    """|pole angle| beyond this terminates."""
    rewards: dict[str, RewardTerm] = field(default_factory=inverted_pendulum_rewards)
    """Reward terms."""


class InvertedPendulumEnv(MujocoTask):
    params = ("body_mass",)
    # RRLS's names (rrls/envs/pendulum.py: body_mass[2] the pole, body_mass[1] the cart).
    param_aliases: ClassVar[dict[str, str]] = {"polemass": "body_mass:pole", "cartmass": "body_mass:cart"}

    def default_model_file(self) -> str:
        return gymnasium_asset("inverted_pendulum.xml")

    def observe(self) -> TensorDict:
        obs = torch.cat([self.sim.qpos, self.sim.qvel], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def observation_terms(self) -> list[tuple[str, int]]:
        return [("qpos", self.model.nq), ("qvel", self.model.nv)]

    def terminated(self) -> torch.Tensor:
        finite = torch.isfinite(self.sim.qpos).all(-1) & torch.isfinite(self.sim.qvel).all(-1)
        return ~finite | (self.sim.qpos[:, 1].abs() > self.cfg.angle_limit)
