"""Quadruped velocity tracking (legged_gym / Isaac Lab / mjlab style) on the MuJoCo simulation layer.

The policy commands joint position targets at 50 Hz; a torch joint PD with a torque–speed-limited motor model
(``controllers/``) turns them into torques at every 200 Hz physics step. Commands (v_x, v_y, ω_z: stand still, turn in
place, or move with a heading target or a direct yaw rate) are resampled every ``resample_s``. Rewards, terminations
and randomisation are dicts of plain terms (``terms.py``, ``events.py``) gathered in ``config.py``, so a variant is a
config edit. Observation groups:

* ``policy``  -- what the robot senses, with uniform noise: base linear and angular velocity, projected gravity,
  command, joint positions (relative to the standing pose) and velocities, last action (+ height scan on rough ground);
* ``student`` -- ``policy`` without the base linear velocity (no state estimator needed), for distillation;
* ``critic``  -- privileged and noise-free: the ``policy`` terms plus foot contacts, base height, friction, added mass,
  centre-of-mass shift, motor strength (+ height scan).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from tensordict import TensorDict

from controllers import ActionDelay, DCMotor, JointPD
from rsl_rl.env import StepResult
from tasks.legged import terms as t
from tasks.legged.config import VelocityCfg
from tasks.legged.robot import build_model, by_regex, penalized_sensors
from tasks.legged.terrain import HeightMap, generate, update_levels
from tasks.mujoco.task import MujocoTask
from tasks.wrappers.params import AttributeParam, ModelParam, Parameter


class FootFriction(Parameter):
    """Sliding friction of every foot geom, one value per env: the field the ``foot_friction`` event randomises. The
    feet are the robot config's ``foot_geoms`` (their names differ between our go1.xml and Menagerie's)."""

    name = "friction"

    def read(self, env: Any) -> torch.Tensor:
        return env.sim.params["geom_friction"][:, env.foot_geom_ids[0], 0]

    def write(self, env: Any, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        field = env.sim.params["geom_friction"].clone()
        field[:, env.foot_geom_ids, 0] = values.to(field.device, field.dtype).reshape(-1, 1)
        env.sim.set_params("geom_friction", field, mask)

    def nominal(self, env: Any) -> float:
        return float(env.model.geom_friction[env.foot_geom_ids[0], 0])


class VelocityTask(MujocoTask):
    cfg: VelocityCfg
    fields = ("sensordata",)
    params = ("geom_friction", "body_mass", "body_ipos")
    # Names for robustness evaluation (tasks/uncertainty.py), on the fields the events randomise (events.py):
    # foot friction (set), a payload on the base (kg, added to the model's mass), the motor model's torque multiplier.
    param_aliases: ClassVar[dict[str, str | Parameter]] = {
        "friction": FootFriction(),
        "added_mass": ModelParam("body_mass", "trunk", mode="add", name="added_mass"),
        "motor_strength": AttributeParam("motor.strength", 1.0, name="motor_strength"),
    }

    # --- model and buffers -------------------------------------------------------------------------------------------

    def build_model(self) -> Any:
        cfg = self.cfg
        self.terrain_heights: np.ndarray | None = None
        if cfg.terrain.kind == "rough":
            self.terrain_heights, self.tile_centres = generate(cfg.terrain)
            return build_model(cfg.robot, (self.terrain_heights, cfg.terrain.resolution, 0.5))
        return build_model(cfg.robot)

    def sim_decimation(self) -> int:
        return 1  # the torch PD acts at every physics step

    def init_buffers(self) -> None:
        cfg, m, n, dev, dt = self.cfg, self.model, self.num_envs, self.device, self.dtype
        # The simulator steps one physics step at a time: the torch PD runs at every one of them.
        self.step_dt = self.sim.dt * cfg.decimation
        self.max_episode_s = self.max_episode_length * self.step_dt
        super().init_buffers()
        self.reward_terms = [(w * self.step_dt, f, p) for w, f, p in self.reward_terms]
        robot = cfg.robot
        names = robot.joint_names
        jid = [m.joint(name).id for name in names]
        self.qpos_idx = torch.as_tensor(m.jnt_qposadr[jid], device=dev)
        self.qvel_idx = torch.as_tensor(m.jnt_dofadr[jid], device=dev)
        self.base_id = self.sim.body_id(robot.base_body)
        self.foot_geom_ids = [self.sim.geom_id(g) for g in robot.foot_geoms]
        self.default_joint_pos = torch.as_tensor(
            by_regex(names, robot.default_joint_pos, "default_joint_pos"), dtype=dt, device=dev
        )
        limits = torch.as_tensor(m.jnt_range[jid], dtype=dt, device=dev)
        mid, half = limits.mean(-1), (limits[:, 1] - limits[:, 0]) / 2
        self.soft_joint_limits = (mid - 0.9 * half, mid + 0.9 * half)
        self.joint_limits = (limits[:, 0], limits[:, 1])
        kw: dict[str, Any] = {"device": dev, "dtype": dt}
        J = len(names)
        self.pd = JointPD(n, self.default_joint_pos, _t(by_regex(names, robot.stiffness, "stiffness"), kw),
                          _t(by_regex(names, robot.damping, "damping"), kw), robot.action_scale, **kw)  # fmt: skip
        self.motor = DCMotor(n, _t(by_regex(names, robot.effort_limit, "effort_limit"), kw),
                             _t(by_regex(names, robot.velocity_limit, "velocity_limit"), kw),
                             torque_speed=cfg.torque_speed_limit, **kw)  # fmt: skip
        self.delay = ActionDelay(n, J, cfg.max_action_delay, **kw)
        self.sensor_foot = self._sensor_rows([f"contact/{g}" for g in robot.foot_geoms])
        self.sensor_term = self._sensor_rows([f"contact/{b}" for b in robot.termination_bodies])
        # Penalised bodies: the force of a body is the sum of its collision geoms' net contact forces (magnitudes).
        groups = penalized_sensors(m, robot)
        self.sensor_pen = self._sensor_rows([name for group in groups for name in group])
        owner = [b for b, group in enumerate(groups) for _ in group]
        self.pen_groups = torch.zeros(len(groups), len(owner), **kw)
        self.pen_groups[owner, list(range(len(owner)))] = 1.0
        self.nominal = {name: self.sim.params[name].clone() for name in self.params}
        # Constants of the per-step code, built once (a tensor from Python data per step waits for the GPU).
        self.gravity_dir = torch.tensor([0.0, 0.0, -1.0], **kw).expand(n, 3)
        z = lambda *shape: torch.zeros(n, *shape, **kw)  # noqa: E731
        self.prev_action, self.torque, self.last_joint_vel = z(J), z(J), z(J)
        self.command, self.heading_target, self.push_force = z(3), z(), z(2)
        self.air_time, self.last_air_time = z(len(self.foot_geom_ids)), z(len(self.foot_geom_ids))
        self.first_contact = torch.zeros(n, len(self.foot_geom_ids), dtype=torch.bool, device=dev)
        self.last_contact = torch.zeros_like(self.first_contact)
        self.command_timer = z()
        self.heading_control = torch.zeros(n, dtype=torch.bool, device=dev)
        self.event_timers = {k: z() for k, e in cfg.events.items() if e.mode == "interval"}
        self.env_origin = z(3)
        self.levels = torch.zeros(n, dtype=torch.long, device=dev)
        self.started = False
        if self.terrain_heights is not None:
            self.height_map = HeightMap(self.terrain_heights, cfg.terrain.resolution, dev)
            self.centres = torch.as_tensor(self.tile_centres, dtype=dt, device=dev)
            self.levels = torch.randint(0, cfg.terrain.max_init_level + 1, (n,), generator=self.generator, device=dev)
            self.columns = torch.randint(0, cfg.terrain.num_cols, (n,), generator=self.generator, device=dev)
            xs, ys = (torch.tensor(v, dtype=dt, device=dev) for v in cfg.height_scan)
            self.scan_points = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
        everyone = torch.ones(n, dtype=torch.bool, device=dev)
        for term in cfg.events.values():
            if term.mode == "startup":
                term.func(self, everyone, **term.params)
        self.refresh_state()

    def _sensor_rows(self, names: list[str]) -> torch.Tensor:
        """Columns of ``sensordata`` holding the 3-D contact forces of the named sensors → index ``[len(names), 3]``."""
        m = self.model
        adr = [int(m.sensor_adr[m.sensor(name).id]) for name in names]
        return torch.as_tensor([[a, a + 1, a + 2] for a in adr], device=self.device).reshape(len(names), 3)

    def _contact_force(self, rows: torch.Tensor) -> torch.Tensor:
        """Net contact-force magnitudes ``[N, len(rows)]``."""
        return self.sim.data["sensordata"][:, rows].norm(dim=-1)

    # --- state after physics -----------------------------------------------------------------------------------------

    def refresh_state(self) -> None:
        """Quantities the terms read, from the simulator's current state."""
        qpos, qvel = self.sim.qpos, self.sim.qvel
        self.base_pos = qpos[:, :3]
        self.base_quat = qpos[:, 3:7]
        # Free joint: linear velocity in the world frame, angular velocity in the body frame.
        self.base_lin_vel = t.quat_rotate_inverse(self.base_quat, qvel[:, :3])
        self.base_ang_vel = qvel[:, 3:6]
        self.projected_gravity = t.quat_rotate_inverse(self.base_quat, self.gravity_dir)
        self.joint_pos = qpos[:, self.qpos_idx]
        self.joint_vel = qvel[:, self.qvel_idx]
        self.foot_force = self._contact_force(self.sensor_foot)
        self.termination_force = self._contact_force(self.sensor_term)
        self.penalized_force = self._contact_force(self.sensor_pen) @ self.pen_groups.T

    def _update_feet(self) -> None:
        """Air time (legged_gym): contact = force > 1 N, OR-ed with the previous step's against flicker."""
        contact = self.foot_force > 1.0
        filtered = contact | self.last_contact
        self.last_contact = contact
        self.first_contact = (self.air_time > 0) & filtered
        self.air_time = self.air_time + self.step_dt
        self.last_air_time = self.air_time.clone()
        self.air_time = torch.where(filtered, 0.0, self.air_time)

    # --- commands and events -----------------------------------------------------------------------------------------

    def _resample_commands(self, mask: torch.Tensor) -> None:
        """New commands for the envs in ``mask``: stand still, turn in place, or move (planar U(ranges), slow ones
        zeroed) with a heading target or a direct yaw rate, in the shares of ``cfg.commands``."""
        c = self.cfg.commands
        u = lambda lo, hi: lo + (hi - lo) * self.rand()  # noqa: E731
        cmd = torch.stack([u(*c.lin_vel_x), u(*c.lin_vel_y), u(*c.ang_vel_z)], -1)
        slow = cmd[:, :2].norm(dim=-1, keepdim=True) <= c.min_speed
        kind = self.rand()
        standing = kind < c.standing_fraction
        turning = ~standing & (kind < c.standing_fraction + c.turn_fraction)
        cmd[:, :2] = torch.where(slow | turning.unsqueeze(-1), 0.0, cmd[:, :2])
        cmd = torch.where(standing.unsqueeze(-1), 0.0, cmd)
        heading_control = (self.rand() < c.heading_fraction) & ~standing & ~turning & c.heading
        self.command = torch.where(mask.unsqueeze(-1), cmd, self.command)
        self.heading_control = torch.where(mask, heading_control, self.heading_control)
        self.heading_target = torch.where(mask, t.yaw_of(self.base_quat) + u(-math.pi, math.pi), self.heading_target)
        self.command_timer = torch.where(mask, 0.0, self.command_timer)

    def _heading_command(self) -> None:
        """Yaw-rate command of the heading-controlled envs from their heading error."""
        c = self.cfg.commands
        err = t.wrap_angle(self.heading_target - t.yaw_of(self.base_quat))
        yaw_rate = (c.heading_stiffness * err).clamp(*c.ang_vel_z)
        self.command[:, 2] = torch.where(self.heading_control, yaw_rate, self.command[:, 2])

    def _draw_intervals(self, name: str) -> torch.Tensor:
        lo, hi = self.cfg.events[name].interval_s
        return lo + (hi - lo) * self.rand()

    def _interval_events(self) -> None:
        """Each timer holds the time left until its env's next event: it counts down by one control period per step;
        the event fires when less than half a period is left (so an interval rounds to the nearest step), and a fresh
        interval is drawn. Timers start, and restart with every episode, at a fresh draw (``reset_envs``; Isaac Lab's
        and mjlab's per-episode interval events), so no env is pushed in its first steps."""
        for name, timer in self.event_timers.items():
            term = self.cfg.events[name]
            left = timer - self.step_dt
            due = left < 0.5 * self.step_dt
            term.func(self, due, **term.params)
            self.event_timers[name] = torch.where(due, self._draw_intervals(name), left)

    # --- BatchedTask -------------------------------------------------------------------------------------------------

    def process_action(self, actions: torch.Tensor) -> torch.Tensor:
        """Clip each action to the bounds that keep its joint target ``q0 + scale·a`` within the joint's limits (and
        to ±``action_clip``): the bounds ``deployment_spec`` exports and the robot runtime clips to, so the policy
        acts, and observes its ``last_action``, the same way in training and on the robot."""
        self.prev_action = self.action
        low, high = self.action_bounds()
        return actions.to(self.dtype).clamp(low, high)

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` ``[A]`` of the action: joint limits in action units, within ±``action_clip``."""
        scale, clip = self.cfg.robot.action_scale, self.cfg.action_clip
        low, high = ((limit - self.default_joint_pos) / scale for limit in self.joint_limits)
        return low.clamp(-clip, clip), high.clamp(-clip, clip)

    def physics_step(self) -> torch.Tensor:
        self.command_timer = self.command_timer + self.step_dt
        # Half a period of slack: accumulated float periods must not push a resampling one step late.
        self._resample_commands(self.command_timer > self.cfg.commands.resample_s - 0.5 * self.step_dt)
        self.push_force.zero_()
        self._interval_events()
        pushing = bool(self.event_timers)
        if pushing:
            self.sim.xfrc_applied[:, self.base_id, :2] = self.push_force
        target = self.pd.targets(self.delay(self.action))
        self.last_joint_vel = self.joint_vel.clone()
        unstable = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        for _ in range(self.cfg.decimation):
            q, qd = self.sim.qpos[:, self.qpos_idx], self.sim.qvel[:, self.qvel_idx]
            self.torque = self.motor.apply(self.pd.torque(target, q, qd), qd)
            self.sim.ctrl.copy_(self.torque)
            unstable |= self.sim.step()
        if pushing:
            self.sim.xfrc_applied[:, self.base_id, :2] = 0.0
        self.refresh_state()
        self._update_feet()
        self._heading_command()
        return unstable

    def terminated(self) -> torch.Tensor:
        done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        for term in self.cfg.terminations.values():
            done |= term.func(self, **term.params)
        return done

    def reset_envs(self, mask: torch.Tensor) -> None:
        n, dev, dt = self.num_envs, self.device, self.dtype
        rand = self.rand
        if self.terrain_heights is not None:
            if self.started and self.cfg.terrain.curriculum:
                distance = (self.base_pos[:, :2] - self.env_origin[:, :2]).norm(dim=-1)
                asked = self.command[:, :2].norm(dim=-1) * self.max_episode_s
                random_level = torch.randint(0, self.cfg.terrain.num_levels, (n,), generator=self.generator, device=dev)
                new = update_levels(
                    self.levels, distance, asked, self.cfg.terrain.tile_size, self.cfg.terrain.num_levels, random_level
                )
                self.levels = torch.where(mask, new, self.levels)
            origin = self.centres[self.levels, self.columns]
            self.env_origin = torch.where(mask.unsqueeze(-1), origin, self.env_origin)
        qpos = self.init_qpos.expand(n, -1).clone()
        xy = self.env_origin[:, :2] + (rand(2) - 0.5)  # ±0.5 m around the tile centre
        qpos[:, :2] = xy
        qpos[:, 2] = self.cfg.robot.init_height + (self.ground_height(xy) if self.terrain_heights is not None else 0.0)
        yaw = (2 * rand() - 1) * math.pi
        zero = torch.zeros_like(yaw)
        qpos[:, 3:7] = torch.stack([torch.cos(yaw / 2), zero, zero, torch.sin(yaw / 2)], -1)
        lo, hi = self.cfg.reset_joint_scale
        joints = self.default_joint_pos * (lo + (hi - lo) * rand(self.num_actions))
        qpos[:, self.qpos_idx] = joints.clamp(*self.joint_limits)
        qvel = torch.zeros(n, self.model.nv, device=dev, dtype=dt)
        qvel[:, :6] = (2 * rand(6) - 1) * self.cfg.reset_base_velocity
        self.sim.reset(mask, qpos, qvel)
        # Set, never multiplied by 0: NaN·0 is NaN, and a reset must clear whatever the env held.
        cleared = mask.unsqueeze(-1)
        self.action = torch.where(cleared, 0.0, self.action)
        self.prev_action = torch.where(cleared, 0.0, self.prev_action)
        self.air_time = torch.where(cleared, 0.0, self.air_time)
        self.last_air_time = torch.where(cleared, 0.0, self.last_air_time)
        self.first_contact, self.last_contact = self.first_contact & ~cleared, self.last_contact & ~cleared
        self.delay.reset(mask)
        for name, timer in self.event_timers.items():
            self.event_timers[name] = torch.where(mask, self._draw_intervals(name), timer)
        for term in self.cfg.events.values():
            if term.mode == "reset":
                term.func(self, mask, **term.params)
        self.refresh_state()
        self.last_joint_vel = torch.where(cleared, self.joint_vel, self.last_joint_vel)
        self._resample_commands(mask)
        self._heading_command()
        self.started = True

    # --- checkpoints (exact resume) ----------------------------------------------------------------------------------

    # Task buffers the next steps read, saved as they are (derived quantities are recomputed by refresh_state).
    _BUFFERS = ("command", "heading_target", "heading_control", "command_timer", "push_force", "prev_action",
                "last_joint_vel", "torque", "air_time", "last_air_time", "first_contact", "last_contact", "levels",
                "env_origin")  # fmt: skip

    def _controller_state(self) -> dict[str, tuple[Any, tuple[str, ...]]]:
        return {"pd": (self.pd, ("kp", "kd")), "motor": (self.motor, ("strength",)),
                "delay": (self.delay, ("buffer", "head", "delay"))}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The MuJoCo task's state (worlds, episode bookkeeping, RNG) plus this task's: commands and their timers,
        event timers and push force, controller state (PD gains, motor strength, action-delay ring), feet and
        last-step buffers, terrain curriculum (levels, columns, origins)."""
        own: dict[str, Any] = {name: getattr(self, name).clone() for name in self._BUFFERS}
        own["event_timers"] = {name: timer.clone() for name, timer in self.event_timers.items()}
        for key, (obj, names) in self._controller_state().items():
            own[key] = {name: getattr(obj, name).clone() for name in names}
        if self.terrain_heights is not None:
            own["columns"] = self.columns.clone()
        own["started"] = self.started
        own["last_obs"] = {name: obs.clone() for name, obs in self.last_obs.items()}
        return {**super().state_dict(), "velocity": own}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output into an env built with the same config: the next steps are identical to
        the saved env's. A missing entry or a tensor of another shape is an error naming it."""
        if "velocity" not in state:
            raise ValueError(f"env state has no 'velocity' entry (saved by another task?); it holds {sorted(state)}")
        own = state["velocity"]
        timers = own.get("event_timers", {})
        if set(timers) != set(self.event_timers):
            raise ValueError(
                f"env state has event timers {sorted(timers)}, this task's config {sorted(self.event_timers)}"
            )
        targets: list[tuple[Any, tuple[str, ...], dict[str, Any], str]] = [
            (self, self._BUFFERS, own, "velocity"),
            (self.event_timers, tuple(self.event_timers), timers, "velocity.event_timers"),
        ]
        for key, (obj, names) in self._controller_state().items():
            targets.append((obj, names, own.get(key, {}), f"velocity.{key}"))
        if self.terrain_heights is not None:
            targets.append((self, ("columns",), own, "velocity"))
        saved_obs = own.get("last_obs", {})
        for name, obs in self.last_obs.items():
            if name not in saved_obs or tuple(saved_obs[name].shape) != tuple(obs.shape):
                raise ValueError(f"env state 'velocity.last_obs' lacks '{name}' of shape {tuple(obs.shape)}")
        pairs = []  # every entry is checked before anything is written
        for owner, names, saved, where in targets:
            for name in names:
                current = owner[name] if isinstance(owner, dict) else getattr(owner, name)
                if name not in saved:
                    raise ValueError(f"env state '{where}' has no '{name}'; it holds {sorted(saved)}")
                if tuple(saved[name].shape) != tuple(current.shape):
                    raise ValueError(
                        f"env state '{where}.{name}' has shape {tuple(saved[name].shape)}, expected "
                        f"{tuple(current.shape)} (saved with another config or number of envs?)"
                    )
                pairs.append((owner, name, current, saved[name]))
        super().load_state_dict(state)
        for owner, name, current, saved in pairs:
            value = saved.to(device=current.device, dtype=current.dtype)
            if isinstance(owner, dict):
                owner[name] = value.clone()
            elif owner is self:
                setattr(self, name, value.clone())
            else:
                current.copy_(value)  # in place: the controllers' tensors keep their identity
        self.started = bool(own["started"])
        self.refresh_state()
        self.last_obs = TensorDict(
            {name: obs.to(self.device).clone() for name, obs in own["last_obs"].items()},
            batch_size=[self.num_envs],
            device=self.device,
        )

    def rand(self, *shape: int) -> torch.Tensor:
        """U(0, 1) ``[N, *shape]``, drawn in float32 whatever the backend's dtype: both backends see the same draws."""
        u = torch.rand(self.num_envs, *shape, generator=self.generator, device=self.device)
        return u.to(self.dtype)

    def ground_height(self, xy: torch.Tensor) -> torch.Tensor:
        return self.height_map.height_at(xy).to(self.dtype)

    # --- observations ------------------------------------------------------------------------------------------------

    def _noise(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if not self.cfg.noise.enabled or scale == 0:
            return x
        return x + (2 * self.rand(*x.shape[1:]) - 1) * scale

    def _height_scan(self) -> torch.Tensor:
        """base_z − 0.5 − ground height at the scan points, clipped to ±1 (legged_gym)."""
        yaw = t.yaw_of(self.base_quat)
        c, s = torch.cos(yaw).unsqueeze(-1), torch.sin(yaw).unsqueeze(-1)
        px, py = self.scan_points[:, 0], self.scan_points[:, 1]
        world = torch.stack([c * px - s * py, s * px + c * py], -1) + self.base_pos[:, None, :2]
        return (self.base_pos[:, 2:3] - 0.5 - self.ground_height(world)).clamp(-1.0, 1.0)

    def observe(self) -> TensorDict:
        nz = self.cfg.noise
        rel_pos = self.joint_pos - self.default_joint_pos
        proprio = [self._noise(self.base_ang_vel, nz.ang_vel), self._noise(self.projected_gravity, nz.gravity),
                   self.command, self._noise(rel_pos, nz.joint_pos), self._noise(self.joint_vel, nz.joint_vel),
                   self.action]  # fmt: skip
        clean = [self.base_lin_vel, self.base_ang_vel, self.projected_gravity, self.command, rel_pos, self.joint_vel,
                 self.action]  # fmt: skip
        height = self.base_pos[:, 2:3]
        if self.terrain_heights is not None:
            height = height - self.ground_height(self.base_pos[:, :2]).unsqueeze(-1)
        b = self.base_id
        params, nominal = self.sim.params, self.nominal
        privileged = [
            (self.foot_force > 1.0).to(self.dtype),
            height,
            params["geom_friction"][:, self.foot_geom_ids[0], :1],
            params["body_mass"][:, b : b + 1] - nominal["body_mass"][:, b : b + 1],
            params["body_ipos"][:, b] - nominal["body_ipos"][:, b],
            self.motor.strength,
        ]  # fmt: skip
        if self.terrain_heights is not None:
            scan = self._height_scan()
            proprio.append(self._noise(scan, nz.height_scan))
            privileged.append(scan)
        student = torch.cat(proprio, -1).float()
        policy = torch.cat([self._noise(self.base_lin_vel, nz.lin_vel), student.to(self.dtype)], -1).float()
        critic = torch.cat(clean + privileged, -1).float()
        return TensorDict(
            {"policy": policy, "student": student, "critic": critic}, batch_size=[self.num_envs], device=self.device
        )

    def reset(self) -> TensorDict:
        self.last_obs = super().reset()
        return self.last_obs

    def get_observations(self) -> TensorDict:
        """The observation the last ``step``/``reset`` returned. Not drawn again: the policy group's noise comes from
        the task's generator, and an extra draw (a runner asking for the observations after a resume) would make the
        resumed run diverge from the uninterrupted one."""
        return self.last_obs

    def step(self, actions: torch.Tensor) -> StepResult:
        length = (self.episode_length_buf + 1).to(self.dtype)
        obs, reward, terminated, truncated, extras = super().step(actions)
        self.last_obs = obs
        if self.cfg.only_positive_rewards:
            reward = reward.clamp(min=0.0)
        episode = extras["episode"]
        # Tracking quality per finished episode: the mean tracking kernel ∈ [0, 1] (1 = perfect tracking).
        # "fraction" is the share of the maximum tracking reward the episode earned (the 80 % goal).
        earned, best = 0.0, 0.0
        for name in ("track_lin_vel_xy", "track_ang_vel_z"):
            if name in self.cfg.rewards:
                scale = self.cfg.rewards[name].weight * self.step_dt * length
                episode[f"tracking/{name}"] = episode[f"reward/{name}"] / scale
                earned, best = episode[f"reward/{name}"] + earned, scale + best
        if isinstance(best, torch.Tensor):
            episode["tracking/fraction"] = earned / best
        if self.terrain_heights is not None:
            extras["log"] = {"terrain_level": self.levels.float().mean()}
        return obs, reward, terminated, truncated, extras

    # --- deployment --------------------------------------------------------------------------------------------------

    def observation_terms(self) -> list[tuple[str, int]]:
        J = self.num_actions
        terms = [("base_lin_vel", 3), ("base_ang_vel", 3), ("projected_gravity", 3), ("velocity_command", 3),
                 ("joint_pos_rel", J), ("joint_vel", J), ("last_action", J)]  # fmt: skip
        if self.terrain_heights is not None:
            terms.append(("height_scan", len(self.scan_points)))
        return terms

    def deployment_spec(self) -> dict[str, Any]:
        robot = self.cfg.robot
        low, high = self.action_bounds()
        policy = self.observation_terms()
        return {
            "observation": {"policy": policy, "student": policy[1:]},  # the student lacks base_lin_vel
            "action": {
                "names": list(robot.joint_names),
                "default": self.default_joint_pos.tolist(),
                "scale": [robot.action_scale] * self.num_actions,
                # process_action clips to these bounds in training; the runtime clips to them on the robot.
                "low": low.tolist(),
                "high": high.tolist(),
                "kp": self.pd.kp_nominal.tolist(),
                "kd": self.pd.kd_nominal.tolist(),
                "command": "joint_position",  # PD target = default + scale · action
                "limit": "clip",
                "last_action": "clipped",  # the last_action term is self.action: the clipped action
            },
        }


def _t(values: np.ndarray, kw: dict[str, Any]) -> torch.Tensor:
    return torch.as_tensor(values, **kw)
