"""Pure-torch classic-control tasks; importing this package registers them."""

from __future__ import annotations

from rsl_rl.algorithms.ppo import PPOConfig
from rsl_rl.algorithms.sac import SACConfig
from rsl_rl.modules.cnn import CNNConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.modules.sac_models import SACActorConfig, SACCriticConfig
from rsl_rl.registry import TaskSpec, register
from rsl_rl.runners.config import SACTrainConfig, TrainConfig
from tasks.classic.cartpole import CartPoleCfg, CartPoleEnv, swingup_cfg
from tasks.classic.pendulum import PendulumCfg, PendulumEnv, swing_up_controller
from tasks.classic.pixel_pendulum import PixelPendulumCfg, PixelPendulumEnv
from tasks.classic.point_maze import PointMazeCfg, PointMazeEnv, point_maze_guide


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


def pendulum_sac_cfg() -> SACTrainConfig:
    """SAC on 8 envs: one update of 256 per env step, 3-step returns, learning rates 3e-3, τ 0.02 (bench/RESULTS.md:
    wall-clock to ≥ −200 against Stable-Baselines3's SAC; 64 envs took ~1.6x longer)."""
    return SACTrainConfig(
        num_steps_per_env=1,
        max_iterations=5000,
        save_interval=1000,
        eval_interval=50,
        eval_episodes=16,
        stop_at_return=-200.0,
        algorithm=SACConfig(
            gamma=0.99,
            n_step=3,
            tau=0.02,
            batch_size=256,
            num_updates=1,
            policy_delay=1,
            actor_learning_rate=3e-3,
            critic_learning_rate=3e-3,
            alpha_learning_rate=3e-3,
            init_alpha=1.0,
            replay_capacity=10_000,
            random_steps=13,
            learning_starts=13,
        ),
        actor=SACActorConfig(hidden_dims=(64, 64), activation="relu", init_std=1.0),
        critic=SACCriticConfig(hidden_dims=(64, 64), activation="relu", layer_norm=False),
    )


def pixel_pendulum_train_cfg() -> TrainConfig:
    """The pendulum config with a CNN actor on the images and the MLP critic on the state (asymmetric): swing-up from
    pixels (≥ −200) in 35–45 iterations, 15–22 s on one CPU thread (seeds 0–2, tests/tasks/test_pixel_task.py).

    The encoder is sized for CPU: 16 channels of 6×6 stride-3 then 3×3 stride-2 convolutions (24 → 7 → 3, 144
    features) cost 61 ms per forward+backward of 2048 images; 16/32 channels of 4×4 and 3×3 stride-2 cost 205 ms.
    """
    cfg = pendulum_train_cfg()
    cfg.obs_groups = {"actor": ["policy"], "critic": ["critic"]}
    cfg.actor = CNNConfig(
        hidden_dims=(64, 64),
        activation="tanh",
        distribution_cfg=DistributionConfig(init_std=1.0),
        cnn_cfg={"output_channels": [16, 16], "kernel_size": [6, 3], "stride": [3, 2]},
    )
    return cfg


def pixel_pendulum_sac_cfg() -> SACTrainConfig:
    """The pendulum's SAC recipe with a CNN actor on the images and MLP critics on the state (asymmetric): the
    deterministic return went from −1127 to −197 after 1,500 iterations of 8 envs, 30 s on one CPU thread (seed 0,
    tests/rsl_rl/test_sac_images.py). Small networks (8/8 channels, 32 hidden units) keep the CNN cheap on a CPU; the
    replay holds 2,000 steps per env (an image row is 1,152 floats)."""
    cfg = pendulum_sac_cfg()
    cfg.obs_groups = {"actor": ["policy"], "critic": ["critic"]}
    cfg.algorithm.replay_capacity = 2000
    cfg.actor = SACActorConfig(
        hidden_dims=(32,),
        activation="relu",
        cnn_cfg={"output_channels": [8, 8], "kernel_size": [6, 3], "stride": [3, 2]},
    )
    cfg.critic = SACCriticConfig(hidden_dims=(32,), activation="relu")
    return cfg


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


def point_maze_train_cfg() -> TrainConfig:
    """PPO on 256 mazes with a generic recipe, not tuned to the task: it is the from-scratch baseline of the JSRL
    experiments (issue 15). The return is the success rate (reward 1 on success); evaluation runs 64 episodes.
    Random actions reach the goal in ~0.7 % of episodes, so from scratch updates see almost no reward: 172 iterations
    (2.8M steps, 170 s on one CPU thread, seed 0) ended at success 0.0."""
    return TrainConfig(
        num_steps_per_env=64,
        max_iterations=1000,
        save_interval=100,
        eval_interval=10,
        eval_episodes=64,
        stop_at_return=0.9,
        algorithm=PPOConfig(gamma=0.99, lam=0.95, learning_rate=1e-3, entropy_coef=0.005),
        actor=ActorConfig(hidden_dims=(128, 128), activation="elu", distribution_cfg=DistributionConfig(init_std=1.0)),
        critic=ModelConfig(hidden_dims=(128, 128), activation="elu"),
    )


def point_maze_sac_cfg() -> SACTrainConfig:
    """SAC on 32 mazes (``sac_env_cfg``): one update of 256 per env step, 3-step returns, 5,000 replay rows per env
    (160k transitions, ~300 episodes)."""
    return SACTrainConfig(
        num_steps_per_env=1,
        max_iterations=50_000,
        save_interval=5000,
        eval_interval=500,
        eval_episodes=64,
        stop_at_return=0.9,
        algorithm=SACConfig(
            gamma=0.99,
            n_step=3,
            tau=0.01,
            batch_size=256,
            num_updates=1,
            policy_delay=1,
            replay_capacity=5000,
            learning_starts=16,
        ),
        actor=SACActorConfig(hidden_dims=(128, 128), activation="relu", init_std=1.0),
        critic=SACCriticConfig(hidden_dims=(128, 128), activation="relu"),
    )


register(
    TaskSpec(
        "pendulum",
        PendulumEnv,
        PendulumCfg,
        pendulum_train_cfg,
        "Pendulum-v1 swing-up (gymnasium dynamics and reward), pure torch",
        sac_train_cfg=pendulum_sac_cfg,
        sac_env_cfg=lambda: PendulumCfg(num_envs=8),  # SAC: 8 envs solve it ~1.6x sooner than 64
        scripted_policy=swing_up_controller,
    )
)
register(
    TaskSpec(
        "pixel-pendulum",
        PixelPendulumEnv,
        PixelPendulumCfg,
        pixel_pendulum_train_cfg,
        "Pendulum-v1 swing-up seen through 2 stacked 24x24 rendered frames (CNN actor, state critic), pure torch",
        sac_train_cfg=pixel_pendulum_sac_cfg,
        sac_env_cfg=lambda: PixelPendulumCfg(num_envs=8),
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
register(
    TaskSpec(
        "point-maze",
        PointMazeEnv,
        PointMazeCfg,
        point_maze_train_cfg,
        "point mass in a U-maze, sparse reward 1 at the goal (hard exploration, JSRL); scripted guide ~70 % success",
        sac_train_cfg=point_maze_sac_cfg,
        sac_env_cfg=lambda: PointMazeCfg(num_envs=32),
        scripted_policy=point_maze_guide,
        jsrl_horizon=100,  # a successful guide episode takes ~96 steps (bench/RESULTS.md: 0.49 M steps vs 3.3 M at 500)
    )
)
