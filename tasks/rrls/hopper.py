"""Hopper and Walker2d, as gymnasium's ``Hopper-v5`` and ``Walker2d-v5``: planar hopping/walking forward.

obs = (qpos[1:], clip(qvel, ±10)); reward = Δx/dt + 1·healthy − 1e-3 Σ a²; terminates when unhealthy; 1000-step
episodes; reset: qpos0 + U(±5e-3), qvel + U(±5e-3). Healthy (strict inequalities, as gymnasium):

* Hopper: z > 0.7, |angle| < 0.2, every entry of (qpos[2:], qvel) in (−100, 100);
* Walker2d: 0.8 < z < 2, −1 < angle < 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tensordict import TensorDict

from tasks.mujoco.task import MujocoTask, MujocoTaskCfg, gymnasium_asset
from tasks.rrls.terms import alive, control_cost, forward_velocity
from tasks.task import RewardTerm


def planar_rewards() -> dict[str, RewardTerm]:
    return {
        "forward": RewardTerm(forward_velocity, 1.0),
        "alive": RewardTerm(alive, 1.0),
        "control": RewardTerm(control_cost, -1e-3),
    }


@dataclass
class HopperCfg(MujocoTaskCfg):
    """Hopper-v5 settings."""

    decimation: int = 4
    """Physics steps per env step (frame_skip)."""
    reset_noise_scale: float = 5e-3
    """Initial-state noise."""
    healthy_z: tuple[float, float] = (0.7, math.inf)
    """Healthy torso height (exclusive bounds)."""
    healthy_angle: tuple[float, float] = (-0.2, 0.2)
    """Healthy torso angle (exclusive bounds)."""
    healthy_state: tuple[float, float] = (-100.0, 100.0)
    """Healthy range of every entry of (qpos[2:], qvel); None-like (−inf, inf) disables."""
    rewards: dict[str, RewardTerm] = field(default_factory=planar_rewards)
    """Reward terms."""


@dataclass
class Walker2dCfg(HopperCfg):
    """Walker2d-v5 settings."""

    healthy_z: tuple[float, float] = (0.8, 2.0)
    """Healthy torso height (exclusive bounds)."""
    healthy_angle: tuple[float, float] = (-1.0, 1.0)
    """Healthy torso angle (exclusive bounds)."""
    healthy_state: tuple[float, float] = (-math.inf, math.inf)
    """Walker2d-v5 has no state-range check."""


class HopperEnv(MujocoTask):
    params = ("body_mass", "geom_friction")
    # RRLS's parameter names (rrls/envs/hopper.py: geom_friction[0, 0], body_mass[1..4]) -> our model's elements.
    param_aliases: ClassVar[dict[str, str]] = {
        "worldfriction": "geom_friction:floor:0",
        "torsomass": "body_mass:torso",
        "thighmass": "body_mass:thigh",
        "legmass": "body_mass:leg",
        "footmass": "body_mass:foot",
    }

    def default_model_file(self) -> str:
        return gymnasium_asset("hopper.xml")

    def before_physics(self) -> None:
        self.x_before = self.sim.qpos[:, 0].clone()

    def x_after(self) -> torch.Tensor:
        return self.sim.qpos[:, 0]

    def is_healthy(self) -> torch.Tensor:
        c = self.cfg
        z, angle = self.sim.qpos[:, 1], self.sim.qpos[:, 2]
        state = torch.cat([self.sim.qpos[:, 2:], self.sim.qvel], dim=-1)
        healthy = (z > c.healthy_z[0]) & (z < c.healthy_z[1])
        healthy &= (angle > c.healthy_angle[0]) & (angle < c.healthy_angle[1])
        if math.isfinite(c.healthy_state[0]) or math.isfinite(c.healthy_state[1]):
            healthy &= ((state > c.healthy_state[0]) & (state < c.healthy_state[1])).all(dim=-1)
        return healthy

    def observe(self) -> TensorDict:
        obs = torch.cat([self.sim.qpos[:, 1:], self.sim.qvel.clamp(-10.0, 10.0)], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def observation_terms(self) -> list[tuple[str, int]]:
        return [("qpos[1:]", self.model.nq - 1), ("clip(qvel, -10, 10)", self.model.nv)]

    def terminated(self) -> torch.Tensor:
        return ~self.is_healthy()


class Walker2dEnv(HopperEnv):
    # rrls/envs/walker.py: geom_friction[0, 0], body_mass[1..7] (right leg, then left).
    param_aliases: ClassVar[dict[str, str]] = {
        "worldfriction": "geom_friction:floor:0",
        "torsomass": "body_mass:torso",
        "thighmass": "body_mass:thigh",
        "legmass": "body_mass:leg",
        "footmass": "body_mass:foot",
        "leftthighmass": "body_mass:thigh_left",
        "leftlegmass": "body_mass:leg_left",
        "leftfootmass": "body_mass:foot_left",
    }

    def default_model_file(self) -> str:
        return gymnasium_asset("walker2d_v5.xml")
