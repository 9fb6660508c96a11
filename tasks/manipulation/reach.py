"""``arm-reach``: bring the peg's tip (site ``ee``) to a random target in a box above the table.

* Target: U(box) per episode, box x 0.35-0.65, y ±0.2, z 0.15-0.4 m (above the table's top at 0.1).
* Start: the tip U(±3 cm) around (0.5, 0, 0.275), tool pointing down.
* Reward (dense): −‖target − ee‖ (m) + 1 while within ``success_radius`` (1 cm) of the target; success is reported,
  the episode does not end on it (100 policy steps, 10 s).
* Observation term: target − ee (3); privileged: the target (world).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tasks.manipulation.arm_task import ArmTask, ArmTaskCfg
from tasks.task import RewardTerm


def target_distance(env: ReachEnv) -> torch.Tensor:
    """Distance of the tip to the target, m."""
    return (env.goal - env.sim.site_pose("ee")[0]).norm(dim=-1)


def reached(env: ReachEnv) -> torch.Tensor:
    """1 while the tip is within the success radius."""
    return env.success.to(env.dtype)


def reach_rewards() -> dict[str, RewardTerm]:
    return {"distance": RewardTerm(target_distance, -1.0), "reached": RewardTerm(reached, 1.0)}


@dataclass
class ReachCfg(ArmTaskCfg):
    """``arm-reach`` settings."""

    target_low: tuple[float, float, float] = (0.35, -0.2, 0.15)
    """Lower corner of the box targets are drawn in (world, m)."""
    target_high: tuple[float, float, float] = (0.65, 0.2, 0.4)
    """Upper corner of the target box."""
    start_range: float = 0.03
    """The tip starts U(±start_range) around the box's centre line at (0.5, 0, 0.275) in each axis, m."""
    success_radius: float = 0.01
    """Success: the tip within this distance of the target, m."""
    rewards: dict[str, RewardTerm] = field(default_factory=reach_rewards)
    """Reward terms."""


class ReachEnv(ArmTask):
    """Reach a random point with the peg's tip."""

    cfg: ReachCfg
    start_center = (0.5, 0.0, 0.275)

    def init_buffers(self) -> None:
        super().init_buffers()
        self.goal = torch.zeros(self.num_envs, 3, dtype=self.dtype, device=self.device)
        self.goal_low = torch.tensor(self.cfg.target_low, dtype=self.dtype, device=self.device)
        self.goal_high = torch.tensor(self.cfg.target_high, dtype=self.dtype, device=self.device)

    def reset_task(self, mask: torch.Tensor, qpos: torch.Tensor) -> None:
        goal = self.goal_low + (self.goal_high - self.goal_low) * self.uniform(0.0, 1.0, 3)
        self.goal = torch.where(mask.unsqueeze(-1), goal, self.goal)

    def sample_start_pos(self) -> torch.Tensor:
        s = self.cfg.start_range
        return self.start_center_t + self.uniform(-s, s, 3)

    def compute_success(self) -> torch.Tensor:
        return target_distance(self) < self.cfg.success_radius

    def task_terms(self, ee_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.goal - ee_pos, self.goal

    def task_term_names(self) -> list[tuple[str, int]]:
        return [("target_minus_ee", 3)]
