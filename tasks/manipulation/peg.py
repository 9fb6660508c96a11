"""``arm-peg``: SERL's peg insertion. The arm's peg (radius 1 cm, tip = site ``ee``) goes into a square hole of
half-width 1.1 cm (1 mm radial clearance), 4 cm deep, in a fixture on the table.

* The fixture is four boxes around the opening, on a body that slides in x and y (two joints held by large damping,
  friction loss and armature, so the peg cannot shift it): every episode draws the hole's position, U(±3 cm) in x and
  y around (0.5, 0), by setting those joints. The peg is round, so the square hole's yaw would change nothing; it is
  not randomised. The fixture collides with the peg only (not with the table it stands on).
* Start: the peg's tip U(±2.5 cm) from the hole's axis in x and y, 3-5 cm above the fixture's top, tool pointing down.
* Success (SERL's hand-coded reward): the tip is more than ``depth`` below the fixture's top and within the opening;
  reward = success (sparse, 0/1) and the episode terminates on success. 100 policy steps (10 s) otherwise.
* Action: SERL's 6-D step ([−1, 1]⁶ → 2 cm, 0.1 rad per axis; SERL's peg env holds the gripper closed, which removes
  the 7th entry); the rotation stays within ±``rot_bound`` of pointing down.
* Observation terms: the hole's top centre relative to the tip (3); privileged: the hole's position in the world (3).
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import mujoco
import torch

from tasks.manipulation.arm_task import ArmTask, ArmTaskCfg
from tasks.task import RewardTerm

PEG_RADIUS = 0.01
TABLE_TOP = 0.1
HOLE_CENTER = (0.5, 0.0)


def success(env: ArmTask) -> torch.Tensor:
    """1 where the task is solved in this step (sparse reward)."""
    return env.success.to(env.dtype)


def peg_rewards() -> dict[str, RewardTerm]:
    return {"success": RewardTerm(success, 1.0)}


@dataclass
class PegCfg(ArmTaskCfg):
    """``arm-peg`` settings."""

    clearance: float = 0.001
    """Radial clearance between the peg and the square opening, m (opening half-width = peg radius + clearance)."""
    hole_depth: float = 0.04
    """Height of the fixture (the hole's depth down to the table), m."""
    depth: float = 0.02
    """Success: the tip is this far below the fixture's top, m."""
    hole_range: float = 0.03
    """The hole's x and y are drawn U(±hole_range) around (0.5, 0), m."""
    start_range: float = 0.025
    """The tip starts U(±start_range) from the hole's axis in x and y, m."""
    start_height: tuple[float, float] = (0.03, 0.05)
    """The tip starts U(low, high) above the fixture's top, m."""
    rot_bound: float = 0.1
    """Bound of each component of the target's rotation away from pointing down, rad."""
    workspace_low: tuple[float, float, float] = (0.42, -0.08, 0.1)
    """Safety box of the target position: around the hole's range, down to the table."""
    workspace_high: tuple[float, float, float] = (0.58, 0.08, 0.25)
    """Upper corner of the safety box."""
    terminate_on_success: bool = True
    """End the episode (terminated) when the peg is in (SERL: done = done or success)."""
    rewards: dict[str, RewardTerm] = field(default_factory=peg_rewards)
    """Reward terms: the sparse success."""


class PegEnv(ArmTask):
    """Peg insertion into a randomly placed hole with 1 mm clearance."""

    cfg: PegCfg
    params = ("body_mass", "geom_friction")
    # Object parameters for robustness evaluation (tasks/uncertainty.py): the peg (a payload on the flange) and the
    # friction of the hole's walls. A contact's friction is the larger of its two geoms' (MuJoCo's default), so the
    # peg's own (0.8) acts only above the walls' (1.0).
    param_aliases: ClassVar[dict[str, str]] = {
        "pegmass": "body_mass:peg",
        "pegfriction": "geom_friction:peg:0",
        "holefriction": "geom_friction:wall_*:0",
    }

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        c = self.cfg
        half_open, outer, half_h = PEG_RADIUS + c.clearance, 0.045, c.hole_depth / 2
        wall = (outer - half_open) / 2
        fixture = spec.worldbody.add_body(name="fixture", pos=[*HOLE_CENTER, TABLE_TOP + half_h])
        for axis in ("x", "y"):
            fixture.add_joint(
                name=f"fixture_{axis}",
                type=mujoco.mjtJoint.mjJNT_SLIDE,
                axis=[1, 0, 0] if axis == "x" else [0, 1, 0],
                damping=1e4,
                frictionloss=500.0,
                armature=50.0,
            )
        box = mujoco.mjtGeom.mjGEOM_BOX
        # Collision bit 2 only: the fixture touches the peg (whose affinity gets bit 2), not the table or the floor.
        style = {"type": box, "contype": 2, "conaffinity": 2, "condim": 3, "rgba": [0.2, 0.4, 0.8, 1], "mass": 0.5}
        d = half_open + wall
        fixture.add_geom(name="wall_px", size=[wall, outer, half_h], pos=[d, 0, 0], **style)
        fixture.add_geom(name="wall_nx", size=[wall, outer, half_h], pos=[-d, 0, 0], **style)
        fixture.add_geom(name="wall_py", size=[half_open, wall, half_h], pos=[0, d, 0], **style)
        fixture.add_geom(name="wall_ny", size=[half_open, wall, half_h], pos=[0, -d, 0], **style)
        spec.geom("peg").conaffinity = 3

    def __init__(self, cfg: PegCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.hole_top = TABLE_TOP + cfg.hole_depth
        self.start_center = (*HOLE_CENTER, self.hole_top + sum(cfg.start_height) / 2)
        super().__init__(cfg, device, seed)

    def init_buffers(self) -> None:
        super().init_buffers()
        self.fixture_qpos = int(self.model.joint("fixture_x").qposadr[0])
        self.hole_offset = torch.zeros(self.num_envs, 2, dtype=self.dtype, device=self.device)
        self.hole_center = torch.tensor(HOLE_CENTER, dtype=self.dtype, device=self.device)

    def hole_pos(self) -> torch.Tensor:
        """The opening's top centre [N, 3] (world), from the fixture's joints."""
        xy = self.sim.qpos[:, self.fixture_qpos : self.fixture_qpos + 2] + self.hole_center
        return torch.cat([xy, torch.full_like(xy[:, :1], self.hole_top)], dim=-1)

    def reset_task(self, mask: torch.Tensor, qpos: torch.Tensor) -> None:
        c = self.cfg
        self.hole_offset = self.uniform(-c.hole_range, c.hole_range, 2)
        qpos[:, self.fixture_qpos : self.fixture_qpos + 2] = self.hole_offset

    def sample_start_pos(self) -> torch.Tensor:
        c = self.cfg
        centre = self.hole_center + self.hole_offset
        xy = centre + self.uniform(-c.start_range, c.start_range, 2)
        return torch.cat([xy, self.hole_top + self.uniform(*c.start_height, 1)], dim=-1)

    def compute_success(self) -> torch.Tensor:
        tip = self.sim.site_pose("ee")[0]
        hole = self.hole_pos()
        inside = ((tip[:, :2] - hole[:, :2]).abs() < PEG_RADIUS + self.cfg.clearance).all(dim=-1)
        return inside & (tip[:, 2] < self.hole_top - self.cfg.depth)

    def task_terms(self, ee_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hole = self.hole_pos()
        return hole - ee_pos, hole

    def task_term_names(self) -> list[tuple[str, int]]:
        return [("hole_minus_ee", 3)]
