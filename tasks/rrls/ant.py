"""Ant, as gymnasium's ``Ant-v5``: walk forward in the plane.

obs = (qpos[2:], qvel, clip(cfrc_ext[1:], ±1)) (105);
reward = Δx_torso/dt + 1·healthy − 0.5 Σ a² − 5e-4 Σ clip(cfrc_ext, ±1)²;
terminates when the torso z leaves [0.2, 1] or the state is not finite; 1000-step episodes;
reset: qpos0 + U(±0.1), qvel = 0.1 · N(0, 1). The torso position is ``xpos`` of body 1 read after ``mj_step``, exactly
as gymnasium reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tensordict import TensorDict

from tasks.mujoco.task import MujocoTask, MujocoTaskCfg, gymnasium_asset
from tasks.rrls.terms import alive, control_cost, forward_velocity
from tasks.task import RewardTerm


def contact_cost(env: AntEnv) -> torch.Tensor:
    """Σ clip(cfrc_ext, contact_force_range)² over all bodies."""
    return env.contact_forces().square().sum(dim=(-1, -2))


def ant_rewards() -> dict[str, RewardTerm]:
    return {
        "forward": RewardTerm(forward_velocity, 1.0),
        "alive": RewardTerm(alive, 1.0),
        "control": RewardTerm(control_cost, -0.5),
        "contact": RewardTerm(contact_cost, -5e-4),
    }


@dataclass
class AntCfg(MujocoTaskCfg):
    """Ant-v5 settings."""

    decimation: int = 5
    """Physics steps per env step (frame_skip)."""
    reset_noise_scale: float = 0.1
    """Initial-state noise."""
    healthy_z: tuple[float, float] = (0.2, 1.0)
    """Healthy torso height (inclusive bounds, as gymnasium)."""
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    """Clip of cfrc_ext in observation and contact cost."""
    rewards: dict[str, RewardTerm] = field(default_factory=ant_rewards)
    """Reward terms."""


class AntEnv(MujocoTask):
    fields = ("xpos", "cfrc_ext")
    params = ("body_mass", "geom_friction")
    # RRLS's names (rrls/envs/ant.py: body_mass[1..13]). Its ankle masses (bodies 4, 7, 10, 13) have no alias: those
    # bodies are unnamed in ant.xml, and no RRLS uncertainty set uses them.
    param_aliases: ClassVar[dict[str, str]] = {
        "torsomass": "body_mass:torso",
        "frontleftlegmass": "body_mass:front_left_leg",
        "frontleftlegauxmass": "body_mass:aux_1",
        "frontrightlegmass": "body_mass:front_right_leg",
        "frontrightlegauxmass": "body_mass:aux_2",
        "backleftlegmass": "body_mass:back_leg",
        "backleftlegauxmass": "body_mass:aux_3",
        "backrightlegmass": "body_mass:right_back_leg",
        "backrightlegauxmass": "body_mass:aux_4",
    }

    def default_model_file(self) -> str:
        return gymnasium_asset("ant.xml")

    def sample_reset_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.cfg.reset_noise_scale
        return self.init_qpos + self.uniform(-s, s, self.model.nq), self.init_qvel + s * self.normal(self.model.nv)

    def before_physics(self) -> None:
        self.x_before = self.sim.data["xpos"][:, 1, 0].clone()

    def x_after(self) -> torch.Tensor:
        return self.sim.data["xpos"][:, 1, 0]

    def contact_forces(self) -> torch.Tensor:
        low, high = self.cfg.contact_force_range
        return self.sim.data["cfrc_ext"].clamp(low, high)

    def is_healthy(self) -> torch.Tensor:
        z = self.sim.qpos[:, 2]
        finite = torch.isfinite(self.sim.qpos).all(-1) & torch.isfinite(self.sim.qvel).all(-1)
        return finite & (z >= self.cfg.healthy_z[0]) & (z <= self.cfg.healthy_z[1])

    def observe(self) -> TensorDict:
        forces = self.contact_forces()[:, 1:].flatten(1)
        obs = torch.cat([self.sim.qpos[:, 2:], self.sim.qvel, forces], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def observation_terms(self) -> list[tuple[str, int]]:
        m = self.model
        return [("qpos[2:]", m.nq - 2), ("qvel", m.nv), ("clip(cfrc_ext[1:], contact_force_range)", 6 * (m.nbody - 1))]

    def terminated(self) -> torch.Tensor:
        return ~self.is_healthy()
