"""Learning algorithms."""

from rsl_rl.algorithms.ppo import PPO, PPOConfig

__all__ = ["PPO", "PPOConfig"]
