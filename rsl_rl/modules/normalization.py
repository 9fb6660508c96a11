"""Running mean/std normalisation of observations, and rsl-rl-lib's reward normaliser built on it."""

from __future__ import annotations

import torch
from torch import nn


class EmpiricalNormalization(nn.Module):
    """Normalise ``x`` to zero mean and unit variance with statistics pooled over every sample seen so far.

    ``y = (x − μ) / (σ + eps)``. The statistics are updated from whole batches with the parallel (Chan et al.)
    combination of means and variances, so the result does not depend on how samples are split into batches. Buffer
    names (``_mean``, ``_var``, ``_std``, ``count``) are rsl-rl-lib's, so its checkpoints load.

    As in rsl-rl-lib, :meth:`update` learns only in training mode, and only until ``until`` samples have been seen
    (the batch that crosses the limit still counts) -- without reading ``count`` on the host.
    """

    def __init__(self, shape: int | tuple[int, ...] | list[int], eps: float = 1e-2, until: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.until = until
        # Buffer types declared in __init__, not on the class: TorchScript cannot read postponed class annotations.
        self._mean: torch.Tensor
        self._var: torch.Tensor
        self._std: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("_mean", torch.zeros(shape).unsqueeze(0))
        self.register_buffer("_var", torch.ones(shape).unsqueeze(0))
        self.register_buffer("_std", torch.ones(shape).unsqueeze(0))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))

    @property
    def mean(self) -> torch.Tensor:
        """Running mean (a copy)."""
        return self._mean.squeeze(0).clone()

    @property
    def std(self) -> torch.Tensor:
        """Running standard deviation (a copy)."""
        return self._std.squeeze(0).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x[..., *shape]``."""
        return (x - self._mean) / (self._std + self.eps)

    @torch.jit.unused
    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``x[B, *shape]`` (leading axes are flattened into the batch) into the running statistics."""
        if not self.training:
            return
        x = x.reshape(-1, *self._mean.shape[1:])
        n: torch.Tensor | int = x.shape[0]
        if self.until is not None:
            n = torch.where(self.count < self.until, n, 0)  # past the limit the batch counts for nothing: no sync
        batch_var, batch_mean = torch.var_mean(x, dim=0, unbiased=False, keepdim=True)
        total = self.count + n
        rate = n / total.clamp_min(1)
        delta = batch_mean - self._mean
        # Chan et al.: M2_ab = M2_a + M2_b + δ² n_a n_b / n; divided by n it gives the update below.
        self._mean += rate * delta
        self._var += rate * (batch_var - self._var + delta * (batch_mean - self._mean))
        self._std.copy_(self._var.clamp_min(0.0).sqrt())
        self.count.copy_(total)

    @torch.jit.unused
    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation: ``x = y (σ + eps) + μ``."""
        return y * (self._std + self.eps) + self._mean


class EmpiricalDiscountedVariationNormalization(nn.Module):
    """Reward scaling of Burda et al.'s large-scale curiosity study (rsl-rl-lib's RND uses it): rewards are divided by
    the running std of the discounted reward sum R_t = γ R_{t−1} + r_t, which keeps the value targets of a
    non-stationary (intrinsic) reward on one scale. Statistics are updated in training mode only."""

    def __init__(
        self,
        shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-2,
        gamma: float = 0.99,
        until: int | None = None,
    ) -> None:
        super().__init__()
        self.emp_norm = EmpiricalNormalization(shape, eps, until)
        self.disc_avg = _DiscountedSum(gamma)

    def forward(self, rew: torch.Tensor) -> torch.Tensor:
        """``rew / σ(R)``; unchanged while σ(R) is still 0. No host sync."""
        if self.training:
            self.emp_norm.update(self.disc_avg.update(rew))
        std = self.emp_norm._std.reshape(self.emp_norm._std.shape[1:])
        return torch.where(std > 0, rew / std, rew)


class _DiscountedSum:
    """R_t = γ R_{t−1} + r_t, started at R_0 = r_0 (plain state, not part of a state dict, as in rsl-rl-lib)."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma
        self.avg: torch.Tensor | None = None

    def update(self, rew: torch.Tensor) -> torch.Tensor:
        self.avg = rew if self.avg is None else self.avg * self.gamma + rew
        return self.avg


class ReturnScaleNormalization(nn.Module):
    """Env-reward scaling of Stable-Baselines3's ``VecNormalize(norm_reward=True)`` and gymnasium's
    ``NormalizeReward``: ``r_t / sqrt(Var[R] + eps)``, clipped to ±``clip``, with the per-env discounted return
    R_t = γ R_{t−1} + r_t restarted at 0 after every episode end and its variance pooled over all envs and steps.

    Only the scale changes (no mean is subtracted), so the sign of each reward and the optimal policy stay the same;
    the critic's targets land near unit scale whatever the task's reward magnitude (HalfCheetah's returns reach
    thousands). The per-env sums and the statistics are buffers: a checkpoint resumes exactly. No host sync.
    """

    def __init__(self, num_envs: int, gamma: float, eps: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        self.gamma, self.eps, self.clip = gamma, eps, clip
        self.stats = EmpiricalNormalization(1, eps=0.0)
        self.returns: torch.Tensor
        self.register_buffer("returns", torch.zeros(num_envs))

    @torch.no_grad()
    def forward(self, rew: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """Fold ``rew[N]`` into the statistics and return it scaled; ``dones[N]``: the episodes that ended with it."""
        self.returns.mul_(self.gamma).add_(rew)
        self.stats.update(self.returns.unsqueeze(-1))
        self.returns.masked_fill_(dones.to(torch.bool), 0.0)  # the next step starts a new return
        scale = torch.rsqrt(self.stats._var.reshape(()) + self.eps)
        return (rew * scale).clamp(-self.clip, self.clip)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # A run resumed with another number of envs keeps the statistics; its per-env sums restart at 0.
        key = prefix + "returns"
        if key in state_dict and state_dict[key].shape != self.returns.shape:
            state_dict = {**state_dict, key: torch.zeros_like(self.returns)}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[arg-type]
