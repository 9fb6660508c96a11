"""Base of the arm tasks: SERL's control stack on the 7-DoF arm, batched (reference/serl.md §6).

* Policy rate 10 Hz (SERL's): one env step is ``substeps`` = 50 physics steps of 2 ms. The policy action in [−1, 1]⁶
  moves the target pose from the current end-effector pose by ≤ 2 cm and ≤ 0.1 rad per axis
  (:func:`controllers.impedance.target_from_action`), clipped to the task's safety box and to ±``rot_bound`` around the
  tool pointing down. The Cartesian impedance law (``controllers/impedance.py``, SERL's compliance gains) runs at
  physics rate: the simulator is built with decimation 1 and :meth:`ArmTask.physics_step` loops law + ``sim.step()``.
* Start pose: every episode draws an end-effector position (the task's ``start_pose``); the arm goes there by one
  linearised inverse-kinematics step from a central posture solved once at construction (the tool points down; the
  start is within a few mm of the drawn position). The controller's null-space posture is that start posture.
* Observations (float32): ``policy`` = ee position (world), ee orientation (first two columns of R, 6-D), ee twist
  J q̇ (6), wrist force (3, a force sensor between the flange and the tool, in the tool frame), then the task's terms
  (goal relative to the ee ...). ``critic`` = ``policy`` + arm joint positions and velocities + the task's privileged
  terms. ``image`` (only when ``image_size`` > 0): ``uint8 [N, 3·len(cameras), H, W]`` from the model cameras
  ``front`` and ``wrist``. Images are rendered on the host, one world after the other, by one offscreen renderer per
  camera (``tasks/mujoco/render.py``): a host sync and the dominant cost of a step when on (64 envs, 64 px, one
  camera, software OpenGL: ~0.4 s of rendering against 0.09 s of physics and control per step); the state groups
  never sync.
* ``extras["success"]`` (bool [N]) reports the task's success in every step (before the automatic reset).
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
import torch
from tensordict import TensorDict

from controllers.impedance import CartesianImpedance, ImpedanceConfig, target_from_action
from rsl_rl.env import StepResult
from tasks.manipulation.arm import ARM_JOINTS, EE_SITE, HOME_QPOS, arm_spec
from tasks.mujoco.sim import CARTESIAN_FIELDS
from tasks.mujoco.task import MujocoTask, MujocoTaskCfg

NUM_ARM = len(ARM_JOINTS)
CAMERAS = ("front", "wrist")
# The tool pointing straight down, its x axis forward: the home keyframe's flange orientation.
DOWN = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


@dataclass
class ArmTaskCfg(MujocoTaskCfg):
    """Settings every arm task has."""

    num_envs: int = 32
    """Parallel worlds."""
    max_episode_steps: int = 100
    """Episode length in policy steps (10 s at 10 Hz, SERL's peg episodes)."""
    decimation: int = 50
    """Physics steps (2 ms) per policy step: 50 = 10 Hz. The impedance law runs at every physics step."""
    end_effector: str = "peg"
    """``peg`` or ``gripper`` (tasks/manipulation/arm.py)."""
    pos_scale: float = 0.02
    """Largest target translation per policy step and axis, m (SERL: 2 cm)."""
    rot_scale: float = 0.1
    """Largest target rotation per policy step and axis, rad (SERL: 0.1)."""
    rot_bound: float = 0.3
    """Bound of each component of the target's rotation away from the tool pointing down, rad."""
    workspace_low: tuple[float, float, float] = (0.3, -0.25, 0.1)
    """Lower corner of the safety box of the target position (world, m)."""
    workspace_high: tuple[float, float, float] = (0.7, 0.25, 0.45)
    """Upper corner of the safety box of the target position (world, m)."""
    impedance: ImpedanceConfig = field(default_factory=ImpedanceConfig)
    """Gains and limits of the Cartesian impedance law (SERL's compliance mode)."""
    image_size: int = 0
    """Side of the square ``image`` observation in pixels; 0 = no image group."""
    cameras: tuple[str, ...] = ("front",)
    """Cameras of the ``image`` group, stacked along channels: ``front`` and/or ``wrist``."""

    def __post_init__(self) -> None:
        if self.image_size < 0:
            raise ValueError(f"image_size must be >= 0, got {self.image_size}")
        for camera in self.cameras:
            if camera not in CAMERAS:
                raise ValueError(f"cameras entry {camera!r}; allowed: {', '.join(map(repr, CAMERAS))}")
        if self.image_size and not self.cameras:
            raise ValueError("image_size > 0 needs at least one camera in cameras")
        if self.decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {self.decimation}")


def add_cameras_and_sensors(spec: mujoco.MjSpec, tool_body: str) -> None:
    """The ``front`` camera (looking at the table from the far side), the ``wrist`` camera (on the tool, looking along
    it) and the ``wrist_force`` sensor (force between the flange and the tool, in the tool frame)."""
    # Front: 1.2 m in front of the base, 0.55 m up, looking back and down at the table's centre (0.5, 0, 0.1).
    spec.worldbody.add_camera(name="front", pos=[1.25, 0.0, 0.55], xyaxes=[0, 1, 0, -0.5, 0, 0.866], fovy=45)
    tool = spec.body(tool_body)
    # The camera looks along its −z: the tool's +z (down when the tool points down) is the camera's −z.
    tool.add_camera(name="wrist", pos=[0.06, 0.0, 0.0], xyaxes=[0, -1, 0, -1, 0, 0], fovy=75)
    tool.add_site(name="wrist_force", pos=[0, 0, 0])
    spec.add_sensor(
        name="wrist_force", type=mujoco.mjtSensor.mjSENS_FORCE, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="wrist_force"
    )


def rot6d(rot: torch.Tensor) -> torch.Tensor:
    """The first two columns of rotation matrices, [N, 3, 3] -> [N, 6] (a continuous orientation code)."""
    return rot[..., :, :2].transpose(-1, -2).flatten(-2)


class ArmTask(MujocoTask):
    """Impedance-controlled arm at 10 Hz with SERL's action interface; subclasses add objects, goals and rewards."""

    fields = (*CARTESIAN_FIELDS, "sensordata")
    tool_body: str = "peg"
    """The body the wrist force sensor and camera sit on."""
    start_center: tuple[float, float, float] = (0.5, 0.0, 0.25)
    """Central end-effector position: the inverse kinematics' linearisation point."""

    def __init__(self, cfg: ArmTaskCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.tool_body = "gripper/hand" if cfg.end_effector == "gripper" else "peg"
        super().__init__(cfg, device, seed)

    # --- model -------------------------------------------------------------------------------------------------------

    def build_model(self) -> mujoco.MjModel:
        spec = arm_spec(self.cfg.end_effector)
        add_cameras_and_sensors(spec, self.tool_body)
        self.edit_spec(spec)
        model = spec.compile()
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.cfg.image_size)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.cfg.image_size)
        self._solve_start_posture(model)
        return model

    def edit_spec(self, spec: mujoco.MjSpec) -> None:
        """Add the task's objects to the arm's spec (default: nothing)."""

    def sim_decimation(self) -> int:
        return 1  # the impedance law acts between physics steps: physics_step loops cfg.decimation of them

    def _solve_start_posture(self, model: mujoco.MjModel) -> None:
        """Once, on the host: the posture with the ee at ``start_center`` pointing down (damped least squares from the
        home posture), and the map from ee displacements to joint displacements there (the Jacobian's pseudo-inverse,
        orientation held)."""
        data = mujoco.MjData(model)
        data.qpos[:NUM_ARM] = HOME_QPOS
        site = model.site(EE_SITE).id
        target_pos, target_rot = np.array(self.start_center), np.array(DOWN)
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        for _ in range(200):
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            rot = data.site_xmat[site].reshape(3, 3)
            err_rot = np.zeros(3)
            mujoco.mju_mat2Quat(quat := np.zeros(4), (rot @ target_rot.T).flatten())
            mujoco.mju_quat2Vel(err_rot, quat, 1.0)
            err = np.concatenate([data.site_xpos[site] - target_pos, err_rot])
            mujoco.mj_jacSite(model, data, jacp, jacr, site)
            jac = np.concatenate([jacp, jacr])[:, :NUM_ARM]
            dq = -jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), err)
            data.qpos[:NUM_ARM] += dq
            if np.abs(err).max() < 1e-8:
                break
        self.center_qpos_np = data.qpos[:NUM_ARM].copy()
        self.center_ik = np.linalg.pinv(jac)[:, :3]  # [7, 3]: Δq for a Δp with the orientation held

    # --- episode -----------------------------------------------------------------------------------------------------

    def init_buffers(self) -> None:
        super().init_buffers()
        n, dev, dt = self.num_envs, self.device, self.dtype
        self.num_actions = 6
        self.action = torch.zeros(n, 6, dtype=dt, device=dev)
        tensor = lambda x: torch.as_tensor(x, dtype=dt, device=dev)  # noqa: E731
        self.center_qpos = tensor(self.center_qpos_np)
        self.center_ik_t = tensor(self.center_ik)
        self.down = tensor(DOWN)
        self.start_center_t = tensor(self.start_center)
        self.pos_low, self.pos_high = tensor(self.cfg.workspace_low), tensor(self.cfg.workspace_high)
        impedance = ImpedanceConfig(**{**vars(self.cfg.impedance), "dt": float(self.model.opt.timestep)})
        self.controller = CartesianImpedance(impedance, n, self.center_qpos, dev, dt)
        self.target_pos = torch.zeros(n, 3, dtype=dt, device=dev)
        self.target_rot = self.down.expand(n, 3, 3).clone()
        self.success = torch.zeros(n, dtype=torch.bool, device=dev)
        self.ee_site = self.sim.site_id(EE_SITE)
        self.sim.mass_matrix()  # builds the facade's index of M once, here rather than in the first step
        self.arm_dofs = torch.arange(NUM_ARM, device=dev)
        self.renderers: dict[str, Any] = {}

    def sample_start_pos(self) -> torch.Tensor:
        """End-effector start positions [N, 3] of new episodes, drawn after :meth:`reset_task` (default: the centre)."""
        return self.start_center_t.expand(self.num_envs, 3)

    @abstractmethod
    def reset_task(self, mask: torch.Tensor, qpos: torch.Tensor) -> None:
        """Draw the task's state (goals, objects) for the envs where ``mask``: write object joints into ``qpos`` [N, nq]
        and keep goals as tensors (rows of other envs are drawn too and ignored)."""

    def reset_envs(self, mask: torch.Tensor) -> None:
        qpos = self.init_qpos.expand(self.num_envs, -1).clone()
        self.reset_task(mask, qpos)
        arm = self.center_qpos + (self.sample_start_pos() - self.start_center_t) @ self.center_ik_t.T
        qpos[:, :NUM_ARM] = arm
        self.sim.reset(mask, qpos, torch.zeros(self.num_envs, self.model.nv, dtype=self.dtype, device=self.device))
        self.controller.reset(mask)
        self.controller.posture.copy_(torch.where(mask.unsqueeze(-1), arm, self.controller.posture))
        pos, rot = self.sim.site_pose(EE_SITE)
        self.target_pos = torch.where(mask.unsqueeze(-1), pos, self.target_pos)
        self.target_rot = torch.where(mask.view(-1, 1, 1), rot, self.target_rot)
        self.success = self.success & ~mask
        if self.renderers:
            self.stale |= mask

    # --- control -----------------------------------------------------------------------------------------------------

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` [6]: SERL's normalised action box [−1, 1]⁶ (translation, then rotation)."""
        one = torch.ones(6, device=self.device)
        return -one, one

    def process_action(self, actions: torch.Tensor) -> torch.Tensor:
        return actions.to(self.dtype).clamp(-1.0, 1.0)

    def physics_step(self) -> torch.Tensor:
        c = self.cfg
        pos, rot = self.sim.site_pose(EE_SITE)
        self.target_pos, self.target_rot = target_from_action(
            self.action, pos, rot, self.pos_low, self.pos_high, c.pos_scale, c.rot_scale, self.down, c.rot_bound
        )
        unstable = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self.before_substeps()
        for _ in range(c.decimation):
            self.apply_torque()
            unstable |= self.sim.step()
        self.success = self.compute_success()
        if self.renderers:
            self.stale.fill_(True)
        return unstable

    def before_substeps(self) -> None:
        """Hook before the physics steps of a policy step (e.g. the gripper's command)."""

    def apply_torque(self) -> None:
        """One evaluation of the impedance law into the arm's controls."""
        pos, rot = self.sim.site_pose(EE_SITE)
        jac = self.sim.site_jacobian(EE_SITE)[:, :, :NUM_ARM]
        mass = self.sim.mass_matrix()[:, :NUM_ARM, :NUM_ARM]
        qpos, qvel = self.sim.qpos[:, :NUM_ARM], self.sim.qvel[:, :NUM_ARM]
        bias = self.sim.qfrc_bias[:, :NUM_ARM]
        tau = self.controller.torque(pos, rot, jac, qpos, qvel, bias, self.target_pos, self.target_rot, mass)
        self.sim.ctrl[:, :NUM_ARM] = tau

    @abstractmethod
    def compute_success(self) -> torch.Tensor:
        """``bool[N]``: the task is solved in the current state."""

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = super().step(actions)
        extras["success"] = self.last_success
        return obs, reward, terminated, truncated, extras

    def terminated(self) -> torch.Tensor:
        # Called by BatchedTask.step after the physics and before the reset: the success of this step.
        self.last_success = self.success.clone()
        if self.terminate_on_success():
            return self.success.clone()
        return torch.zeros_like(self.success)

    def terminate_on_success(self) -> bool:
        return bool(getattr(self.cfg, "terminate_on_success", False))

    # --- observations ------------------------------------------------------------------------------------------------

    def ee_state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ee position [N, 3], orientation [N, 3, 3] and twist J q̇ [N, 6] (linear, angular; world frame)."""
        pos, rot = self.sim.site_pose(EE_SITE)
        twist = (self.sim.site_jacobian(EE_SITE) @ self.sim.qvel.unsqueeze(-1)).squeeze(-1)
        return pos, rot, twist

    @abstractmethod
    def task_terms(self, ee_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The task's policy terms [N, P] and privileged critic terms [N, C]."""

    def observe(self) -> TensorDict:
        pos, rot, twist = self.ee_state()
        force = self.sim.sensor("wrist_force")
        task, privileged = self.task_terms(pos)
        policy = torch.cat([pos, rot6d(rot), twist, force, task], dim=-1).float()
        arm_state = torch.cat([self.sim.qpos[:, :NUM_ARM], self.sim.qvel[:, :NUM_ARM]], dim=-1).float()
        critic = torch.cat([policy, arm_state, privileged.float()], dim=-1)
        groups: dict[str, torch.Tensor] = {"policy": policy, "critic": critic}
        if self.cfg.image_size:
            groups["image"] = self.render_images()
        return TensorDict(groups, batch_size=[self.num_envs], device=self.device)

    def render_images(self) -> torch.Tensor:
        """``uint8 [N, 3·len(cameras), S, S]`` of every world: rendered on the host (a sync), one world after the other,
        only for the worlds whose state changed since the last call (a step's second observation, after the automatic
        reset, re-renders just the reset worlds). Shadows and reflections are off: 10x faster in software OpenGL."""
        from tasks.mujoco.render import WorldRenderer

        size = self.cfg.image_size
        if not self.renderers:
            for camera in self.cfg.cameras:
                renderer = WorldRenderer(self.model, size, size, camera)
                for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
                    renderer.renderer.scene.flags[flag] = False
                self.renderers[camera] = renderer
            self.images = torch.zeros(self.num_envs, 3 * len(self.cfg.cameras), size, size, dtype=torch.uint8)
            self.stale = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        worlds = self.stale.nonzero().flatten().tolist()
        if worlds:
            frames = [r.render(self.sim.qpos, self.sim.qvel, worlds) for r in self.renderers.values()]
            images = torch.from_numpy(np.concatenate(frames, axis=-1))  # [W, S, S, 3·cams]
            self.images[worlds] = images.permute(0, 3, 1, 2)
            self.stale.zero_()
        return self.images.to(self.device, copy=True)

    def observation_terms(self) -> list[tuple[str, int]]:
        return [
            ("ee_pos", 3),
            ("ee_rot6d", 6),
            ("ee_twist", 6),
            ("wrist_force", 3),
            *self.task_term_names(),
        ]

    def task_term_names(self) -> list[tuple[str, int]]:
        return []

    def deployment_spec(self) -> dict[str, Any]:
        """The policy group's terms. The action is SERL's normalised Cartesian step ([−1, 1]⁶, see the module
        docstring), executed by the impedance law: not an actuator command, so no action entry."""
        return {"observation": {"policy": self.observation_terms()}}

    def close(self) -> None:
        for renderer in self.renderers.values():
            renderer.close()
        super().close()


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    """Quaternions (w, x, y, z) [N, 4] of rotations by ``yaw`` [N] about z."""
    zero = torch.zeros_like(yaw)
    return torch.stack([torch.cos(yaw / 2), zero, zero, torch.sin(yaw / 2)], dim=-1)
