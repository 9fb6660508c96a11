"""Rollout storage."""

from rsl_rl.storage.rollout_storage import RolloutStorage

__all__ = ["RolloutStorage"]
