"""Training loops."""

from rsl_rl.runners.config import TrainConfig, train_config_from_dict
from rsl_rl.runners.on_policy import OnPolicyRunner

__all__ = ["OnPolicyRunner", "TrainConfig", "train_config_from_dict"]
