"""Pure-torch classic-control tasks; importing this package registers them."""

from __future__ import annotations

from rsl_rl.algorithms.ppo import PPOConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.registry import TaskSpec, register
from rsl_rl.runners.config import TrainConfig
from tasks.classic.cartpole import CartPoleCfg, CartPoleEnv, swingup_cfg
from tasks.classic.pendulum import PendulumCfg, PendulumEnv


def pendulum_train_cfg() -> TrainConfig:
    """Small networks and few envs: on a CPU this solves Pendulum (≥ −200) in seconds (bench/RESULTS.md)."""
    return TrainConfig(
        num_steps_per_env=32,
        max_iterations=150,
        save_interval=50,
        eval_interval=5,
        eval_episodes=16,
        stop_at_return=-200.0,
        algorithm=PPOConfig(
            num_learning_epochs=5,
            num_mini_batches=4,
            gamma=0.95,
            lam=0.95,
            learning_rate=1e-3,
            entropy_coef=0.0,
            # Pendulum returns reach −1600: clipping value updates to ±0.2 per step keeps the critic far behind.
            use_clipped_value_loss=False,
        ),
        actor=ActorConfig(hidden_dims=(64, 64), activation="tanh", distribution_cfg=DistributionConfig(init_std=1.0)),
        critic=ModelConfig(hidden_dims=(64, 64), activation="tanh"),
    )


def cartpole_train_cfg() -> TrainConfig:
    return TrainConfig(
        num_steps_per_env=32,
        max_iterations=100,
        eval_interval=10,
        eval_episodes=16,
        algorithm=PPOConfig(gamma=0.99, learning_rate=1e-3, entropy_coef=0.0),
        actor=ActorConfig(hidden_dims=(64, 64), activation="tanh"),
        critic=ModelConfig(hidden_dims=(64, 64), activation="tanh"),
    )


register(
    TaskSpec(
        "pendulum",
        PendulumEnv,
        PendulumCfg,
        pendulum_train_cfg,
        "Pendulum-v1 swing-up (gymnasium dynamics and reward), pure torch",
    )
)
register(
    TaskSpec(
        "cartpole-balance",
        CartPoleEnv,
        CartPoleCfg,
        cartpole_train_cfg,
        "cart-pole balance from upright, continuous force, pure torch",
    )
)
register(
    TaskSpec(
        "cartpole-swingup",
        CartPoleEnv,
        swingup_cfg,
        cartpole_train_cfg,
        "cart-pole swing-up from hanging down, continuous force, pure torch",
    )
)
