"""Optional additions to the algorithms under rsl-rl-lib 5.x's names: random network distillation (a curiosity bonus)
and symmetry (mirrored data and a mirror loss). They compose with an algorithm; they do not live inside it."""

from rsl_rl.extensions.rnd import RandomNetworkDistillation, resolve_rnd_config
from rsl_rl.extensions.symmetry import GroupLayout, Symmetry, resolve_symmetry_config

__all__ = [
    "GroupLayout",
    "RandomNetworkDistillation",
    "Symmetry",
    "resolve_rnd_config",
    "resolve_symmetry_config",
]
