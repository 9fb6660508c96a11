"""HalfCheetah, as gymnasium's ``HalfCheetah-v5``: run forward; never terminates; 1000-step episodes.

obs = (qpos[1:], qvel) (17); reward = Δx/dt − 0.1 Σ a²; reset: qpos0 + U(±0.1), qvel = 0.1 · N(0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tensordict import TensorDict

from tasks.mujoco.task import MujocoTask, MujocoTaskCfg, gymnasium_asset
from tasks.rrls.terms import control_cost, forward_velocity
from tasks.task import RewardTerm


def half_cheetah_rewards() -> dict[str, RewardTerm]:
    return {"forward": RewardTerm(forward_velocity, 1.0), "control": RewardTerm(control_cost, -0.1)}


@dataclass
class HalfCheetahCfg(MujocoTaskCfg):
    """HalfCheetah-v5 settings."""

    decimation: int = 5
    """Physics steps per env step (frame_skip)."""
    reset_noise_scale: float = 0.1
    """Initial-state noise."""
    rewards: dict[str, RewardTerm] = field(default_factory=half_cheetah_rewards)
    """Reward terms."""


class HalfCheetahEnv(MujocoTask):
    params = ("body_mass", "geom_friction")
    # RRLS's names (rrls/envs/half_cheetah.py: body_mass[1..7]). Its worldfriction writes geom_friction[:, 0], the
    # sliding friction of EVERY geom (floor and body), unlike Hopper's and Walker2d's floor-only [0, 0]: kept so.
    param_aliases: ClassVar[dict[str, str]] = {
        "worldfriction": "geom_friction:*:0",
        "torsomass": "body_mass:torso",
        "backthighmass": "body_mass:bthigh",
        "backshinmass": "body_mass:bshin",
        "backfootmass": "body_mass:bfoot",
        "forwardthighmass": "body_mass:fthigh",
        "forwardshinmass": "body_mass:fshin",
        "forwardfootmass": "body_mass:ffoot",
    }

    def default_model_file(self) -> str:
        return gymnasium_asset("half_cheetah.xml")

    def sample_reset_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.cfg.reset_noise_scale
        return self.init_qpos + self.uniform(-s, s, self.model.nq), self.init_qvel + s * self.normal(self.model.nv)

    def before_physics(self) -> None:
        self.x_before = self.sim.qpos[:, 0].clone()

    def x_after(self) -> torch.Tensor:
        return self.sim.qpos[:, 0]

    def observe(self) -> TensorDict:
        obs = torch.cat([self.sim.qpos[:, 1:], self.sim.qvel], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def observation_terms(self) -> list[tuple[str, int]]:
        return [("qpos[1:]", self.model.nq - 1), ("qvel", self.model.nv)]

    def terminated(self) -> torch.Tensor:
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
