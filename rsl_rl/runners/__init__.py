"""Training loops."""

from __future__ import annotations

import os
from typing import Any

import torch

from rsl_rl.runners.config import RunnerConfig, SACTrainConfig, TrainConfig, train_config_from_dict
from rsl_rl.runners.distillation_runner import DistillationRunner, DistillationTrainConfig
from rsl_rl.runners.off_policy import OffPolicyRunner
from rsl_rl.runners.on_policy_runner import OnPolicyRunner


def make_runner(
    env: Any,
    train_cfg: dict[str, Any] | RunnerConfig,
    log_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    **kwargs: Any,
) -> OnPolicyRunner:
    """The runner a training config asks for: :class:`OffPolicyRunner` for SAC, :class:`OnPolicyRunner` for PPO."""
    cfg = train_cfg if isinstance(train_cfg, RunnerConfig) else train_config_from_dict(train_cfg)
    runner_cls = OffPolicyRunner if isinstance(cfg, SACTrainConfig) else OnPolicyRunner
    return runner_cls(env, cfg, log_dir, device, **kwargs)  # pyright: ignore[reportArgumentType]


__all__ = [
    "DistillationRunner",
    "DistillationTrainConfig",
    "OffPolicyRunner",
    "OnPolicyRunner",
    "RunnerConfig",
    "SACTrainConfig",
    "TrainConfig",
    "make_runner",
    "train_config_from_dict",
]
