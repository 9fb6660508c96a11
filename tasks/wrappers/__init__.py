"""Wrappers that keep the batched env contract (:class:`rsl_rl.env.Env`) and change what an env reports."""

from tasks.wrappers.reward_classifier import RewardClassifierWrapper

__all__ = ["RewardClassifierWrapper"]
