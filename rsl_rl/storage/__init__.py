"""Rollout storage."""

from rsl_rl.storage.replay import ReplayStorage
from rsl_rl.storage.rollout_storage import RecurrentRolloutStorage, RolloutStorage

__all__ = ["RecurrentRolloutStorage", "ReplayStorage", "RolloutStorage"]
