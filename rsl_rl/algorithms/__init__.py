"""Learning algorithms."""

from rsl_rl.algorithms.distillation import Distillation, DistillationConfig
from rsl_rl.algorithms.ppo import PPO, PPOConfig
from rsl_rl.algorithms.recurrent_ppo import RecurrentPPO
from rsl_rl.algorithms.sac import SAC, SACConfig

__all__ = ["PPO", "Distillation", "DistillationConfig", "PPOConfig", "RecurrentPPO", "SAC", "SACConfig"]
