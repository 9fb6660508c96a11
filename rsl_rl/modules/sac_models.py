"""SAC's networks: a tanh-squashed Gaussian actor mapped onto the env's action bounds, and an ensemble of Q critics.

Actions live in two spaces. The actor draws ``u = tanh(x) ∈ (−1, 1)^A``; the env receives ``a = c + u · (high − c)``
for ``u ≥ 0`` and ``a = c + u · (c − low)`` for ``u < 0``: −1, 0 and 1 map onto ``low``, the centre ``c`` and
``high``, the bounds the task declares (the legged task derives them from its joint limits and action scale,
RSL-RL-SAC's first fix). The centre is 0 (the default pose of a legged robot) when the bounds contain 0 and their
midpoint otherwise: a joint's limits are rarely symmetric about its default angle, and the midpoint map of an affine
squash would start every robot in a pose it falls from. Critics and the replay see ``u``, so one network scale fits
every task, and log-probabilities are those of ``u``: the target entropy ``−|A|`` means the same for every set of
bounds (the bounds' Jacobian is left out, as Stable-Baselines3 does).

With ``actor.cnn_cfg`` the actor reads image groups through CNN encoders (:mod:`rsl_rl.modules.sac_encoder`); the
critics read vector groups only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional as F

from rsl_rl.modules.cnn import validate_cnn_cfg
from rsl_rl.modules.mlp import ACTIVATIONS, MLP, validate_mlp
from rsl_rl.modules.normalization import EmpiricalNormalization
from rsl_rl.modules.sac_encoder import FlatImageEncoder
from rsl_rl.utils.class_names import short_class_name

_LOG2 = math.log(2.0)


@dataclass
class SACActorConfig:
    """The squashed Gaussian actor (the ``actor`` section of a SAC config)."""

    class_name: str = "SquashedGaussianActor"
    """Only ``"SquashedGaussianActor"``."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths of the hidden layers."""
    activation: str = "elu"
    """Hidden activation, one of ACTIVATIONS."""
    obs_normalization: bool = False
    """Normalise the actor's input with running mean/std (baked into exports)."""
    init_std: float = 0.5
    """σ of the pre-tanh Gaussian at initialisation (RSL-RL-SAC: a small σ keeps early episodes from falling)."""
    log_std_range: tuple[float, float] = (-5.0, 2.0)
    """Bounds of log σ; a tanh maps the network's output smoothly onto them (no dead gradient at a hard clamp)."""
    cnn_cfg: dict[str, Any] | None = None
    """:class:`~rsl_rl.modules.cnn.CNN` arguments (rsl-rl-lib's keys, as ``CNNConfig.cnn_cfg``) for every image group
    ``[N, C, H, W]`` of the actor, or ``{group: kwargs}``; None: the actor reads vector groups only."""

    def __post_init__(self) -> None:
        short_class_name(self.class_name, ["SquashedGaussianActor"], "actor.class_name")
        if self.cnn_cfg is not None:
            if not isinstance(self.cnn_cfg, dict) or not self.cnn_cfg:
                raise ValueError(f"actor.cnn_cfg must be a non-empty dict of CNN arguments, got {self.cnn_cfg!r}")
            validate_cnn_cfg(self.cnn_cfg, "actor.cnn_cfg")
        validate_mlp(self.hidden_dims, self.activation)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        lo, hi = (float(v) for v in self.log_std_range)
        if not lo < hi:
            raise ValueError(f"actor.log_std_range={self.log_std_range}; need min < max")
        if not math.exp(lo) < self.init_std < math.exp(hi):
            raise ValueError(
                f"actor.init_std={self.init_std} must lie strictly inside exp(log_std_range) = "
                f"({math.exp(lo):.3g}, {math.exp(hi):.3g})"
            )
        self.log_std_range = (lo, hi)


@dataclass
class SACCriticConfig:
    """The Q ensemble (the ``critic`` section of a SAC config)."""

    class_name: str = "QEnsemble"
    """``"QEnsemble"`` (scalar Q) or ``"CategoricalQEnsemble"`` (C51 distributional Q, modules/categorical.py)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths of the hidden layers of every critic."""
    activation: str = "elu"
    """Hidden activation, one of ACTIVATIONS."""
    obs_normalization: bool = False
    """Normalise the critics' observation input with running mean/std."""
    num_critics: int = 2
    """N critics trained on the same targets."""
    layer_norm: bool = True
    """LayerNorm after every hidden Linear (before the activation)."""
    num_atoms: int = 101
    """Atoms of the categorical critic's support (CategoricalQEnsemble only)."""
    v_min: float = -20.0
    """Lowest atom (CategoricalQEnsemble only); the support should cover the task's discounted returns."""
    v_max: float = 20.0
    """Highest atom (CategoricalQEnsemble only)."""

    def __post_init__(self) -> None:
        self.class_name = short_class_name(self.class_name, ["QEnsemble", "CategoricalQEnsemble"], "critic.class_name")
        validate_mlp(self.hidden_dims, self.activation)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        if self.num_critics < 1:
            raise ValueError(f"critic.num_critics must be >= 1, got {self.num_critics}")
        if self.num_atoms < 2 or not self.v_min < self.v_max:
            raise ValueError(
                f"critic.num_atoms={self.num_atoms}, v_min={self.v_min}, v_max={self.v_max}; need >= 2 atoms and "
                "v_min < v_max"
            )


class SquashedGaussianActor(nn.Module):
    """``obs → normaliser → MLP → (μ, log σ)``; ``u = tanh(μ + σ ε)``; ``a = to_env(u)`` within the bounds.

    ``forward`` is the deterministic policy ``to_env(tanh(μ))`` (evaluation and export); :meth:`sample` draws
    ``(u, log π(u))`` for training. With ``cfg.cnn_cfg`` the flat ``obs`` holds image groups too: the normaliser
    reads its vector part, and the MLP ``[normalised vector, CNN features]`` (:class:`FlatImageEncoder`).
    """

    action_low: torch.Tensor
    action_high: torch.Tensor
    action_center: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        cfg: SACActorConfig,
        low: torch.Tensor,
        high: torch.Tensor,
        obs_shapes: dict[str, tuple[int, ...]] | None = None,
    ):
        """``obs_shapes``: each group's shape per sample in the flat layout's order; needed with ``cfg.cnn_cfg``."""
        super().__init__()
        low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
        if low.shape != (num_actions,) or high.shape != (num_actions,):
            raise ValueError(
                f"action bounds must have shape [{num_actions}], got {tuple(low.shape)}, {tuple(high.shape)}"
            )
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high > low).all()):
            raise ValueError(
                f"SAC needs finite action bounds with high > low for every action; got low={low.tolist()}, "
                f"high={high.tolist()} (set algorithm.action_bounds for an env that declares none)"
            )
        self.obs_dim = obs_dim
        self.output_dim = num_actions
        self.cfg = cfg
        self.encoder: FlatImageEncoder | None = None
        self.obs_dim_1d, mlp_in = obs_dim, obs_dim
        """Width of the vector part (what the normaliser reads) and of the MLP's input."""
        if cfg.cnn_cfg is not None:
            if obs_shapes is None:
                raise ValueError("actor.cnn_cfg needs the observation groups' shapes (obs_shapes): build_sac_actor")
            self.encoder = FlatImageEncoder(obs_shapes, cfg.cnn_cfg)
            if self.encoder.input_dim != obs_dim:
                raise ValueError(
                    f"obs_dim={obs_dim} but the groups' shapes {obs_shapes} flatten to {self.encoder.input_dim}"
                )
            self.obs_dim_1d, mlp_in = self.encoder.vector_dim, self.encoder.output_dim
        self.obs_normalization = cfg.obs_normalization and self.obs_dim_1d > 0
        self.obs_normalizer: nn.Module = (
            EmpiricalNormalization(self.obs_dim_1d) if self.obs_normalization else nn.Identity()
        )
        self.mlp = MLP(mlp_in, 2 * num_actions, cfg.hidden_dims, cfg.activation)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.register_buffer("action_center", torch.where((low < 0) & (high > 0), 0.0, (low + high) / 2))
        lo, hi = cfg.log_std_range
        # log σ = lo + (hi − lo)·(tanh(y + y0) + 1)/2 with y0 chosen so that y = 0 gives log σ = log init_std; the last
        # layer is scaled down so that y ≈ 0 and μ ≈ 0 at the start for every observation.
        self.log_std_low, self.log_std_high = lo, hi
        self.log_std_shift = math.atanh(2.0 * (math.log(cfg.init_std) - lo) / (hi - lo) - 1.0)
        last = self.mlp[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.zero_()

    @property
    def vector_spans(self) -> list[tuple[int, int]]:
        """Columns of the flat input that the normaliser reads (all of them without images)."""
        return [(0, self.obs_dim)] if self.encoder is None else list(self.encoder.vector_spans)

    def latent(self, obs: torch.Tensor) -> torch.Tensor:
        """The MLP's input: the normalised ``obs``, or ``[normalised vector part, CNN features]`` with images."""
        if self.encoder is None:
            return self.obs_normalizer(obs)
        vector, images = self.encoder.split(obs)
        return self.encoder(self.obs_normalizer(vector) if self.encoder.has_vector else vector, images)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs[B, obs_dim]`` → ``(μ, log σ)``, each ``[B, A]``, of the pre-tanh Gaussian."""
        mean, y = self.mlp(self.latent(obs)).float().chunk(2, dim=-1)  # float32 under bf16 autocast too
        lo, hi = self.log_std_low, self.log_std_high
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(y + self.log_std_shift) + 1.0)
        return mean, log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``u[B, A] ∈ (−1, 1)`` and ``log π(u)[B]``."""
        mean, log_std = self.distribution(obs)
        return squashed_sample(mean, log_std, torch.randn_like(mean))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic env action ``to_env(tanh(μ))`` ``[B, A]`` (within the bounds)."""
        mean, _ = self.distribution(obs)
        return self.to_env(torch.tanh(mean))

    def to_env(self, u: torch.Tensor) -> torch.Tensor:
        """``u ∈ [−1, 1]`` → env action: −1, 0, 1 onto low, centre, high, linear in between."""
        return squash_to_bounds(u, self.action_low, self.action_center, self.action_high)

    def from_env(self, actions: torch.Tensor) -> torch.Tensor:
        """Env actions (demonstrations, interventions) → ``u ∈ [−1, 1]``, the inverse of :meth:`to_env`."""
        return unsquash_from_bounds(actions, self.action_low, self.action_center, self.action_high)

    def std(self) -> torch.Tensor:
        """Not defined for a state-dependent σ: the runner logs SAC's entropy instead."""
        raise RuntimeError("the SAC actor's σ depends on the observation; see the logged Policy/entropy")

    def update_normalization(self, obs: torch.Tensor) -> None:
        """Fold a batch of flat observations into the normaliser (the vector part only with images)."""
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(obs if self.encoder is None else self.encoder.split(obs)[0])


def build_sac_actor(
    obs: TensorDict,
    groups: Sequence[str],
    num_actions: int,
    cfg: SACActorConfig,
    low: torch.Tensor,
    high: torch.Tensor,
) -> SquashedGaussianActor:
    """The actor for the observation ``groups`` of ``obs`` (``[N, D]`` vectors, ``[N, C, H, W]`` images): its flat
    input is every group flattened in ``groups`` order. Image groups need ``cfg.cnn_cfg``."""
    shapes = {g: tuple(int(d) for d in obs[g].shape[1:]) for g in groups}
    images = [g for g, s in shapes.items() if len(s) != 1]
    if images and cfg.cnn_cfg is None:
        raise ValueError(
            f"the actor's observation group(s) {images} are images {[list(shapes[g]) for g in images]}: set "
            "actor.cnn_cfg (CNN arguments, e.g. {'output_channels': [16, 16], 'kernel_size': [6, 3], 'stride': [3, 2]})"
        )
    obs_dim = sum(int(torch.Size(s).numel()) for s in shapes.values())
    return SquashedGaussianActor(obs_dim, num_actions, cfg, low, high, shapes if cfg.cnn_cfg is not None else None)


def vector_width(obs: TensorDict, groups: Sequence[str], section: str = "critic") -> int:
    """Width of the vector groups ``[N, D]`` a SAC critic reads; an image group is an error that says what to do."""
    images = [g for g in groups if obs[g].dim() != 2]
    if images:
        raise ValueError(
            f"SAC's {section} reads vector groups [N, D] only; {images} are images "
            f"{[list(obs[g].shape) for g in images]}: image critics are not supported -- give the critic state "
            "groups (obs_groups['critic'], asymmetric actor-critic) and the actor a cnn_cfg"
        )
    return sum(int(obs[g].shape[-1]) for g in groups)


def squash_to_bounds(u: torch.Tensor, low: torch.Tensor, center: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``c + u · (high − c)`` for ``u ≥ 0``, ``c + u · (c − low)`` for ``u < 0`` (``[B, A]``; bounds ``[A]``)."""
    return center + u * torch.where(u >= 0, high - center, center - low)


def unsquash_from_bounds(
    actions: torch.Tensor, low: torch.Tensor, center: torch.Tensor, high: torch.Tensor
) -> torch.Tensor:
    """The inverse of :func:`squash_to_bounds`: env actions ``[B, A]`` → ``u ∈ [−1, 1]``; actions outside the bounds map
    to ±1, where the env's clip puts them."""
    u = (actions - center) / torch.where(actions >= center, high - center, center - low)
    return u.clamp(-1.0, 1.0)


def squashed_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``u = tanh(μ + σ ε)`` ``[B, A]`` and ``log π(u) = Σ_i [log N(x_i; μ_i, σ_i) − log(1 − tanh² x_i)]`` ``[B]``.

    ``log(1 − tanh² x) = 2 (log 2 − x − softplus(−2x))`` is the stable form (no log of a number that rounds to 0).
    """
    x = mean + log_std.exp() * noise
    gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
    log_det = 2.0 * (_LOG2 - x - F.softplus(-2.0 * x))
    return torch.tanh(x), (gaussian - log_det).sum(-1)


class EnsembleLinear(nn.Module):
    """N independent Linear layers applied as one batched matmul: ``x[N, B, in] → [N, B, out]``.

    The weight is stored ``[N, out, in]`` (nn.Linear's layout) and used transposed: the backward's weight gradient is
    then a plain batched GEMM, which made forward + backward 25 % faster on 2 CPU cores than ``[N, in, out]``.
    """

    def __init__(self, num: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(num, d_out, d_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))


class EnsembleMLP(nn.Module):
    """N MLPs ``[in → hidden… → out]`` evaluated together; LayerNorm (per member affine) before each activation."""

    def __init__(
        self, num: int, d_in: int, d_out: int, hidden_dims: tuple[int, ...], activation: str, layer_norm: bool
    ) -> None:
        super().__init__()
        dims = (d_in, *hidden_dims)
        self.linears = nn.ModuleList(EnsembleLinear(num, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.layer_norm = layer_norm
        self.act = ACTIVATIONS[activation.lower()]()
        self.out = EnsembleLinear(num, dims[-1], d_out)
        if layer_norm:  # one [N, 1, d] weight and bias per layer: the N LayerNorms as one op
            self.ln_weight = nn.ParameterList(nn.Parameter(torch.ones(num, 1, d)) for d in hidden_dims)
            self.ln_bias = nn.ParameterList(nn.Parameter(torch.zeros(num, 1, d)) for d in hidden_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[N, B, in]`` (or ``[B, in]``, shared by every member) → ``[N, B, out]``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.out.weight.shape[0], -1, -1)
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if self.layer_norm:
                x = F.layer_norm(x, x.shape[-1:]) * self.ln_weight[i] + self.ln_bias[i]
            x = self.act(x)
        return self.out(x)


class QEnsemble(nn.Module):
    """N scalar critics ``Q_i(s, u)``, ``u ∈ [−1, 1]^A`` the actor's squashed action."""

    def __init__(self, obs_dim: int, num_actions: int, cfg: SACCriticConfig) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.num_critics = cfg.num_critics
        self.obs_normalizer: nn.Module = EmpiricalNormalization(obs_dim) if cfg.obs_normalization else nn.Identity()
        self.net = EnsembleMLP(
            cfg.num_critics, obs_dim + num_actions, self.head_dim(cfg), cfg.hidden_dims, cfg.activation, cfg.layer_norm
        )

    def head_dim(self, cfg: SACCriticConfig) -> int:
        return 1

    def raw(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Network outputs ``[N, B, head]`` for ``obs[B, D]`` (or ``[N, B, D]``) and ``u`` of the same leading shape."""
        return self.net(torch.cat([self.obs_normalizer(obs), u], dim=-1)).float()  # float32 under bf16 autocast too

    def forward(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Expected ``Q_i(s, u)`` ``[N, B]``."""
        return self.raw(obs, u).squeeze(-1)

    def td_loss(self, obs: torch.Tensor, u: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ_i mean_b ½ (Q_i(s, u) − y)²`` for ``target = y[B]``; also returns the Q values ``[N, B]``."""
        q = self(obs, u)
        return 0.5 * (q - target).pow(2).mean(-1).sum(), q

    def target(
        self, next_obs: torch.Tensor, next_u: torch.Tensor, members: torch.Tensor | None, backup: BackupTerms
    ) -> torch.Tensor:
        """The soft TD target ``y[B]`` from these (target) critics (:func:`rsl_rl.algorithms.losses.soft_q_target`)."""
        from rsl_rl.algorithms.losses import soft_q_target

        q = self(next_obs, next_u)
        if members is not None:
            q = q.index_select(0, members)
        return soft_q_target(backup.returns, backup.discounts, q, backup.next_log_prob, backup.alpha)

    def update_normalization(self, obs: torch.Tensor) -> None:
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(obs)


@dataclass
class BackupTerms:
    """What a TD target needs besides the critics' outputs (all ``[B]`` except ``alpha``, a scalar tensor)."""

    returns: torch.Tensor
    """n-step discounted reward sum."""
    discounts: torch.Tensor
    """γ^k of the bootstrap, 0 where the window hit a termination."""
    next_log_prob: torch.Tensor
    """log π(u'|s') of the bootstrap action."""
    alpha: torch.Tensor
    """Temperature in the backup (0 when the entropy term is switched off)."""


def build_critic(obs_dim: int, num_actions: int, cfg: SACCriticConfig) -> QEnsemble:
    """The critic ensemble a config names."""
    if cfg.class_name == "CategoricalQEnsemble":
        from rsl_rl.modules.categorical import CategoricalQEnsemble

        return CategoricalQEnsemble(obs_dim, num_actions, cfg)
    return QEnsemble(obs_dim, num_actions, cfg)
