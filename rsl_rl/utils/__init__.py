"""Helpers under rsl-rl-lib 5.x's names and module paths (``rsl_rl.utils``).

The W&B and Neptune writers load on first use: they import ``torch.utils.tensorboard`` (~0.25 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rsl_rl.utils.log_writer import LogWriter
from rsl_rl.utils.utils import (
    check_nan,
    compile_model,
    get_param,
    reduce_gradients_in_buckets,
    resolve_callable,
    resolve_class,
    resolve_nn_activation,
    resolve_obs_groups,
    resolve_optimizer,
    split_and_pad_trajectories,
    unpad_trajectories,
)

if TYPE_CHECKING:
    from rsl_rl.utils.neptune_log_writer import NeptuneLogWriter
    from rsl_rl.utils.wandb_log_writer import WandbLogWriter

_LAZY = {"WandbLogWriter": "rsl_rl.utils.wandb_log_writer", "NeptuneLogWriter": "rsl_rl.utils.neptune_log_writer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rsl_rl.utils' has no attribute {name!r}")


__all__ = [
    "LogWriter",
    "NeptuneLogWriter",
    "WandbLogWriter",
    "check_nan",
    "compile_model",
    "get_param",
    "reduce_gradients_in_buckets",
    "resolve_callable",
    "resolve_class",
    "resolve_nn_activation",
    "resolve_obs_groups",
    "resolve_optimizer",
    "split_and_pad_trajectories",
    "unpad_trajectories",
]
