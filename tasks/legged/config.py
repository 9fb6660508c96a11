"""Configuration of the velocity-tracking task: commands, observation noise, and the term dicts (rewards, randomisation
events, terminations) that a variant edits (mjlab style). The task itself is ``velocity.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.legged import events as ev
from tasks.legged import terms as t
from tasks.legged.robot import RobotCfg
from tasks.legged.terrain import TerrainCfg
from tasks.mujoco.task import MujocoTaskCfg
from tasks.task import RewardTerm


@dataclass
class CommandCfg:
    """Velocity commands."""

    lin_vel_x: tuple[float, float] = (-1.0, 1.0)
    """Forward velocity range (m/s)."""
    lin_vel_y: tuple[float, float] = (-1.0, 1.0)
    """Lateral velocity range (m/s)."""
    ang_vel_z: tuple[float, float] = (-1.0, 1.0)
    """Yaw-rate range (rad/s) of direct yaw-rate commands; heading-controlled yaw rates are clipped to it."""
    heading: bool = True
    """Heading control for a share (``heading_fraction``) of the moving commands: the yaw rate is
    ``heading_stiffness · wrap(heading_cmd − heading)`` (legged_gym); False = every yaw rate is commanded directly."""
    heading_fraction: float = 0.5
    """Share of the moving commands under heading control (Isaac Lab's ``rel_heading_envs``); the others hold a
    direct yaw rate U(ang_vel_z) for the whole resampling period. Heading control alone rarely asks for a steady large
    yaw rate (it decays as the robot turns), so a policy trained on it alone turns in place poorly (issue 10)."""
    heading_stiffness: float = 0.5
    """Gain from heading error to yaw-rate command."""
    resample_s: float = 10.0
    """Seconds between command resamplings."""
    standing_fraction: float = 0.05
    """Share of commands that are 'stand still' (all zero)."""
    turn_fraction: float = 0.1
    """Share of commands that are 'turn in place': zero planar velocity, direct yaw rate U(ang_vel_z). Uniform
    planar commands are near zero too rarely (~3 %) to train this gait."""
    min_speed: float = 0.2
    """Planar commands slower than this are zeroed (legged_gym)."""

    def __post_init__(self) -> None:
        for name in ("lin_vel_x", "lin_vel_y", "ang_vel_z"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"commands.{name}={getattr(self, name)}: need low <= high")
        for name in ("heading_fraction", "standing_fraction", "turn_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"commands.{name}={getattr(self, name)}: allowed 0 ... 1")
        if self.standing_fraction + self.turn_fraction > 1.0:
            raise ValueError(
                f"commands.standing_fraction + turn_fraction = {self.standing_fraction + self.turn_fraction}: "
                "allowed at most 1"
            )
        if not self.resample_s > 0:
            raise ValueError(f"commands.resample_s={self.resample_s}: must be > 0")


@dataclass
class NoiseCfg:
    """Uniform noise U(±scale) on the ``policy`` group (Isaac Lab's values)."""

    enabled: bool = True
    """Switch all observation noise."""
    lin_vel: float = 0.1
    """Base linear velocity (m/s)."""
    ang_vel: float = 0.2
    """Base angular velocity (rad/s)."""
    gravity: float = 0.05
    """Projected gravity."""
    joint_pos: float = 0.01
    """Joint positions (rad)."""
    joint_vel: float = 1.5
    """Joint velocities (rad/s)."""
    height_scan: float = 0.1
    """Height scan (m)."""


@dataclass
class TerminationTerm:
    """``func(env, **params) -> bool[N]``: the episode ends."""

    func: Any
    """The condition."""
    params: dict[str, float] = field(default_factory=dict)
    """Keyword arguments of ``func``."""


def velocity_rewards() -> dict[str, RewardTerm]:
    """Isaac Lab's velocity-task terms (weights per second) with its flat-ground Go1-class additions."""
    return {
        "track_lin_vel_xy": RewardTerm(t.track_lin_vel_xy_exp, 1.5, {"std": 0.5}),
        "track_ang_vel_z": RewardTerm(t.track_ang_vel_z_exp, 0.75, {"std": 0.5}),
        "lin_vel_z": RewardTerm(t.lin_vel_z_l2, -2.0),
        "ang_vel_xy": RewardTerm(t.ang_vel_xy_l2, -0.05),
        "torques": RewardTerm(t.joint_torques_l2, -2e-4),
        "joint_acc": RewardTerm(t.joint_acc_l2, -2.5e-7),
        "action_rate": RewardTerm(t.action_rate_l2, -0.01),
        "feet_air_time": RewardTerm(t.feet_air_time, 0.25, {"threshold": 0.5}),
        "undesired_contacts": RewardTerm(t.undesired_contacts, -1.0, {"threshold": 1.0}),
        "flat_orientation": RewardTerm(t.flat_orientation_l2, -2.5),
        "joint_pos_limits": RewardTerm(t.joint_pos_limits, -10.0),
    }


def velocity_events() -> dict[str, ev.EventTerm]:
    """Randomisation and pushes (legged_gym / Isaac Lab ranges)."""
    return {
        "foot_friction": ev.EventTerm(ev.foot_friction, "startup", {"friction": (0.5, 1.25)}),
        "base_mass": ev.EventTerm(ev.base_mass, "startup", {"added": (-1.0, 2.0)}),
        "base_com": ev.EventTerm(ev.base_com, "startup", {"offset": (0.05, 0.05, 0.01)}),
        "motor_strength": ev.EventTerm(ev.motor_strength, "reset", {"scale": (0.9, 1.1)}),
        "pd_gains": ev.EventTerm(ev.pd_gains, "reset", {"kp_scale": (0.9, 1.1), "kd_scale": (0.9, 1.1)}),
        "action_delay": ev.EventTerm(ev.action_delay, "reset", {"steps": (0, 1)}),
        "push": ev.EventTerm(ev.push, "interval", {"velocity": (-0.5, 0.5)}, interval_s=(10.0, 15.0)),
    }


def velocity_terminations() -> dict[str, TerminationTerm]:
    return {
        "base_contact": TerminationTerm(t.base_contact, {"threshold": 1.0}),
        "bad_orientation": TerminationTerm(t.bad_orientation, {"limit_angle": 1.2}),
    }


@dataclass
class VelocityCfg(MujocoTaskCfg):
    """Quadruped velocity tracking."""

    num_envs: int = 1024
    """Parallel worlds."""
    max_episode_steps: int = 1000
    """20 s at 50 Hz."""
    decimation: int = 4
    """Physics steps (200 Hz) per policy step (50 Hz)."""
    robot: RobotCfg = field(default_factory=RobotCfg)
    """The robot."""
    terrain: TerrainCfg = field(default_factory=TerrainCfg)
    """The ground."""
    commands: CommandCfg = field(default_factory=CommandCfg)
    """Velocity commands."""
    noise: NoiseCfg = field(default_factory=NoiseCfg)
    """Observation noise of the ``policy`` group."""
    rewards: dict[str, RewardTerm] = field(default_factory=velocity_rewards)
    """Reward terms (weights per second; multiplied by the control period)."""
    events: dict[str, ev.EventTerm] = field(default_factory=velocity_events)
    """Randomisation and perturbation terms."""
    terminations: dict[str, TerminationTerm] = field(default_factory=velocity_terminations)
    """Termination terms (the time-out is a truncation)."""
    torque_speed_limit: bool = True
    """Motor model with the torque–speed curve; False = torque clipping only."""
    max_action_delay: int = 2
    """Longest action delay the buffer holds (control periods)."""
    reset_joint_scale: tuple[float, float] = (0.5, 1.5)
    """Initial joint positions = standing pose × U(range) (legged_gym)."""
    reset_base_velocity: float = 0.5
    """Initial base velocities U(±value) on all six axes."""
    only_positive_rewards: bool = False
    """Clip each step's total reward at 0 (legged_gym's default): early on, penalties would otherwise outweigh the
    tracking terms and the policy learns to end its episodes early."""
    action_clip: float = 100.0
    """Actions are clipped to ±this (legged_gym)."""
    height_scan: tuple[tuple[float, ...], tuple[float, ...]] = (
        tuple(round(-0.8 + 0.1 * i, 2) for i in range(17)),
        tuple(round(-0.5 + 0.1 * i, 2) for i in range(11)),
    )
    """Height-scan points (x, y) in the yaw-aligned base frame (rough terrain only; 187 points as legged_gym)."""
