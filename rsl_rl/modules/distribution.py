"""Action distributions: rsl-rl-lib's ``Distribution`` interface, a Gaussian whose std cannot become negative or NaN,
and rsl-rl-lib's state-dependent Gaussian and Beta heads.

The interface (rsl-rl-lib 5.x): a distribution sits after the MLP and reads its output, of shape ``input_dim``.
``update(mlp_output)`` sets the current distribution; ``mean``, ``std``, ``entropy``, ``params``, ``sample()`` and
``log_prob(outputs)`` then describe it; ``kl_divergence(old_params, new_params)`` compares two ``params`` tuples;
``deterministic_output(mlp_output)`` is the action a deployed policy takes.

This library's PPO takes a faster path through the Gaussian: the MLP output is the mean, :meth:`std_vector` the
state-independent std ``[A]``, and log-probability, entropy and KL are the closed forms of
:mod:`rsl_rl.modules.densities` (no ``torch.distributions`` object is built for a Gaussian).

rsl_rl users hit ``normal expects all elements of std >= 0.0`` when a raw ``std`` parameter is pushed below zero
(rsl_rl #124, #33). Here the std is always produced by a map onto ``[std_min, std_max]`` with ``std_min > 0``:

* ``"log"``      std = exp(clamp(θ, log std_min, log std_max))                      (our configs' default)
* ``"softplus"`` std = softplus(clamp(θ, softplus⁻¹ std_min, softplus⁻¹ std_max))
* ``"scalar"``   std = clamp(θ, std_min, std_max)  (rsl-rl-lib's default; the clamp keeps it positive)

Every map clamps θ between the images of the bounds, so ``init_std`` may equal a bound: θ starts finite, exactly on
the clamp's edge, where the gradient still flows (issue 10). The bounds are computed in θ's own float32 arithmetic,
from the same expression as θ's initial value: a bound computed in float64 can lie one ulp inside the initial θ and
freeze a std started there. (An offset map std_min + softplus(θ) reaches std_min only at θ = −∞, which froze the std
of ``init_std == std_min``.) As in rsl-rl-lib, ``std_min`` is at least 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rsl_rl.modules.densities import (
    beta_entropy,
    beta_kl,
    beta_log_prob,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
)
from rsl_rl.utils.class_names import short_class_name

STD_TYPES = ("log", "softplus", "scalar")
MIN_STD = 1e-6
"""The smallest std lower bound (rsl-rl-lib's): a smaller one is raised to it."""
_STATE_DEPENDENT = ("HeteroscedasticGaussianDistribution", "BetaDistribution")


@dataclass
class DistributionConfig:
    """Action distribution of the actor (rsl_rl's ``distribution_cfg``)."""

    class_name: str = "GaussianDistribution"
    """Only ``"GaussianDistribution"`` (state-independent std): PPO and distillation are written for it."""
    init_std: float = 1.0
    """Initial standard deviation of every action dimension."""
    std_type: str = "log"
    """Parameterisation of the std: ``"log"``, ``"softplus"`` or ``"scalar"`` (all kept inside ``std_range``)."""
    std_range: tuple[float, float] = (1e-4, 1e4)
    """Bounds applied to the std; the lower bound must be > 0."""
    learn_std: bool = True
    """Learn the std (else it stays at ``init_std``)."""

    def __post_init__(self) -> None:
        short = self.class_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        if short in _STATE_DEPENDENT:
            raise ValueError(
                f"distribution_cfg.class_name={self.class_name!r}: this library's PPO and distillation train a "
                f"Gaussian with a state-independent std only (allowed: ['GaussianDistribution']); {short} works in "
                "models built with rsl-rl-lib's constructor, MLPModel(obs, obs_groups, obs_set, output_dim, "
                "distribution_cfg={...}), for algorithms of your own"
            )
        short_class_name(self.class_name, ["GaussianDistribution"], "distribution_cfg.class_name")
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


class Distribution(nn.Module):
    """rsl-rl-lib's base class of the distribution heads (see the module docstring for the interface)."""

    def __init__(self, output_dim: int) -> None:
        super().__init__()
        self.output_dim = output_dim
        self._current: tuple[torch.Tensor, ...] | None = None
        """``params`` of the distribution set by the last :meth:`update`."""

    def update(self, mlp_output: torch.Tensor) -> None:
        """Set the current distribution from the MLP's output."""
        raise NotImplementedError

    def sample(self) -> torch.Tensor:
        """A sample of the current distribution (no gradient)."""
        raise NotImplementedError

    def deterministic_output(self, mlp_output: torch.Tensor) -> torch.Tensor:
        """The action a deterministic policy takes for this MLP output (the distribution's mean)."""
        raise NotImplementedError

    def as_deterministic_output_module(self) -> nn.Module:
        """:meth:`deterministic_output` as a TorchScript- and ONNX-exportable module."""
        raise NotImplementedError

    @property
    def input_dim(self) -> int | list[int]:
        """Shape of the MLP output this distribution reads."""
        raise NotImplementedError

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def std(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def entropy(self) -> torch.Tensor:
        """Entropy summed over the action axis: ``[B]``."""
        raise NotImplementedError

    @property
    def params(self) -> tuple[torch.Tensor, ...]:
        """The tensors that define the current distribution (stored per step by PPO for the KL)."""
        return self._params()

    def log_prob(self, outputs: torch.Tensor) -> torch.Tensor:
        """log p(outputs) summed over the action axis: ``[B]``."""
        raise NotImplementedError

    def kl_divergence(self, old_params: tuple[torch.Tensor, ...], new_params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """KL(old ‖ new) summed over the action axis: ``[B]``."""
        raise NotImplementedError

    def init_mlp_weights(self, mlp: nn.Module) -> None:
        """Initialise the MLP's output rows this distribution gives a meaning (nothing by default)."""

    def std_vector(self) -> torch.Tensor:
        """The state-independent std ``[A]`` this library's PPO trains with; only a Gaussian head has one."""
        raise RuntimeError(
            f"{type(self).__name__} has no state-independent std: this library's PPO and distillation need a "
            "GaussianDistribution (rsl-rl-lib's interface -- update(), sample(), log_prob() -- works with it)"
        )

    def _params(self) -> tuple[torch.Tensor, ...]:
        if self._current is None:
            raise RuntimeError(f"{type(self).__name__}: call update(mlp_output) first")
        return self._current

    def __getstate__(self) -> dict[str, Any]:
        # The last update() may hold an autograd graph, which deepcopy and pickle cannot copy; it is not state anyway.
        state = super().__getstate__()
        state["_current"] = None
        return state


def _std_bounds(std_range: tuple[float, float] | list[float], std_type: str) -> tuple[list[float], tuple[float, float]]:
    """``([std_min, std_max], θ's clamp bounds)``, with std_min raised to :data:`MIN_STD`."""
    if std_type not in STD_TYPES:
        raise ValueError(f"std_type={std_type!r}; allowed: {list(STD_TYPES)}")
    lo, hi = max(float(std_range[0]), MIN_STD), float(std_range[1])
    if not lo < hi:
        raise ValueError(f"std_range={tuple(std_range)}; need min < max")
    # θ's clamp bounds: the float32 images of the std bounds under the same map as θ's initial value (see above).
    low, high = _TO_PARAM[std_type](torch.tensor([lo, hi])).tolist()
    return [lo, hi], (low, high)


def _param_to_std(theta: torch.Tensor, std_type: str, param_range: tuple[float, float], std_min: float) -> torch.Tensor:
    """std = map(clamp(θ)) for ``std_type``; a NaN θ (from a NaN loss) gives ``std_min``, never a NaN std."""
    theta = theta.clamp(*param_range)
    std = theta.exp() if std_type == "log" else F.softplus(theta) if std_type == "softplus" else theta
    return torch.nan_to_num(std, nan=std_min)


class GaussianDistribution(Distribution):
    """Diagonal Gaussian: mean from the MLP, a learned state-independent std (``std_param``, ``log_std_param`` or
    ``softplus_std_param``: the first two are rsl-rl-lib's names, so its checkpoints load)."""

    def __init__(
        self,
        output_dim: int,
        init_std: float = 1.0,
        std_range: tuple[float, float] = (1e-6, 1e6),
        std_type: str = "scalar",
        learn_std: bool = True,
    ) -> None:
        super().__init__(output_dim)
        self.std_type = std_type
        self.std_range, self.param_range = _std_bounds(std_range, std_type)
        self.log_std_range = [math.log(v) for v in self.std_range]
        if not self.std_range[0] <= init_std <= self.std_range[1]:
            raise ValueError(f"init_std={init_std} lies outside std_range={tuple(self.std_range)}")
        init = _TO_PARAM[std_type](torch.full((output_dim,), float(init_std)))
        if std_type == "log":
            self.log_std_param = nn.Parameter(init, requires_grad=learn_std)
        elif std_type == "softplus":
            self.softplus_std_param = nn.Parameter(init, requires_grad=learn_std)
        else:
            self.std_param = nn.Parameter(init, requires_grad=learn_std)

    @classmethod
    def from_config(cls, output_dim: int, cfg: DistributionConfig) -> GaussianDistribution:
        """The head our configs describe."""
        return cls(output_dim, cfg.init_std, cfg.std_range, cfg.std_type, cfg.learn_std)

    def std_vector(self) -> torch.Tensor:
        """Standard deviation ``[A]``, in ``std_range`` up to rounding (NaN parameters give its lower bound)."""
        theta = {"log": "log_std_param", "softplus": "softplus_std_param", "scalar": "std_param"}[self.std_type]
        return _param_to_std(getattr(self, theta), self.std_type, self.param_range, self.std_range[0])

    def update(self, mlp_output: torch.Tensor) -> None:
        self._current = (mlp_output, self.std_vector().expand_as(mlp_output))

    def sample(self) -> torch.Tensor:
        mean, std = self._params()
        with torch.no_grad():
            return torch.normal(mean, std)

    def deterministic_output(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return mlp_output

    def as_deterministic_output_module(self) -> nn.Module:
        return nn.Identity()

    @property
    def input_dim(self) -> int | list[int]:
        return self.output_dim

    @property
    def mean(self) -> torch.Tensor:
        return self._params()[0]

    @property
    def std(self) -> torch.Tensor:
        return self._params()[1]

    @property
    def entropy(self) -> torch.Tensor:
        return gaussian_entropy(self._params()[1])

    def log_prob(self, outputs: torch.Tensor) -> torch.Tensor:
        mean, std = self._params()
        return gaussian_log_prob(outputs, mean, std)

    def kl_divergence(self, old_params: tuple[torch.Tensor, ...], new_params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (mean0, std0), (mean1, std1) = old_params, new_params
        return gaussian_kl(mean0, std0, mean1, std1)


class HeteroscedasticGaussianDistribution(GaussianDistribution):
    """Diagonal Gaussian whose std depends on the state: the MLP outputs ``[..., 2, A]``, row 0 the mean, row 1 θ of
    the std (mapped and clamped as the state-independent std is). The std rows of the output layer start at zero
    weight and bias θ(init_std), so every state starts at ``init_std``."""

    def __init__(
        self,
        output_dim: int,
        init_std: float = 1.0,
        std_range: tuple[float, float] = (1e-6, 1e6),
        std_type: str = "scalar",
    ) -> None:
        Distribution.__init__(self, output_dim)  # no learned std parameter: the MLP provides it
        self.std_type = std_type
        self.init_std = init_std
        self.std_range, self.param_range = _std_bounds(std_range, std_type)
        self.log_std_range = [math.log(v) for v in self.std_range]

    def std_vector(self) -> torch.Tensor:
        return Distribution.std_vector(self)

    def update(self, mlp_output: torch.Tensor) -> None:
        mean, theta = mlp_output.unbind(-2)
        self._current = (mean, _param_to_std(theta, self.std_type, self.param_range, self.std_range[0]))

    def deterministic_output(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return mlp_output[..., 0, :]

    def as_deterministic_output_module(self) -> nn.Module:
        return _FirstRow()

    @property
    def input_dim(self) -> int | list[int]:
        return [2, self.output_dim]

    @torch.no_grad()
    def init_mlp_weights(self, mlp: nn.Module) -> None:
        layer = last_linear(mlp)
        layer.weight[self.output_dim :].zero_()
        layer.bias[self.output_dim :] = _TO_PARAM[self.std_type](torch.tensor(float(self.init_std))).item()


class BetaDistribution(Distribution):
    """Beta distribution on ``action_range`` for bounded actions: the MLP outputs ``[..., 2, A]``, raw α and β, each
    mapped to ``softplus(·) + 1 > 1`` (a unimodal density); samples in [0, 1] are rescaled to ``action_range``.

    ``log_prob`` is the density of the rescaled action (−log(high − low) per dimension); ``entropy`` is that of the
    unit Beta, as in rsl-rl-lib (the constant log(high − low) does not change its gradient). The β rows of the output
    layer start at zero.
    """

    def __init__(self, output_dim: int, action_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__(output_dim)
        low, high = (float(v) for v in action_range)
        if not low < high:
            raise ValueError(f"action_range={tuple(action_range)}; need low < high")
        self.action_range = (low, high)

    def update(self, mlp_output: torch.Tensor) -> None:
        self._current = _beta_concentrations(mlp_output)

    def sample(self) -> torch.Tensor:
        alpha, beta = self._params()
        low, high = self.action_range
        with torch.no_grad():
            unit = torch.distributions.Beta(alpha, beta, validate_args=False).sample()
        return low + (high - low) * unit

    def deterministic_output(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return _beta_mean(mlp_output, self.action_range[0], self.action_range[1])

    def as_deterministic_output_module(self) -> nn.Module:
        return _BetaMean(*self.action_range)

    @property
    def input_dim(self) -> int | list[int]:
        return [2, self.output_dim]

    @property
    def mean(self) -> torch.Tensor:
        alpha, beta = self._params()
        low, high = self.action_range
        return low + (high - low) * alpha / (alpha + beta)

    @property
    def std(self) -> torch.Tensor:
        """σ = √(αβ / ((α+β)² (α+β+1))), scaled to ``action_range``."""
        alpha, beta = self._params()
        total = alpha + beta
        return (self.action_range[1] - self.action_range[0]) * (alpha * beta / (total.square() * (total + 1))).sqrt()

    @property
    def entropy(self) -> torch.Tensor:
        return beta_entropy(*self._params()).sum(-1)

    def log_prob(self, outputs: torch.Tensor) -> torch.Tensor:
        alpha, beta = self._params()
        low, high = self.action_range
        # Back onto (0, 1), kept off the edges where the log-density is infinite, as rsl-rl-lib does.
        unit = ((outputs - low) / (high - low)).clamp(1e-6, 1.0 - 1e-6)
        return (beta_log_prob(unit, alpha, beta) - math.log(high - low)).sum(-1)

    def kl_divergence(self, old_params: tuple[torch.Tensor, ...], new_params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (alpha0, beta0), (alpha1, beta1) = old_params, new_params
        return beta_kl(alpha0, beta0, alpha1, beta1).sum(-1)

    @torch.no_grad()
    def init_mlp_weights(self, mlp: nn.Module) -> None:
        layer = last_linear(mlp)
        layer.weight[self.output_dim :].zero_()
        layer.bias[self.output_dim :].zero_()


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.__name__: cls for cls in (GaussianDistribution, HeteroscedasticGaussianDistribution, BetaDistribution)
}


def build_distribution(output_dim: int, cfg: DistributionConfig | dict[str, Any] | None) -> Distribution | None:
    """The head a model's ``distribution_cfg`` asks for (None: a deterministic model). A dict is rsl-rl-lib's form:
    ``class_name`` (one of :data:`DISTRIBUTIONS`, or a path to any :class:`Distribution`) and its keyword arguments."""
    if cfg is None:
        return None
    if isinstance(cfg, DistributionConfig):
        return GaussianDistribution.from_config(output_dim, cfg)
    kwargs = dict(cfg)
    if "class_name" not in kwargs:
        raise KeyError(f"distribution_cfg has no 'class_name' (one of {list(DISTRIBUTIONS)}): {sorted(kwargs)}")
    name = kwargs.pop("class_name")
    cls = DISTRIBUTIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        from rsl_rl.utils.utils import resolve_callable  # lazy: rsl_rl.utils imports the modules' configs

        cls = resolve_callable(name)
    return cls(output_dim, **kwargs)


def last_linear(mlp: nn.Module) -> nn.Linear:
    """The output layer of an MLP (its last ``nn.Linear``), whose rows a distribution initialises."""
    layers = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("the MLP has no nn.Linear layer")
    return layers[-1]


class _FirstRow(nn.Module):
    """``[..., 2, A] → [..., A]``: the mean row of a heteroscedastic Gaussian's MLP output (exportable)."""

    def forward(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return mlp_output[..., 0, :]


def _beta_concentrations(mlp_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., 2, A]`` → (α, β) = softplus(raw) + 1."""
    alpha_raw, beta_raw = mlp_output.unbind(-2)
    return F.softplus(alpha_raw) + 1.0, F.softplus(beta_raw) + 1.0


def _beta_mean(mlp_output: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """low + (high − low) α / (α + β)."""
    alpha, beta = _beta_concentrations(mlp_output)
    return low + (high - low) * alpha / (alpha + beta)


class _BetaMean(nn.Module):
    """:func:`_beta_mean` as an exportable module."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, mlp_output: torch.Tensor) -> torch.Tensor:
        return _beta_mean(mlp_output, self.low, self.high)
