"""Diagonal Gaussian policy head with a state-independent standard deviation that cannot become negative or NaN.

rsl_rl users hit ``normal expects all elements of std >= 0.0`` when a raw ``std`` parameter is pushed below zero
(rsl_rl #124, #33). Here the std is always produced by a map onto ``[std_min, std_max]`` with ``std_min > 0``:

* ``"log"``      std = exp(clamp(θ, log std_min, log std_max))                      (default)
* ``"softplus"`` std = softplus(clamp(θ, softplus⁻¹ std_min, softplus⁻¹ std_max))
* ``"scalar"``   std = clamp(θ, std_min, std_max)  (rsl_rl's parameterisation; the clamp keeps it positive)

Every map clamps θ between the images of the bounds, so ``init_std`` may equal a bound: θ starts finite, exactly on
the clamp's edge, where the gradient still flows (issue 10). The bounds are computed in θ's own float32 arithmetic,
from the same expression as θ's initial value: a bound computed in float64 can lie one ulp inside the initial θ and
freeze a std started there. (An offset map std_min + softplus(θ) reaches std_min only at θ = −∞, which froze the std
of ``init_std == std_min``.)

No ``torch.distributions`` object is built: log-probability, entropy and KL are the closed forms below, which are also
cheaper than the generic classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

STD_TYPES = ("log", "softplus", "scalar")
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class DistributionConfig:
    """Action distribution of the actor (rsl_rl's ``distribution_cfg``)."""

    class_name: str = "GaussianDistribution"
    """Only ``"GaussianDistribution"`` (state-independent std) is implemented."""
    init_std: float = 1.0
    """Initial standard deviation of every action dimension."""
    std_type: str = "log"
    """Parameterisation of the std: ``"log"``, ``"softplus"`` or ``"scalar"`` (all kept inside ``std_range``)."""
    std_range: tuple[float, float] = (1e-4, 1e4)
    """Bounds applied to the std; the lower bound must be > 0."""
    learn_std: bool = True
    """Learn the std (else it stays at ``init_std``)."""

    def __post_init__(self) -> None:
        if self.class_name.rsplit(".", 1)[-1].rsplit(":", 1)[-1] != "GaussianDistribution":
            raise ValueError(
                f"distribution_cfg.class_name={self.class_name!r} is not supported; allowed: 'GaussianDistribution'"
            )
        if self.std_type not in STD_TYPES:
            raise ValueError(f"distribution_cfg.std_type={self.std_type!r}; allowed: {list(STD_TYPES)}")
        lo, hi = (float(v) for v in self.std_range)
        if not 0.0 < lo < hi:
            raise ValueError(f"distribution_cfg.std_range={self.std_range}; need 0 < min < max")
        if not lo <= self.init_std <= hi:
            raise ValueError(f"distribution_cfg.init_std={self.init_std} lies outside std_range={self.std_range}")
        self.std_range = (lo, hi)


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """θ with softplus(θ) = y, for y > 0: y + log(−expm1(−y)) (log(expm1(y)) overflows for y > 88)."""
    return y + torch.log(-torch.expm1(-y))


_TO_PARAM = {"log": torch.log, "softplus": inverse_softplus, "scalar": torch.clone}
"""std → θ of every ``std_type``."""


class GaussianDistribution(nn.Module):
    """State-independent std for a diagonal Gaussian policy; the mean comes from the MLP."""

    def __init__(self, num_actions: int, cfg: DistributionConfig) -> None:
        super().__init__()
        self.std_type = cfg.std_type
        self.std_min, self.std_max = cfg.std_range
        to_param = _TO_PARAM[cfg.std_type]
        # θ's clamp bounds: the float32 images of the std bounds under the same map as θ's initial value (see above).
        low, high = to_param(torch.tensor([self.std_min, self.std_max])).tolist()
        self.param_range = (low, high)
        init = to_param(torch.full((num_actions,), float(cfg.init_std)))
        # Parameter names follow rsl_rl (std_param / log_std_param) so its checkpoints load.
        if cfg.std_type == "log":
            self.log_std_param = nn.Parameter(init, requires_grad=cfg.learn_std)
        elif cfg.std_type == "softplus":
            self.softplus_std_param = nn.Parameter(init, requires_grad=cfg.learn_std)
        else:
            self.std_param = nn.Parameter(init, requires_grad=cfg.learn_std)

    def std(self) -> torch.Tensor:
        """Standard deviation ``[A]``, in ``[std_min, std_max]`` up to rounding (NaN parameters give ``std_min``)."""
        low, high = self.param_range
        if self.std_type == "log":
            std = self.log_std_param.clamp(low, high).exp()
        elif self.std_type == "softplus":
            std = F.softplus(self.softplus_std_param.clamp(low, high))
        else:
            std = self.std_param.clamp(low, high)
        # A NaN parameter (from a NaN loss) must not turn into a NaN std: fall back to the lower bound.
        return torch.nan_to_num(std, nan=self.std_min)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, σ) summed over actions. ``actions, mean: [B, A]``, ``std: [A] or [B, A]`` → ``[B]``."""
    z = (actions - mean) / std
    return -(0.5 * z.square() + std.log() + _LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """H = Σ (½ log(2πe) + log σ). ``std: [..., A]`` → ``[...]``."""
    return (0.5 + _LOG_SQRT_2PI + std.log()).sum(-1)


def gaussian_kl(mean0: torch.Tensor, std0: torch.Tensor, mean1: torch.Tensor, std1: torch.Tensor) -> torch.Tensor:
    """KL(N0 ‖ N1) = Σ log(σ1/σ0) + (σ0² + (μ0 − μ1)²) / (2σ1²) − ½. Shapes ``[B, A]`` (std may broadcast) → ``[B]``."""
    return (torch.log(std1 / std0) + (std0.square() + (mean0 - mean1).square()) / (2.0 * std1.square()) - 0.5).sum(-1)
