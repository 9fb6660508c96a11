"""Test support: a small rsl_rl 5.x style environment and an rsl_rl train_cfg dict."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import VecEnv


class PointMassVecEnv(VecEnv):
    """Point masses pushed towards the origin; rsl_rl's interface: dones + extras["time_outs"], no final obs.

    ``policy`` group: position and velocity; ``critic`` group adds the (privileged) mass. Leaving |x| > 4 terminates.
    """

    def __init__(self, num_envs: int = 16, max_episode_length: int = 20, device: str = "cpu", seed: int = 0) -> None:
        self.num_envs = num_envs
        self.num_actions = 2
        self.max_episode_length = max_episode_length
        self.device = device
        self.cfg = {"name": "point_mass"}
        self.generator = torch.Generator().manual_seed(seed)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.pos = torch.randn(num_envs, 2, generator=self.generator)
        self.vel = torch.zeros(num_envs, 2)
        self.mass = 1.0 + torch.rand(num_envs, 1, generator=self.generator)

    def get_observations(self) -> TensorDict:
        policy = torch.cat([self.pos, self.vel], dim=-1)
        critic = torch.cat([policy, self.mass, self.episode_length_buf.unsqueeze(-1).float() / 20], dim=-1)
        return TensorDict({"policy": policy, "critic": critic}, batch_size=[self.num_envs])

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict[str, Any]]:
        self.vel = self.vel + 0.1 * actions.clamp(-1, 1) / self.mass
        self.pos = self.pos + 0.1 * self.vel
        self.episode_length_buf += 1
        reward = -self.pos.norm(dim=-1)
        terminated = self.pos.abs().max(dim=-1).values > 4.0
        time_outs = self.episode_length_buf >= self.max_episode_length
        dones = terminated | time_outs
        reset = dones.unsqueeze(-1)
        self.pos = torch.where(reset, torch.randn(self.num_envs, 2, generator=self.generator), self.pos)
        self.vel = torch.where(reset, 0.0, self.vel)
        self.episode_length_buf = torch.where(dones, 0, self.episode_length_buf)
        extras = {"time_outs": time_outs, "log": {"/custom/distance": self.pos.norm(dim=-1).mean(), "speed": 1.0}}
        return self.get_observations(), reward, dones, extras


def rsl_rl_train_cfg(**runner: Any) -> dict[str, Any]:
    """An rsl-rl-lib 5.x train_cfg dict, as Isaac Lab and mjlab scripts build it."""
    cfg: dict[str, Any] = {
        "class_name": "OnPolicyRunner",
        "num_steps_per_env": 8,
        "max_iterations": 3,
        "save_interval": 2,
        "seed": 42,
        "experiment_name": "point_mass",
        "run_name": "",
        "resume": False,
        "logger": "tensorboard",
        "obs_groups": {"actor": ["policy"], "critic": ["policy", "critic"]},
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": 2,
            "num_mini_batches": 2,
            "clip_param": 0.2,
            "gamma": 0.99,
            "lam": 0.95,
            "value_loss_coef": 1.0,
            "entropy_coef": 0.01,
            "learning_rate": 1e-3,
            "max_grad_norm": 1.0,
            "use_clipped_value_loss": True,
            "schedule": "adaptive",
            "desired_kl": 0.01,
            "normalize_advantage_per_mini_batch": False,
            "rnd_cfg": None,
            "symmetry_cfg": None,
        },
        "actor": {
            "class_name": "rsl_rl.models.MLPModel",
            "hidden_dims": [32, 32],
            "activation": "elu",
            "obs_normalization": True,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "scalar"},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu", "obs_normalization": True},
    }
    cfg.update(runner)
    return cfg
