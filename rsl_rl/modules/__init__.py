"""Building blocks of the models (rsl-rl-lib 5.x's ``rsl_rl.modules``): MLP, recurrent layer, action distributions,
observation normalisers, and this library's model configs."""

from rsl_rl.modules.cnn import CNN, CNNConfig
from rsl_rl.modules.distribution import (
    BetaDistribution,
    Distribution,
    DistributionConfig,
    GaussianDistribution,
    HeteroscedasticGaussianDistribution,
)
from rsl_rl.modules.mlp import MLP, ActorConfig, ModelConfig
from rsl_rl.modules.normalization import EmpiricalDiscountedVariationNormalization, EmpiricalNormalization
from rsl_rl.modules.rnn import RNN, HiddenState, RNNConfig

__all__ = [
    "CNN",
    "MLP",
    "RNN",
    "ActorConfig",
    "BetaDistribution",
    "CNNConfig",
    "Distribution",
    "DistributionConfig",
    "EmpiricalDiscountedVariationNormalization",
    "EmpiricalNormalization",
    "GaussianDistribution",
    "HeteroscedasticGaussianDistribution",
    "HiddenState",
    "ModelConfig",
    "RNNConfig",
]
