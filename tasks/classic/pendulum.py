"""Pendulum swing-up with exactly gymnasium ``Pendulum-v1``'s dynamics, reward and 200-step truncation.

State ``(θ, θ̇)`` with θ = 0 upright; observation ``(cos θ, sin θ, θ̇)``; action = torque, clipped to ±2.
Per step (dt = 0.05, g = 10, m = l = 1), from the state the torque acts in:

    cost    = norm(θ)² + 0.1 θ̇² + 0.001 u²        (norm wraps θ to [−π, π))
    θ̇'      = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, −8, 8)
    θ'      = θ + θ̇' dt

Episodes never terminate; they are truncated after 200 steps. Initial θ ~ U(−π, π), θ̇ ~ U(−1, 1).
``extras["success"]``: the step reached |θ| < 0.2 rad with |θ̇| < 1 rad/s (balanced upright; gymnasium has no such
signal). :func:`swing_up_controller` is the task's scripted controller (``rsl-rl record-demos --source scripted``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from tasks.classic.torch_task import TorchTask
from tasks.task import RewardTerm


def angle_cost(env: PendulumEnv) -> torch.Tensor:
    """Squared angle from upright, wrapped to [−π, π)."""
    theta = env.prev_state[:, 0]
    return torch.remainder(theta + math.pi, 2.0 * math.pi).sub(math.pi).square()


def velocity_cost(env: PendulumEnv) -> torch.Tensor:
    """Squared angular velocity."""
    return env.prev_state[:, 1].square()


def torque_cost(env: PendulumEnv) -> torch.Tensor:
    """Squared (clipped) torque, computed in float32 as gymnasium does (its torque is a float32 scalar)."""
    return env.action[:, 0].float().square().to(env.dtype)


def balanced(state: torch.Tensor, angle: float = 0.2, velocity: float = 1.0) -> torch.Tensor:
    """``bool[N]``: |θ| < angle (wrapped) and |θ̇| < velocity (False for a non-finite state)."""
    return (torch.cos(state[:, 0]) > math.cos(angle)) & (state[:, 1].abs() < velocity)


def pendulum_rewards() -> dict[str, RewardTerm]:
    """gymnasium's reward −(norm(θ)² + 0.1 θ̇² + 0.001 u²) as three weighted terms."""
    return {
        "angle": RewardTerm(angle_cost, weight=-1.0),
        "velocity": RewardTerm(velocity_cost, weight=-0.1),
        "torque": RewardTerm(torque_cost, weight=-0.001),
    }


@dataclass
class PendulumCfg:
    """Pendulum-v1 parameters."""

    num_envs: int = 64
    """Parallel pendulums."""
    max_episode_steps: int = 200
    """Truncation length (gymnasium: 200)."""
    max_speed: float = 8.0
    """|θ̇| bound."""
    max_torque: float = 2.0
    """|u| bound."""
    dt: float = 0.05
    """Integration step (s)."""
    g: float = 10.0
    """Gravity."""
    m: float = 1.0
    """Mass."""
    length: float = 1.0
    """Rod length."""
    init_angle: float = math.pi
    """Initial θ ~ U(−init_angle, init_angle)."""
    init_velocity: float = 1.0
    """Initial θ̇ ~ U(−init_velocity, init_velocity)."""
    dtype: str = "float32"
    """State precision: float32, or float64 for bit-level parity with gymnasium."""
    rewards: dict[str, RewardTerm] = field(default_factory=pendulum_rewards)
    """Reward terms."""


class PendulumEnv(TorchTask):
    """Batched Pendulum-v1."""

    state_dim = 2
    num_actions = 1

    def __init__(self, cfg: PendulumCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.action_limit = cfg.max_torque
        self.step_dt = cfg.dt
        super().__init__(cfg, device, seed)

    def init_buffers(self) -> None:
        super().init_buffers()
        # Built once: a tensor made from Python numbers inside reset would wait for the GPU at every step.
        self.init_high = torch.tensor(
            [self.cfg.init_angle, self.cfg.init_velocity], dtype=self.dtype, device=self.device
        )

    def physics_step(self) -> torch.Tensor:
        invalid = super().physics_step()
        self.success = balanced(self.state)  # the state this step reached, before an automatic reset
        return invalid

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = super().step(actions)
        extras["success"] = self.success
        return obs, reward, terminated, truncated, extras

    def sample_initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, -self.init_high, self.init_high, 2)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        theta, theta_dot = state[:, 0], state[:, 1]
        # gymnasium multiplies the float32 torque in float32 (NumPy 2 promotion rules); doing the same keeps a
        # float64 state bit-compatible with it over whole episodes.
        torque_accel = (3.0 / (c.m * c.length**2) * action[:, 0].float()).to(self.dtype)
        accel = 3.0 * c.g / (2.0 * c.length) * torch.sin(theta) + torque_accel
        new_theta_dot = (theta_dot + accel * c.dt).clamp(-c.max_speed, c.max_speed)
        return torch.stack([theta + new_theta_dot * c.dt, new_theta_dot], dim=-1)

    def observe(self) -> TensorDict:
        theta, theta_dot = self.state[:, 0], self.state[:, 1]
        obs = torch.stack([torch.cos(theta), torch.sin(theta), theta_dot], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def terminated(self) -> torch.Tensor:
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def deployment_spec(self) -> dict[str, Any]:
        limit = self.cfg.max_torque
        return {
            "observation": {"policy": [("cos_theta", 1), ("sin_theta", 1), ("theta_dot", 1)]},
            "action": {"names": ["torque"], "default": [0.0], "scale": [1.0], "low": [-limit], "high": [limit]},
        }


def swing_up_controller(env: Env) -> Callable[[TensorDict], torch.Tensor]:
    """A scripted controller of the pendulum acting on the ``policy`` group ``(cos θ, sin θ, θ̇)``: energy pumping
    toward the upright energy, then a PD balance near the top.

    With ``I = m l²/3`` the energy ``E = I θ̇²/2 + m g l cos θ / 2`` changes as ``dE/dt = θ̇ u``, so
    ``u = k (E* − E) θ̇`` (clipped) swings it toward ``E* = m g l / 2`` (upright at rest). Near the top the
    linearisation ``θ̈ = 3g/(2l) θ + 3/(m l²) u`` is stabilised by ``u = −(kp θ + kd θ̇)`` with ``3 kp / (m l²)``
    above ``3g/(2l)``.
    """
    c = env.cfg
    inertia = c.m * c.length**2 / 3.0
    upright = c.m * c.g * c.length / 2.0
    # Gains relative to gravity's stiffness m g l / 2: kp twice it, kd ~0.8 of critical damping.
    kp = 2.0 * upright
    kd = 0.4 * upright

    def act(obs: TensorDict) -> torch.Tensor:
        cos, sin, theta_dot = obs["policy"].unbind(-1)
        theta = torch.atan2(sin, cos)
        energy = 0.5 * inertia * theta_dot.square() + upright * cos
        pump = 10.0 * (upright - energy) * theta_dot
        balance = -(kp * theta + kd * theta_dot)
        near_top = (cos > math.cos(0.5)) & (theta_dot.abs() < 2.0)
        torque = torch.where(near_top, balance, pump)
        return torque.clamp(-c.max_torque, c.max_torque).unsqueeze(-1)

    return act
