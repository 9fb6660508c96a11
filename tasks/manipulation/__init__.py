"""Manipulation tasks (SERL-style peg insertion and pushing, issue 12) on a 7-DoF torque-controlled arm: the model
(``arm.xml``, ``gripper.xml``, loaded by ``arm.py``) driven by the Cartesian impedance controller of
``controllers/impedance.py`` at physics rate under a 10 Hz policy (``arm_task.py``). Importing this package registers
``arm-reach``, ``arm-push`` and ``arm-peg``, each with a scripted controller (``scripted.py``)."""

from __future__ import annotations

from rsl_rl.algorithms.ppo import PPOConfig
from rsl_rl.algorithms.sac import SACConfig
from rsl_rl.modules.distribution import DistributionConfig
from rsl_rl.modules.mlp import ActorConfig, ModelConfig
from rsl_rl.modules.sac_models import SACActorConfig, SACCriticConfig
from rsl_rl.registry import TaskSpec, register
from rsl_rl.runners.config import SACTrainConfig, TrainConfig
from tasks.manipulation.peg import PegCfg, PegEnv
from tasks.manipulation.push import PushCfg, PushEnv
from tasks.manipulation.reach import ReachCfg, ReachEnv
from tasks.manipulation.scripted import peg_controller, push_controller, reach_controller


def arm_train_cfg() -> TrainConfig:
    """PPO: 32 envs × 50 steps (5 s of 10 Hz control) per iteration, γ 0.97 (SERL's horizon of ~30 steps)."""
    return TrainConfig(
        num_steps_per_env=50,
        max_iterations=300,
        save_interval=50,
        eval_interval=25,
        eval_episodes=8,
        algorithm=PPOConfig(
            num_learning_epochs=5,
            num_mini_batches=4,
            learning_rate=3e-4,
            gamma=0.97,
            lam=0.95,
            entropy_coef=0.0,
            use_clipped_value_loss=False,
        ),
        actor=ActorConfig(
            hidden_dims=(256, 256),
            activation="elu",
            obs_normalization=True,
            distribution_cfg=DistributionConfig(init_std=0.5),
        ),
        critic=ModelConfig(hidden_dims=(256, 256), activation="elu", obs_normalization=True),
    )


def arm_sac_cfg() -> SACTrainConfig:
    """SERL's state-based SAC scaled to 32 envs (reference/serl.md §3): batch 256, γ 0.97, τ 0.005, lr 3e-4, α₀ 0.01,
    two LayerNorm critics of 256×2 (HIL-SERL's ensemble), 4 critic updates and 1 actor update per env step
    (critic:actor 4), no entropy backup, 1-step returns (SERL's), 1000 random steps (~30 per env)."""
    return SACTrainConfig(
        num_steps_per_env=1,
        max_iterations=20_000,
        save_interval=1000,
        eval_interval=200,
        eval_episodes=8,
        algorithm=SACConfig(
            gamma=0.97,
            n_step=1,
            tau=0.005,
            batch_size=256,
            num_updates=4,
            policy_delay=4,
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            alpha_learning_rate=3e-4,
            init_alpha=0.01,
            target_entropy=-3.0,  # −|A|/2 (SERL)
            entropy_backup=False,
            replay_capacity=6250,  # 200k transitions over 32 envs
            random_steps=32,
            learning_starts=32,
        ),
        actor=SACActorConfig(hidden_dims=(256, 256), activation="tanh", obs_normalization=True),
        critic=SACCriticConfig(hidden_dims=(256, 256), activation="tanh", obs_normalization=True, layer_norm=True),
    )


TASKS = (
    ("arm-reach", ReachEnv, ReachCfg, reach_controller, "7-DoF arm: bring the tool tip to a random point (dense)"),
    ("arm-push", PushEnv, PushCfg, push_controller, "7-DoF arm: push a block to a goal region (sparse, SERL-style)"),
    ("arm-peg", PegEnv, PegCfg, peg_controller, "7-DoF arm: peg insertion, 1 mm clearance (sparse, SERL's task)"),
)
for name, env_cls, cfg_cls, controller, description in TASKS:
    register(
        TaskSpec(
            name,
            env_cls,
            cfg_cls,
            arm_train_cfg,
            description,
            sac_train_cfg=arm_sac_cfg,
            scripted_policy=controller,
        )
    )
