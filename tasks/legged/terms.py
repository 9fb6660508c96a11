"""Reward and termination terms of the velocity-tracking task: plain functions ``term(env, **params) -> Tensor[N]``.

They read the task's per-step state (``env.base_lin_vel`` in the base frame, ``env.command``, ``env.torque`` …, all
``[N, …]``); weights live in the config (``velocity.py``) and are multiplied by the control period, as legged_gym and
Isaac Lab do, so a weight is "per second". Names and definitions follow Isaac Lab's velocity task
(``reference/legged.md`` §2.2).
"""

from __future__ import annotations

import math
from typing import Any

import torch

# --- quaternion helpers (w, x, y, z) ---------------------------------------------------------------------------------


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """World vector ``v [N, 3]`` in the frame of orientation ``q [N, 4]``: R(q)ᵀ v."""
    w, u = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v - w * t + torch.cross(u, t, dim=-1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vector ``v [N, 3]`` of the frame ``q`` in the world: R(q) v."""
    w, u = q[:, :1], q[:, 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def yaw_of(q: torch.Tensor) -> torch.Tensor:
    """Heading angle ``[N]`` of orientations ``q [N, 4]``."""
    w, x, y, z = q.unbind(-1)
    return torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Angle in (−π, π]."""
    return torch.atan2(torch.sin(a), torch.cos(a))


# --- rewards ---------------------------------------------------------------------------------------------------------


def track_lin_vel_xy_exp(env: Any, std: float) -> torch.Tensor:
    """exp(−‖v_cmd,xy − v_xy‖² / std²), base frame."""
    err = (env.command[:, :2] - env.base_lin_vel[:, :2]).square().sum(-1)
    return torch.exp(-err / std**2)


def track_ang_vel_z_exp(env: Any, std: float) -> torch.Tensor:
    """exp(−(ω_cmd,z − ω_z)² / std²)."""
    err = (env.command[:, 2] - env.base_ang_vel[:, 2]).square()
    return torch.exp(-err / std**2)


def lin_vel_z_l2(env: Any) -> torch.Tensor:
    """v_z² of the base (bouncing)."""
    return env.base_lin_vel[:, 2].square()


def ang_vel_xy_l2(env: Any) -> torch.Tensor:
    """‖ω_xy‖², roll and pitch rates."""
    return env.base_ang_vel[:, :2].square().sum(-1)


def joint_torques_l2(env: Any) -> torch.Tensor:
    """‖τ‖² of the motors (last physics step)."""
    return env.torque.square().sum(-1)


def joint_acc_l2(env: Any) -> torch.Tensor:
    """‖(q̇ − q̇_prev) / dt‖², over one control period."""
    return ((env.joint_vel - env.last_joint_vel) / env.step_dt).square().sum(-1)


def action_rate_l2(env: Any) -> torch.Tensor:
    """‖a − a_prev‖²."""
    return (env.action - env.prev_action).square().sum(-1)


def feet_air_time(env: Any, threshold: float) -> torch.Tensor:
    """Σ_feet (t_air − threshold) at each touch-down; 0 when the command is to stand (legged_gym). Unlike legged_gym,
    which gates on the planar command only, a turn-in-place command counts as moving: without this reward for steps,
    a policy trained 30 min stood and twisted instead of turning (ω error ≈ ω command at 0.5 and 1 rad/s)."""
    reward = torch.where(env.first_contact, env.last_air_time - threshold, 0.0).sum(-1)
    return torch.where(env.command.norm(dim=-1) > 0.1, reward, 0.0)


def undesired_contacts(env: Any, threshold: float) -> torch.Tensor:
    """Number of penalised bodies (thighs, calves) touching the ground with more than ``threshold`` N."""
    return (env.penalized_force > threshold).sum(-1).to(env.base_lin_vel.dtype)


def flat_orientation_l2(env: Any) -> torch.Tensor:
    """‖g_xy‖² of the gravity direction in the base frame: 0 when level."""
    return env.projected_gravity[:, :2].square().sum(-1)


def joint_pos_limits(env: Any) -> torch.Tensor:
    """Σ distance (rad) beyond the soft joint limits."""
    low, high = env.soft_joint_limits
    return ((low - env.joint_pos).clamp(min=0) + (env.joint_pos - high).clamp(min=0)).sum(-1)


def stand_still(env: Any) -> torch.Tensor:
    """Σ|q − q0| when the command is to stand."""
    standing = env.command.norm(dim=-1) < 0.1
    return torch.where(standing, (env.joint_pos - env.default_joint_pos).abs().sum(-1), 0.0)


# --- terminations ----------------------------------------------------------------------------------------------------


def base_contact(env: Any, threshold: float = 1.0) -> torch.Tensor:
    """A termination body (trunk) touches the ground with more than ``threshold`` N."""
    return (env.termination_force > threshold).any(-1)


def bad_orientation(env: Any, limit_angle: float = 1.2) -> torch.Tensor:
    """The base tilted more than ``limit_angle`` rad from upright."""
    return env.projected_gravity[:, 2] > -math.cos(limit_angle)
