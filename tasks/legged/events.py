"""Domain randomisation and perturbations as config terms: ``event(env, mask, **params)``, applied to envs in ``mask``.

Each term runs at ``startup`` (once, all envs), at ``reset`` (envs starting an episode) or at ``interval`` (per env,
every U(interval_s) seconds). Physical parameters go through the simulator's per-world model fields
(``sim.set_params``), control parameters through the torch controllers, so both backends randomise the same way.
Ranges follow legged_gym / Isaac Lab / mjlab (``reference/legged.md`` §1.5, §2.4, §3.3). No host synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

MODES = ("startup", "reset", "interval")


@dataclass
class EventTerm:
    """One randomisation or perturbation term."""

    func: Any
    """``func(env, mask, **params)``."""
    mode: str = "reset"
    """``startup``, ``reset`` or ``interval``."""
    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``func`` (ranges)."""
    interval_s: tuple[float, float] = (10.0, 15.0)
    """``interval`` mode: seconds between two applications, drawn uniformly per env."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"event mode={self.mode!r}; allowed: {list(MODES)}")
        if not 0 < self.interval_s[0] <= self.interval_s[1]:
            raise ValueError(f"interval_s must satisfy 0 < low <= high, got {self.interval_s}")


def _uniform(env: Any, low: float, high: float, *shape: int) -> torch.Tensor:
    """U(low, high) ``[N, *shape]`` from the task's generator (``env.rand``)."""
    return low + (high - low) * env.rand(*shape)


def foot_friction(env: Any, mask: torch.Tensor, friction: tuple[float, float] = (0.5, 1.25)) -> None:
    """Sliding friction of all feet, one value per env (legged_gym: U[0.5, 1.25])."""
    values = env.sim.params["geom_friction"].clone()
    values[:, env.foot_geom_ids, 0] = _uniform(env, *friction, 1).to(values.dtype)
    env.sim.set_params("geom_friction", values, mask)


def base_mass(env: Any, mask: torch.Tensor, added: tuple[float, float] = (-1.0, 2.0)) -> None:
    """Payload added to the base (kg)."""
    values = env.nominal["body_mass"].clone()
    values[:, env.base_id] += _uniform(env, *added).to(values.dtype)
    env.sim.set_params("body_mass", values, mask)


def base_com(env: Any, mask: torch.Tensor, offset: tuple[float, float, float] = (0.05, 0.05, 0.01)) -> None:
    """Shift of the base's centre of mass, U(±offset) per axis (m) (Isaac Lab: ±0.05, ±0.05, ±0.01)."""
    values = env.nominal["body_ipos"].clone()
    u = 2 * env.rand(3) - 1
    # Scaled axis by axis with Python floats: a tensor built from `offset` here would be a host-to-device copy.
    values[:, env.base_id] += torch.stack([u[:, i] * offset[i] for i in range(3)], -1).to(values.dtype)
    env.sim.set_params("body_ipos", values, mask)


def motor_strength(env: Any, mask: torch.Tensor, scale: tuple[float, float] = (0.9, 1.1)) -> None:
    """Torque multiplier per motor (the motor's limits still hold)."""
    strength = _uniform(env, *scale, env.num_actions)
    env.motor.strength.copy_(torch.where(mask.unsqueeze(-1), strength.to(env.motor.strength.dtype), env.motor.strength))


def pd_gains(
    env: Any, mask: torch.Tensor, kp_scale: tuple[float, float] = (0.9, 1.1), kd_scale: tuple[float, float] = (0.9, 1.1)
) -> None:
    """Kp and Kd scaled per env and joint."""
    env.pd.set_gains(_uniform(env, *kp_scale, env.num_actions), _uniform(env, *kd_scale, env.num_actions), mask)


def action_delay(env: Any, mask: torch.Tensor, steps: tuple[int, int] = (0, 1)) -> None:
    """Whole control periods between the policy's action and its effect, U{low … high} per env."""
    delay = torch.randint(steps[0], steps[1] + 1, (env.num_envs,), generator=env.generator, device=env.device)
    env.delay.set_delay(delay, mask)


def push(env: Any, mask: torch.Tensor, velocity: tuple[float, float] = (-0.5, 0.5)) -> None:
    """Shove the base: a horizontal velocity change U(velocity) per axis of the whole robot, delivered as a force on
    the base over the next control period (F = m·Δv / T, m = the world's own mass, payload included), so it is
    physical on both backends."""
    dv = _uniform(env, *velocity, 2)
    mass = env.sim.params["body_mass"].sum(-1, keepdim=True)
    force = mass.to(dv.dtype) * dv / env.step_dt
    env.push_force.copy_(torch.where(mask.unsqueeze(-1), force.to(env.push_force.dtype), env.push_force))
