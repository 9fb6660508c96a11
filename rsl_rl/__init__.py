"""rsl_rl (rsl-rl-forge): fast, compact reinforcement learning for robots on batched torch environments."""

__version__ = "0.1.0"
