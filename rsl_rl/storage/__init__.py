"""Rollout storage."""

from rsl_rl.storage.rollout_storage import RecurrentRolloutStorage, RolloutStorage

__all__ = ["RecurrentRolloutStorage", "RolloutStorage"]
