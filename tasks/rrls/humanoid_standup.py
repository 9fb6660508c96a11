"""HumanoidStandup, as gymnasium's ``HumanoidStandup-v5``: stand up from lying on the ground.

obs = (qpos[2:], qvel, cinert[1:], cvel[1:], qfrc_actuator[6:], cfrc_ext[1:]) (348); reward = z/timestep
− 0.1 Σ ctrl² − min(0.5e-6 Σ cfrc_ext², 10) + 1; never terminates; 1000-step episodes; reset: qpos0 + U(±0.01),
qvel + U(±0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tensordict import TensorDict

from tasks.mujoco.task import MujocoTask, MujocoTaskCfg, gymnasium_asset
from tasks.rrls.terms import control_cost
from tasks.task import RewardTerm


def height_rate(env: HumanoidStandupEnv) -> torch.Tensor:
    """Torso height divided by the physics timestep (gymnasium's ``uph_cost``)."""
    return env.sim.qpos[:, 2] / float(env.model.opt.timestep)


def impact_cost(env: HumanoidStandupEnv) -> torch.Tensor:
    """min(0.5e-6 Σ cfrc_ext², 10), already weighted (the clip applies to the weighted value)."""
    return (env.cfg.impact_cost_weight * env.sim.data["cfrc_ext"].square().sum(dim=(-1, -2))).clamp_max(
        env.cfg.impact_cost_max
    )


def constant(env: HumanoidStandupEnv) -> torch.Tensor:
    """1 every step."""
    return torch.ones(env.num_envs, dtype=env.dtype, device=env.device)


def standup_rewards() -> dict[str, RewardTerm]:
    return {
        "height_rate": RewardTerm(height_rate, 1.0),
        "control": RewardTerm(control_cost, -0.1),
        "impact": RewardTerm(impact_cost, -1.0),
        "constant": RewardTerm(constant, 1.0),
    }


@dataclass
class HumanoidStandupCfg(MujocoTaskCfg):
    """HumanoidStandup-v5 settings."""

    decimation: int = 5
    """Physics steps per env step (frame_skip)."""
    reset_noise_scale: float = 1e-2
    """Initial-state noise."""
    impact_cost_weight: float = 0.5e-6
    """Weight of Σ cfrc_ext² before clipping."""
    impact_cost_max: float = 10.0
    """Upper clip of the weighted impact cost."""
    rewards: dict[str, RewardTerm] = field(default_factory=standup_rewards)
    """Reward terms."""


class HumanoidStandupEnv(MujocoTask):
    fields = ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")
    params = ("body_mass",)
    # RRLS's names (rrls/envs/humanoid.py: body_mass[1..13]) -> humanoidstandup.xml's bodies.
    param_aliases: ClassVar[dict[str, str]] = {
        "torsomass": "body_mass:torso",
        "lwaistmass": "body_mass:lwaist",
        "pelvismass": "body_mass:pelvis",
        "rightthighmass": "body_mass:right_thigh",
        "rightshinmass": "body_mass:right_shin",
        "rightfootmass": "body_mass:right_foot",
        "leftthighmass": "body_mass:left_thigh",
        "leftshinmass": "body_mass:left_shin",
        "leftfootmass": "body_mass:left_foot",
        "rightupperarmmass": "body_mass:right_upper_arm",
        "rightlowerarmmass": "body_mass:right_lower_arm",
        "leftupperarmmass": "body_mass:left_upper_arm",
        "leftlowerarmmass": "body_mass:left_lower_arm",
    }

    def default_model_file(self) -> str:
        return gymnasium_asset("humanoidstandup.xml")

    def observe(self) -> TensorDict:
        d = self.sim.data
        parts = [
            self.sim.qpos[:, 2:],
            self.sim.qvel,
            d["cinert"][:, 1:].flatten(1),
            d["cvel"][:, 1:].flatten(1),
            d["qfrc_actuator"][:, 6:],
            d["cfrc_ext"][:, 1:].flatten(1),
        ]
        obs = torch.cat(parts, dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def observation_terms(self) -> list[tuple[str, int]]:
        m = self.model
        bodies = m.nbody - 1
        return [
            ("qpos[2:]", m.nq - 2),
            ("qvel", m.nv),
            ("cinert[1:]", 10 * bodies),
            ("cvel[1:]", 6 * bodies),
            ("qfrc_actuator[6:]", m.nv - 6),
            ("cfrc_ext[1:]", 6 * bodies),
        ]

    def terminated(self) -> torch.Tensor:
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
