"""Cart-pole with a continuous force: balance (start upright) and swing-up (start hanging down).

Dynamics are gymnasium's ``CartPole`` equations (Barto et al. 1983; g = 9.8, cart 1 kg, pole 0.1 kg, half-length
0.5 m, dt = 0.02 s) with the force ``F = force_mag · clip(a, −1, 1)`` instead of ±10 N, integrated with semi-implicit
Euler so that swing-ups stay stable:

    tmp = (F + m_p l θ̇² sin θ) / (m_c + m_p)
    θ̈   = (g sin θ − cos θ · tmp) / (l (4/3 − m_p cos² θ / (m_c + m_p)))
    ẍ   = tmp − m_p l θ̈ cos θ / (m_c + m_p)

θ = 0 is upright. Observation ``(x, ẋ, cos θ, sin θ, θ̇)``. In the balance task leaving the track (|x| > 2.4) or tilting
past 12° terminates the episode (gymnasium's rule); in the swing-up the track has end stops instead: the cart halts
at |x| = 2.4 (its velocity is zeroed), so the episode always runs its 500 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from tasks.classic.torch_task import TorchTask
from tasks.task import RewardTerm


def alive(env: CartPoleEnv) -> torch.Tensor:
    """1 every step (gymnasium CartPole's reward)."""
    return torch.ones(env.num_envs, dtype=env.dtype, device=env.device)


def upright(env: CartPoleEnv) -> torch.Tensor:
    """(1 + cos θ) / 2: 1 upright, 0 hanging down."""
    return 0.5 * (1.0 + torch.cos(env.state[:, 2]))


def cart_position(env: CartPoleEnv) -> torch.Tensor:
    """Squared cart position (m²)."""
    return env.state[:, 0].square()


def pole_velocity(env: CartPoleEnv) -> torch.Tensor:
    """Squared pole angular velocity."""
    return env.state[:, 3].square()


def action_magnitude(env: CartPoleEnv) -> torch.Tensor:
    """Squared action."""
    return env.action[:, 0].square()


def balance_rewards() -> dict[str, RewardTerm]:
    return {"alive": RewardTerm(alive, weight=1.0)}


def swingup_rewards() -> dict[str, RewardTerm]:
    return {
        "upright": RewardTerm(upright, weight=1.0),
        "cart_position": RewardTerm(cart_position, weight=-0.05),
        "pole_velocity": RewardTerm(pole_velocity, weight=-0.005),
        "action": RewardTerm(action_magnitude, weight=-0.01),
    }


@dataclass
class CartPoleCfg:
    """Cart-pole parameters; the defaults are the balance task."""

    num_envs: int = 256
    """Parallel cart-poles."""
    max_episode_steps: int = 500
    """Truncation length (10 s)."""
    gravity: float = 9.8
    """Gravity (m/s²)."""
    cart_mass: float = 1.0
    """Cart mass (kg)."""
    pole_mass: float = 0.1
    """Pole mass (kg)."""
    half_length: float = 0.5
    """Half the pole's length (m)."""
    force_mag: float = 10.0
    """Force at |action| = 1 (N)."""
    dt: float = 0.02
    """Integration step (s)."""
    x_limit: float = 2.4
    """Track half-length (m)."""
    end_stops: bool = False
    """True: the cart halts at ±x_limit; False: leaving the track terminates the episode."""
    theta_limit: float = 12.0 * math.pi / 180.0
    """|θ| beyond this terminates; 0 disables (swing-up)."""
    init_angle: float = 0.0
    """Mean initial θ (π: hanging down)."""
    init_noise: float = 0.05
    """Initial state noise: every state entry ~ U(−init_noise, init_noise) around its mean."""
    dtype: str = "float32"
    """State precision."""
    rewards: dict[str, RewardTerm] = field(default_factory=balance_rewards)
    """Reward terms."""


def swingup_cfg() -> CartPoleCfg:
    """Swing-up: start hanging down, no angle limit, shaped reward."""
    return CartPoleCfg(theta_limit=0.0, init_angle=math.pi, init_noise=0.1, end_stops=True, rewards=swingup_rewards())


class CartPoleEnv(TorchTask):
    """Batched cart-pole; state ``(x, ẋ, θ, θ̇)``."""

    state_dim = 4
    num_actions = 1
    action_limit = 1.0

    def __init__(self, cfg: CartPoleCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.step_dt = cfg.dt
        super().__init__(cfg, device, seed)

    def init_buffers(self) -> None:
        super().init_buffers()
        # Built once: a tensor made from Python numbers inside reset would wait for the GPU at every step.
        self.init_mean = torch.tensor([0.0, 0.0, self.cfg.init_angle, 0.0], dtype=self.dtype, device=self.device)

    def sample_initial_state(self, n: int) -> torch.Tensor:
        return self.init_mean + self.uniform(n, -self.cfg.init_noise, self.cfg.init_noise, 4)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = c.force_mag * action[:, 0]
        total_mass = c.cart_mass + c.pole_mass
        pole_ml = c.pole_mass * c.half_length
        sin, cos = torch.sin(theta), torch.cos(theta)
        tmp = (force + pole_ml * theta_dot.square() * sin) / total_mass
        theta_acc = (c.gravity * sin - cos * tmp) / (
            c.half_length * (4.0 / 3.0 - c.pole_mass * cos.square() / total_mass)
        )
        x_acc = tmp - pole_ml * theta_acc * cos / total_mass
        x_dot = x_dot + c.dt * x_acc
        theta_dot = theta_dot + c.dt * theta_acc
        x = x + c.dt * x_dot
        if c.end_stops:
            # Inelastic end stop: the cart stays at the limit and loses its velocity into the stop.
            at_stop = x.abs() > c.x_limit
            x = x.clamp(-c.x_limit, c.x_limit)
            x_dot = torch.where(at_stop, 0.0, x_dot)
        return torch.stack([x, x_dot, theta + c.dt * theta_dot, theta_dot], dim=-1)

    def observe(self) -> TensorDict:
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        obs = torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], dim=-1).float()
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def deployment_spec(self) -> dict[str, Any]:
        terms = [("x", 1), ("x_dot", 1), ("cos_theta", 1), ("sin_theta", 1), ("theta_dot", 1)]
        action = {"names": ["force"], "default": [0.0], "scale": [self.cfg.force_mag], "low": [-1.0], "high": [1.0]}
        return {"observation": {"policy": terms}, "action": action}

    def terminated(self) -> torch.Tensor:
        if self.cfg.end_stops:
            out = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        else:
            out = self.state[:, 0].abs() > self.cfg.x_limit
        if self.cfg.theta_limit > 0:
            out |= torch.remainder(self.state[:, 2] + math.pi, 2 * math.pi).sub(math.pi).abs() > self.cfg.theta_limit
        return out
