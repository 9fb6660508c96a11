"""``arm-push``: push a block across the table to a goal region with the gripper, fingers held closed (a 2 × 2 cm
pusher whose tip is the site ``ee``).

* Block: a 5 cm cube of 0.2 kg on a free joint (collides with the table and the fingers), drawn per episode at
  (0.5 ± 0.05, ±0.1) with a yaw of U(±π/4). Goal: 8-14 cm from the block in a random direction, kept within
  x 0.36-0.64, y ±0.2; shown by a flat, non-colliding marker (two slide joints carry it, for the images).
* Start: the pusher's tip U(±3 cm) around (0.4, 0, 0.2), pointing down.
* Success: the block's centre within ``success_radius`` (2.5 cm) of the goal in x-y; reward = success (sparse 0/1);
  the episode terminates on success (SERL: done = done or success); 100 policy steps (10 s) otherwise.
* Observation terms: block − ee (3), the block's orientation (6-D), goal − block in x-y (2); privileged: the block's
  position (3) and the goal (2), world frame.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import mujoco
import torch

from tasks.manipulation.arm_task import ArmTask, ArmTaskCfg, rot6d
from tasks.task import RewardTerm

TABLE_TOP = 0.1
BLOCK_HALF = 0.025


def success(env: ArmTask) -> torch.Tensor:
    """1 where the block is in the goal region (sparse reward)."""
    return env.success.to(env.dtype)


def push_rewards() -> dict[str, RewardTerm]:
    return {"success": RewardTerm(success, 1.0)}


def quat_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] of unit quaternions (w, x, y, z) [N, 4]."""
    w, x, y, z = quat.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


@dataclass
class PushCfg(ArmTaskCfg):
    """``arm-push`` settings."""

    end_effector: str = "gripper"
    """The gripper, fingers held closed, is the pusher."""
    block_range: tuple[float, float] = (0.05, 0.1)
    """The block's centre is drawn U(±range) in x and y around (0.5, 0), m."""
    goal_distance: tuple[float, float] = (0.08, 0.14)
    """The goal is this far from the block (before it is kept on the table region), m."""
    goal_low: tuple[float, float] = (0.36, -0.2)
    """Lower corner (x, y) of the region goals are kept in, m."""
    goal_high: tuple[float, float] = (0.64, 0.2)
    """Upper corner (x, y) of the goal region, m."""
    success_radius: float = 0.025
    """Success: the block's centre within this x-y distance of the goal, m."""
    start_range: float = 0.03
    """The tip starts U(±start_range) around (0.4, 0, 0.2) in each axis, m."""
    rot_bound: float = 0.2
    """Bound of each component of the target's rotation away from pointing down, rad."""
    workspace_low: tuple[float, float, float] = (0.28, -0.3, 0.105)
    """Safety box of the target position: the table, the tip kept 5 mm above its top."""
    workspace_high: tuple[float, float, float] = (0.72, 0.3, 0.3)
    """Upper corner of the safety box."""
    terminate_on_success: bool = True
    """End the episode (terminated) when the block is in the goal region."""
    rewards: dict[str, RewardTerm] = field(default_factory=push_rewards)
    """Reward terms: the sparse success."""


class PushEnv(ArmTask):
    """Push a block to a goal region on the table."""

    cfg: PushCfg
    start_center = (0.4, 0.0, 0.2)
    params = ("body_mass", "geom_friction")
    # Object parameters for robustness evaluation (tasks/uncertainty.py). A contact's friction is the larger of its two
    # geoms' (MuJoCo's default), so the block's own friction (0.5) acts only above the table's (1.0): the table's is
    # the one that sets how the block slides.
    param_aliases: ClassVar[dict[str, str]] = {
        "blockmass": "body_mass:block",
        "blockfriction": "geom_friction:block:0",
        "tablefriction": "geom_friction:table:0",
    }

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        block = spec.worldbody.add_body(name="block", pos=[0.5, 0, TABLE_TOP + BLOCK_HALF])
        block.add_freejoint(name="block")
        block.add_geom(
            name="block",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[BLOCK_HALF] * 3,
            mass=0.2,
            condim=3,
            friction=[0.5, 0.005, 0.0001],
            rgba=[0.8, 0.2, 0.2, 1],
        )
        goal = spec.worldbody.add_body(name="goal", pos=[0.5, 0, TABLE_TOP + 0.001])
        for axis in ("x", "y"):
            goal.add_joint(
                name=f"goal_{axis}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[axis == "x", axis == "y", 0], damping=1.0
            )
        goal.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[self.cfg.success_radius, 0.001, 0],
            mass=0.01,
            contype=0,
            conaffinity=0,
            rgba=[0.2, 0.8, 0.2, 0.5],
        )

    def init_buffers(self) -> None:
        super().init_buffers()
        self.block_qpos = int(self.model.joint("block").qposadr[0])
        self.block_qvel = int(self.model.joint("block").dofadr[0])
        self.goal_qpos = int(self.model.joint("goal_x").qposadr[0])
        self.goal = torch.zeros(self.num_envs, 2, dtype=self.dtype, device=self.device)
        tensor = lambda x: torch.tensor(x, dtype=self.dtype, device=self.device)  # noqa: E731
        self.goal_origin = tensor((0.5, 0.0))
        self.block_half_range = tensor(self.cfg.block_range)
        self.goal_low, self.goal_high = tensor(self.cfg.goal_low), tensor(self.cfg.goal_high)

    def block_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's position [N, 3] and orientation [N, 3, 3]."""
        q = self.sim.qpos[:, self.block_qpos : self.block_qpos + 7]
        return q[:, :3], quat_to_matrix(q[:, 3:])

    def reset_task(self, mask: torch.Tensor, qpos: torch.Tensor) -> None:
        c = self.cfg
        block = self.goal_origin + self.uniform(-1.0, 1.0, 2) * self.block_half_range
        yaw = self.uniform(-math.pi / 4, math.pi / 4, 1).squeeze(-1)
        heading = self.uniform(-math.pi, math.pi, 1).squeeze(-1)
        distance = self.uniform(*c.goal_distance, 1)
        goal = block + distance * torch.stack([heading.cos(), heading.sin()], dim=-1)
        goal = torch.maximum(torch.minimum(goal, self.goal_high), self.goal_low)
        zero = torch.zeros_like(yaw)
        quat = torch.stack([(yaw / 2).cos(), zero, zero, (yaw / 2).sin()], dim=-1)
        height = torch.full_like(yaw, TABLE_TOP + BLOCK_HALF).unsqueeze(-1)
        qpos[:, self.block_qpos : self.block_qpos + 7] = torch.cat([block, height, quat], dim=-1)
        qpos[:, self.goal_qpos : self.goal_qpos + 2] = goal - self.goal_origin
        self.goal = torch.where(mask.unsqueeze(-1), goal, self.goal)

    def sample_start_pos(self) -> torch.Tensor:
        s = self.cfg.start_range
        return self.start_center_t + self.uniform(-s, s, 3)

    def compute_success(self) -> torch.Tensor:
        block = self.block_pose()[0]
        return (block[:, :2] - self.goal).norm(dim=-1) < self.cfg.success_radius

    def task_terms(self, ee_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        block, rot = self.block_pose()
        task = torch.cat([block - ee_pos, rot6d(rot), self.goal - block[:, :2]], dim=-1)
        return task, torch.cat([block, self.goal], dim=-1)

    def task_term_names(self) -> list[tuple[str, int]]:
        return [("block_minus_ee", 3), ("block_rot6d", 6), ("goal_minus_block_xy", 2)]
