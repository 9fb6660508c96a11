"""Adapters between our batched :class:`~rsl_rl.env.Env` contract and other environment APIs.

* :class:`GymnasiumEnv` (``gymnasium_env.py``): gymnasium env ids, envs, env factories and vector envs as our Env.
* :class:`GymnasiumVectorEnv` (``gymnasium_vector.py``): any of our Envs as a gymnasium ``VectorEnv``.
* :class:`IsaacGymEnvAdapter` (``isaacgym.py``): Isaac Gym ``VecTask`` (IsaacGymEnvs) and legged_gym tasks as our Env.

Names are imported on first use: gymnasium is an optional dependency, and importing this package (for another
adapter) must not require it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static types of the lazily imported names
    from tasks.adapters.gymnasium_env import GymnasiumEnv
    from tasks.adapters.gymnasium_vector import GymnasiumVectorEnv
    from tasks.adapters.isaacgym import IsaacGymEnvAdapter

_LAZY = {
    "GymnasiumEnv": "tasks.adapters.gymnasium_env",
    "GymnasiumVectorEnv": "tasks.adapters.gymnasium_vector",
    "IsaacGymEnvAdapter": "tasks.adapters.isaacgym",
}

__all__ = ["GymnasiumEnv", "GymnasiumVectorEnv", "IsaacGymEnvAdapter"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tasks.adapters' has no attribute {name!r}")
