"""Learning algorithms."""

from rsl_rl.algorithms.distillation import Distillation, DistillationConfig
from rsl_rl.algorithms.ppo import PPO, PPOConfig
from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO

__all__ = ["PPO", "Distillation", "DistillationConfig", "PPOConfig", "RecurrentPPO"]
