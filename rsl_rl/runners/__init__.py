"""Training loops."""

from rsl_rl.runners.config import RunnerConfig, TrainConfig, train_config_from_dict
from rsl_rl.runners.distillation import DistillationRunner, DistillationTrainConfig
from rsl_rl.runners.on_policy import OnPolicyRunner

__all__ = [
    "DistillationRunner",
    "DistillationTrainConfig",
    "OnPolicyRunner",
    "RunnerConfig",
    "TrainConfig",
    "train_config_from_dict",
]
