"""Environments: this library's batched contract (:class:`Env`) and rsl-rl-lib 5.x's :class:`VecEnv`."""

from rsl_rl.env.batched import Env, RslRlEnvAdapter, StepResult, as_env, split_dones
from rsl_rl.env.vec_env import VecEnv

__all__ = ["Env", "RslRlEnvAdapter", "StepResult", "VecEnv", "as_env", "split_dones"]
