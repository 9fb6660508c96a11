"""Networks: MLP actor/critic, Gaussian action head, observation normaliser."""

from rsl_rl.modules.distribution import DistributionConfig, GaussianDistribution
from rsl_rl.modules.mlp import MLP, ActorConfig, MLPModel, ModelConfig
from rsl_rl.modules.normalizer import EmpiricalNormalization
from rsl_rl.modules.rnn import RNNConfig, RNNModel, build_model

__all__ = [
    "MLP",
    "ActorConfig",
    "DistributionConfig",
    "EmpiricalNormalization",
    "GaussianDistribution",
    "MLPModel",
    "ModelConfig",
    "RNNConfig",
    "RNNModel",
    "build_model",
]
