"""Neural models (rsl-rl-lib 5.x's ``rsl_rl.models``): an observation normaliser, a network and, for an actor, the
action distribution."""

from rsl_rl.models.cnn_model import CNNModel
from rsl_rl.models.mlp_model import MLPModel
from rsl_rl.models.rnn_model import RNNModel, build_model

__all__ = ["CNNModel", "MLPModel", "RNNModel", "build_model"]
